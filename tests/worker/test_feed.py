"""The worker's feature stream: batches as the step's tensors, and an end without the end-of-stream marker."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.exchange.channel import pack
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.worker.feed import FeatureStream, batch_of
from tests.worker.feed_server import EOS, read_stream


def _batch(layout: FeatureLayout, n: int = 5) -> pa.RecordBatch:
    at = np.arange(n, dtype=np.int64)
    cols = [at + 100, np.where(at % 2 == 0, 1.0, np.nan).astype(np.float32)]
    cols += [at * 10 + j for j in range(layout.n_ids)]
    cols += [(at + j / 10).astype(np.float32) for j in range(layout.n_dense)]
    return pa.record_batch(cols, schema=layout.schema())


@pytest.mark.parametrize("n_dense", [3, 0])
def test_a_batch_becomes_the_columns_side_by_side(n_dense):
    layout = FeatureLayout(n_ids=4, n_dense=n_dense, buckets=64)
    rb = _batch(layout)
    b = batch_of(rb, layout)
    np.testing.assert_array_equal(b.event_id.numpy(), rb.column(0).to_numpy())
    np.testing.assert_array_equal(b.label.numpy(), rb.column(1).to_numpy())
    np.testing.assert_array_equal(b.ids.numpy(), np.stack([rb.column(2 + j).to_numpy() for j in range(4)], axis=1))
    assert b.dense.shape == (5, n_dense) and b.dense.dtype.name == "float32" and b.weight is None
    if n_dense:
        np.testing.assert_array_equal(b.dense.numpy()[:, 2], rb.column(2 + 4 + 2).to_numpy())
    assert b.labelled.tolist() == [True, False, True, False, True]


def _serve(layout: FeatureLayout, tail: bytes) -> tuple[list, BaseException | None]:
    def read(stream: FeatureStream) -> tuple[list, BaseException | None]:
        got: list = []
        try:
            for b in stream:
                got.append(b)
        except ConnectionError as e:
            return got, e
        return got, None

    return read_stream(layout, pack(_batch(layout)) * 2 + tail, read)


def test_the_stream_ends_cleanly_only_at_the_end_of_stream_marker():
    layout = FeatureLayout(n_ids=2, n_dense=1, buckets=64)
    got, error = _serve(layout, EOS)
    assert len(got) == 2 and error is None
    got, error = _serve(layout, b"")  # the operator went away: no clean end (no last PS push)
    assert len(got) == 2 and error is not None
