"""Which key sends a batch to which parallel subtask of a keyed operator; which subtask this is.

Flink assigns a key to a key group ``murmur(hashCode(key)) % max_parallelism`` and a key group
to subtask ``group * parallelism // max_parallelism``. A PyFlink ``key_by`` with
``key_type=Types.INT()`` hands the JVM the key wrapped in a one-field ``Row``, whose
``hashCode()`` is ``62 + key`` (checked against Flink in tests/pipeline/test_routing.py).
:func:`subtask_keys` finds, for each subtask, the smallest int key that lands on it, so a job can
key its batches by the subtask they are meant for and still keep keyed (checkpointed) state.

>>> subtask_keys(2)
[0, 2]
"""

from __future__ import annotations

from pyflink.datastream import RuntimeContext

_M = 0xFFFFFFFF
ROW_HASH_OFFSET = 62  # hashCode() of a one-field Row holding int k is 62 + k


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def flink_murmur(code: int) -> int:
    """``org.apache.flink.util.MathUtils.murmurHash(int)``: a non-negative int."""
    h = code & _M
    h = _rotl((h * 0xCC9E2D51) & _M, 15)
    h = _rotl((h * 0x1B873593) & _M, 13)
    h = ((h * 5 + 0xE6546B64) & _M) ^ 4
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M
    h ^= h >> 16
    signed = h - (1 << 32) if h >> 31 else h
    return abs(signed) if signed != -(1 << 31) else 0


def default_max_parallelism(parallelism: int) -> int:
    """Flink's default: the next power of two of 1.5 × parallelism, at least 128, at most 32768."""
    n = parallelism + parallelism // 2
    return min(max(1 << (n - 1).bit_length() if n > 1 else 1, 128), 1 << 15)


def subtask_of(key: int, parallelism: int, max_parallelism: int | None = None) -> int:
    """The subtask a PyFlink ``Types.INT()`` key goes to."""
    maxp = max_parallelism or default_max_parallelism(parallelism)
    return flink_murmur(ROW_HASH_OFFSET + key) % maxp * parallelism // maxp


def subtask_keys(parallelism: int, max_parallelism: int | None = None) -> list[int]:
    """``keys[i]``: the smallest non-negative int key that Flink routes to subtask ``i``."""
    keys: dict[int, int] = {}
    k = 0
    while len(keys) < parallelism:
        keys.setdefault(subtask_of(k, parallelism, max_parallelism), k)
        k += 1
    return [keys[i] for i in range(parallelism)]


def subtask_index(ctx: RuntimeContext) -> int:
    """This operator's subtask index, in process and thread mode (thread mode's getters raise,
    see docs/STACK_NOTES.md)."""
    try:
        return ctx.get_index_of_this_subtask()
    except Exception:
        return ctx._runtime_context.getTaskInfo().getIndexOfThisSubtask()
