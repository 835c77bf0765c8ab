"""Multi-valued ID fields: separator strings, JSON arrays and Arrow lists → padded id columns, dead letters."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from flinkdl.config.schema import FeatureConfig
from flinkdl.exchange.schema import PAD, FeatureLayout
from flinkdl.features.hashing import bucketize, field_seed, hash_strings
from flinkdl.features.transform import Featurizer
from flinkdl.sources.messages import MessageDecoder

FEATURES = FeatureConfig(event_id=None, hash_bits=12, categorical=[
    {"name": "user", "type": "int"}, {"name": "genres", "multi": {"sep": "|", "max_len": 3, "pooling": "sum"}}])


def _ids(tokens: list[str]) -> list[int]:
    return bucketize(hash_strings(pa.array(tokens), field_seed(0, "genres")), 12).tolist()


def test_a_separated_field_becomes_padded_id_columns_and_bad_lists_are_dead_letters() -> None:
    layout = FeatureLayout.from_config(FEATURES)
    assert layout.n_ids == 1 + 3 and layout.n_fields == 2 and layout.bags[0].pooling == "sum"
    raw = pa.record_batch({"label": ["1", "0", "1", "0", "1"], "user": ["1", "2", "3", "4", "5"],
                           "genres": ["Drama|Comedy", "", "A|B|C|D", "Drama||War", "Drama"]})
    batch, dead = Featurizer(FEATURES).transform(raw)
    assert batch.schema == layout.schema()
    rows = np.stack([batch.column(f"id_{k}").to_numpy() for k in range(1, 4)], axis=1).tolist()
    missing = _ids([""])[0]  # an empty value: the field's missing id
    assert rows == [[*_ids(["Drama", "Comedy"]), PAD], [missing, PAD, PAD], _ids(["A", "B", "C"]), [*_ids(["Drama"]),
                                                                                                     PAD, PAD]]
    assert [(d.reason, d.field, d.position) for d in dead] == [("bad_list", "genres", 3)]
    assert "empty item" in dead[0].value and dead[0].raw == "0,4,Drama||War"


def test_json_arrays_and_arrow_lists_are_read_as_bags() -> None:
    cols = ["label", "user", "genres"]
    d = MessageDecoder("json", cols, set(cols), FEATURES)
    msgs = [{"label": 1, "user": 1, "genres": ["Drama", "Comedy"]}, {"label": 0, "user": 2, "genres": "Drama|War"},
            {"label": 0, "user": 3, "genres": [["nested"]]}, {"label": 0, "user": 4, "genres": {"a": 1}}]
    raw, letters = d.rows([json.dumps(m).encode() for m in msgs], 0)
    assert [(x.reason, x.field, x.position) for x in letters] == [("wrong_type", "genres", 2),
                                                                  ("wrong_type", "genres", 3)]
    batch, dead = Featurizer(FEATURES).transform(raw)
    assert not dead and batch.column("id_1").to_pylist() == _ids(["Drama", "Drama"])
    assert batch.column("id_2").to_pylist() == _ids(["Comedy", "War"])
    # one Arrow message with a list<string> column; a null item is a bad list
    genres = pa.array([["Drama"], ["A", None]], pa.list_(pa.string()))
    table = pa.table({"label": [1, 0], "user": [1, 2], "genres": genres})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    raw, letters = MessageDecoder("arrow", cols, set(cols), FEATURES).arrow(sink.getvalue().to_pybytes(), 10)
    assert letters == []
    batch, dead = Featurizer(FEATURES).transform(raw)
    assert batch.column("id_1").to_pylist() == _ids(["Drama"])
    assert [(x.reason, x.field, x.value, x.position) for x in dead] == [("bad_list", "genres", "null item", 11)]


def test_a_multi_valued_field_cannot_be_crossed() -> None:
    with pytest.raises(ValueError, match="multi-valued"):
        FeatureConfig(categorical=["a", {"name": "b", "multi": {}}], crosses=[["a", "b"]])
