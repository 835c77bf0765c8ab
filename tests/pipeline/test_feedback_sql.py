"""The label join's rules (flinkdl.pipeline.feedback_sql), run by Flink SQL over two small files.

Each file is a bounded stream of JSON lines (``raw`` format, as the Kafka tables read them): at
its end the watermark jumps to the maximum, so every window closes. One Flink run per strategy.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.pipeline.feedback_sql import EVENTS, MESSAGES, NOW, interval_sql, join_query, parse_event

W, G = 60_000, 30_000
T = 1_700_000_000_000
IMPRESSIONS = [  # (id, ts, extra)
    {"event_id": 1, "ts": T, "C1": 3, "label": 1},  # clicked within the window (its own label is dropped)
    {"event_id": 2, "ts": T + 10, "C1": 4},  # never clicked
    {"event_id": 3, "ts": T + 20, "C1": 5},  # clicked after its window, within the grace
    {"event_id": 4, "ts": T + 30, "label": "x", "C1": 6},  # clicked before the impression (in event time)
    {"ts": T + 40, "C1": 7},  # no id: bad_message
]
FEEDBACK = [  # in event-time order
    {"event_id": 4, "ts": T + 25, "label": "true"},  # before its impression: no match (orphan)
    {"event_id": 9, "ts": T + 50, "label": 1},  # no impression: orphan
    {"event_id": 2, "ts": T + 60, "label": "maybe"},  # no_label
    {"event_id": 2, "ts": T + 70, "label": 0},  # an explicit negative: not used
    {"event_id": 1, "ts": T + 5_000, "label": 1},
    {"event_id": 3, "ts": T + 20 + W + 1_000, "label": "click"},  # out_of_window
]


def _table(path: Path, name: str, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    field = "TRY_CAST(JSON_VALUE(CAST(msg AS STRING), '$.{}') AS BIGINT)"
    return (f"CREATE TEMPORARY TABLE {name} (msg BYTES, eid AS {field.format('event_id')}, "
            f"ts_ms AS {field.format('ts')}, ets AS TO_TIMESTAMP_LTZ(COALESCE({field.format('ts')}, 0), 3), "
            f"WATERMARK FOR ets AS ets - {interval_sql(1000)}) "
            f"WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'raw')")


def _run(tmp_path: Path, strategy: str, count_clicks: bool = True,
         sql_parallelism: int | None = None) -> tuple[list[dict], Counter, dict[int, int]]:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from flinkdl.pipeline.feedback_job import join_table

    flink = StreamExecutionEnvironment.get_execution_environment()
    flink.set_parallelism(1)
    tenv = StreamTableEnvironment.create(flink)
    fb = FeedbackConfig(topic="f", window_s=W / 1000, grace_s=G / 1000, strategy=strategy, count_clicks=count_clicks,
                        sql_parallelism=sql_parallelism)
    tenv.execute_sql(_table(tmp_path / f"imp-{strategy}-{count_clicks}-{sql_parallelism}.json", "imp", IMPRESSIONS))
    tenv.execute_sql(_table(tmp_path / f"fb-{strategy}-{count_clicks}-{sql_parallelism}.json", "fbk", FEEDBACK))
    with join_table(tenv, fb, "label", "imp", "fbk").execute().collect() as rows:
        out = [(r[0], r[1]) for r in rows]
    messages = [json.loads(p) for c, p in out if c == MESSAGES]
    events = [parse_event(p) for c, p in out if c == EVENTS]
    settled = {eid: label for kinds, eid, _, label in events if "settle" in kinds.split("+")}
    counts = Counter(kind for kinds, *_ in events for kind in kinds.split("+") if kind != "settle")
    return messages, counts, settled


def _trained(messages: list[dict]) -> list[tuple[int, int]]:
    return sorted((m["event_id"], m["label"]) for m in messages if "label" in m)


@pytest.mark.e2e
def test_the_join_rules_in_flink_sql(tmp_path):
    runs = (("wait_window", True, None), ("fake_negative", True, None), ("fake_negative", False, None),
            ("wait_window", False, 2))  # the last: the joins at parallelism 2, the files read at 1
    for strategy, count_clicks, sql_parallelism in runs:
        messages, counts, settled = _run(tmp_path, strategy, count_clicks, sql_parallelism)
        served = [m for m in messages if "label" not in m]
        assert sorted(m["event_id"] for m in served) == [1, 2, 3, 4]  # each served once, without a label
        assert next(m for m in served if m["event_id"] == 1) == {"event_id": 1, "ts": T, "C1": 3}
        assert next(m for m in served if m["event_id"] == 4) == {"event_id": 4, "ts": T + 30, "C1": 6}
        if strategy == "wait_window":  # one example each: positive on the click, else negative at the close
            assert _trained(messages) == [(1, 1), (2, 0), (3, 0), (4, 0)]
        else:  # a negative at once for each, the positive again on the click
            assert _trained(messages) == [(1, 0), (1, 1), (2, 0), (3, 0), (4, 0)]
        assert settled == {1: 1, 2: 0, 3: 0, 4: 0}
        clicks = {"out_of_window": 1, "orphan": 2} if count_clicks else {}  # the third join's counters only
        assert counts == {"bad_message": 1, "no_label": 1, **clicks}, strategy


def test_without_count_clicks_the_query_has_no_clicks_join():
    fb = FeedbackConfig(topic="f", window_s=60, count_clicks=False)
    with_clicks = FeedbackConfig(topic="f", count_clicks=True)
    assert "fb_clicks" not in join_query(fb, "label") and "fb_clicks" in join_query(with_clicks, "label")


def test_with_event_time_batches_the_rows_that_bypass_the_join_come_from_the_shifted_view():
    for strategy, bypass in (("fake_negative", 2), ("wait_window", 1)):  # served (+ the fake negatives)
        fb = FeedbackConfig(topic="f", strategy=strategy, event_time_batches=True)
        query, plain = join_query(fb, "label"), join_query(fb.model_copy(update={"event_time_batches": False}), "label")
        assert query.count(f"FROM {NOW}") == bypass and f"FROM {NOW}" not in plain, strategy
        assert not re.search(r"FROM fb_imp\b", query) and len(re.findall(r"FROM fb_imp\b", plain)) == bypass
