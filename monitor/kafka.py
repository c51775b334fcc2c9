"""The only module that imports a Kafka client library: topic set-up, producers, the batch consumer.

Producers and the batch consumer come in two libraries, chosen by ``kafka.client``
(`post_producer`, `batch_consumer`): kafka-python (the default) and librdkafka (confluent-kafka,
for GPU rates); topic set-up and read-back always use kafka-python.

Every client is built from `client_kwargs` (the bootstrap servers, TLS, SASL of
`KafkaSettings`; a plain string means a PLAINTEXT cluster, for tests and benchmarks).

kafka-python errors are translated here into `BrokerUnavailable` (transient) so nothing above
this seam knows the client library; a refused login, an untrusted certificate or a plaintext
client at a TLS listener is a `ConfigError` naming the setting to fix (`connection_error`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.net.sasl.scram import ScramClient
from kafka.structs import OffsetAndMetadata

from monitor.errors import BrokerUnavailable, ConfigError, MoodMonitorError
from monitor.transport import KafkaSettings, speaks_tls

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
REJOIN_POLL_MS = 1000


# a KafkaSettings, or the bootstrap servers of a PLAINTEXT cluster (tests, benchmarks)
KafkaConnection = KafkaSettings | str


def servers(kafka: KafkaConnection) -> str:
    return kafka if isinstance(kafka, str) else kafka.bootstrap_servers


def client_kwargs(kafka: KafkaConnection) -> dict[str, Any]:
    """The kafka-python arguments every client (producer, consumer, admin) is built with:
    bootstrap servers, security protocol, TLS files, the SASL login."""
    if isinstance(kafka, str):
        return {"bootstrap_servers": kafka}
    kw: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.tls:
        kw["ssl_check_hostname"] = kafka.ssl_check_hostname
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(kafka, name)
            if path is not None:
                kw[name] = str(path)
        key_pw = kafka.ssl_secret()
        if key_pw is not None:
            kw["ssl_password"] = key_pw.get_secret_value()
    if kafka.sasl:
        pw = kafka.sasl_secret()
        kw["sasl_mechanism"] = kafka.sasl_mechanism
        kw["sasl_plain_username"] = kafka.sasl_username
        kw["sasl_plain_password"] = pw.get_secret_value() if pw is not None else None
    return kw


def connect_kwargs(kafka: KafkaConnection) -> dict[str, Any]:
    """`client_kwargs`, after `check_connection` (once per settings object and process)."""
    if not isinstance(kafka, str) and id(kafka) not in _CHECKED:
        check_connection(kafka)
        _CHECKED[id(kafka)] = kafka
    return client_kwargs(kafka)


_CHECKED: dict[int, KafkaSettings] = {}


# ---- the start-up check: one short, raw conversation with the first bootstrap broker ------------
# kafka-python retries a refused login or a failed handshake until its bootstrap times out,
# logging every attempt; this check names the setting to fix at once. It speaks just enough of
# the protocol (ApiVersions v0, SaslHandshake v1, SaslAuthenticate v0; SCRAM by kafka-python's
# ScramClient) to see the broker accept the TLS session and the login.
_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_UNSUPPORTED_SASL_MECHANISM = 33


def _frame(api_key: int, version: int, body: bytes) -> bytes:
    client = b"mood-monitor-check"
    header = struct.pack(">hhih", api_key, version, 1, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the broker closed the connection")
        buf += chunk
    return buf


def _request(sock: socket.socket, api_key: int, version: int, body: bytes = b"") -> bytes:
    """One request; the response body after the correlation id."""
    sock.sendall(_frame(api_key, version, body))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if not 4 <= size <= 1 << 20:
        raise EOFError(f"not a Kafka response (size {size})")
    return _recv_exact(sock, size)[4:]


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    ctx.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile is not None:
        pw = kafka.ssl_secret()
        ctx.load_cert_chain(
            str(kafka.ssl_certfile),
            str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
            password=pw.get_secret_value() if pw else None,
        )
    return ctx


def _sasl_token(sock: socket.socket, token: bytes, kafka: KafkaSettings, where: str) -> bytes:
    reply = _request(sock, _SASL_AUTHENTICATE, 0, struct.pack(">i", len(token)) + token)
    (code,) = struct.unpack(">h", reply[:2])
    if code != 0:
        raise ConfigError(
            where,
            "kafka.sasl_password",
            f"rejected by the broker for user {kafka.sasl_username!r} "
            f"({kafka.sasl_mechanism} authentication failed)",
        )
    (msg_len,) = struct.unpack(">h", reply[2:4])
    at = 4 + max(msg_len, 0)
    (n,) = struct.unpack(">i", reply[at : at + 4])
    return reply[at + 4 : at + 4 + max(n, 0)]


def _sasl_login(sock: socket.socket, kafka: KafkaSettings, where: str) -> None:
    mech = kafka.sasl_mechanism
    reply = _request(sock, _SASL_HANDSHAKE, 1, struct.pack(">h", len(mech)) + mech.encode())
    (code,) = struct.unpack(">h", reply[:2])
    if code == _UNSUPPORTED_SASL_MECHANISM:
        raise ConfigError(where, "kafka.sasl_mechanism", f"the broker does not offer {mech}")
    if code != 0:
        raise ConfigError(
            where, "kafka.security_protocol", f"the broker refused a SASL handshake (error {code})"
        )
    secret = kafka.sasl_secret()
    user, pw = kafka.sasl_username or "", secret.get_secret_value() if secret else ""
    if mech == "PLAIN":
        _sasl_token(sock, b"\0" + user.encode() + b"\0" + pw.encode(), kafka, where)
        return
    scram = ScramClient(user, pw, mech)
    scram.process_server_first_message(_sasl_token(sock, scram.first_message(), kafka, where))
    try:
        scram.process_server_final_message(_sasl_token(sock, scram.final_message(), kafka, where))
    except (ValueError, KeyError) as exc:  # the broker could not prove it knows the password
        raise ConfigError(where, "kafka.sasl_password", "the broker's SCRAM proof is wrong") from exc


def _tls_session(raw: socket.socket, kafka: KafkaSettings, host: str, where: str) -> ssl.SSLSocket | None:
    """The TLS session the clients would get (None: the connection broke, not a TLS problem)."""
    proto = kafka.security_protocol
    not_tls = ConfigError(where, "kafka.security_protocol", f"{proto}, but the listener does not speak TLS")
    try:
        return _ssl_context(kafka).wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or "certificate verify failed"
        if "mismatch" in reason.lower():
            field, why = (
                "kafka.bootstrap_servers",
                f"the broker's certificate does not name {host} ({reason})",
            )
        else:
            field, why = "kafka.ssl_cafile", f"the broker's certificate is not signed by this CA ({reason})"
        raise ConfigError(where, field, why) from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, EOFError):
        raise not_tls from None
    except ssl.SSLError as exc:
        if "WRONG_VERSION_NUMBER" in str(exc) or "RECORD_LAYER" in str(exc):
            raise not_tls from None
        raise ConfigError(where, "kafka.ssl_certfile", f"TLS handshake failed ({exc.reason})") from None
    except OSError:
        return None


def check_connection(kafka: KafkaSettings, timeout_s: float = 5.0) -> None:
    """Raise a one-line `ConfigError` naming the setting when the first bootstrap broker refuses
    this client's TLS or login; return quietly when it cannot be reached at all (the clients'
    own retries and `BrokerUnavailable` deal with a broker that is down or starting)."""
    first = kafka.bootstrap_servers.split(",")[0].strip()
    host, _, port_text = first.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError("kafka", "kafka.bootstrap_servers", f"{first!r} is not host:port")
    port, where = int(port_text), f"kafka {first}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:
        return
    with raw:
        sock = _tls_session(raw, kafka, host, where) if kafka.tls else raw
        if sock is None:
            return
        with sock:
            _converse(sock, kafka, host, port, where, timeout_s)


def _converse(
    sock: socket.socket, kafka: KafkaSettings, host: str, port: int, where: str, timeout_s: float
) -> None:
    proto = kafka.security_protocol
    try:
        _request(sock, _API_VERSIONS, 0)
    except ssl.SSLError as exc:  # TLS 1.3: a refused client certificate is an alert after the handshake
        field = "kafka.ssl_certfile"
        if kafka.ssl_certfile is None:
            raise ConfigError(where, field, "the listener requires a client certificate (mTLS)") from None
        raise ConfigError(where, field, f"the broker refused the client certificate ({exc.reason})") from None
    except (OSError, EOFError):
        if not kafka.tls and speaks_tls(host, port, timeout_s):
            raise ConfigError(
                where,
                "kafka.security_protocol",
                f"{proto}, but the listener speaks TLS: use SSL or SASL_SSL",
            ) from None
        return
    if kafka.sasl:
        try:
            _sasl_login(sock, kafka, where)
        except (OSError, EOFError, struct.error):
            return


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record, detached from the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @property
    def origin(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def ensure_topics(
    kafka: KafkaConnection,
    topics: dict[str, int],
    *,
    configs: dict[str, dict[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create topics (name -> partitions) that do not exist yet, with their ``configs``; an
    existing topic gets its ``configs`` set again (so that a changed retention reaches it;
    incremental AlterConfigs: its other settings stay), a refusal is logged, not fatal."""
    try:
        admin = KafkaAdminClient(
            **connect_kwargs(kafka),
            client_id="mood-monitor-admin",
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise connection_error(kafka, exc) from exc
    try:
        existing = set(admin.list_topics())
        todo = {
            name: {
                "num_partitions": parts,
                "replication_factor": 1,
                "configs": {"max.message.bytes": str(MAX_MESSAGE_BYTES), **(configs or {}).get(name, {})},
            }
            for name, parts in topics.items()
            if name not in existing
        }
        if todo:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(todo, timeout_ms=int(timeout_s * 1000), wait_for_metadata=True)
            log.info("created topics %s", ",".join(sorted(todo)))
        _reconfigure(admin, {n: c for n, c in (configs or {}).items() if n in existing and c})
    except KafkaError as exc:
        raise connection_error(kafka, exc, "topic set-up") from exc
    finally:
        admin.close()


def _reconfigure(admin: KafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    if not configs:
        return
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, n, configs=dict(c)) for n, c in sorted(configs.items())
    ]
    try:
        results = admin.alter_configs(resources)
    except (KafkaError, ValueError) as exc:  # ValueError: a key the broker does not know
        log.warning("topic configs not updated (%s): %s", ",".join(sorted(configs)), type(exc).__name__)
        return
    failed = {n: r for n, r in (results or {}).get("topic", {}).items() if r != "OK"}
    if failed:
        log.warning("topic configs refused: %s", failed)
    else:
        log.info(
            "topic configs set: %s",
            ",".join(f"{n}({','.join(sorted(c))})" for n, c in sorted(configs.items())),
        )


class RecordProducer(Protocol):
    """Produces records (the worker's scored posts and DLQ, every connector's posts):
    `KafkaPostProducer`, or an in-memory fake in tests."""

    def send(
        self,
        key: bytes | None,
        value: bytes,
        *,
        topic: str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> object: ...
    def flush(self, timeout_s: float = 30.0) -> None: ...
    def close(self, timeout_s: float = 10.0) -> None: ...


class Sent:
    """A record handed to the producer; ``where()`` waits for its (partition, offset)."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def where(self, timeout_s: float = 30.0) -> tuple[int, int]:
        try:
            meta = self._future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise BrokerUnavailable(f"produce failed: {exc}") from exc
        return int(meta.partition), int(meta.offset)


class KafkaPostProducer:
    """Produces keyed records to one topic; idempotent, acks=all."""

    def __init__(self, kafka: KafkaConnection, topic: str, *, linger_ms: int = 5) -> None:
        self.topic = topic
        try:
            self._producer = KafkaProducer(
                **connect_kwargs(kafka),
                linger_ms=linger_ms,
                max_request_size=MAX_MESSAGE_BYTES,
                client_id=f"mood-monitor-{topic}",
            )
        except KafkaError as exc:
            raise connection_error(kafka, exc) from exc

    def send(
        self,
        key: bytes | None,
        value: bytes,
        *,
        topic: str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Sent:
        try:
            future = self._producer.send(
                topic or self.topic, value=value, key=key, headers=list(headers) if headers else None
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"produce to {topic or self.topic} failed: {exc}") from exc
        return Sent(future)

    def flush(self, timeout_s: float = 30.0) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise BrokerUnavailable(f"flush to {self.topic} failed: {exc}") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        try:
            self._producer.close(timeout=timeout_s)
        except KafkaError as exc:  # closing must never crash shutdown
            log.warning("producer close failed: %s", exc)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        on_revoked: Callable[[list[tuple[str, int]]], None],
        on_assigned: Callable[[list[tuple[str, int]]], None],
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._on_revoked([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._on_assigned([(tp.topic, tp.partition) for tp in assigned])


# both batch consumers: under a trickle, a fetch that answers with the first record costs a round
# trip (and the broker's, the IO thread's and the model's CPU) every few posts: let the broker
# gather up to 64 KiB for at most 100 ms (never more than the batch wait)
_FETCH_MIN_BYTES = 64 * 1024


def _fetch_wait_ms(max_wait_ms: int) -> int:
    return min(100, max_wait_ms)


def _heartbeat_ms(session_timeout_ms: int) -> int:
    return max(1000, session_timeout_ms // 3)


def _next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """The position after the highest offset per (topic, partition) in ``records``: what a
    commit of them stores."""
    nxt: dict[tuple[str, int], int] = {}
    for r in records:
        part = (r.topic, r.partition)
        if r.offset + 1 > nxt.get(part, -1):
            nxt[part] = r.offset + 1
    return nxt


def _commit_skipped(why: object) -> None:
    log.warning(
        "commit skipped, consumer left the group (%s); the written batch will be "
        "redelivered and skipped by the watermarks",
        why,
    )


class KafkaBatchConsumer:
    """A consumer-group member that hands out batches and commits only what it is told to.

    ``poll`` returns up to ``max_records`` records (`monitor.batcher.gather` builds batches from
    it). Auto-commit is off: the caller commits after its writes.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        group_id: str,
        *,
        max_batch: int = 64,
        max_wait_ms: int = 250,
        on_revoked: Callable[[list[tuple[str, int]]], None] | None = None,
        on_assigned: Callable[[list[tuple[str, int]]], None] | None = None,
        client_id: str = "mood-worker",
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        try:
            self._consumer = KafkaConsumer(
                **connect_kwargs(kafka),
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_batch,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=_heartbeat_ms(session_timeout_ms),
                max_poll_interval_ms=max_poll_interval_ms,
                fetch_min_bytes=_FETCH_MIN_BYTES,
                fetch_max_wait_ms=_fetch_wait_ms(max_wait_ms),
            )
            self._consumer.subscribe(
                [topic],
                listener=_Listener(on_revoked or (lambda _p: None), on_assigned or (lambda _p: None)),
            )
        except KafkaError as exc:
            raise connection_error(kafka, exc) from exc
        self._kafka = kafka

    def poll(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        """One fetch: what the client has (or gets within ``timeout_ms``), at most
        ``max_records``; rebalance callbacks run inside this call.

        While the member must (re-)join its group the call is given at least
        ``REJOIN_POLL_MS``: kafka-python 3.0.12 loses a join whose JoinGroup/SyncGroup answer
        comes back after the poll that started it has timed out (seen with 10 ms polls against
        Kafka 4.1.1: the member then never gets partitions)."""
        if timeout_ms < REJOIN_POLL_MS and self._rejoining():
            timeout_ms = REJOIN_POLL_MS
        try:
            polled = self._consumer.poll(
                timeout_ms=max(0, timeout_ms), max_records=max_records or self.max_batch
            )
        except KafkaError as exc:
            raise connection_error(self._kafka, exc, "poll") from exc
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp or 0)
            for tp_records in polled.values()
            for r in tp_records
        ]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``partition`` from ``offset`` on (called from the assignment callback, before the
        first fetch of a newly assigned partition)."""
        try:
            self._consumer.seek(TopicPartition(topic, partition), offset)
        except (KafkaError, AssertionError) as exc:
            raise BrokerUnavailable(f"seek {topic}:{partition} to {offset} failed: {exc}") from exc

    def _rejoining(self) -> bool:
        coordinator = getattr(self._consumer, "_coordinator", None)
        try:
            return bool(coordinator is not None and coordinator.need_rejoin())
        except Exception:  # noqa: BLE001 - a private API: when it changes, just poll as asked
            return False

    def commit(self, records: Sequence[Record]) -> None:
        """Commit the position after the highest offset per partition in ``records``."""
        nxt = _next_offsets(records)
        if not nxt:
            return
        try:
            self._consumer.commit(
                {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in nxt.items()}
            )
        except CommitFailedError as exc:
            # The group moved on without us (a rebalance, or the broker restarted and forgot this
            # member). The batch is already in Redis under its offset watermark, so whoever
            # owns these partitions now replays it as a no-op. Retrying cannot succeed until we
            # poll again (which rejoins the group): do not raise, go back to polling.
            _commit_skipped(exc)
        except KafkaError as exc:
            raise BrokerUnavailable(f"commit failed: {exc}") from exc

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def highwaters(self) -> dict[tuple[str, int], int]:
        """The next offset to be written of each assigned partition, as last seen in a fetch
        answer (no request is made; a partition not fetched yet is missing)."""
        out: dict[tuple[str, int], int] = {}
        try:
            for tp in self._consumer.assignment():
                hw = self._consumer.highwater(tp)
                if hw is not None:
                    out[(tp.topic, tp.partition)] = int(hw)
        except (KafkaError, TypeError):  # IllegalStateError: revoked meanwhile
            return out
        return out

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except KafkaError as exc:
            log.warning("consumer close failed: %s", exc)


# ---- librdkafka (confluent-kafka): the same producer and batch consumer, in C ---------------------
# Measured (bench/kafka_client.py): kafka-python spends ~28 µs of CPU to produce a record and ~9
# to consume one, in Python on the caller's thread; librdkafka 1.9 and 0.8. A worker that scores
# tens of thousands of posts a second selects it with ``kafka.client: librdkafka``.
_RD_LOG = logging.getLogger("monitor.kafka.librdkafka")
_RD_POLL_EVERY = 1000  # sends between two polls for delivery reports (flush serves them too)


def rd_config(kafka: KafkaConnection) -> dict[str, Any]:
    """The librdkafka configuration of `client_kwargs`: the same servers, protocol, TLS files and
    SASL login, under librdkafka's names."""
    conf: dict[str, Any] = {"bootstrap.servers": servers(kafka), "logger": _RD_LOG, "error_cb": _rd_error}
    if isinstance(kafka, str):
        return conf
    conf["security.protocol"] = kafka.security_protocol.lower()
    if kafka.tls:
        conf["ssl.endpoint.identification.algorithm"] = "https" if kafka.ssl_check_hostname else "none"
        conf["ssl.ca.location"] = str(kafka.ssl_cafile) if kafka.ssl_cafile is not None else "probe"
        if kafka.ssl_certfile is not None:
            conf["ssl.certificate.location"] = str(kafka.ssl_certfile)
        if kafka.ssl_keyfile is not None:
            conf["ssl.key.location"] = str(kafka.ssl_keyfile)
        key_pw = kafka.ssl_secret()
        if key_pw is not None:
            conf["ssl.key.password"] = key_pw.get_secret_value()
    if kafka.sasl:
        pw = kafka.sasl_secret()
        conf["sasl.mechanism"] = kafka.sasl_mechanism
        conf["sasl.username"] = kafka.sasl_username or ""
        conf["sasl.password"] = pw.get_secret_value() if pw is not None else ""
    return conf


def _rd_error(err: Any) -> None:
    # librdkafka retries on its own; a broker that is away shows as no records (consumer) or as
    # a flush that times out (producer), both of which the caller already handles
    _RD_LOG.warning("librdkafka: %s", err)


def _rd_connect(kafka: KafkaConnection) -> dict[str, Any]:
    connect_kwargs(kafka)  # the start-up check: one line naming the setting to fix
    return rd_config(kafka)


class _Delivery:
    """A record handed to librdkafka (`Sent` of kafka-python's producer); its delivery report
    arrives in a poll or flush."""

    __slots__ = ("_producer", "done", "error", "partition", "offset")

    def __init__(self, producer: RdPostProducer) -> None:
        self._producer = producer
        self.done = False
        self.error: Any = None
        self.partition = -1
        self.offset = -1

    def __call__(self, err: Any, msg: Any) -> None:
        self.done = True
        if err is not None:
            self.error = err
            self._producer.failed = self._producer.failed or str(err)
        else:
            self.partition, self.offset = msg.partition(), msg.offset()

    def where(self, timeout_s: float = 30.0) -> tuple[int, int]:
        deadline = time.monotonic() + timeout_s
        while not self.done and time.monotonic() < deadline:
            self._producer.serve(min(0.1, max(0.0, deadline - time.monotonic())))
        if not self.done:
            raise BrokerUnavailable(
                f"produce to {self._producer.topic}: no delivery report in {timeout_s:g}s"
            )
        if self.error is not None:
            raise BrokerUnavailable(f"produce failed: {self.error}")
        return self.partition, self.offset


class RdPostProducer:
    """`KafkaPostProducer` on librdkafka: keyed records, idempotent, acks=all. A delivery that
    failed makes the next `flush` raise (the caller writes its batch again)."""

    def __init__(self, kafka: KafkaConnection, topic: str, *, linger_ms: int = 5) -> None:
        self.topic = topic
        self.failed = ""
        self._sends = 0
        self._producer = RdProducer(
            {
                **_rd_connect(kafka),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                "message.max.bytes": MAX_MESSAGE_BYTES,
                "client.id": f"mood-monitor-{topic}",
            }
        )

    def serve(self, timeout_s: float) -> None:
        self._producer.poll(timeout_s)

    def send(
        self,
        key: bytes | None,
        value: bytes,
        *,
        topic: str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> _Delivery:
        d = _Delivery(self)
        where = topic or self.topic
        hdrs: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        deadline = 0.0  # set on the first full queue only: nothing per record on the way in
        while True:
            try:
                self._producer.produce(where, value, key, on_delivery=d, headers=hdrs)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                now = time.monotonic()
                deadline = deadline or now + 30.0
                if now > deadline:
                    raise BrokerUnavailable(f"produce to {where}: local queue full") from None
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise BrokerUnavailable(f"produce to {where} failed: {exc}") from exc
        self._sends += 1
        if self._sends % _RD_POLL_EVERY == 0:
            self._producer.poll(0)
        return d

    def flush(self, timeout_s: float = 30.0) -> None:
        left = self._producer.flush(timeout_s)
        failed, self.failed = self.failed, ""
        if left:
            raise BrokerUnavailable(f"flush to {self.topic}: {left} records not delivered in {timeout_s:g}s")
        if failed:
            raise BrokerUnavailable(f"flush to {self.topic}: a delivery failed: {failed}")

    def close(self, timeout_s: float = 10.0) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("producer close: %d records not delivered", left)


# commit answers that mean the group moved on without this member (kafka-python's CommitFailedError)
_RD_LEFT_GROUP = frozenset(
    {"REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST"}
)


class RdBatchConsumer:
    """`KafkaBatchConsumer` on librdkafka: a group member that hands out batches and commits only
    what it is told to; the rebalance callbacks run inside `poll`, and a `seek` asked for in the
    assignment callback becomes the partition's starting offset."""

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        group_id: str,
        *,
        max_batch: int = 64,
        max_wait_ms: int = 250,
        on_revoked: Callable[[list[tuple[str, int]]], None] | None = None,
        on_assigned: Callable[[list[tuple[str, int]]], None] | None = None,
        client_id: str = "mood-worker",
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self._on_revoked = on_revoked or (lambda _p: None)
        self._on_assigned = on_assigned or (lambda _p: None)
        self._starting: dict[tuple[str, int], int] | None = None  # seeks asked for while assigning
        self._consumer = RdConsumer(
            {
                **_rd_connect(kafka),
                "group.id": group_id,
                "client.id": client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": _heartbeat_ms(session_timeout_ms),
                "max.poll.interval.ms": max_poll_interval_ms,
                "fetch.min.bytes": _FETCH_MIN_BYTES,
                "fetch.wait.max.ms": _fetch_wait_ms(max_wait_ms),
                "message.max.bytes": MAX_MESSAGE_BYTES + 1024,
                "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
            }
        )
        self._consumer.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._starting = {}
        try:
            self._on_assigned([(tp.topic, tp.partition) for tp in partitions])
            for tp in partitions:
                start = self._starting.get((tp.topic, tp.partition))
                if start is not None:
                    tp.offset = start
        finally:
            self._starting = None
        consumer.assign(partitions)

    def _revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._on_revoked([(tp.topic, tp.partition) for tp in partitions])
        consumer.unassign()

    def poll(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        """What the client has (or the first record within ``timeout_ms``), at most
        ``max_records``; rebalance callbacks run inside this call."""
        first = self._consumer.poll(max(0, timeout_ms) / 1000)
        if first is None:
            return []
        n = max_records or self.max_batch
        msgs = [first, *self._consumer.consume(n - 1, 0)] if n > 1 else [first]
        out = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise BrokerUnavailable(f"poll: {err}")
                log.warning("poll: %s", err)
                continue
            ts = m.timestamp()
            # a message without an error always has its topic, partition and offset
            out.append(
                Record(
                    cast(str, m.topic()),
                    cast(int, m.partition()),
                    cast(int, m.offset()),
                    m.key(),
                    m.value(),
                    ts[1] if ts[0] else 0,
                )
            )
        return out

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if self._starting is not None:  # inside the assignment callback: the starting offset
            self._starting[(topic, partition)] = offset
            return
        try:
            self._consumer.seek(RdTopicPartition(topic, partition, offset))
        except KafkaException as exc:
            raise BrokerUnavailable(f"seek {topic}:{partition} to {offset} failed: {exc}") from exc

    def commit(self, records: Sequence[Record]) -> None:
        """Commit the position after the highest offset per partition in ``records``."""
        nxt = _next_offsets(records)
        if not nxt:
            return
        try:
            self._consumer.commit(
                offsets=[RdTopicPartition(t, p, o) for (t, p), o in nxt.items()], asynchronous=False
            )
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if getattr(err, "name", lambda: "")() in _RD_LEFT_GROUP:
                _commit_skipped(err)
                return
            raise BrokerUnavailable(f"commit failed: {exc}") from exc

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def highwaters(self) -> dict[tuple[str, int], int]:
        """The next offset to be written of each assigned partition, from the last fetch answer
        (no request is made; a partition not fetched yet is missing)."""
        out: dict[tuple[str, int], int] = {}
        try:
            for tp in self._consumer.assignment():
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    out[(tp.topic, tp.partition)] = int(high)
        except (KafkaException, RuntimeError):
            return out
        return out

    def close(self) -> None:
        try:
            self._consumer.close()
        except Exception as exc:  # noqa: BLE001 - closing must never crash shutdown
            log.warning("consumer close failed: %s", exc)


def post_producer(
    kafka: KafkaConnection, topic: str, *, linger_ms: int = 5
) -> KafkaPostProducer | RdPostProducer:
    """The producer of ``kafka.client``'s library (kafka-python for a bare bootstrap string)."""
    if isinstance(kafka, KafkaSettings) and kafka.client == "librdkafka":
        return RdPostProducer(kafka, topic, linger_ms=linger_ms)
    return KafkaPostProducer(kafka, topic, linger_ms=linger_ms)


def batch_consumer(
    kafka: KafkaConnection, topic: str, group_id: str, **kw: Any
) -> KafkaBatchConsumer | RdBatchConsumer:
    """The batch consumer of ``kafka.client``'s library (kafka-python for a bare bootstrap string)."""
    if isinstance(kafka, KafkaSettings) and kafka.client == "librdkafka":
        return RdBatchConsumer(kafka, topic, group_id, **kw)
    return KafkaBatchConsumer(kafka, topic, group_id, **kw)


def read_topic(
    kafka: KafkaConnection, topic: str, *, timeout_s: float = 5.0, start_ms: int | None = None
) -> list[Record]:
    """Read a whole topic from the beginning (or from ``start_ms``) without a group: for
    rebuilds, the DLQ viewer and tests."""
    try:
        consumer = KafkaConsumer(
            **connect_kwargs(kafka),
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=int(timeout_s * 1000),
        )
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:  # no such topic (yet): nothing to read, not an error
            consumer.close()
            return []
        consumer.assign(tps)
        if start_ms is not None:
            found = consumer.offsets_for_times({tp: start_ms for tp in tps})
            for tp in tps:
                ot = found.get(tp)
                if ot is None:
                    consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, ot.offset)
        else:
            consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Record] = []
        remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for tp, recs in consumer.poll(timeout_ms=200).items():
                for r in recs:
                    out.append(Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp or 0))
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        consumer.close()
        return out
    except KafkaError as exc:
        raise connection_error(kafka, exc, f"reading {topic}") from exc


class GroupProgress:
    """Committed vs end offsets of a consumer group on one topic (benchmarks, operators): the
    group has processed everything when ``caught_up()``. Keeps its clients open between calls."""

    def __init__(self, kafka: KafkaConnection, group_id: str, topic: str, timeout_s: float = 10.0) -> None:
        self.group_id = group_id
        self.topic = topic
        try:
            self._admin = KafkaAdminClient(
                **connect_kwargs(kafka),
                client_id="mood-monitor-progress",
                bootstrap_timeout_ms=int(timeout_s * 1000),
            )
            self._consumer = KafkaConsumer(**connect_kwargs(kafka), group_id=None, enable_auto_commit=False)
            parts = self._consumer.partitions_for_topic(topic) or set()
        except KafkaError as exc:
            raise connection_error(kafka, exc, f"group progress of {group_id}") from exc
        self._tps = [TopicPartition(topic, p) for p in sorted(parts)]

    def offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """(committed offset, end offset) per partition."""
        try:
            committed = self._admin.list_group_offsets({self.group_id: None}).get(self.group_id, {})
            ends = self._consumer.end_offsets(self._tps) if self._tps else {}
        except KafkaError as exc:
            raise BrokerUnavailable(f"group progress of {self.group_id}: {exc}") from exc
        done = {tp.partition: int(om.offset) for tp, om in committed.items() if tp.topic == self.topic}
        return done, {tp.partition: int(off) for tp, off in ends.items()}

    def caught_up(self) -> bool:
        done, ends = self.offsets()
        return bool(ends) and all(done.get(p, -1) >= end for p, end in ends.items())

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            with contextlib.suppress(KafkaError):
                client.close()


def broker_answers(kafka: KafkaConnection, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a real metadata request."""
    try:
        admin = KafkaAdminClient(
            **client_kwargs(kafka),
            client_id="mood-monitor-probe",
            bootstrap_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def connection_error(kafka: KafkaConnection, exc: KafkaError, what: str = "") -> MoodMonitorError:
    """The project error for a kafka-python error: a `ConfigError` naming the setting when the
    broker refused the login, or TLS and the protocol do not match; else `BrokerUnavailable`."""
    where = f"kafka {servers(kafka)}"
    if isinstance(exc, kafka_errors.SaslAuthenticationFailedError) and not isinstance(kafka, str):
        return ConfigError(
            where,
            "kafka.sasl_password",
            f"rejected by the broker for user {kafka.sasl_username!r} "
            f"({kafka.sasl_mechanism} authentication failed)",
        )
    prefix = f"{what} failed" if what else "unreachable"
    return BrokerUnavailable(f"Kafka at {servers(kafka)}: {prefix}: {exc}")
