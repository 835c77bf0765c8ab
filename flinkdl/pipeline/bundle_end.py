"""Work that must be done before a PyFlink bundle ends (process mode: Beam's harness, also loopback).

PyFlink gives a Python function no bundle hook, but every checkpoint barrier, savepoint and end of
input passes only after the bundle in flight finished, and its end commits the keyed state
(``StatefulOperation.finish``). :func:`at_bundle_end` runs a callback there, before that commit: an
operator that defers work from one element to the next (:mod:`flinkdl.pipeline.train_sink`) does
what is left when the bundle ends, so no barrier finds it undone.

The callback is kept per thread: a bundle is processed and finished in one thread, and in loopback
mode several operators' bundles run in threads of one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_local = threading.local()
_lock = threading.Lock()
_installed = False


def at_bundle_end(fn: Callable[[], None]) -> None:
    """Call ``fn`` when the bundle this thread processes ends (once; a later call replaces it)."""
    _install()
    _local.pending = fn


def run_pending() -> None:
    """Call this thread's pending callback, if any (the bundle's end)."""
    fn = getattr(_local, "pending", None)
    if fn is not None:
        _local.pending = None
        fn()


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        from pyflink.fn_execution.datastream.process import operations

        original = operations.StatefulOperation.finish

        def finish(self: operations.StatefulOperation) -> None:
            run_pending()
            original(self)

        operations.StatefulOperation.finish = finish
        _installed = True
