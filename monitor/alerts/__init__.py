"""Alerting: rules over sealed minutes -> episodes -> an outbox -> Slack and JSON webhooks.

settings.py    AlertSettings: rules, destinations, routing
detectors.py   the statistics (share shifts, volume spikes, baselines)
rules.py       one rule's evaluation of a window
episodes.py    open / escalate / resolve, and when to notify
message.py     AlertEvent and its Slack Block Kit and JSON bodies, redaction
delivery.py    the outbox's delivery: retries, rate limits, disabled destinations
alerter.py     the loop (APScheduler, one active alerter by lease)
backtest.py    `mood-monitor backtest`: rules replayed over stored history
"""

from monitor.alerts.alerter import Alerter, run_alerter
from monitor.alerts.message import AlertEvent
from monitor.alerts.settings import AlertSettings

__all__ = ["AlertEvent", "AlertSettings", "Alerter", "run_alerter"]
