"""The join's rules (flinkdl.feedback.join), driven as Flink would drive them: state in, step out."""

import json

import pytest

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.feedback.join import JoinCore, Pending, Step

W = 60_000
IMP = b'{"event_id": 7, "ts": 1000, "C1": 3, "label": 1}'


def core(strategy: str, grace_s: float = 0.0) -> JoinCore:
    return JoinCore(FeedbackConfig(topic="f", window_s=W / 1000, strategy=strategy, grace_s=grace_s), "label")


def trained(step: Step) -> list[int]:
    return [o.label for o in step.outputs if o.kind == "train"]


def settled(step: Step) -> list[int]:
    return [o.label for o in step.outputs if o.kind == "settle"]


def test_an_impression_is_served_without_its_label_and_its_window_timer_set():
    step = core("wait_window").impression(None, IMP, 1000, watermark=0)
    serve = [o for o in step.outputs if o.kind == "serve"]
    assert len(serve) == 1 and json.loads(serve[0].message) == {"event_id": 7, "ts": 1000, "C1": 3}
    assert trained(step) == [] and step.timers == [1000 + W] and step.counts == {}


def test_wait_window_trains_once_on_the_click_and_the_close_does_nothing_more():
    c = core("wait_window")
    st = c.impression(None, IMP, 1000, 0).state
    step = c.feedback(st, True, 5000, watermark=2000)
    assert trained(step) == [1] and settled(step) == [1]
    assert json.loads(next(o.message for o in step.outputs if o.kind == "train"))["label"] == 1
    end = c.timer(step.state, 1000 + W)
    assert end.outputs == [] and end.state is None


def test_wait_window_trains_a_negative_when_the_window_closes_without_a_click():
    c = core("wait_window")
    st = c.impression(None, IMP, 1000, 0).state
    step = c.timer(st, 1000 + W)
    assert trained(step) == [0] and settled(step) == [0] and step.state is None


def test_fake_negative_trains_a_negative_at_once_then_the_positive_on_the_click():
    c = core("fake_negative")
    first = c.impression(None, IMP, 1000, 0)
    assert trained(first) == [0] and settled(first) == []
    click = c.feedback(first.state, True, 3000, 1500)
    assert trained(click) == [1] and settled(click) == [1]
    assert c.timer(click.state, 1000 + W).outputs == []


def test_fake_negative_settles_negative_at_the_close_without_training_again():
    c = core("fake_negative")
    step = c.timer(c.impression(None, IMP, 1000, 0).state, 1000 + W)
    assert trained(step) == [] and settled(step) == [0]


@pytest.mark.parametrize("strategy", ["wait_window", "fake_negative"])
def test_a_late_positive_within_the_grace_is_trained_as_positive_and_counted(strategy):
    c = core(strategy, grace_s=30)
    st = c.impression(None, IMP, 1000, 0).state
    closed = c.timer(st, 1000 + W)
    assert settled(closed) == [0] and closed.state is not None  # kept for the grace
    late = c.feedback(closed.state, True, 1000 + W - 1, watermark=1000 + W + 10)
    assert trained(late) == [1] and settled(late) == [] and late.counts == {"late_events": 1, "late_positive": 1}
    assert c.timer(late.state, 1000 + W + 30_000).state is None


def test_feedback_before_its_impression_is_joined_when_the_impression_arrives():
    c = core("wait_window")
    early = c.feedback(None, True, 2000, watermark=0)
    assert early.outputs == [] and early.timers == [2000]
    step = c.impression(early.state, IMP, 1000, 0)
    assert [o.kind for o in step.outputs] == ["serve", "train", "settle"] and trained(step) == [1]
    assert c.timer(step.state, 2000).outputs == []  # the early feedback's timer: nothing to do


def test_feedback_whose_impression_never_comes_is_an_orphan():
    c = core("fake_negative")
    early = c.feedback(None, True, 2000, watermark=0)
    gone = c.timer(early.state, 2000)
    assert gone.state is None and gone.counts == {"orphan": 1}
    assert c.feedback(None, True, 500, watermark=1000).counts == {"late_events": 1, "orphan": 1}


def test_clicks_outside_the_window_and_duplicates_are_counted_not_trained():
    c = core("fake_negative")
    st = c.impression(None, IMP, 1000, 0).state
    out = c.feedback(st, True, 1000 + W + 1, 0)
    assert trained(out) == [] and out.counts == {"out_of_window": 1}
    once = c.feedback(out.state, True, 2000, 0)
    twice = c.feedback(once.state, True, 2500, 0)
    assert trained(once) == [1] and trained(twice) == [] and twice.counts == {"duplicate": 1}
    assert c.impression(twice.state, IMP, 1000, 0).counts == {"duplicate": 1}


def test_an_explicit_negative_settles_at_once():
    c = core("wait_window")
    step = c.feedback(c.impression(None, IMP, 1000, 0).state, False, 2000, 0)
    assert trained(step) == [0] and settled(step) == [0]
    assert c.timer(step.state, 1000 + W).outputs == []


def test_an_impression_that_is_not_a_json_object_raises():
    with pytest.raises(ValueError):
        core("wait_window").impression(Pending(), b"[1, 2]", 0, 0)


def test_produce_feedback_needs_the_generator_and_json(capsys):
    from flinkdl import cli

    args = cli.parser().parse_args(["produce", "--bootstrap", "127.0.0.1:1", "--topic", "i", "--feedback-topic", "c",
                                    "--generator", "--format", "csv", "--delay-scale", "0.5", "--end-tick-s", "60"])
    assert (args.feedback_topic, args.delay_scale, args.end_tick_s) == ("c", 0.5, 60.0)
    assert args.func(args) == 2 and "--format json" in capsys.readouterr().err
