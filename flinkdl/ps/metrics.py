"""Prometheus metrics of the parameter-server process itself (``flinkdl ps serve --metrics-port P``).

Per operation (``push``, ``pull`` and every action): request latency, rows moved, refused calls;
plus the last committed version. The worker-side view (pull/sync latency, lag) is exported by
each TF worker (:mod:`flinkdl.telemetry.exporter`); both sets of names live in
:mod:`flinkdl.telemetry.names`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from flinkdl.telemetry import names


class ServerMetrics:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        self.seconds = Histogram(names.PS_SERVER_REQUEST_SECONDS, "parameter-server request latency", ["op"],
                                 buckets=names.LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter(names.PS_SERVER_ROWS, "rows pushed or pulled", ["op"], registry=self.registry)
        self.refused = Counter(names.PS_SERVER_REFUSED, "calls refused (bad input, unknown table...)", ["op"],
                               registry=self.registry)
        self.denied = Counter(names.PS_SERVER_AUTH_REFUSED, "calls refused for their token: reason is "
                              "unauthenticated (no or unknown token) or permission_denied (role too low)",
                              ["op", "reason"], registry=self.registry)
        self.version = Gauge(names.PS_SERVER_VERSION, "last committed version", registry=self.registry)
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)

    def auth_refused(self, op: str, reason: str) -> None:
        self.denied.labels(op, reason).inc()

    @contextmanager
    def timed(self, op: str) -> Iterator[dict]:
        """Time one call; the body may set ``out["rows"]``; an exception counts as refused."""
        out = {"rows": 0}
        t0 = time.perf_counter()
        try:
            yield out
        except Exception:
            self.refused.labels(op).inc()
            raise
        finally:
            self.seconds.labels(op).observe(time.perf_counter() - t0)
            if out["rows"]:
                self.rows.labels(op).inc(out["rows"])
