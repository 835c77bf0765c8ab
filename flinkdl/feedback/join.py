"""The event-time label join, as plain Python: what one id's impression and feedback become.

The Flink operator (:class:`flinkdl.pipeline.feedback.FeedbackJoin`) keeps one :class:`Pending`
per id in keyed state and calls :class:`JoinCore` on each impression, feedback event and
event-time timer; the core returns a :class:`Step`: the new state, what to emit, which timers
to register and what to count. Nothing here knows Flink, so every rule is unit-tested.

Rules (``W`` = attribution window, ``G`` = grace, times are event time in ms):

- An impression is served at once (emitted without a label, for scoring). Under ``fake_negative``
  it is also trained as a negative at once. A timer is set at ``ts + W`` (close) and, with a
  grace, at ``ts + W + G`` (forget).
- A positive with ``imp_ts <= click_ts <= imp_ts + W`` is trained as a positive (once); the
  label is settled positive. Under ``wait_window`` that is the only training of a clicked impression.
- At the close, an impression without a positive is settled negative (``wait_window`` trains
  it as a negative then; ``fake_negative`` already did).
- A positive that arrives after the close but within the grace (its event time inside the window:
  the watermark overtook it) is ``late_positive``: trained as a positive all the same, never lost.
- Feedback before its impression is kept until the watermark passes its own time; an impression
  that arrives by then is joined with it, else the feedback is an ``orphan``.
- A positive outside its impression's window is ``out_of_window``; a second positive or impression
  is a ``duplicate``; feedback or impressions behind the watermark are also counted ``late_events``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from flinkdl.config.feedback import FeedbackConfig

Kind = Literal["serve", "train", "settle"]


@dataclass
class Pending:
    """The keyed state of one id."""

    body: str | None = None  # the impression's JSON object without its label and closing brace
    imp_ts: int | None = None
    click_ts: int | None = None  # a positive seen (possibly before the impression)
    negative: bool = False  # an explicit negative arrived
    trained_positive: bool = False
    settled: bool = False  # the label is final (the evaluation has it)


@dataclass(frozen=True)
class Out:
    """One output: ``serve`` (message without a label), ``train`` (message with ``label``), ``settle``."""

    kind: Kind
    label: int | None = None
    message: bytes = b""
    imp_ts: int = 0


@dataclass
class Step:
    """What one input did: the new state (``None``: forget the id), outputs, timers, counters."""

    state: Pending | None
    outputs: list[Out] = field(default_factory=list)
    timers: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def strip_label(message: bytes, label_column: str) -> str:
    """The impression's JSON object without ``label_column`` and without its closing brace.

    An object that does not name the label is cut as text (not parsed: the featurizer parses it
    later, and dead-letters it if it is not JSON after all).
    """
    text = message.decode("utf-8", errors="replace").strip()
    if len(text) > 2 and text[0] == "{" and text[-1] == "}" and f'"{label_column}"' not in text:
        return text[:-1]
    obj = json.loads(message)
    if not isinstance(obj, dict) or not obj:
        raise ValueError("an impression must be a non-empty JSON object")
    obj.pop(label_column, None)
    return json.dumps(obj, separators=(",", ":"))[:-1]


class JoinCore:
    """The join's rules for one strategy (see the module docstring)."""

    def __init__(self, cfg: FeedbackConfig, label_column: str) -> None:
        self.window, self.grace = cfg.window_ms, cfg.grace_ms
        self.fake_negative = cfg.strategy == "fake_negative"
        self.label_column = label_column

    def _message(self, st: Pending, label: int | None) -> bytes:
        body = st.body or "{"
        if label is None:
            return (body + "}").encode()
        return f'{body},"{self.label_column}":{label}}}'.encode()

    def _train(self, st: Pending, step: Step, label: int) -> None:
        step.outputs.append(Out("train", label, self._message(st, label), st.imp_ts or 0))

    def _settle(self, st: Pending, step: Step, label: int) -> None:
        st.settled = True
        step.outputs.append(Out("settle", label, imp_ts=st.imp_ts or 0))

    def _closed(self, st: Pending, watermark: int) -> bool:
        return st.imp_ts is not None and watermark >= st.imp_ts + self.window

    def impression(self, st: Pending | None, message: bytes, ts: int, watermark: int) -> Step:
        if st is not None and st.body is not None:
            step = Step(st)
            step.count("duplicate")
            return step
        st = st or Pending()
        st.body, st.imp_ts = strip_label(message, self.label_column), ts
        step = Step(st)
        if ts <= watermark:
            step.count("late_events")
        step.outputs.append(Out("serve", None, self._message(st, None), ts))
        if self.fake_negative:
            self._train(st, step, 0)
        step.timers.append(ts + self.window)
        if self.grace:
            step.timers.append(ts + self.window + self.grace)
        if st.click_ts is not None:  # its positive came first
            click, st.click_ts = st.click_ts, None
            self._positive(st, step, click, watermark)
        elif st.negative and not self.fake_negative:
            self._train(st, step, 0)
            self._settle(st, step, 0)
        return step

    def feedback(self, st: Pending | None, positive: bool, ts: int, watermark: int) -> Step:
        step = Step(st)
        if ts <= watermark:
            step.count("late_events")
        if st is None or st.body is None:  # no impression (yet)
            if ts <= watermark and st is None:  # its impression should be here by now: it is gone
                step.count("orphan")
                return step
            st = st or Pending()
            if positive:
                st.click_ts = ts if st.click_ts is None else min(st.click_ts, ts)
            else:
                st.negative = True
            step.state = st
            step.timers.append(ts)  # forget it once the watermark passes it without an impression
            return step
        if positive:
            self._positive(st, step, ts, watermark)
        elif not st.settled:
            st.negative = True
            if not self.fake_negative:
                self._train(st, step, 0)
            self._settle(st, step, 0)
        return step

    def _positive(self, st: Pending, step: Step, ts: int, watermark: int) -> None:
        assert st.imp_ts is not None
        if not st.imp_ts <= ts <= st.imp_ts + self.window:
            step.count("out_of_window")
            return
        if st.trained_positive:
            step.count("duplicate")
            return
        st.trained_positive = True
        late = st.settled or self._closed(st, watermark)
        if late:  # the window closed (a negative was trained or settled): train the positive all the same
            step.count("late_positive")
        self._train(st, step, 1)
        if not st.settled:
            self._settle(st, step, 1)

    def timer(self, st: Pending | None, t: int) -> Step:
        step = Step(st)
        if st is None:
            return step
        if st.body is None or st.imp_ts is None:  # feedback whose impression never came
            step.count("orphan")
            step.state = None
            return step
        close = st.imp_ts + self.window
        if t >= close and not st.settled:
            if not self.fake_negative:
                self._train(st, step, 0)
            self._settle(st, step, 0)
        if t >= close + self.grace:
            step.state = None
        return step
