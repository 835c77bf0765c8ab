"""Prometheus export of a job: metric names (:mod:`.names`) and ``/metrics`` endpoints (:mod:`.exporter`)."""
