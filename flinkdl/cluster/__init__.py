"""A local standalone Flink cluster (pyflink's distribution) and a client for Flink's REST API."""
