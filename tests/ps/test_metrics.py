"""The PS process's own Prometheus endpoint (``ps serve --metrics-port``), scraped over HTTP."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flinkdl.devtools.net import free_port
from flinkdl.ps.client import PsClient
from flinkdl.telemetry import names

from .conftest import PsProcess


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_server_exports_latency_rows_refusals_and_version(tmp_path):
    port = free_port()
    server = PsProcess(tmp_path / "ck", "--metrics-port", str(port))
    try:
        with PsClient(server.address) as c:
            c.create_table("emb", 4)
            ids = np.arange(100, dtype=np.int64)
            c.push("emb", ids, np.ones((100, 4), np.float32))
            c.pull("emb", ids[:30])
            with pytest.raises(Exception, match="nope"):
                c.push("nope", ids, np.ones((100, 4), np.float32))
            version = c.commit()["version"]
        m = _scrape(port)
    finally:
        server.stop()
    assert m[(names.PS_SERVER_ROWS + "_total", (("op", "push"),))] == 100
    assert m[(names.PS_SERVER_ROWS + "_total", (("op", "pull"),))] == 30
    assert m[(names.PS_SERVER_REFUSED + "_total", (("op", "push"),))] == 1
    assert m[(names.PS_SERVER_REQUEST_SECONDS + "_count", (("op", "push"),))] == 2
    assert m[(names.PS_SERVER_REQUEST_SECONDS + "_count", (("op", "commit"),))] == 1
    assert m[(names.PS_SERVER_VERSION, ())] == version >= 1
