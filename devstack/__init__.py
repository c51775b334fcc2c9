"""The development harness, outside the product package: the local Kafka + Redis stack
(`stack`), the demo, its synthetic stream and the small HTTP servers the demo and tests use.
Nothing in `monitor` or `connectors` imports it, but the CLI's `stack` and `demo` commands.
"""
