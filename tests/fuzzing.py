"""Shared Hypothesis strategies and the no-loss invariant for the parse/decode fuzz tests.

Events have every configured type: an int event id, a 0/1 label, two int-id categoricals, a
string-id categorical and a numeric. Some are corrupted at random; each corruption says whether the
result must be a dead letter (``must_fail``) or may still be a valid event (e.g. a CR inside a
string id). The invariant (:func:`check`): nothing raises; every input record (line or message) is
one outcome, emitted or one dead letter with a known reason, at its own position; every untouched
event is emitted with the features the featurizer gives it from clean typed input.

Profiles: ``default`` (CI, a few hundred examples in all) and ``fuzz`` (thousands), chosen by
``HYPOTHESIS_PROFILE`` (``make fuzz``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from flinkdl.config.schema import FeatureConfig
from flinkdl.features.deadletter import REASONS, DeadLetter
from flinkdl.features.transform import Featurizer

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

COLUMNS = ["eid", "label", "user", "movie", "genres", "n", "ts"]
FEATURES = FeatureConfig(
    event_id="eid",
    categorical=[{"name": "user", "type": "int"}, {"name": "movie", "type": "int"}, "genres"],
    numeric=["n"],
    max_field_bytes=1000,
)
FEATURIZER = Featurizer(FEATURES)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00\ufffd"), max_size=12)


@dataclass
class Event:
    eid: int
    label: int
    user: int
    movie: int
    genres: str
    n: float
    ts: int

    def strings(self) -> dict[str, str]:
        return {"eid": str(self.eid), "label": str(self.label), "user": str(self.user), "movie": str(self.movie),
                "genres": self.genres, "n": repr(self.n), "ts": str(self.ts)}


@st.composite
def events(draw: st.DrawFn, max_size: int = 30) -> list[Event]:
    """Valid events with distinct event ids."""
    eids = draw(st.lists(st.integers(0, 2**62), min_size=1, max_size=max_size, unique=True))
    finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
    return [Event(e, draw(st.sampled_from([0, 1])), draw(INT64), draw(INT64), draw(TEXT), draw(finite),
                  draw(st.integers(0, 2**40))) for e in eids]


def expected_features(evs: list[Event]) -> dict[int, tuple]:
    """eid → the feature row the featurizer makes from the events' clean string columns."""
    raw = pa.record_batch({c: pa.array([e.strings()[c] for e in evs], pa.string()) for c in COLUMNS})
    batch, dead = FEATURIZER.transform(raw)
    assert dead == [], dead
    feats = zip(*(batch.column(i).to_pylist() for i in range(1, batch.num_columns)), strict=True)
    return dict(zip(batch.column(0).to_pylist(), feats, strict=True))


# ---------------------------------------------------------------- csv


def csv_field(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(ch in v for ch in ',"\r') or v.startswith(" ") else v


def csv_line(e: Event) -> str:
    return ",".join(csv_field(e.strings()[c]) for c in COLUMNS)


#: corruption → must the record become a dead letter?
CSV_CORRUPTIONS = {
    "truncate": True, "extra_field": True, "missing_separator": True, "stray_quote": True, "unclosed_quote": True,
    "newline": False, "cr": False, "nul_in_id": True, "nul_in_string": False, "invalid_utf8": True,
    "huge_field": True, "overflow_id": True, "overflow_float": True, "nan": True, "label_out_of_range": True,
    "label_missing": False, "duplicate": False,  # label_missing: an unlabelled event, scored
}


def corrupt_csv(line: str, e: Event, kind: str, at: int) -> bytes:
    """``line`` (the csv of ``e``) corrupted by ``kind``; ``at`` picks a place."""
    fields = [csv_field(e.strings()[c]) for c in COLUMNS]
    if kind == "truncate":
        return ",".join(fields[: at % len(fields)]).encode()
    if kind == "extra_field":
        return (line + ",x").encode()
    if kind == "missing_separator":
        i = at % (len(fields) - 1)
        return ",".join([*fields[:i], fields[i] + fields[i + 1], *fields[i + 2:]]).encode()
    if kind == "stray_quote":
        i = at % len(fields)
        return ",".join([*fields[:i], '"' + e.strings()[COLUMNS[i]].replace('"', ""), *fields[i + 1:]]).encode()
    if kind == "unclosed_quote":
        return (line[: at % (len(line) + 1)] + ',"unterminated,5').encode()
    if kind in ("newline", "cr"):
        i = at % (len(line) + 1)
        return (line[:i] + ("\n" if kind == "newline" else "\r") + line[i:]).encode()
    if kind == "nul_in_id":
        return ",".join([fields[0], fields[1], fields[2] + "\x00", *fields[3:]]).encode()
    if kind == "nul_in_string":
        return ",".join([*fields[:4], csv_field(e.genres + "\x00"), *fields[5:]]).encode()
    if kind == "invalid_utf8":
        b = line.encode()
        i = at % (len(b) + 1)
        return b[:i] + b"\xff\xfe" + b[i:]
    if kind == "huge_field":
        return ",".join([*fields[:4], "g" * 5000, *fields[5:]]).encode()
    if kind == "overflow_id":
        return ",".join([fields[0], fields[1], str(2**64 + at), *fields[3:]]).encode()
    if kind == "overflow_float":
        return ",".join([*fields[:5], "1e309", fields[6]]).encode()
    if kind == "nan":
        return ",".join([*fields[:5], "NaN", fields[6]]).encode()
    if kind == "label_out_of_range":
        return ",".join([fields[0], "2", *fields[2:]]).encode()
    if kind == "label_missing":
        return ",".join([fields[0], "", *fields[2:]]).encode()
    if kind == "duplicate":
        return line.encode()
    raise ValueError(kind)


# ---------------------------------------------------------------- json

JSON_CORRUPTIONS = {
    "truncate": True, "not_object": True, "nested": True, "string_id": True, "overflow_id": True,
    "overflow_float": True, "nan": True, "missing_id": True, "invalid_utf8": True, "newline": False,
    "duplicate_key": False, "bool_label": False, "string_number": False, "extra_key": False, "huge_field": True,
}


def json_obj(e: Event) -> dict:
    return {"eid": e.eid, "label": e.label, "user": e.user, "movie": e.movie, "genres": e.genres, "n": e.n,
            "ts": e.ts}


def corrupt_json(e: Event, kind: str, at: int) -> bytes:
    obj = json_obj(e)
    line = json.dumps(obj)
    if kind == "truncate":
        return line[: at % len(line)].encode()
    if kind == "not_object":
        return json.dumps([obj]).encode()
    if kind == "nested":
        return json.dumps({**obj, "movie": {"id": e.movie}}).encode()
    if kind == "string_id":
        return json.dumps({**obj, "user": "seven"}).encode()
    if kind == "overflow_id":
        return json.dumps({**obj, "user": 2**64 + at}).encode()
    if kind == "overflow_float":
        return line.replace(json.dumps(e.n), "1e309").encode() if '"n": ' in line else line.encode()
    if kind == "nan":
        return json.dumps({**obj, "n": float("nan")}).encode()
    if kind == "missing_id":
        return json.dumps({k: v for k, v in obj.items() if k != "eid"}).encode()
    if kind == "invalid_utf8":
        return line.encode()[:-1] + b'\xff}'
    if kind == "newline":
        return (line[:1] + "\n" + line[1:]).encode()
    if kind == "duplicate_key":
        return (line[:-1] + f', "eid": {e.eid}}}').encode()
    if kind == "bool_label":
        return json.dumps({**obj, "label": bool(e.label)}).encode()
    if kind == "string_number":
        return json.dumps({**obj, "n": repr(e.n)}).encode()
    if kind == "extra_key":
        return json.dumps({**obj, "new": at}).encode()
    if kind == "huge_field":
        return json.dumps({**obj, "genres": "g" * 5000}).encode()
    raise ValueError(kind)


# ---------------------------------------------------------------- the invariant


def check(records: int, emitted: pa.Table, dead: list, intact: dict[int, int], must_fail: set[int],
          want: dict[int, tuple]) -> None:
    """``records`` inputs (lines/messages, positions 0..records-1) → ``emitted`` + ``dead``.

    ``intact``: position → eid of each untouched event; ``must_fail``: positions that must be dead letters."""
    letters = [d for d in dead if isinstance(d, DeadLetter)]
    positions = [d.position for d in letters]
    assert all(d.reason in REASONS for d in letters), letters
    assert len(set(positions)) == len(positions), f"two dead letters for one record: {letters}"
    assert all(p is not None and 0 <= p < records for p in positions), letters
    assert emitted.num_rows + len(letters) == records, (emitted.num_rows, letters, records)
    assert not set(positions) & set(intact), [d for d in letters if d.position in intact]
    assert must_fail <= set(positions), (must_fail - set(positions), letters)
    rows: dict[int, list[tuple]] = {}
    cols = [emitted.column(i).to_pylist() for i in range(emitted.num_columns)]
    for eid, *feats in zip(*cols, strict=True):
        rows.setdefault(eid, []).append(tuple(feats))
    for eid in intact.values():
        assert want[eid] in rows.get(eid, []), (eid, want[eid], rows.get(eid))
