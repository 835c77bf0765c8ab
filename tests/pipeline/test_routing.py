"""Key → subtask routing, checked against what Flink did with PyFlink INT keys on 2 subtasks."""

from flinkdl.pipeline.routing import default_max_parallelism, flink_murmur, subtask_keys, subtask_of

# Measured: a PyFlink job (parallelism 2) keyed 0..39 with key_type=Types.INT(); key → subtask index.
OBSERVED_P2 = [0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0,
               1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0]


def test_routing_matches_flink_on_two_subtasks():
    assert [subtask_of(k, 2) for k in range(40)] == OBSERVED_P2


def test_each_subtask_gets_its_own_key():
    for p in (1, 2, 3, 4, 7, 16):
        keys = subtask_keys(p)
        assert len(set(keys)) == p
        assert [subtask_of(k, p) for k in keys] == list(range(p))


def test_murmur_is_non_negative_and_max_parallelism_is_flinks_default():
    assert all(flink_murmur(x) >= 0 for x in (-(1 << 31), -1, 0, 1, (1 << 31) - 1))
    assert default_max_parallelism(1) == 128 and default_max_parallelism(100) == 256
