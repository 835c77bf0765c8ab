"""A callback at the end of a PyFlink bundle (:mod:`flinkdl.pipeline.bundle_end`): PyFlink's own
``StatefulOperation.finish`` runs it once, before it commits the keyed state; per thread."""

from __future__ import annotations

import threading

import pytest
from pyflink.fn_execution.datastream.process.operations import StatefulOperation

from flinkdl.pipeline import bundle_end
from flinkdl.pipeline.bundle_end import at_bundle_end


@pytest.fixture(autouse=True)
def _nothing_pending() -> None:
    bundle_end._local.pending = None  # left by another test of this thread


class _Backend:
    def __init__(self, log: list) -> None:
        self.log = log

    def commit(self) -> None:
        self.log.append("commit")


def _finish(log: list) -> None:
    """PyFlink's finish of a bundle, on an operation without a function (its state backend is all it uses)."""
    op = object.__new__(StatefulOperation)
    op.base_metric_group, op.operator_state_backend, op.keyed_state_backend = None, None, _Backend(log)
    op.finish()


def test_the_callback_runs_once_before_the_keyed_state_is_committed() -> None:
    log: list = []
    at_bundle_end(lambda: log.append("first"))
    at_bundle_end(lambda: log.append("flush"))  # a later call replaces it
    _finish(log)
    _finish(log)
    assert log == ["flush", "commit", "commit"]


def test_a_callback_belongs_to_the_thread_that_set_it() -> None:
    log: list = []
    other = threading.Thread(target=lambda: at_bundle_end(lambda: log.append("other thread")))
    other.start()
    other.join()
    _finish(log)
    assert log == ["commit"]
