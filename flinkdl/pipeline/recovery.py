"""Exactly-once state for Python operators whose state lives outside Flink (docs/EXACTLY_ONCE.md).

PyFlink 2.3 gives a Python function no checkpoint hook (no ``snapshot_state``, no
``notify_checkpoint_complete``). It does checkpoint *keyed state*, and in process mode it finishes
the Python bundle before the barrier passes. So an operator whose real state is elsewhere (the
model on the parameter server, the evaluator in the sink process) keeps two things in keyed state:

- the **anchor**: a durable snapshot of its external state (a PS version, a snapshot file) that
  already includes a prefix of its input;
- the **tail**: the input elements it applied after that anchor.

Whatever moment the barrier comes, anchor + tail is exactly the state at the barrier. After a
failure Flink restores the keyed state of the last checkpoint and replays the input after it; on
the first element the operator resets its external state to the anchor and re-applies the tail
(without emitting again: those outputs went downstream before the barrier), then goes on. Every
input element has then changed the external state exactly once.

A subclass implements :meth:`ExactlyOnceFunction.start`, :meth:`ExactlyOnceFunction.reset` and
:meth:`ExactlyOnceFunction.apply`; with ``job.exactly_once`` off, ``apply`` is all that runs.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable
from typing import Any, ClassVar

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from flinkdl.pipeline.operator import open_operator

Anchor = dict


class ExactlyOnceFunction(KeyedProcessFunction, abc.ABC):
    """A keyed process function that keeps ``anchor`` + ``tail`` in Flink state (see module doc)."""

    #: Flink type of the input elements kept in the tail (a class attribute: instances are pickled,
    #: and a TypeInformation holds JVM objects).
    tail_type: ClassVar[object]
    #: Side output the anchor goes to (as JSON) each time it moves, when ``emit_anchors`` is set.
    anchor_tag: ClassVar[Any] = None
    emit_anchors = False
    #: Names of the anchor and tail states (an operator that holds two protocols gives one other names).
    state_names: ClassVar[tuple[str, str]] = ("anchor", "tail")

    def __init__(self, cfg_json: str) -> None:
        self.cfg_json = cfg_json

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def start(self, ctx: RuntimeContext) -> None:
        """Open resources (``self.cfg`` is set)."""

    @abc.abstractmethod
    def reset(self, anchor: Anchor | None) -> Anchor:
        """Make the external state equal to ``anchor`` (``None``: a fresh start, keep what is
        there) and return the anchor that describes it now."""

    @abc.abstractmethod
    def apply(self, value: Row, replay: bool = False) -> tuple[Iterable, Anchor | None]:
        """Apply one element; return its outputs (ignored on ``replay``) and a new anchor if the
        external state was just made durable *including* this element, else ``None``."""

    # ------------------------------------------------------------------ the protocol

    def open(self, ctx: RuntimeContext) -> None:
        self.cfg = open_operator(self.cfg_json)
        self.exactly_once = self.cfg.job.exactly_once
        if self.exactly_once:
            anchor, tail = self.state_names
            self._anchor_state = ctx.get_state(ValueStateDescriptor(anchor, Types.STRING()))
            self._tail = ctx.get_list_state(ListStateDescriptor(tail, self.tail_type))
        self._recovered = False
        self.start(ctx)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):
        if not self.exactly_once:
            yield from self.apply(value)[0]
            return
        if not self._recovered:
            self._recovered = True
            self.first_element = value  # the element that triggered the first reset
            self.recover()
        out, anchor = self.apply(value)
        self._record(value, anchor)
        yield from out
        if anchor is not None and self.emit_anchors:
            yield self.anchor_tag, json.dumps(anchor)

    def stale(self, anchor: Anchor) -> bool:
        """Whether ``anchor`` belongs to a job of another shape (rescaled from a savepoint): then the
        external state is kept as it is and the tail is not re-applied (it is in that state)."""
        return False

    def before_tail(self) -> Iterable[Row]:
        """Elements to re-apply after :meth:`reset` and before the tail (none: the anchor ``reset`` returned
        is the one in state; a reset to an earlier anchor re-applies what lies between them)."""
        return ()

    def recover(self) -> None:
        """Reset to the anchor in state and re-apply the tail (also called after a worker death)."""
        raw = self._anchor_state.value()
        anchor = json.loads(raw) if raw else None
        tail = list(self._tail.get() or ())
        if anchor is not None and self.stale(anchor):
            anchor, tail = None, []
        self._record(None, self.reset(anchor))
        for value in [*self.before_tail(), *tail]:
            self._record(value, self.apply(value, replay=True)[1])

    def _record(self, value: Row | None, anchor: Anchor | None) -> None:
        if anchor is not None:
            self._anchor_state.update(json.dumps(anchor))
            self._tail.clear()
        elif value is not None:
            self._tail.add(value)
