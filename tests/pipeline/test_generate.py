"""The generator's envelopes: IDs hashed by rank equal those hashed from the columns."""

from __future__ import annotations

import pytest

from flinkdl.config.loader import load_config
from flinkdl.pipeline.featurize import FeatureMaker
from flinkdl.pipeline.generate import BatchGenerator


@pytest.mark.parametrize("sets", [[], ["source.generator.family.vocab_scale=0.01", "source.generator.drift_at=700",
                                       "source.generator.family.drift=gradual", "features.crosses=[[C1, C2]]"]])
def test_ids_hashed_by_rank_are_the_featurizers_hashes(tmp_path, sets: list[str]) -> None:
    cfg = load_config("jobs/click_stream.yaml", [f"job.run_dir={tmp_path}", "source.generator.batch_size=512",
                                                 "source.generator.events=1800", *sets])
    gen = BatchGenerator(cfg.source.generator, FeatureMaker.from_config(cfg))
    assert gen.ranks is not None and len(gen.ranks.tables) == 26
    for index in range(4):  # the last batch is cut short
        got = gen.make(index)
        raw = gen.stream.batch(index, 512).slice(0, min(512, 1800 - 512 * index))
        want = gen.maker.envelope(index, raw, raw.num_rows, [], 512 * index)
        assert got == want
