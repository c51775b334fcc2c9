"""The exception tree of mood-monitor.

    MoodMonitorError
     +-- ConfigError            bad config file or value (names the file and field), or a server
     |                          refusing the configured login or certificate (names the setting); fatal
     +-- DecodeError            a record that is not a valid message (names the field); poison -> DLQ
     +-- ModelError             a model that will not load or whose labels cannot be mapped; fatal
     +-- TransientError         an outside service is down (Kafka, Redis, HTTP); back off and retry
     |    +-- StoreUnavailable  Redis down or timing out
     |    +-- BrokerUnavailable Kafka down or timing out
     +-- StackError             the local Kafka/Redis stack could not be set up or started

Third-party exceptions are translated where the library is imported (`monitor.kafka`, the
`monitor.store` package, `monitor.alerts.delivery`, `connectors.http`, `monitor.model`), with
``raise ... from exc``. Delivery outcomes of webhooks are values (`delivery.SendResult`), not
exceptions.
"""

from __future__ import annotations


class MoodMonitorError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(MoodMonitorError):
    def __init__(self, source: str, field: str, reason: str) -> None:
        super().__init__(f"{source}: {field}: {reason}")
        self.source = source
        self.field = field
        self.reason = reason


class DecodeError(MoodMonitorError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ModelError(MoodMonitorError):
    pass


class TransientError(MoodMonitorError):
    pass


class StoreUnavailable(TransientError):
    pass


class BrokerUnavailable(TransientError):
    pass


class StackError(MoodMonitorError):
    pass


# the exit code of each kind of failure, with the label the command line prints before it (0:
# done; anything else not listed: 1): the CLI and a worker's host processes exit by this table
EXIT_CODES: tuple[tuple[type[MoodMonitorError], int, str], ...] = (
    (ConfigError, 2, "config error: "),
    (ModelError, 3, "model error: "),
    (StackError, 4, "stack error: "),
    (TransientError, 5, "unavailable: "),
    (MoodMonitorError, 1, ""),
)


def exit_code(exc: MoodMonitorError) -> tuple[int, str]:
    """(exit code, label) of a failure, by `EXIT_CODES`."""
    return next((c, label) for kind, c, label in EXIT_CODES if isinstance(exc, kind))
