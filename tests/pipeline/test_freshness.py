"""The train operator's watermark: what each batch's model had learnt up to, and the PS annotation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flinkdl.config.schema import EvaluationConfig, PsConfig
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.eval_columns import EvalColumns
from flinkdl.exchange.freshness import read_stamps
from flinkdl.exchange.schema import PREDICTION_SCHEMA
from flinkdl.pipeline.freshness import TrainedWatermark
from flinkdl.ps.client import PsClient
from tests.ps.conftest import PsProcess


def _batch(ts: list[int], labels: list[float | None]) -> tuple[Envelope, pa.RecordBatch]:
    n = len(ts)
    raw = pa.record_batch({"ts": ts})
    cols = EvalColumns(EvaluationConfig(), "ts", event_time=True).take(raw, np.ones(n, bool))
    preds = pa.record_batch([pa.array(range(n), pa.int64()), pa.array(np.zeros(n, np.float32)),
                             pa.array(labels, pa.float32()), pa.array(np.zeros(n, np.int64))],
                            schema=PREDICTION_SCHEMA)
    return Envelope(1, n, b"p", b"", cols), preds


def test_each_batch_carries_the_watermark_before_it_and_unlabelled_events_do_not_move_it():
    w = TrainedWatermark()
    first = read_stamps(w.stamp(*_batch([100, 300], [1.0, 0.0])).eval_columns)
    assert first.model_ts is None and first.scored_ms is not None  # nothing trained before
    assert w.model_ts == 300
    second = read_stamps(w.stamp(*_batch([200, 900], [0.0, None])).eval_columns)  # 900: unlabelled
    assert second.model_ts == 300 and w.model_ts == 300
    assert read_stamps(w.stamp(*_batch([50], [1.0])).eval_columns).model_ts == 300  # late: max stays


def test_without_event_times_nothing_is_stamped():
    w = TrainedWatermark()
    env, preds = _batch([1], [1.0])
    env = Envelope(env.seq, env.rows_in, env.payload, env.dead_letters, b"")
    assert w.stamp(env, preds).eval_columns == b"" and w.model_ts is None


def test_committed_versions_are_annotated_and_a_new_one_inherits(tmp_path):
    server = PsProcess(tmp_path / "ck")
    try:
        ps = PsConfig(enabled=True, address=server.address)
        with PsClient.from_config(ps) as c:
            c.create_table("t", 2)
            v1 = int(c.commit()["version"])
            w = TrainedWatermark(ps)
            assert w.model_ts is None
            w.stamp(*_batch([1000, 5000], [1.0, 1.0]), version=v1)
            assert c.versions()[-1]["trained_event_ts"] == 5000
            c.annotate(v1, 10)  # only ever raised
            assert c.versions()[-1]["trained_event_ts"] == 5000
            v2 = int(c.commit()["version"])
            assert [v["trained_event_ts"] for v in c.versions()] == [5000, 5000]  # inherited
            w.stamp(*_batch([7000], [0.0]))
            w.close()  # annotates the latest version
            assert {v["version"]: v["trained_event_ts"] for v in c.versions()}[v2] == 7000
            again = TrainedWatermark(ps)
            assert again.model_ts == 7000  # a restarted trainer starts from it
            again.close()
    finally:
        server.stop()
