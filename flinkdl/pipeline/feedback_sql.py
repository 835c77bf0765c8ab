"""The feedback job's label join as Flink SQL (docs/FEEDBACK.md): statements only, no Flink here.

:func:`input_queries` extracts each topic's fields once; the job materializes them
(:func:`~flinkdl.pipeline.feedback_job.join_table`) and the views of :func:`views` read them:

- ``train``: impressions LEFT JOIN positives, ``imp.ts <= click.ts <= imp.ts + W`` (kept until
  ``W + G``): a match is a positive example and settles the impression as 1 (0 if it came behind the
  watermark, ``late_positive``); an impression without one leaves with NULLs once the watermark
  passes ``ts + W + G``: settled 0 (and ``wait_window`` trains it as a negative then).
- ``clicks`` (with ``feedback.count_clicks``): positives LEFT JOIN impression ids within ``W + G``
  before the click: a click after its impression's window is ``out_of_window``, one without an
  impression ``orphan``.

:func:`join_query` is one query of ``Row(chan, payload)``: chan 0 = a JSON message for the
featurizer (an impression to serve without label, or an example with its label), chan 1 = an event
``kinds,id,ts,label`` for the settled evaluation (see :func:`parse_event`).
"""

from __future__ import annotations

from flinkdl.config.feedback import FeedbackConfig
from flinkdl.feedback.esdfm_rows import code_sql, needs_weights

MESSAGES, EVENTS = 0, 1
#: With ``feedback.event_time_batches``: the valid impressions (as ``fb_imp``) on their own watermark,
#: shifted back as the join's (:func:`~flinkdl.pipeline.feedback_job.join_table`).
NOW = "fb_now"


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


def input_queries(fb: FeedbackConfig, label: str, impressions: str, feedback: str) -> tuple[str, str]:
    """The two topics' rows, each message's fields extracted once: ``(impressions, feedback)`` queries.

    The join's views read these after a DataStream round trip (:func:`~flinkdl.pipeline.feedback_job.join_table`),
    which materializes the columns: the planner would otherwise inline ``JSON_VALUE`` and the label strip
    into every branch that reads them. Columns: ``eid, ts_ms, ets`` (the rowtime) and ``body`` (the
    impression without its label) or ``v`` (the feedback value).
    """
    value = f"JSON_VALUE(CAST(msg AS STRING), {_str('$.' + fb.label_field)})"
    return (f"SELECT eid, ts_ms, ets, {strip_label_sql('CAST(msg AS STRING)', label)} AS body FROM {impressions}",
            f"SELECT eid, ts_ms, ets, {value} AS v FROM {feedback}")


def known_sql(ts: str, late: str, wm: str) -> str:
    """SQL: the event time (ms) at which a row is known: its own ``ts``, or for a row behind the watermark
    ``wm`` (``late``) the next second after it (so a row is never behind the watermark of the path it took)."""
    seconds = f"TIMESTAMPDIFF(SECOND, TO_TIMESTAMP_LTZ(0, 3), {wm})"  # whole seconds since the epoch
    return f"CASE WHEN {late} THEN GREATEST({ts}, ({seconds} + 1) * 1000) ELSE {ts} END"


def cleanup_ms(fb: FeedbackConfig) -> int:
    """How long after its (known) time an unmatched impression leaves the train join at the latest:
    the interval join's cleanup timer (``keep + keep / 2 + 1`` for bounds ``[0, keep]``)."""
    keep = fb.window_ms + fb.grace_ms
    return keep + keep // 2 + 1


def views(fb: FeedbackConfig, impressions: str, feedback: str) -> list[str]:
    """``CREATE VIEW`` statements over the materialized rows of :func:`input_queries` (rowtime ``rt``, the
    sources' watermarks). ``tt``: the event time an example is known at (:func:`join_query`)."""
    w, keep = fb.window_ms, fb.window_ms + fb.grace_ms
    valid = "eid IS NOT NULL AND eid >= 0 AND ts_ms IS NOT NULL"
    late = "COALESCE(rt <= CURRENT_WATERMARK(rt), FALSE) AS late"  # the sources' watermarks, passed on
    known = known_sql("ts_ms", "late", "wm")
    # es_dfm: the impression's elapsed time at its observation (the e of its rows; docs/FEEDBACK.md)
    elapsed = "i.tt - i.ts_ms AS e, " if needs_weights(fb) else ""
    return [
        f"CREATE TEMPORARY VIEW fb_imp_all AS SELECT eid, ts_ms, rt, {valid} AS ok, {late}, "
        f"CURRENT_WATERMARK(rt) AS wm, body FROM {impressions}",
        f"CREATE TEMPORARY VIEW fb_imp_known AS SELECT eid, ts_ms, rt, ok, body, {known} AS tt FROM fb_imp_all",
        "CREATE TEMPORARY VIEW fb_imp AS SELECT eid, ts_ms, rt, body, tt FROM fb_imp_known WHERE ok",
        f"CREATE TEMPORARY VIEW fb_fb_all AS SELECT eid, ts_ms, rt, {valid} AS ok, {late}, "
        f"{positive_sql('v', fb)} AS positive, CURRENT_WATERMARK(rt) AS wm FROM {feedback}",
        f"CREATE TEMPORARY VIEW fb_pos AS SELECT eid, ts_ms, rt, wm, {known} AS tt FROM fb_fb_all "
        "WHERE ok AND positive",
        # the one join that trains and settles: a match is a positive within W (kept W + G for late ones);
        # read as fb_train once materialized (the planner would plan one join per branch that reads it).
        # tt: a positive is known at its click, a negative when the join lets it go (its cleanup timer)
        f"CREATE TEMPORARY VIEW fb_train_join AS SELECT i.eid, i.ts_ms, i.body, f.ts_ms AS click_ts, {elapsed}"
        f"COALESCE(f.wm >= i.rt + {interval_sql(w)}, FALSE) AS late, "
        f"CASE WHEN f.eid IS NULL THEN i.tt + {cleanup_ms(fb)} ELSE GREATEST(f.tt, i.tt) END AS tt "
        f"FROM fb_imp i LEFT JOIN fb_pos f "
        f"ON i.eid = f.eid AND f.rt BETWEEN i.rt AND i.rt + {interval_sql(keep)} AND f.ts_ms <= i.ts_ms + {w}",
        "CREATE TEMPORARY VIEW fb_clicks AS SELECT f.eid, f.ts_ms, i.ts_ms AS imp_ts FROM fb_pos f "
        f"LEFT JOIN fb_imp i ON f.eid = i.eid AND i.rt BETWEEN f.rt - {interval_sql(keep)} AND f.rt",
    ]


def train_columns(fb: FeedbackConfig) -> list[tuple[str, str]]:
    """``fb_train_join``'s columns in order, ``(name, SQL type)``: the schema the job reads them back with
    (:func:`~flinkdl.pipeline.feedback_job.join_table`); ``e`` under ``es_dfm`` only."""
    elapsed = [("e", "BIGINT")] if needs_weights(fb) else []
    return [("eid", "BIGINT"), ("ts_ms", "BIGINT"), ("body", "STRING"), ("click_ts", "BIGINT"), *elapsed,
            ("late", "BOOLEAN"), ("tt", "BIGINT")]


def sort_key_sql(tt: str, eid: str, rank: int) -> str:
    """SQL: a fixed-width string that orders messages by (known time, id, rank) (:data:`KEY_CHARS`)."""
    return (f"CONCAT(LPAD(CAST(COALESCE({tt}, 0) AS STRING), 16, '0'), "
            f"LPAD(CAST(COALESCE({eid}, 0) AS STRING), 20, '0'), '{rank}')")


#: The characters of :func:`sort_key_sql`'s key.
KEY_CHARS = 37


def join_query(fb: FeedbackConfig, label: str) -> str:
    """The query of ``Row(chan INT, payload STRING, tt BIGINT, k STRING)`` over the views of :func:`views`.

    ``tt`` is the event time (ms) at which a message is known: an impression (served, and under
    ``fake_negative`` its negative) at its time, a positive at its click, a negative at its cleanup
    (:func:`cleanup_ms`); ``k`` orders messages by ``(tt, id, served < negative < positive)``. Events
    (chan 1) have ``tt`` 0. Under ``es_dfm`` (``fake_negative``'s rows, ``e`` = 0) every message's ``k``
    ends with its code (:func:`~flinkdl.feedback.esdfm_rows.code_sql`: the impression's elapsed time),
    and an impression whose window closed without a click comes again as a *real negative* (marked).
    """
    w = fb.window_ms
    now = NOW if fb.event_time_batches else "fb_imp"  # where the messages at the impression's time come from

    def event(kind: str, eid: str, ts: str, lab: str = "0") -> str:
        return (f"{EVENTS} AS chan, CONCAT_WS(',', {kind}, CAST(COALESCE({eid}, -1) AS STRING), "
                f"CAST(COALESCE({ts}, 0) AS STRING), CAST({lab} AS STRING)) AS payload, "
                "CAST(0 AS BIGINT) AS tt, '' AS k")

    def message(body: str, rank: int, code: str | None = None) -> str:  # code: es_dfm's, after the key
        key = sort_key_sql("tt", "eid", rank) if code is None else f"CONCAT({sort_key_sql('tt', 'eid', rank)}, {code})"
        return f"{MESSAGES} AS chan, {body} AS payload, tt, {key} AS k"

    def counters(*rules: tuple[str, str]) -> str:  # the names of the rules that hold, '+'-joined
        return "CONCAT_WS('+', " + ", ".join(f"CASE WHEN {c} THEN {_str(k)} END" for k, c in rules) + ")"

    matched = "click_ts IS NOT NULL"
    # the settled label: 1 at a match in time, 0 for a late one (counted) or none by W + G
    settle = (f"CASE WHEN {matched} AND late THEN 'settle+late_positive' ELSE 'settle' END",
              "eid", "ts_ms", f"CASE WHEN {matched} AND NOT late THEN 1 ELSE 0 END")
    bad, late = ("bad_message", "NOT ok"), ("late_events", "ok AND late")
    no_label = ("no_label", "ok AND positive IS NULL")
    es_dfm = needs_weights(fb)
    served = code_sql("0", False) if es_dfm else None
    parts = [
        f"SELECT {message('body', 0, served)} FROM {now}",  # served at once, without a label
        f"SELECT {event(*settle)} FROM fb_train",
        f"SELECT {event(counters(bad, late), 'eid', 'ts_ms')} FROM fb_imp_all WHERE NOT ok OR late",
        f"SELECT {event(counters(bad, no_label, late), 'eid', 'ts_ms')} FROM fb_fb_all "
        "WHERE NOT ok OR late OR positive IS NULL",
    ]
    if fb.count_clicks:  # the second join: only for these two counters
        outside = ("out_of_window", f"ts_ms > imp_ts + {w}")
        parts.append(f"SELECT {event(counters(('orphan', 'imp_ts IS NULL'), outside), 'eid', 'ts_ms')} "
                     f"FROM fb_clicks WHERE imp_ts IS NULL OR ts_ms > imp_ts + {w}")
    positive, negative = with_label_sql("body", label, 1), with_label_sql("body", label, 0)
    if fb.strategy == "fake_negative":  # trained as a negative at once, again as a positive at the match
        parts += [f"SELECT {message(negative, 1)} FROM {now}",
                  f"SELECT {message(positive, 2)} FROM fb_train WHERE {matched}"]
    elif es_dfm:  # as fake_negative (e = 0), each row with its elapsed time; the real negatives marked
        parts += [f"SELECT {message(negative, 1, code_sql('tt - ts_ms', False))} FROM {now}",
                  f"SELECT {message(positive, 2, code_sql('e', False))} FROM fb_train WHERE {matched}",
                  f"SELECT {message(negative, 1, code_sql('e', True))} FROM fb_train WHERE NOT ({matched})"]
    else:  # trained once: positive at the match, negative when its window and grace closed without one
        example = f"CASE WHEN {matched} THEN {positive} ELSE {negative} END"
        parts.append(f"SELECT {message(example, 1)} FROM fb_train")
    return "\nUNION ALL ".join(parts)


def parse_event(payload: str) -> tuple[str, int, int, int]:
    """``kinds,id,ts,label`` → ``(kinds, id, ts, label)``; ``kinds`` is ``+``-joined names (``settle``:
    the impression's settled label; the others: counters).

    >>> parse_event("settle+late_positive,7,1700000000000,0")
    ('settle+late_positive', 7, 1700000000000, 0)
    """
    kind, eid, ts, label = payload.split(",")
    return kind, int(eid), int(ts), int(label)
