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


#: sha256 (first 16 hex digits) of join_query + views for the strategies before es_dfm came into the job:
#: their SQL must stay exactly as it was (strategy, event_time_batches, count_clicks) → digest
PINNED = {("wait_window", False, False): "6195860618e3da4e", ("wait_window", False, True): "d248126a95457374",
          ("wait_window", True, False): "ec274cef8746a15f", ("wait_window", True, True): "8c47a2d2797c5805",
          ("fake_negative", False, False): "c23d755fcd01ee53", ("fake_negative", False, True): "c963fed35d1c6d4e",
          ("fake_negative", True, False): "7d8e0913f878f6dc", ("fake_negative", True, True): "e9d0f68392b12545"}


def _sql(fb: FeedbackConfig) -> str:
    from flinkdl.pipeline.feedback_sql import views

    return join_query(fb, "label") + "\n".join(views(fb, "imp", "fbk"))


def test_the_other_strategies_sql_is_unchanged():
    import hashlib

    for (strategy, etb, cc), digest in PINNED.items():
        fb = FeedbackConfig(topic="f", strategy=strategy, event_time_batches=etb, count_clicks=cc, window_s=60,
                            grace_s=30)
        assert hashlib.sha256(_sql(fb).encode()).hexdigest()[:16] == digest, (strategy, etb, cc)


def test_es_dfm_sql_is_fake_negative_with_codes_and_real_negatives():
    from flinkdl.feedback.esdfm_rows import CODE_CHARS
    from flinkdl.pipeline.feedback_sql import views

    fb = FeedbackConfig(topic="f", strategy="es_dfm", event_time_batches=True, window_s=60, grace_s=30)
    fn = fb.model_copy(update={"strategy": "fake_negative"})
    parts, fn_parts = join_query(fb, "label").split("\nUNION ALL "), join_query(fn, "label").split("\nUNION ALL ")
    messages = [p for p in parts if p.startswith(f"SELECT {MESSAGES} AS chan")]
    assert len(messages) == 4 and len(parts) == len(fn_parts) + 1  # served, negative, positive + the real negative
    assert [p for p in parts if p.startswith(f"SELECT {EVENTS}")] == [p for p in fn_parts if p.startswith(
        f"SELECT {EVENTS}")]  # the same events (settled labels, counters)
    served, negative, positive, real = messages
    pad = f", {CODE_CHARS}, '0')) AS k"
    assert all(pad in m for m in messages)  # every message's key ends with its code
    assert "COALESCE(0, 0)" in served and f"FROM {NOW}" in served and '"label"' not in served
    assert "COALESCE(tt - ts_ms, 0), 0) AS STRING)" in negative and f"FROM {NOW}" in negative
    assert "COALESCE(e, 0), 0) AS STRING)" in positive and positive.endswith("WHERE click_ts IS NOT NULL")
    assert "COALESCE(e, 0), 0) + 1 AS STRING)" in real and real.endswith("WHERE NOT (click_ts IS NOT NULL)")
    assert '"label":0' in real and '"label":1' in positive and '"label":0' in negative
    train = next(v for v in views(fb, "imp", "fbk") if "VIEW fb_train_join" in v)
    assert "i.tt - i.ts_ms AS e, " in train
    assert all(" AS e, " not in v for v in views(fn, "imp", "fbk"))


@pytest.mark.e2e
def test_es_dfm_join_in_flink_sql(tmp_path):
    """The es_dfm rows out of Flink SQL, their codes included."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from flinkdl.feedback.esdfm_rows import CODE_CHARS, split_weight_column, weight_column
    from flinkdl.pipeline.feedback_job import join_table
    from flinkdl.pipeline.feedback_sql import KEY_CHARS

    flink = StreamExecutionEnvironment.get_execution_environment()
    flink.set_parallelism(1)
    tenv = StreamTableEnvironment.create(flink)
    fb = FeedbackConfig(topic="f", window_s=W / 1000, grace_s=G / 1000, strategy="es_dfm", count_clicks=False)
    tenv.execute_sql(_table(tmp_path / "imp.json", "imp", IMPRESSIONS))
    tenv.execute_sql(_table(tmp_path / "fb.json", "fbk", FEEDBACK))
    with join_table(tenv, fb, "label", "imp", "fbk").execute().collect() as rows:
        out = [(r[0], r[1], r[3]) for r in rows]
    msgs = [(json.loads(p), k[KEY_CHARS:]) for c, p, k in out if c == MESSAGES]
    assert all(len(code) == CODE_CHARS for _, code in msgs)
    elapsed, real = split_weight_column(weight_column([code.encode() for _, code in msgs]))
    # label -1: served (no label); the tuples sort without comparing None with a label
    rows_ = sorted((m["event_id"], m.get("label", -1), bool(r)) for (m, _), r in zip(msgs, real, strict=True))
    # served and a fake negative each; 1's positive; 2, 3, 4 closed without a click in time: real negatives
    assert rows_ == sorted([(i, -1, False) for i in (1, 2, 3, 4)] + [(i, 0, False) for i in (1, 2, 3, 4)]
                           + [(1, 1, False)] + [(i, 0, True) for i in (2, 3, 4)])
    assert elapsed.tolist() == [0.0] * len(msgs)  # in order: no impression came behind the watermark


def test_the_train_join_is_read_back_with_its_own_columns_in_order():
    from flinkdl.pipeline.feedback_sql import train_columns, views

    for strategy in ("wait_window", "fake_negative", "es_dfm"):
        fb = FeedbackConfig(topic="f", strategy=strategy)
        view = next(v for v in views(fb, "imp", "fbk") if "VIEW fb_train_join" in v)
        select = view[view.index(" AS SELECT ") + len(" AS SELECT "):view.index(" FROM fb_imp i")]
        # the name each select item ends with: "i.eid" → eid, "... AS late" → late (commas inside CASE/COALESCE
        # belong to no item end: the items are split on ", " before a name that ends them)
        names = re.findall(r"(?:^|, )(?:[a-z]\.)?(\w+)(?=, |$)|\bAS (\w+)(?=, |$)", select)
        assert [a or b for a, b in names] == [n for n, _ in train_columns(fb)], strategy
