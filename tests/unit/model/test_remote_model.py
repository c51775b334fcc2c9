"""A worker's host processes score through the one model of its main process
(`monitor.model.remote`): what a host gets back is what the model gave, token ids cross
without a second tokenizing, a model failure reaches the host as a `ModelError`, and the model
runs at most ``concurrency`` batches at once, whichever host they come from."""

from __future__ import annotations

import pickle
import threading
import time
from multiprocessing import Pipe
from typing import Any

import pytest

from monitor.errors import ModelError
from monitor.model.base import ModelOutput, to_labels
from monitor.model.remote import HostModel, ModelServer, RemoteScorer, host_model
from monitor.model.tokens import Pretokenized, pretokenize_with, tokenize_ids, tokens_key

OUT = ModelOutput((0.7, 0.2, 0.1), (0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1))


class Recorder:
    name = "fake"
    trained = True

    def __init__(self, fail_on: str | None = None, hold_s: float = 0.0) -> None:
        self.got: list[tuple[list[str], Any]] = []
        self.fail_on = fail_on
        self.hold_s = hold_s
        self.running = self.most = 0
        self._lock = threading.Lock()

    def score(self, texts: Any, langs: Any = None) -> list[ModelOutput | None]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.hold_s)
            self.got.append((list(texts), langs))
            if self.fail_on is not None and self.fail_on in texts:
                raise RuntimeError("CUDA error: device-side assert triggered")
            # a post of another language than the model's: None; otherwise an output that
            # says which text it is (its length as P(positive))
            return [
                None if t.startswith("xx") else ModelOutput((0.0, 0.0, float(len(t))), OUT.emotion)
                for t in texts
            ]
        finally:
            with self._lock:
                self.running -= 1


def _pair(scorer: Any, **kw: Any) -> tuple[RemoteScorer, ModelServer, Any]:
    mine, theirs = Pipe(duplex=True)
    server = ModelServer(scorer, **kw)
    t = threading.Thread(target=server.serve, args=(mine,), daemon=True)
    t.start()
    model = HostModel("fake", True, to_labels, 0.0)
    return RemoteScorer(theirs, model), server, (mine, theirs, t)


def test_a_host_gets_back_what_the_model_gave_in_order():
    rec = Recorder()
    remote, server, _ = _pair(rec)
    outs = remote.score(["one", "xx unsupported", "three!"], ["en", "xx", "en"])
    assert outs == [
        ModelOutput((0.0, 0.0, 3.0), OUT.emotion),
        None,
        ModelOutput((0.0, 0.0, 6.0), OUT.emotion),
    ]
    assert rec.got == [(["one", "xx unsupported", "three!"], ["en", "xx", "en"])]
    assert remote.score([], None) == [] and server.batches == 2
    assert remote.name == "fake" and remote.trained


def test_token_ids_cross_once_and_arrive_with_the_models_key():
    rec = Recorder()
    key = (12345, 64)
    remote, _, _ = _pair(rec, key=key)
    texts = [Pretokenized("a b", [101, 1, 2, 102], (999, 64)), Pretokenized("c", [101, 3, 102], (999, 64))]
    remote.score(texts, ["en", "en"])
    ((got, _langs),) = rec.got
    assert all(isinstance(t, Pretokenized) and t.key == key for t in got)
    assert [t.ids for t in got] == [[101, 1, 2, 102], [101, 3, 102]] and got == ["a b", "c"]
    # texts that were not tokenized in the host (no fast tokenizer): the model tokenizes them
    remote.score(["plain"], None)
    assert not isinstance(rec.got[-1][0][0], Pretokenized)


def test_a_model_failure_reaches_the_host_as_a_model_error_and_the_server_goes_on():
    rec = Recorder(fail_on="bad")
    remote, _, _ = _pair(rec)
    with pytest.raises(ModelError, match="RuntimeError: CUDA error"):
        remote.score(["ok", "bad"])
    assert remote.score(["fine"])[0] == ModelOutput((0.0, 0.0, 4.0), OUT.emotion)


def test_a_host_whose_model_process_is_gone_gets_a_model_error():
    mine, theirs = Pipe(duplex=True)
    mine.close()  # the main process's end: it died
    remote = RemoteScorer(theirs, HostModel("fake", True, to_labels, 0.0))
    with pytest.raises(ModelError, match="gone"):
        remote.score(["anything"])


def test_the_server_ends_when_its_host_closes_the_connection():
    _, _, (_mine, theirs, t) = _pair(Recorder())
    theirs.close()
    t.join(timeout=5)
    assert not t.is_alive()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_the_model_runs_at_most_concurrency_batches_of_all_hosts_at_once(concurrency):
    rec = Recorder(hold_s=0.05)
    server = ModelServer(rec, concurrency=concurrency)
    remotes = []
    for _ in range(4):
        mine, theirs = Pipe(duplex=True)
        threading.Thread(target=server.serve, args=(mine,), daemon=True).start()
        remotes.append(RemoteScorer(theirs, HostModel("fake", True, to_labels, 0.0)))
    hosts = [threading.Thread(target=lambda r=r: [r.score(["p"]) for _ in range(3)]) for r in remotes]
    for h in hosts:
        h.start()
    for h in hosts:
        h.join(timeout=30)
    assert server.batches == 12
    assert rec.most == concurrency


def test_a_host_tokenizes_with_the_models_rust_tokenizer_after_a_pickle():
    """What a host process gets (`host_model`: the `tokenizers.Tokenizer` behind the model's,
    through a pickle as the process start sends it) gives the ids the model's own tokenizer gives."""
    from monitor.model.default import load_encoder

    _, tok = load_encoder()
    model = pickle.loads(pickle.dumps(host_model(Recorder(), to_labels, 0.25, (tok, 64))))
    assert model.max_length == 64 and model.uncertain_below == 0.25 and model.to_labels is to_labels
    assert not hasattr(model.tokenizer, "backend_tokenizer")  # the Rust tokenizer, no transformers
    texts = ["a post about the metro #commute @someone", "émojis 🙂", "long " * 200, ""]
    want = tok(texts, truncation=True, max_length=64, padding=False)["input_ids"]
    key = tokens_key(model.tokenizer, 64)
    pre, counts = pretokenize_with(model.tokenizer, 64)(texts)
    assert [p.ids for p in pre] == want == tokenize_ids(model.tokenizer, texts, 64)
    assert counts == [len(w) for w in want] and all(p.key == key for p in pre)


def test_a_model_without_a_fast_tokenizer_sends_no_tokenizer():
    model = host_model(Recorder(), to_labels, 0.0, None)
    assert model.tokenizer is None and model.max_length == 0 and model.name == "fake"
