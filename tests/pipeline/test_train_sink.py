"""The trainer's operator at parallelism 1 (:mod:`flinkdl.pipeline.train_sink`): every prediction
envelope goes to the publisher, then to the sink, in the same call; the sink's state has names of its own."""

from __future__ import annotations

from flinkdl.pipeline.recovery import ExactlyOnceFunction
from flinkdl.pipeline.sink import EvaluateAndSink
from flinkdl.pipeline.train_sink import GenerateTrainAndSink, InnerSink, ReadTrainAndSink, SinkInside


class _Sink:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def process_element(self, value, ctx):
        self.calls.append(("sink", value))
        yield from ()


class _Trainer(SinkInside):
    tail_type = None

    def apply(self, value, replay: bool = False):
        return [f"preds-{value}"], None


def test_each_prediction_is_published_then_sunk_and_nothing_goes_downstream(monkeypatch):
    import flinkdl.pipeline.kafka_out as kafka_out

    calls: list = []
    op = _Trainer("{}")
    op.exactly_once, op.sink = False, _Sink(calls)
    op.publisher = object()
    monkeypatch.setattr(kafka_out, "publish", lambda to, env: calls.append(("publish", env)))
    monkeypatch.setattr("flinkdl.pipeline.train_sink.Envelope.of", staticmethod(lambda row: row))
    assert list(op.process_element(1, None)) == []
    assert list(op.process_element(2, None)) == []
    assert calls == [("publish", "preds-1"), ("sink", "preds-1"), ("publish", "preds-2"), ("sink", "preds-2")]


def test_the_inner_sink_keeps_its_state_apart_from_the_trainer():
    assert InnerSink.state_names != ExactlyOnceFunction.state_names == EvaluateAndSink.state_names
    assert set(InnerSink.state_names).isdisjoint(ExactlyOnceFunction.state_names)
    op = GenerateTrainAndSink("{}", max_events=5)
    assert isinstance(op.sink, InnerSink) and op.sink.max_events == 5
    # the fold wraps the trainer: SinkInside comes before the trainer's class in the MRO
    for cls in (GenerateTrainAndSink, ReadTrainAndSink):
        mro = cls.__mro__
        assert mro.index(SinkInside) < mro.index(cls.__mro__[2])


def test_a_side_output_passes_through():
    calls: list = []
    op = _Trainer("{}")
    op.exactly_once, op.sink, op.publisher = False, _Sink(calls), None
    op.apply = lambda value, replay=False: ([("tag", "{}"), "preds"], None)  # type: ignore[method-assign]
    assert list(op.process_element(0, None)) == [("tag", "{}")]
    assert calls == [("sink", "preds")]
