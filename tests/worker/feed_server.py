"""A one-shot feature-stream server for the worker's reader tests: a unix socket that sends bytes, then closes."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from flinkdl.exchange.schema import FeatureLayout
from flinkdl.worker.feed import FeatureStream

#: the Arrow IPC stream's end-of-stream marker
EOS = b"\xff\xff\xff\xff\0\0\0\0"
T = TypeVar("T")


def read_stream(layout: FeatureLayout, payload: bytes, read: Callable[[FeatureStream], T]) -> T:
    """``read`` of a :class:`FeatureStream` over a socket that sends the schema, then ``payload``, then closes."""
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "in.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)

        def send() -> None:
            conn, _ = srv.accept()
            conn.sendall(layout.schema().serialize().to_pybytes() + payload)
            conn.close()

        t = threading.Thread(target=send)
        t.start()
        stream = FeatureStream(f"unix://{path}", layout)
        try:
            return read(stream)
        finally:
            stream.close()
            t.join()
            srv.close()
