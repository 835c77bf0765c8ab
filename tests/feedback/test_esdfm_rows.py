"""ES-DFM's rows through the job (flinkdl.feedback.esdfm_rows): codes, the weight column, the layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from flinkdl.config.loader import load_config
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.features.parse import POSITION_COLUMN
from flinkdl.feedback.esdfm_rows import (
    CODE_CHARS,
    RowCodes,
    encode_code,
    job_layout,
    split_weight_column,
    weight_column,
)

JOB = Path(__file__).resolve().parents[2] / "jobs" / "click_feedback.yaml"


def test_codes_round_trip_through_the_weight_column():
    cases = [(0, False), (1, False), (1, True), (123_456_789, False), (86_400_000, True)]
    codes = [encode_code(e, r) for e, r in cases]
    assert all(len(c) == CODE_CHARS and c.isdigit() for c in codes)
    elapsed, real = split_weight_column(weight_column(codes))
    assert real.tolist() == [r for _, r in cases]
    assert np.allclose(elapsed, [e for e, _ in cases], rtol=1e-7)  # float32: exact to 2^24 ms, 1e-7 beyond
    assert encode_code(-5, False) == encode_code(0, False)  # a negative elapsed time (clock skew) counts as 0


def test_only_es_dfm_has_the_weighted_layout(tmp_path):
    plain = load_config(JOB, [f"job.run_dir={tmp_path}"])
    es_dfm = load_config(JOB, [f"job.run_dir={tmp_path}", "feedback.strategy=es_dfm"])
    assert job_layout(plain) == FeatureLayout.from_config(plain.features) and not job_layout(plain).weighted
    assert job_layout(es_dfm).weighted and job_layout(es_dfm).schema().names[-1] == "weight"
    assert job_layout(es_dfm).schema().names[:-1] == job_layout(plain).schema().names


def test_row_codes_follow_the_raw_rows_positions_and_the_keep_mask():
    codes = RowCodes()
    codes.set(100, [encode_code(10 * i, i == 3) for i in range(5)])  # messages at positions 100..104
    raw = pa.record_batch({"x": ["a", "b", "c"], POSITION_COLUMN: pa.array([101, 103, 104], pa.int64())})
    assert codes(raw, np.array([True, True, False])).tolist() == [10.0, -31.0]
