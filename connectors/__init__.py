"""Connector workers: ingest posts from sources, normalise them to `Post`, produce to Kafka."""
