"""The evaluation columns follow the featurizer's keep-mask; a mismatch raises."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.schema import EvaluationConfig, WindowConfig
from flinkdl.exchange.eval_columns import EvalColumns, EvalColumnsMismatch, read_eval_columns

TIMED = EvaluationConfig(windows=[WindowConfig(kind="sliding_time", size_s=60)], slice_field="country",
                         timestamp_unit="s")


def test_columns_of_the_kept_rows_round_trip() -> None:
    raw = pa.record_batch({"ts": ["1", "2", "3"], "country": ["de", None, "fr"]})
    data = EvalColumns(TIMED, "ts").take(raw, np.array([True, False, True]))
    ts, slices = read_eval_columns(data, 2)
    assert ts.tolist() == [1000, 3000] and slices.to_pylist() == ["de", "fr"]


def test_nothing_travels_when_nothing_is_read() -> None:
    raw = pa.record_batch({"ts": [1, 2]})
    assert EvalColumns(EvaluationConfig(), "ts").take(raw, np.array([True, True])) == b""
    assert EvalColumns(TIMED, "ts").take(raw, np.array([False, False])) == b""
    assert read_eval_columns(b"", 5) == (None, None)


def test_event_time_travels_for_the_published_predictions_without_time_windows() -> None:
    raw = pa.record_batch({"ts": [5, 6, 7]})
    data = EvalColumns(EvaluationConfig(), "ts", event_time=True).take(raw, np.array([True, False, True]))
    ts, slices = read_eval_columns(data, 2)
    assert ts.tolist() == [5, 7] and slices is None
    assert EvalColumns(EvaluationConfig(), None, event_time=True).take(raw, np.ones(3, bool)) == b""


def test_a_mismatch_raises() -> None:
    raw = pa.record_batch({"ts": [1, 2, 3], "country": ["a", "b", "c"]})
    cols = EvalColumns(TIMED, "ts")
    with pytest.raises(EvalColumnsMismatch):
        cols.take(raw, np.array([True, True]))
    with pytest.raises(EvalColumnsMismatch):
        read_eval_columns(cols.take(raw, np.array([True, True, True])), 2)
