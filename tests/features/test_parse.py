"""CSV/TSV text → raw string batch + dead letters."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from flinkdl.config.schema import DirectoryConfig, FeatureConfig
from flinkdl.features.parse import POSITION_COLUMN, parse_bytes, parse_text

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CRITEO_COLUMNS = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]

FEATURES = FeatureConfig(event_id=None, categorical=["c"], numeric=["n"])


def csv(header: bool = False, fmt: str = "csv") -> DirectoryConfig:
    return DirectoryConfig(path="in", format=fmt, columns=["label", "c", "n"], header=header)


def test_all_columns_are_strings_and_positions_count_rows() -> None:
    batch, dead = parse_text("1,a,2.5\n0,007,\n1,,x", csv(), FEATURES, first_position=10)
    assert dead == []
    assert batch.schema.names == ["label", "c", "n", POSITION_COLUMN]
    assert all(t == pa.string() for t in batch.schema.types[:3])
    assert batch.to_pydict() == {
        "label": ["1", "0", "1"],
        "c": ["a", "007", ""],  # no inference: leading zeros kept, empty stays ""
        "n": ["2.5", "", "x"],
        POSITION_COLUMN: [10, 11, 12],
    }


def test_headers_anywhere_and_blank_lines_are_skipped() -> None:
    text = "label,c,n\n1,a,2\r\n\nlabel,c,n\r\n0,b,3\n\n"
    batch, dead = parse_text(text, csv(header=True), FEATURES)
    assert dead == []
    assert batch.column("c").to_pylist() == ["a", "b"]
    assert batch.column(POSITION_COLUMN).to_pylist() == [0, 1]
    # without cfg.header the header line is data
    batch, _ = parse_text("label,c,n\n1,a,2", csv(header=False), FEATURES)
    assert batch.column("label").to_pylist() == ["label", "1"]


def test_wrong_field_count_is_dead_lettered_and_others_survive() -> None:
    text = "1,a,2\n1,a\n0,b,3\n1,a,2,extra\n0,c,4"
    batch, dead = parse_text(text, csv(), FEATURES, first_position=100)
    assert batch.column("c").to_pylist() == ["a", "b", "c"]
    assert batch.column(POSITION_COLUMN).to_pylist() == [100, 102, 104]
    assert [(d.reason, d.raw, d.position, d.value) for d in dead] == [
        ("field_count", "1,a", 101, "2 fields, expected 3"),
        ("field_count", "1,a,2,extra", 103, "4 fields, expected 3"),
    ]


def test_undecodable_lines() -> None:
    data = "1,a,2\n0,é,3\n".encode() + b"1,\xff\xfe,4\n0,d,5"
    batch, dead = parse_bytes(data, csv(), FEATURES, first_position=5)
    assert batch.column("c").to_pylist() == ["a", "é", "d"]
    assert batch.column(POSITION_COLUMN).to_pylist() == [5, 6, 8]
    assert [(d.reason, d.raw, d.position) for d in dead] == [("undecodable", "1,\ufffd\ufffd,4", 7)]
    # replacement chars already in text (decoded upstream with errors="replace") + a bad field count
    batch, dead = parse_text("1,\ufffd,2\n1\n0,b,3", csv(), FEATURES)
    assert [(d.reason, d.position) for d in dead] == [("undecodable", 0), ("field_count", 1)]
    assert batch.column(POSITION_COLUMN).to_pylist() == [2]
    batch, dead = parse_text("1,\ud800,2\n0,b,3", csv(), FEATURES)  # lone surrogate in a str
    assert [(d.reason, d.position) for d in dead] == [("undecodable", 0)] and batch.num_rows == 1


def test_quoting_csv_on_tsv_off() -> None:
    batch, _ = parse_text('1,"x,y",2\n0,"q""q",3', csv(), FEATURES)
    assert batch.column("c").to_pylist() == ["x,y", 'q"q']
    batch, dead = parse_text('1\t"x\t2\n0\t"q"\t3', csv(fmt="tsv"), FEATURES)
    assert dead == [] and batch.column("c").to_pylist() == ['"x', '"q"']


def test_empty_inputs() -> None:
    for text in ("", "\n\n", "label,c,n\n"):
        batch, dead = parse_text(text, csv(header=True), FEATURES)
        assert batch.num_rows == 0 and dead == [] and batch.num_columns == 4


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"not in source\.directory\.columns"):
        parse_text("1,a,2", csv(), FeatureConfig(categorical=["c"]))  # event_id column missing
    with pytest.raises(ValueError, match="reserved"):
        cfg = DirectoryConfig(path="in", columns=["label", "c", "n", POSITION_COLUMN])
        parse_text("1,a,2,3", cfg, FEATURES)


def test_pad_short_rows() -> None:
    text = "1,a,2\n0,b\n1\n0,c,3,9"
    batch, dead = parse_text(text, csv(), FEATURES, pad_short_rows=True)
    assert batch.to_pydict() == {
        "label": ["1", "0", "1"],
        "c": ["a", "b", ""],
        "n": ["2", "", ""],
        POSITION_COLUMN: [0, 1, 2],
    }
    assert [(d.reason, d.position) for d in dead] == [("field_count", 3)]  # too many is still an error


def test_criteo_dac_sample() -> None:
    path = DATA / "criteo-tiny" / "dac_format_1k_train.txt"
    if not path.exists():
        pytest.skip(f"{path} not present")
    cfg = DirectoryConfig(path=path.parent, format="tsv", columns=CRITEO_COLUMNS)
    features = FeatureConfig(
        event_id=None, categorical=[f"C{i}" for i in range(1, 27)], numeric=[f"I{i}" for i in range(1, 14)]
    )
    data = path.read_bytes()
    batch, dead = parse_bytes(data, cfg, features, pad_short_rows=True)
    assert batch.num_rows == 1000 and dead == []
    assert batch.column(POSITION_COLUMN).to_pylist() == list(range(1000))
    assert batch.column("C1")[0].as_py() == "68fd1e64" and batch.column("C26")[2].as_py() == ""
    # the sample has trailing empty fields stripped on half its lines: strict parsing rejects them
    strict, dead = parse_bytes(data, cfg, features)
    assert strict.num_rows + len(dead) == 1000 and {d.reason for d in dead} == {"field_count"}


MOVIE_COLUMNS = ["eid", "label", "user", "movie", "genres", "ts"]
MOVIE_FEATURES = FeatureConfig(
    event_id="eid", categorical=[{"name": "user", "type": "int"}, {"name": "movie", "type": "int"}, "genres"]
)


@pytest.mark.parametrize("bad", ['500,1,1,1,"unterminated,5', '500,1,1,1,g,"5', '500,1,1,"x""y,5,6'])
def test_an_unclosed_quote_costs_its_line_only(bad: str) -> None:
    lines = [f"{i},1,{i},{i},g{i},{i}" for i in range(1001)]
    lines[500] = bad
    batch, dead = parse_text("\n".join(lines), DirectoryConfig(path="in", columns=MOVIE_COLUMNS), MOVIE_FEATURES)
    assert [(d.reason, d.value, d.raw, d.position) for d in dead] == [
        ("malformed", "quote not closed on its line", bad, 500)
    ]
    assert batch.column("eid").to_pylist() == [str(i) for i in range(1001) if i != 500]
    assert batch.column(POSITION_COLUMN).to_pylist() == [i for i in range(1001) if i != 500]


def test_quotes_that_close_keep_delimiters_and_cr_and_a_lone_cr_outside_is_malformed() -> None:
    text = '1,"a,""b""",3\r\n0,"x\ry",4\n1,ab"c,5\n1,a\rb,6\n0,"q"r,7'
    batch, dead = parse_text(text, csv(), FEATURES)
    assert batch.column("c").to_pylist() == ['a,"b"', "x\ry", 'ab"c', "qr"]
    assert batch.column(POSITION_COLUMN).to_pylist() == [0, 1, 2, 4]
    assert [(d.reason, d.value, d.position) for d in dead] == [("malformed", "carriage return outside quotes", 3)]
    tsv, dead = parse_text('1\t"a\t2\n0\tb\rc\t3', csv(fmt="tsv"), FEATURES)
    assert tsv.column("c").to_pylist() == ['"a']
    assert [(d.reason, d.position) for d in dead] == [("malformed", 1)]
