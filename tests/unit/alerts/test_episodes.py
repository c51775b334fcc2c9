"""The episode state machine (hysteresis, cooldown, re-notify) and the dispatcher's pacing and
error handling, with a fake clock and an in-memory outbox."""

from __future__ import annotations

from typing import Any

from monitor.alerts.delivery import Dispatcher, SendResult
from monitor.alerts.episodes import FIRE, FIRING, OK, RENOTIFY, RESOLVE, Episode, step
from monitor.alerts.rules import BREACH, CLEAR, HOLD, Evaluation
from monitor.alerts.settings import DestinationSettings, RuleSettings

RULE = RuleSettings(name="neg", fire_after=2, resolve_after=3, cooldown_s=600, renotify_step=0.1)
M = 60_000


def ev(i: int, status: str, level: float = 0.15, severity: str = "warning") -> Evaluation:
    return Evaluation("neg", "share_shift", "negative_share", i * M, 15, status, severity, level=level)


def run(statuses: list[Any], ep: Episode | None = None) -> tuple[Episode, list[tuple[int, str]]]:
    ep = ep or Episode()
    out = []
    for i, s in enumerate(statuses, 1):
        e = ev(i, *s) if isinstance(s, tuple) else ev(i, s)
        ep, action = step(ep, e, RULE)
        if action:
            out.append((i, action))
    return ep, out


def test_fires_after_m_breaches_and_resolves_after_k_clears():
    ep, acts = run([BREACH, CLEAR, BREACH, BREACH, HOLD, CLEAR, CLEAR, HOLD, CLEAR, CLEAR, CLEAR])
    assert acts == [(4, FIRE), (11, RESOLVE)]  # a lone breach does not fire; holds never resolve
    assert ep.status == OK and ep.cooldown_until_ms == 11 * M + 600_000


def test_no_flapping_and_no_new_episode_inside_the_cooldown():
    first, acts = run([BREACH, BREACH, CLEAR, CLEAR, CLEAR])
    assert acts == [(2, FIRE), (5, RESOLVE)]
    ep, acts = step(first, ev(6, BREACH), RULE)[0], []
    for i in range(7, 20):  # breaching throughout the 10-minute cooldown, which ends at minute 15
        ep, a = step(ep, ev(i, BREACH), RULE)
        if a:
            acts.append((i, a))
    assert acts == [(15, FIRE)]


def test_renotify_only_when_the_episode_worsens():
    _, acts = run(
        [
            BREACH,
            (BREACH, 0.16),
            (BREACH, 0.2),
            (BREACH, 0.26),
            (BREACH, 0.3, "critical"),
            (BREACH, 0.3, "critical"),
            (BREACH, 0.1),
        ]
    )
    assert acts == [(2, FIRE), (4, RENOTIFY), (5, RENOTIFY)]


def test_episode_round_trips_through_json():
    ep, _ = run([BREACH, BREACH])
    assert ep.status == FIRING and Episode.from_json(ep.to_json()) == ep
    assert Episode.from_json(None) == Episode() and Episode.from_json({**ep.to_json(), "new": 1}) == ep


class Memory:
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries, self.done, self.off = entries, set(), {}

    def outbox(self):
        return list(self.entries)

    def drop_gone_quotes(self, entries):
        return entries

    def replace(self, old, new):  # in place, like RedisAlertLedger
        i = self.entries.index(old)
        if new is None:
            del self.entries[i]
        else:
            self.entries[i] = new

    def mark_delivered(self, fp, dest):
        self.done.add((fp, dest))

    def was_delivered(self, fp, dest):
        return (fp, dest) in self.done

    def disable(self, dest, reason):
        self.off[dest] = reason

    def disabled(self):
        return dict(self.off)


def test_dispatcher_paces_honours_retry_after_backs_off_and_disables(monkeypatch):
    monkeypatch.setenv("H_A", "https://hooks.example/a")
    monkeypatch.setenv("H_B", "https://hooks.example/b")
    dests = [DestinationSettings(name="a", url_env="H_A"), DestinationSettings(name="b", url_env="H_B")]
    store = Memory(
        [
            {"destination": d, "fingerprint": f"f{i}", "body": {"i": i}, "created_s": 0}
            for i in range(3)
            for d in ("a", "b")
        ]
    )
    now = [1000.0]
    slept: list[float] = []
    answers = {"https://hooks.example/a": [429, 500, 200, 200, 200], "https://hooks.example/b": [404]}
    sent: list[tuple[str, int]] = []

    def send(url, body):
        status = answers[url].pop(0)
        sent.append((url[-1], body["i"]))
        return SendResult(
            status, {200: "delivered", 404: "permanent"}.get(status, "retry"), 2.0 if status == 429 else 0.0
        )

    def sleep(s):
        slept.append(s)
        now[0] += s

    disp = Dispatcher(dests, store, send=send, clock_s=lambda: now[0], sleep=sleep, backoff_base_s=1.0)
    for _ in range(20):
        disp.deliver()
        now[0] += 0.5
    assert sent[:2] == [("a", 0), ("b", 0)] and [i for d, i in sent if d == "a"] == [
        0,
        0,
        0,
        1,
        2,
    ]  # in order
    assert store.off.keys() == {"b"} and disp.stats["delivered"] == 3 and disp.stats["dropped"] == 3
    assert store.entries == [] and all(s <= 1.0 for s in slept)
    assert disp.deliver() == 0
