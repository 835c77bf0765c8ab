"""The generator's throttle: a late call earns no burst of catch-up calls."""

import time

from flinkdl.pipeline.flow import Throttle


def test_after_a_stall_calls_are_still_spaced_by_the_interval():
    t = Throttle(20.0)  # 50 ms apart
    t.wait()
    time.sleep(0.3)  # backpressure: six intervals late
    t.wait()
    start = time.monotonic()
    t.wait()
    assert time.monotonic() - start >= 0.045  # no credit from the stall (a lower bound, not a timing goal)


def test_a_call_can_take_several_units():
    t = Throttle(1000.0)  # 1000 rows/s: a 100-row batch takes 100 ms of the budget
    t.wait(100)
    start = time.monotonic()
    t.wait(1)
    assert time.monotonic() - start >= 0.09
