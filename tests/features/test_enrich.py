"""Side tables: lookup by key, defaults for missing keys, refresh on a new file version, bad versions kept out."""

from __future__ import annotations

import json
import os
import time

import pyarrow as pa
import pytest

from flinkdl.config.enrich import SideTable, source_features
from flinkdl.config.schema import FeatureConfig, JobConfig
from flinkdl.features.enrich import Enricher


def _write(path, text: str, mtime_ns: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # atomically, as the docs ask
    tmp.write_text(text)
    tmp.replace(path)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    time.sleep(0.01)  # past refresh_s (1 ms): the next batch looks at the file again


def test_lookup_default_and_refresh(tmp_path) -> None:
    p = tmp_path / "items.csv"
    _write(p, "item,genres,year\n10,Drama|War,1990\n11,Comedy,\n", 1_000_000_000)
    t = SideTable(path=p, key="item", on="item_id", format="csv", columns=["genres", "year"],
                  default={"genres": "none"}, refresh_s=0.001)
    e = Enricher([t])
    raw = pa.record_batch({"item_id": pa.array([11, 12, 10, None], pa.int64()), "label": [1, 0, 1, 0]})
    out = e.enrich(raw)
    assert out.column("genres").to_pylist() == ["Comedy", "none", "Drama|War", "none"]
    assert out.column("year").to_pylist() == ["", None, "1990", None]  # an empty cell is a value: ""
    _write(p, "item,genres,year\n12,Horror,2001\n", 2_000_000_000)  # a new version: picked up
    assert e.enrich(raw).column("genres").to_pylist() == ["none", "Horror", "none", "none"]
    _write(p, "itm,genres\n1,x\n", 3_000_000_000)  # a broken version: the last good one stays
    assert e.enrich(raw).column("genres").to_pylist() == ["none", "Horror", "none", "none"]
    p.unlink()  # so does a vanished file
    time.sleep(0.01)
    assert e.enrich(raw.slice(1, 1)).column("year").to_pylist() == ["2001"]


def test_a_table_that_cannot_be_read_at_start_fails_naming_it(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"cannot read side table .*nope\.tsv"):
        Enricher([SideTable(path=tmp_path / "nope.tsv", key="k", columns=["a"])])


def test_config_side_columns_come_from_the_tables_not_the_source(tmp_path) -> None:
    tables = [SideTable(path=tmp_path / "u.tsv", key="user", columns=["age", "tags"])]
    f = FeatureConfig(event_id=None, categorical=["user", "age", {"name": "tags", "multi": {}}], numeric=["n"])
    assert [c.name for c in source_features(f, tables).categorical] == ["user"]
    src = {"kind": "directory", "directory": {"path": "in", "columns": ["label", "user", "age"]}}
    with pytest.raises(ValueError, match=r"enrich: columns \['age'\] are already source columns"):
        JobConfig.model_validate({"source": src, "features": f.model_dump(), "enrich": [tables[0].model_dump()]})
    with pytest.raises(ValueError, match="default"):
        SideTable(path="x", key="k", columns=["a"], default={"b": "1"})
    with pytest.raises(ValueError, match="exactly one of path"):
        SideTable(key="k", columns=["a"])


def test_a_compacted_topic_is_a_side_table_kept_fresh(kafka_broker) -> None:
    from confluent_kafka import Producer

    from flinkdl.devtools import broker
    from flinkdl.features.enrich import load_table

    b = kafka_broker.bootstrap
    broker.create_topics(b, ["users-side"])
    p = Producer({"bootstrap.servers": b})
    for key, value in [("1", {"user": 1, "gender": "M", "age": 24}), ("2", {"user": 2, "gender": "F"}),
                       ("1", {"user": 1, "gender": "F", "age": 25}), ("x", "not json")]:
        p.produce("users-side", key=key, value=json.dumps(value) if isinstance(value, dict) else value)
    p.flush(10)
    t = load_table(SideTable(kafka={"bootstrap_servers": b, "topic": "users-side"}, key="user", on="uid",
                             columns=["gender", "age"], default={"gender": "?"}, refresh_s=0.001))
    keys = pa.array([1, 2, 3])
    assert t.lookup(keys)["gender"].to_pylist() == ["F", "F", "?"]  # the latest per key
    assert t.lookup(keys)["age"].to_pylist() == ["25", None, None] and t.skipped == 1
    p.produce("users-side", key="2", value=None)  # a tombstone: user 2 goes
    p.produce("users-side", key="3", value=json.dumps({"user": 3, "gender": "M"}))
    p.flush(10)
    deadline = time.monotonic() + 20
    while t.lookup(keys)["gender"].to_pylist() != ["F", "?", "M"] and time.monotonic() < deadline:
        time.sleep(0.2)
        t.maybe_reload(time.monotonic())
    assert t.lookup(keys)["gender"].to_pylist() == ["F", "?", "M"]


def test_a_csv_file_is_read_as_csv_without_format_and_a_wrong_format_says_how_it_was_read(tmp_path) -> None:
    p = tmp_path / "users.csv"
    p.write_text('user,age,city\n7,25-34,"Paris, FR"\n')
    raw = pa.record_batch({"user": pa.array(["7", "8"])})
    out = Enricher([SideTable(path=p, key="user", columns=["age", "city"])]).enrich(raw)  # by extension
    assert out.column("city").to_pylist() == ["Paris, FR", None]
    with pytest.raises(ValueError, match=r"no column .* read as tsv: set enrich format"):
        Enricher([SideTable(path=p, key="user", columns=["age"], format="tsv")])
    with pytest.raises(ValueError, match=r"no column \['UserID'\] .* on: the event's when they differ"):
        Enricher([SideTable(path=p, key="UserID", columns=["age"])])
