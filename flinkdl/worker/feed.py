"""The worker's input: the operator's Arrow IPC stream of feature batches, read with pyarrow.

The operator listens on ``in.sock`` (:class:`flinkdl.exchange.channel.ArrowChannel`); the worker connects
and reads one IPC stream, one RecordBatch per step. Each batch's columns become the step's tensors
(:func:`batch_of`) with one copy per tensor and no TensorFlow op: the id columns are written straight
into one ``[B, n_ids]`` array (what ``tf.stack`` of the columns gives), which TF then shares through DLPack.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from io import IOBase
from typing import IO

import numpy as np
import pyarrow as pa

from flinkdl.exchange.schema import FeatureLayout
from flinkdl.models.tensors import ALIGN, to_tensor
from flinkdl.worker.hooks.base import Batch


def _aligned(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """An uninitialised C-contiguous array at an :data:`ALIGN` boundary (TF shares it as it is)."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    buf = np.empty(nbytes + ALIGN, np.uint8)
    at = -buf.ctypes.data % ALIGN
    return buf[at:at + nbytes].view(dt).reshape(shape)


def _matrix(batch: pa.RecordBatch, first: int, n: int, dtype: type[np.generic]) -> np.ndarray:
    """Columns ``first .. first + n - 1`` of ``batch`` side by side, ``[rows, n]``."""
    out = _aligned((batch.num_rows, n), dtype)
    for j in range(n):
        out[:, j] = batch.column(first + j).to_numpy()
    return out


def batch_of(batch: pa.RecordBatch, layout: FeatureLayout) -> Batch:
    """A feature RecordBatch (:meth:`FeatureLayout.schema`) → the step's :class:`Batch` of tensors."""
    n_ids, n_dense = layout.n_ids, layout.n_dense
    weight = None
    if layout.weighted:
        weight = to_tensor(batch.column(2 + n_ids + n_dense).to_numpy())
    return Batch(to_tensor(batch.column(0).to_numpy()), to_tensor(batch.column(1).to_numpy()),
                 to_tensor(_matrix(batch, 2, n_ids, np.int64)),
                 to_tensor(_matrix(batch, 2 + n_ids, n_dense, np.float32)), weight)


def connect(endpoint: str) -> socket.socket:
    """A socket connected to ``endpoint``: ``unix:///path`` or ``host:port``."""
    if endpoint.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(endpoint[len("unix://"):])
        return sock
    host, _, port = endpoint.rpartition(":")
    return socket.create_connection((host, int(port)))


class _Strict:
    """A read-only file over ``raw`` whose every short read raises: the operator ends its stream with the
    IPC end-of-stream marker (after which the reader asks for nothing more), so running dry before it
    means the operator went away, and the worker must not treat that as a clean end (no last PS push)."""

    def __init__(self, raw: IO[bytes] | IOBase) -> None:
        self.raw = raw
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if n > 0 and len(data) < n:
            raise ConnectionError("the feature stream ended without its end-of-stream marker")
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.raw.close()


class FeatureStream:
    """The feature batches from ``endpoint`` as :class:`Batch` es, until the stream's end-of-stream marker
    (``ConnectionError`` if it closes before that)."""

    def __init__(self, endpoint: str, layout: FeatureLayout) -> None:
        self.layout = layout
        self._sock = connect(endpoint)
        self._file: IO[bytes] | IOBase = self._sock.makefile("rb", buffering=1 << 20)
        self._reader: pa.ipc.RecordBatchStreamReader | None = None

    def __iter__(self) -> Iterator[Batch]:
        if self._reader is None:  # the schema arrives once the operator accepted both connections
            self._reader = pa.ipc.open_stream(_Strict(self._file))
            want = self.layout.schema().names
            if self._reader.schema.names != want:
                raise ValueError(f"feature stream has columns {self._reader.schema.names}, want {want}")
        for batch in self._reader:
            yield batch_of(batch, self.layout)

    def close(self) -> None:
        self._file.close()
        self._sock.close()
