"""Redis, and only here: the aggregate store (buckets, watermarks, texts, counters, heartbeats),
the alerter's ledger, the connectors' state, every key name (`keys`) and the Lua scripts.

    buckets.py     RedisAggregateStore; the AggregateStore / AggregateReader seams
    alerts.py      RedisAlertLedger; the AlertLedger seam; RedisAlertLog (the alert log's reader)
    connectors.py  RedisConnectorState; the ConnectorState seam
    topics.py      RedisTopicRegistry (topics changed at run time, versioned); the TopicRegistry seam
    keys.py        every key this project writes
    lua/           the scripts that apply a batch atomically
"""

from monitor.store.alerts import AlertLedger, RedisAlertLedger, RedisAlertLog
from monitor.store.buckets import (
    AggregateReader,
    AggregateStore,
    PartitionWrite,
    RecentPost,
    RedisAggregateStore,
)
from monitor.store.connectors import ConnectorState, RedisConnectorState
from monitor.store.topics import RedisTopicRegistry, TopicRegistry

__all__ = [
    "AggregateReader",
    "AggregateStore",
    "AlertLedger",
    "ConnectorState",
    "PartitionWrite",
    "RecentPost",
    "RedisAggregateStore",
    "RedisAlertLedger",
    "RedisAlertLog",
    "RedisConnectorState",
    "RedisTopicRegistry",
    "TopicRegistry",
]
