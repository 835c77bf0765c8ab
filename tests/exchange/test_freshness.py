"""Freshness stamps ride on the evaluation columns without changing what the evaluator reads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.schema import EvaluationConfig
from flinkdl.exchange.eval_columns import EvalColumns, read_eval_columns
from flinkdl.exchange.freshness import Stamps, read_stamps, stamp


def test_stamps_keep_the_columns_and_add_up():
    raw = pa.record_batch({"ts": [1000, 2000, 3000], "x": [1, 2, 3]})
    columns = EvalColumns(EvaluationConfig(), "ts", event_time=True).take(raw, np.array([True, False, True]))
    data = stamp(stamp(columns, 2, arrived_ms=5000), 2, scored_ms=5030, model_ts=2500)
    ts, slices = read_eval_columns(data, 2)
    assert ts.tolist() == [1000, 3000] and slices is None
    assert read_stamps(data) == Stamps(5000, 5030, 2500)
    assert read_stamps(data).latency_ms == 30 and read_stamps(data).model_age_ms == 2530


def test_no_columns_gets_a_zero_column_stream_of_the_right_length():
    data = stamp(b"", 4, scored_ms=10, model_ts=None)
    assert read_eval_columns(data, 4) == (None, None)
    s = read_stamps(data)
    assert s == Stamps(None, 10, None) and s.model_age_ms is None and s.latency_ms is None
    assert read_stamps(b"") == Stamps()


def test_unknown_stamp_is_refused():
    with pytest.raises(ValueError, match="unknown stamps"):
        stamp(b"", 1, arrival=1)
