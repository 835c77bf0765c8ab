"""The anchor + tail protocol of :class:`ExactlyOnceFunction` with in-memory state: a recovery
re-applies the tail after the anchor; an anchor of another job shape (``stale``) is dropped with its
tail (a rescaled job resumed from a savepoint)."""

from __future__ import annotations

import json

from flinkdl.pipeline.recovery import ExactlyOnceFunction


class _Value:
    def __init__(self, v: str | None = None) -> None:
        self.v = v

    def value(self) -> str | None:
        return self.v

    def update(self, v: str) -> None:
        self.v = v


class _List:
    def __init__(self, items: list | None = None) -> None:
        self.items = list(items or [])

    def get(self) -> list:
        return self.items

    def add(self, v: object) -> None:
        self.items.append(v)

    def clear(self) -> None:
        self.items = []


class _Fn(ExactlyOnceFunction):
    tail_type = None

    def __init__(self, anchor: dict | None, tail: list, parallelism: int) -> None:
        super().__init__("{}")
        self._anchor_state = _Value(None if anchor is None else json.dumps(anchor))
        self._tail = _List(tail)
        self.parallelism, self.resets, self.applied = parallelism, [], []

    def start(self, ctx) -> None:
        pass

    def stale(self, anchor: dict) -> bool:
        return anchor.get("parallelism", 1) != self.parallelism

    def reset(self, anchor: dict | None) -> dict:
        self.resets.append(anchor)
        return anchor if anchor is not None else {"seq": 0, "parallelism": self.parallelism}

    def apply(self, value, replay: bool = False):
        self.applied.append((value, replay))
        return [value], None


def test_recovery_replays_the_tail_after_the_anchor() -> None:
    fn = _Fn({"seq": 3, "parallelism": 2}, ["b4", "b5"], parallelism=2)
    fn.recover()
    assert fn.resets == [{"seq": 3, "parallelism": 2}] and fn.applied == [("b4", True), ("b5", True)]
    assert fn._tail.items == ["b4", "b5"]


def test_an_anchor_of_another_parallelism_is_dropped_with_its_tail() -> None:
    fn = _Fn({"seq": 3, "parallelism": 2}, ["b4", "b5"], parallelism=4)
    fn.recover()
    assert fn.resets == [None] and fn.applied == [] and fn._tail.items == []
    assert json.loads(fn._anchor_state.value()) == {"seq": 0, "parallelism": 4}
