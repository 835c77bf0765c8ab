"""Developer tools: a local Kafka-protocol broker and its storage server, a producer, the Kafka
connector jars, and loopback port helpers for tests and benchmarks. The job itself needs none of
them except :mod:`flinkdl.devtools.connectors` when no ``FLINKDL_JARS`` is given."""
