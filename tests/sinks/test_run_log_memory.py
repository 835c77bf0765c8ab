"""The sink's memory does not grow with the stream: an unbounded run's evaluator and run log stay flat."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa

from flinkdl.config.loader import load_config
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.sinks.run_log import RunLog

JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_stream.yaml"


def _batch(rng: np.random.Generator, i: int, size: int) -> pa.RecordBatch:
    s = rng.random(size, dtype=np.float32)
    return pa.record_batch([pa.array(np.arange(i * size, (i + 1) * size)), pa.array(s),
                            pa.array((rng.random(size) < s).astype(np.float32)), pa.array(np.zeros(size, np.int64))],
                           schema=PREDICTION_SCHEMA)


def test_an_unbounded_stream_keeps_the_sink_flat(tmp_path) -> None:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", "sinks.predictions=null"])
    log, rng, size = RunLog(cfg, None), np.random.default_rng(0), 4096
    for i in range(40):  # the sliding window fills (100k events)
        log.update(size, _batch(rng, i, size), b"")
    tracemalloc.start()
    try:
        for i in range(40, 240):  # ~800k more events
            log.update(size, _batch(rng, i, size), b"")
            if i == 80:
                early = tracemalloc.get_traced_memory()[0]
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        log.finish()
    assert late - early < 1 << 20  # bytes: no per-event growth (it would be several MiB)
