"""The only module that imports kafka-python: topic set-up, producers, the batch consumer.

kafka-python errors are translated here into `BrokerUnavailable` (transient) so nothing above
this seam knows the client library.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from monitor.errors import BrokerUnavailable

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
REJOIN_POLL_MS = 1000


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
    bootstrap_servers: str,
    topics: dict[str, int],
    *,
    configs: dict[str, dict[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create topics (name -> partitions) that do not exist yet; existing ones are left alone."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="mood-monitor-admin",
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap_servers} unreachable: {exc}") from exc
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
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka topic set-up failed: {exc}") from exc
    finally:
        admin.close()


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

    def __init__(self, bootstrap_servers: str, topic: str, *, linger_ms: int = 5) -> None:
        self.topic = topic
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers,
                linger_ms=linger_ms,
                max_request_size=MAX_MESSAGE_BYTES,
                client_id=f"mood-monitor-{topic}",
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka at {bootstrap_servers} unreachable: {exc}") from exc

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


class KafkaBatchConsumer:
    """A consumer-group member that hands out batches and commits only what it is told to.

    ``poll`` returns up to ``max_records`` records (`monitor.batcher.gather` builds batches from
    it). Auto-commit is off: the caller commits after its writes.
    """

    def __init__(
        self,
        bootstrap_servers: str,
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
                bootstrap_servers=bootstrap_servers,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_batch,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(1000, session_timeout_ms // 3),
                max_poll_interval_ms=max_poll_interval_ms,
                # under a trickle, a fetch that answers with the first record costs a round trip
                # (and the broker's, the IO thread's and the model's CPU) every few posts: let the
                # broker gather up to 64 KiB for at most 100 ms (never more than the batch wait)
                fetch_min_bytes=64 * 1024,
                fetch_max_wait_ms=min(100, max_wait_ms),
            )
            self._consumer.subscribe(
                [topic],
                listener=_Listener(on_revoked or (lambda _p: None), on_assigned or (lambda _p: None)),
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka at {bootstrap_servers} unreachable: {exc}") from exc

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
            raise BrokerUnavailable(f"poll failed: {exc}") from exc
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
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            cur = offsets.get(tp)
            if cur is None or r.offset + 1 > cur.offset:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group moved on without us (a rebalance, or the broker restarted and forgot this
            # member). The batch is already in Redis under its offset watermark, so whoever
            # owns these partitions now replays it as a no-op. Retrying cannot succeed until we
            # poll again (which rejoins the group): do not raise, go back to polling.
            log.warning(
                "commit skipped, consumer left the group (%s); the written batch will be "
                "redelivered and skipped by the watermarks",
                exc,
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"commit failed: {exc}") from exc

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except KafkaError as exc:
            log.warning("consumer close failed: %s", exc)


def read_topic(
    bootstrap_servers: str, topic: str, *, timeout_s: float = 5.0, start_ms: int | None = None
) -> list[Record]:
    """Read a whole topic from the beginning (or from ``start_ms``) without a group: for
    rebuilds, the DLQ viewer and tests."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=int(timeout_s * 1000),
        )
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        if start_ms is not None and tps:
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
        raise BrokerUnavailable(f"reading {topic} failed: {exc}") from exc


class GroupProgress:
    """Committed vs end offsets of a consumer group on one topic (benchmarks, operators): the
    group has processed everything when ``caught_up()``. Keeps its clients open between calls."""

    def __init__(self, bootstrap_servers: str, group_id: str, topic: str, timeout_s: float = 10.0) -> None:
        self.group_id = group_id
        self.topic = topic
        try:
            self._admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                client_id="mood-monitor-progress",
                bootstrap_timeout_ms=int(timeout_s * 1000),
            )
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
            )
            parts = self._consumer.partitions_for_topic(topic) or set()
        except KafkaError as exc:
            raise BrokerUnavailable(f"group progress of {group_id}: {exc}") from exc
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


def broker_answers(bootstrap_servers: str, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a real metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
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
