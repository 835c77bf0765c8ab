"""Flink side of the Arrow exchange with one co-located TF worker.

The operator *listens* on two unix sockets in a private directory:

- ``in.sock``: feature batches go out as one Arrow IPC stream. The worker connects and reads it
  (:class:`flinkdl.worker.feed.FeatureStream`), one RecordBatch per step.
- ``out.sock``: the worker connects and writes its prediction batches back as an Arrow IPC stream.

Batches travel as pre-serialised IPC messages (``RecordBatch.serialize()``), so relaying a batch
that arrived from the featurize stage costs one ``sendall`` and no re-encoding. The kernel socket
buffers are the bounded buffer: a slow worker blocks ``send`` (backpressure), nothing is dropped.

>>> import pyarrow as pa
>>> b = pa.record_batch([pa.array([1, 2], pa.int64())], names=["event_id"])
>>> unpack(pack(b), b.schema).equals(b)
True
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from io import IOBase
from pathlib import Path
from typing import IO

import pyarrow as pa

#: IPC end-of-stream marker (continuation token + zero length).
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def pack(batch: pa.RecordBatch) -> bytes:
    """One RecordBatch → its IPC message bytes (no schema)."""
    return batch.serialize().to_pybytes()


def unpack(payload: bytes, schema: pa.Schema) -> pa.RecordBatch:
    """Inverse of :func:`pack` (zero-copy over ``payload``)."""
    return pa.ipc.read_record_batch(pa.py_buffer(payload), schema)


class ExchangeClosed(ConnectionError):
    """The worker side went away (process died or closed its stream)."""


class ArrowChannel:
    """Listening sockets + the two Arrow IPC streams of one worker session.

    Usage: ``ch = ArrowChannel(schema, out_schema)``; start the worker with ``ch.in_endpoint``
    and ``ch.out_path``; ``ch.accept(timeout)``; then ``send``/``receive`` per batch; ``close()``.
    """

    def __init__(self, schema: pa.Schema, out_schema: pa.Schema, socket_dir: str | Path | None = None,
                 receive_timeout_s: float | None = None):
        """``receive_timeout_s``: :meth:`receive` raises :class:`ExchangeClosed` after that long."""
        self.schema = schema
        self.receive_timeout_s = receive_timeout_s
        self.out_schema = out_schema
        self._dir = Path(tempfile.mkdtemp(prefix="flinkdl-", dir=socket_dir))
        self.in_path = str(self._dir / "in.sock")
        self.out_path = str(self._dir / "out.sock")
        self._in_srv = self._listen(self.in_path)
        self._out_srv = self._listen(self.out_path)
        self._in: socket.socket | None = None
        self._out_file: IO[bytes] | IOBase | None = None
        self._reader: pa.ipc.RecordBatchStreamReader | None = None

    @property
    def in_endpoint(self) -> str:
        """Endpoint string of ``in.sock`` for the worker (``unix://PATH``)."""
        return f"unix://{self.in_path}"

    @staticmethod
    def _listen(path: str) -> socket.socket:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        return srv

    def accept(self, timeout: float, alive=lambda: True) -> None:
        """Wait for the worker's two connections; ``alive()`` false aborts early."""
        conns = {}
        for name, srv in (("out", self._out_srv), ("in", self._in_srv)):
            srv.settimeout(0.2)
            waited = 0.0
            while name not in conns:
                try:
                    conns[name], _ = srv.accept()
                except TimeoutError:
                    waited += 0.2
                    if waited > timeout or not alive():
                        raise ExchangeClosed(
                            f"worker did not connect to {name}.sock within {waited:.0f}s") from None
            conns[name].settimeout(self.receive_timeout_s if name == "out" else None)
        self._in = conns["in"]
        self._in.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self._in.sendall(self.schema.serialize().to_pybytes())
        self._out_file = conns["out"].makefile("rb", buffering=1 << 20)
        conns["out"].close()  # the file object keeps the connection

    def send_payload(self, payload: bytes) -> None:
        """Send one packed feature batch (see :func:`pack`)."""
        if self._in is None:
            raise ExchangeClosed("worker not connected (call accept first)")
        try:
            self._in.sendall(payload)
        except OSError as e:
            raise ExchangeClosed(f"worker input stream closed: {e}") from e

    def send(self, batch: pa.RecordBatch) -> None:
        self.send_payload(pack(batch))

    def receive(self) -> pa.RecordBatch:
        """Block for the next prediction batch."""
        return self.receive_with_metadata()[0]

    def receive_with_metadata(self) -> tuple[pa.RecordBatch, dict[bytes, bytes]]:
        """Block for the next prediction batch and its IPC custom metadata (empty if none)."""
        try:
            if self._reader is None:
                self._reader = pa.ipc.open_stream(self._out_file)
                if not self._reader.schema.equals(self.out_schema):
                    raise ExchangeClosed(f"worker sent schema {self._reader.schema}, want {self.out_schema}")
            batch, meta = self._reader.read_next_batch_with_custom_metadata()
        except (StopIteration, OSError, pa.ArrowInvalid) as e:
            raise ExchangeClosed(f"worker output stream ended: {e!r}") from e
        return batch, dict(meta) if meta else {}

    def finish(self) -> None:
        """Tell the worker that no more batches come (IPC end-of-stream)."""
        if self._in is not None:
            try:
                self._in.sendall(_EOS)
                self._in.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        for s in (self._in, self._out_file, self._in_srv, self._out_srv):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        for p in (self.in_path, self.out_path):
            if os.path.exists(p):
                os.unlink(p)
        with contextlib.suppress(OSError):
            self._dir.rmdir()
