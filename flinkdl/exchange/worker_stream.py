"""The worker's end of the Arrow exchange: its prediction stream, and the PS version it may carry.

The worker connects to the operator's ``out.sock`` and writes one Arrow IPC stream of prediction
batches (:class:`PredictionStream`). A batch whose training step committed a parameter-server
version carries it in its IPC custom metadata under :data:`PS_VERSION_KEY`: that version includes
the batch and every one before it (docs/EXACTLY_ONCE.md). The operator reads it back with
:func:`read_ps_version`.

>>> read_ps_version({PS_VERSION_KEY.encode(): b"7"}), read_ps_version({})
(7, None)
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

#: IPC custom-metadata key of a prediction batch whose step committed a PS version.
PS_VERSION_KEY = "ps_version"


class PredictionStream:
    """One Arrow IPC stream of ``schema`` batches to the unix socket at ``path``."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.schema = schema
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._file = self._sock.makefile("wb")
        self._writer = pa.ipc.new_stream(self._file, schema)
        self._file.flush()  # the schema goes out now: the operator's reader waits for it

    def write(self, columns: Sequence[Any], ps_version: int | None = None) -> None:
        """Send one batch of ``columns`` (in schema order), marked with ``ps_version`` if given."""
        self._writer.write_batch(pa.record_batch(list(columns), schema=self.schema),
                                 custom_metadata=None if ps_version is None else {PS_VERSION_KEY: str(ps_version)})
        self._file.flush()

    def close(self) -> None:
        """End the stream (IPC end-of-stream) and close the socket."""
        self._writer.close()
        self._file.close()
        self._sock.close()


def read_ps_version(metadata: Mapping[bytes, bytes]) -> int | None:
    """The PS version in a prediction batch's custom metadata (``None``: its step committed none)."""
    version = metadata.get(PS_VERSION_KEY.encode())
    return None if version is None else int(version)
