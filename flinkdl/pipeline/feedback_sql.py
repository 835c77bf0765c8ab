"""The feedback job's label join as Flink SQL (docs/FEEDBACK.md): statements only, no Flink here.

Three event-time interval joins, all state in the JVM (Flink keyed state, checkpointed):

- ``train``: impressions LEFT JOIN positives, ``imp.ts <= click.ts <= imp.ts + W`` (kept until
  ``W + G``): a match is a positive example; an impression without one leaves with NULLs once the
  watermark passes ``ts + W + G`` (``wait_window`` trains it as a negative then).
- ``settle``: impression ids LEFT JOIN positives within ``W``: the settled label (1 at the match,
  0 when the watermark closes the window), for the evaluation of the serving scores.
- ``clicks`` (with ``feedback.count_clicks``): positives LEFT JOIN impression ids within ``W + G``
  before the click: a click after its impression's window is ``out_of_window``, one without an
  impression ``orphan``.

:func:`join_query` is one query (one scan of each topic) of ``Row(chan, payload)``: chan 0 = a JSON
message for the featurizer (an impression to serve without label, or an example with its label),
chan 1 = an event ``kind,id,ts,label`` for the settled evaluation (see :func:`parse_event`).
"""

from __future__ import annotations

from flinkdl.config.feedback import FeedbackConfig

MESSAGES, EVENTS = 0, 1


def _str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def interval_sql(ms: int) -> str:
    """An SQL interval literal of ``ms`` (Flink takes at most 2 digits of leading precision: < 100 days).

    >>> interval_sql(620_500)
    "INTERVAL '0 00:10:20.500' DAY TO SECOND(3)"
    """
    days, rest = divmod(int(ms), 86_400_000)
    if days > 99:
        raise ValueError(f"an interval of {ms} ms is over 99 days, more than Flink SQL takes")
    h, rest = divmod(rest, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"INTERVAL '{days} {h:02d}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}' DAY TO SECOND(3)"


def strip_label_sql(text: str, label: str) -> str:
    """SQL: the JSON object ``text`` without the member ``label`` (a scalar value)."""
    member = '"' + label + r'"\s*:\s*("[^"]*"|[-+.\w]+)\s*'
    first, last = _str(member + ","), _str(r",\s*" + member + "}")
    inner = f"REGEXP_REPLACE({text}, {first}, '')"  # the member and the comma after it
    return f"REGEXP_REPLACE({inner}, {last}, '}}')"  # the last member


def with_label_sql(body: str, label: str, value: int) -> str:
    """SQL: the JSON object ``body`` (without ``label``) with ``"label": value`` appended."""
    tail = _str(',"' + label + '":' + str(value) + "}")
    return f"CONCAT(SUBSTRING({body} FROM 1 FOR CHAR_LENGTH({body}) - 1), {tail})"


def positive_sql(value: str, fb: FeedbackConfig) -> str:
    """SQL: TRUE/FALSE/NULL for the feedback value ``value`` (a JSON_VALUE string), as ``is_positive``."""
    actions = ", ".join(_str(a.lower()) for a in fb.positive_actions)
    return (f"CASE WHEN {value} IS NULL OR TRIM({value}) = '' THEN CAST(NULL AS BOOLEAN) "
            f"WHEN TRY_CAST({value} AS DOUBLE) IS NOT NULL THEN TRY_CAST({value} AS DOUBLE) >= 1 "
            f"WHEN LOWER(TRIM({value})) IN ({actions}) THEN TRUE "
            f"WHEN LOWER(TRIM({value})) IN ('false', 'no') THEN FALSE ELSE CAST(NULL AS BOOLEAN) END")


def views(fb: FeedbackConfig, label: str, impressions: str, feedback: str) -> list[str]:
    """``CREATE VIEW`` statements over the two topic tables (columns ``msg, eid, ts_ms, ets``)."""
    w, keep = fb.window_ms, fb.window_ms + fb.grace_ms
    valid = "eid IS NOT NULL AND eid >= 0 AND ts_ms IS NOT NULL"
    late = "COALESCE(ets <= CURRENT_WATERMARK(ets), FALSE)"
    value = f"JSON_VALUE(CAST(msg AS STRING), {_str('$.' + fb.label_field)})"
    return [
        f"CREATE TEMPORARY VIEW fb_imp_all AS SELECT eid, ts_ms, ets, {valid} AS ok, {late} AS late, "
        f"{strip_label_sql('CAST(msg AS STRING)', label)} AS body FROM {impressions}",
        "CREATE TEMPORARY VIEW fb_imp AS SELECT eid, ts_ms, ets, body FROM fb_imp_all WHERE ok",
        f"CREATE TEMPORARY VIEW fb_fb_all AS SELECT eid, ts_ms, ets, {valid} AS ok, {late} AS late, "
        f"{positive_sql(value, fb)} AS positive, CURRENT_WATERMARK(ets) AS wm FROM {feedback}",
        "CREATE TEMPORARY VIEW fb_pos AS SELECT eid, ts_ms, ets, wm FROM fb_fb_all WHERE ok AND positive",
        f"CREATE TEMPORARY VIEW fb_train AS SELECT i.eid, i.ts_ms, i.body, f.ts_ms AS click_ts, "
        f"f.wm >= i.ets + {interval_sql(w)} AS late FROM fb_imp i LEFT JOIN fb_pos f ON i.eid = f.eid "
        f"AND f.ets BETWEEN i.ets AND i.ets + {interval_sql(keep)} AND f.ts_ms <= i.ts_ms + {w}",
        "CREATE TEMPORARY VIEW fb_settle AS SELECT i.eid, i.ts_ms, f.eid IS NOT NULL AS positive "
        f"FROM fb_imp i LEFT JOIN fb_pos f ON i.eid = f.eid AND f.ets BETWEEN i.ets AND i.ets + {interval_sql(w)}",
        "CREATE TEMPORARY VIEW fb_clicks AS SELECT f.eid, f.ts_ms, i.ts_ms AS imp_ts FROM fb_pos f "
        f"LEFT JOIN fb_imp i ON f.eid = i.eid AND i.ets BETWEEN f.ets - {interval_sql(keep)} AND f.ets",
    ]


def join_query(fb: FeedbackConfig, label: str) -> str:
    """The query of ``Row(chan INT, payload STRING)`` over the views of :func:`views`."""
    w = fb.window_ms

    def event(kind: str, eid: str = "-1", ts: str = "0", lab: str = "0") -> str:
        return (f"{EVENTS} AS chan, CONCAT_WS(',', {_str(kind)}, CAST({eid} AS STRING), CAST({ts} AS STRING), "
                f"CAST({lab} AS STRING)) AS payload")

    def message(body: str) -> str:
        return f"{MESSAGES} AS chan, {body} AS payload"

    parts = [
        f"SELECT {message('body')} FROM fb_imp",  # served at once, without a label
        f"SELECT {message(with_label_sql('body', label, 1))} FROM fb_train WHERE click_ts IS NOT NULL",
        f"SELECT {event('late_positive', 'eid', 'ts_ms')} FROM fb_train WHERE click_ts IS NOT NULL AND late",
        f"SELECT {event('settle', 'eid', 'ts_ms', 'CASE WHEN positive THEN 1 ELSE 0 END')} FROM fb_settle",
        f"SELECT {event('bad_message')} FROM fb_imp_all WHERE NOT ok",
        f"SELECT {event('bad_message')} FROM fb_fb_all WHERE NOT ok",
        f"SELECT {event('no_label', 'eid', 'ts_ms')} FROM fb_fb_all WHERE ok AND positive IS NULL",
        f"SELECT {event('late_events', 'eid', 'ts_ms')} FROM fb_imp_all WHERE ok AND late",
        f"SELECT {event('late_events', 'eid', 'ts_ms')} FROM fb_fb_all WHERE ok AND late",
    ]
    if fb.count_clicks:  # the third join: only for these two counters
        parts += [f"SELECT {event('orphan', 'eid', 'ts_ms')} FROM fb_clicks WHERE imp_ts IS NULL",
                  f"SELECT {event('out_of_window', 'eid', 'ts_ms')} FROM fb_clicks WHERE ts_ms > imp_ts + {w}"]
    if fb.strategy == "fake_negative":  # trained as a negative at once
        parts.append(f"SELECT {message(with_label_sql('body', label, 0))} FROM fb_imp")
    else:  # trained as a negative when its window (and grace) closed without a positive
        parts.append(f"SELECT {message(with_label_sql('body', label, 0))} FROM fb_train WHERE click_ts IS NULL")
    return "\nUNION ALL ".join(parts)


def parse_event(payload: str) -> tuple[str, int, int, int]:
    """``kind,id,ts,label`` → ``(kind, id, ts, label)``.

    >>> parse_event("settle,7,1700000000000,1")
    ('settle', 7, 1700000000000, 1)
    """
    kind, eid, ts, label = payload.split(",")
    return kind, int(eid), int(ts), int(label)
