"""The generator family: presets, the default member unchanged, drift kinds, multi-valued fields."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from flinkdl.config.generator_family import PRESETS, FamilyConfig
from flinkdl.config.schema import GeneratorConfig
from flinkdl.sources.family import after_mask
from flinkdl.sources.generator import SCHEMA, ClickStream


def test_the_default_member_and_family_0_are_the_built_in_stream():
    plain = ClickStream(seed=7)
    for cfg in (GeneratorConfig(), GeneratorConfig(preset="family-0")):
        s = ClickStream.from_config(cfg)
        for i in (0, 122):  # 122 holds the drift point (event 500,000)
            assert s.batch(i, 4096, with_truth=True).equals(plain.batch(i, 4096, with_truth=True))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_member_is_a_pure_function_of_its_events(preset):
    cfg = GeneratorConfig(preset=preset)
    s = ClickStream.from_config(cfg)
    assert s.batch(0, 40).slice(30).equals(s.batch(3, 10))  # any batch size, same bytes
    assert ClickStream.from_config(cfg).batch(5, 64).equals(s.batch(5, 64))
    assert len(s.crosses) == cfg.family.crosses
    assert s.schema.names == SCHEMA.names + [f"M{j + 1}" for j in range(cfg.family.multi_valued)]
    oracle = s.oracle_auc(20_000)
    assert oracle is not None and 0.7 < oracle < 0.95


def test_a_preset_replaces_seed_drift_and_family_and_is_checked():
    cfg = GeneratorConfig.model_validate({"preset": "family-3", "seed": 1, "events": 5})
    assert (cfg.seed, cfg.drift_at, cfg.events, cfg.family.crosses) == (13, 300_000, 5, 6)
    with pytest.raises(ValueError, match="unknown 'family-99'"):
        GeneratorConfig(preset="family-99")


def test_multi_valued_fields_are_separator_joined_bags_and_move_the_label(tmp_path):
    fam = FamilyConfig(multi_valued=2, multi_max_len=4)
    s = ClickStream(seed=3, family=fam)
    b = s.batch(0, 5000, with_truth=True)
    for m, field in (("M1", 27), ("M2", 28)):
        bags = pc.split_pattern(b.column(m), "|").to_pylist()
        assert {len(x) for x in bags} == {1, 2, 3, 4}
        assert all(int(v) // 10_000_000 == field for x in bags[:200] for v in x)
    # without the multi-valued fields the same seed draws the same C ids; the labels now hang on the bags too
    base = ClickStream(seed=3).batch(0, 5000, with_truth=True)
    assert b.column("C1").equals(base.column("C1"))
    assert not np.allclose(b.column("p_true").to_numpy(), base.column("p_true").to_numpy())
    s.to_csv(tmp_path / "m.csv", 100)
    back = pacsv.read_csv(tmp_path / "m.csv")
    assert back.column("M2").to_pylist() == s.batch(0, 100).column("M2").to_pylist()


def test_drift_kinds():
    ev = np.arange(0, 1000)
    u = np.random.default_rng(0).random(1000)
    assert not after_mask(FamilyConfig(drift="none"), ev, 100, None).any()
    assert (after_mask(FamilyConfig(drift="abrupt"), ev, 100, None) == (ev >= 100)).all()
    rec = after_mask(FamilyConfig(drift="recurring", drift_width=200), ev, 100, None)
    assert rec[100:300].all() and not rec[300:500].any() and rec[500:700].all() and not rec[:100].any()
    grad = after_mask(FamilyConfig(drift="gradual", drift_width=800), ev, 100, u)
    assert not grad[:100].any() and grad[100:300].mean() < 0.35 < 0.65 < grad[700:].mean()
    # drift_strength scales the fraction of ids whose effect is re-drawn (C3: half of them by default)
    corr = {k: float(np.corrcoef(*ClickStream(seed=5, family=FamilyConfig(drift_strength=k))._w[2])[0, 1])
            for k in (0.5, 1.0, 2.0)}
    assert 0.7 < corr[0.5] < 0.8 and 0.45 < corr[1.0] < 0.55 and abs(corr[2.0]) < 0.02, corr


def test_vocabulary_scale_and_crosses():
    small = ClickStream(seed=2, family=FamilyConfig(vocab_scale=0.1, crosses=7))
    ids = small.batch(0, 20_000).column("C3").to_numpy()
    assert len(np.unique(ids)) <= 30_000 and len(small.crosses) == 7
    assert small.crosses[:3] == ClickStream(seed=2).crosses


def test_a_member_can_be_produced_to_kafka_as_is():
    from flinkdl.devtools.produce import generator_batches

    (b,) = generator_batches(6, 6, preset="family-3")
    raw = ClickStream.from_config(GeneratorConfig(preset="family-3")).batch(0, 6)
    assert b.column("M2").equals(raw.column("M2")) and b.column("C1").equals(raw.column("C1"))
    assert b.schema.field("I1").type == "int64"
