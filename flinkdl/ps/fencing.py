"""Fencing: a stale writer (an old attempt of a restarted task) cannot overwrite a newer one's rows.

A writer names itself (e.g. ``worker-3``, one name per Flink subtask) and asks the server for an
**epoch** (the ``fence`` action): the server hands out one more than it ever handed that name
before, persists it, and from then on refuses any write (push, dense delta, commit, rollback)
that carries the name with a lower epoch (and the lane calls of :mod:`flinkdl.ps.lanes`).
The client sends both on every call as gRPC headers.
A write with no writer header is not fenced (tools, tests, older clients).

Every server also has an **incarnation** (new at each start): a client that connected to one
incarnation sends it with its writes, and a restarted server refuses them, because the pushes
the client made since the last commit died with the old process.

>>> f = Fences(); f.issue("worker-0"), f.issue("worker-0")
(1, 2)
>>> f.check("worker-0", 1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
flinkdl.ps.errors.PsError: stale writer 'worker-0' (epoch 1): epoch 2 was issued since, ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyarrow import flight

from flinkdl.ps.errors import PsError

WRITER_HEADER = "x-flinkdl-writer"  # "NAME:EPOCH"
INCARNATION_HEADER = "x-flinkdl-incarnation"
#: Calls that change state: fenced and checked against the incarnation.
WRITES = frozenset({"push", "dense_add", "commit", "rollback", "lane_commit", "lane_rollback", "end_lanes"})


class Fences:
    """writer → highest epoch issued or seen; ``persist`` is called with the table after each issue."""

    def __init__(self, epochs: dict[str, int] | None = None,
                 persist: Callable[[dict[str, int]], None] | None = None) -> None:
        self.epochs = dict(epochs or {})
        self.persist = persist
        self.lock = threading.Lock()

    def issue(self, writer: str) -> int:
        """A new epoch for ``writer``, above every one issued before (persisted before it is returned)."""
        if not writer or ":" in writer:
            raise PsError(f"bad writer name {writer!r}")
        with self.lock:
            epoch = self.epochs.get(writer, 0) + 1
            self.epochs[writer] = epoch
            if self.persist is not None:
                self.persist(dict(self.epochs))
        return epoch

    def raise_to(self, writer: str, epoch: int) -> None:
        """Learn that ``epoch`` was issued to ``writer`` (another shard issued it)."""
        with self.lock:
            self.epochs[writer] = max(self.epochs.get(writer, 0), int(epoch))

    def check(self, writer: str, epoch: int) -> None:
        """Refuse a write of ``writer`` at ``epoch`` when a newer epoch exists."""
        with self.lock:
            have = self.epochs.get(writer, 0)
            if epoch < have:
                raise PsError(f"stale writer {writer!r} (epoch {epoch}): epoch {have} was issued since, to a "
                              "newer attempt of this task; nothing applied")
            self.epochs[writer] = epoch


def parse_writer(value: str) -> tuple[str, int]:
    name, _, epoch = value.rpartition(":")
    if not name or not epoch.isdigit():
        raise PsError(f"bad {WRITER_HEADER} header {value!r} (expected NAME:EPOCH)")
    return name, int(epoch)


class _CallMeta(flight.ServerMiddleware):
    def __init__(self, writer: str | None, incarnation: str | None) -> None:
        self.writer, self.incarnation = writer, incarnation


class CallMetaFactory(flight.ServerMiddlewareFactory):
    """Reads the writer and incarnation headers of every call (see :func:`call_meta`)."""

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> _CallMeta:
        writer = headers.get(WRITER_HEADER, [None])[0]
        incarnation = headers.get(INCARNATION_HEADER, [None])[0]
        return _CallMeta(writer, incarnation)


def call_meta(context: flight.ServerCallContext) -> tuple[str | None, str | None]:
    """``(writer header, incarnation header)`` of the call, each None when absent."""
    mw = context.get_middleware("meta")
    return (mw.writer, mw.incarnation) if isinstance(mw, _CallMeta) else (None, None)


def headers(writer: str | None, epoch: int | None, incarnation: str | None) -> list[tuple[bytes, bytes]]:
    """The client's side: the headers a fenced writer sends to one server."""
    out = []
    if writer is not None and epoch is not None:
        out.append((WRITER_HEADER.encode(), f"{writer}:{epoch}".encode()))
    if incarnation:
        out.append((INCARNATION_HEADER.encode(), incarnation.encode()))
    return out
