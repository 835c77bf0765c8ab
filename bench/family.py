"""The quality bench's streams beyond the built-in one: generator family members and MovieLens with side fields.

- ``family-N``: the member ``source.generator.preset: family-N`` (flinkdl/config/generator_family.py)
  with its drift point and drift width scaled to the bench's event count (a short run still sees its
  drift); its multi-valued fields are bags of ids (``multi: {sep: "|"}``, mean-pooled, as the README
  declares one; ``bags=False``: each hashed as one opaque string), and Vowpal Wabbit reads each bag as
  several features (its native form).
- ``movielens-side``: MovieLens-100k sorted by time with the ``.user`` (age, gender, occupation, zip
  code) and ``.item`` (release year, genres) fields joined on, as a user would; genres hashed as one
  string (VW: one feature per genre). Missing side values are ``unknown``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from streams import DATA, movielens_raw

from flinkdl.config.generator_family import PRESETS, FamilyConfig
from flinkdl.config.loader import apply_overrides
from flinkdl.config.multi_valued import MultiValued
from flinkdl.config.schema import CategoricalField, JobConfig

USER_FIELDS = ["age:token", "gender:token", "occupation:token", "zip_code:token"]
ITEM_FIELDS = ["release_year:token", "class:token_seq"]


def with_sets(cfg: JobConfig, sets: list[str]) -> JobConfig:
    """``cfg`` with ``--set``-style overrides applied."""
    return JobConfig.model_validate(apply_overrides(cfg.model_dump(mode="json"), sets))


def family_sets(member: str, events: int) -> list[str]:
    """Generator settings of family member ``member`` for a run of ``events`` events."""
    p = PRESETS[member]
    fam = FamilyConfig.model_validate(p.get("family", {}))
    scale = events / 1_000_000
    fam = fam.model_copy(update={"drift_width": max(1, int(fam.drift_width * scale))})
    return [f"source.generator.seed={p.get('seed', 7)}", f"source.generator.events={events}",
            f"source.generator.drift_at={int(p.get('drift_at', 500_000) * scale)}",
            *(f"source.generator.family.{k}={v}" for k, v in fam.model_dump().items())]


def family_config(base: JobConfig, member: str, events: int, bags: bool = True) -> JobConfig:
    """The click-stream job config on ``member``, its multi-valued fields as bags (or opaque string ids)."""
    cfg = with_sets(base, family_sets(member, events))
    bag = MultiValued(sep="|") if bags else None
    multi = [CategoricalField(name=f"M{j + 1}", type="string", multi=bag)
             for j in range(cfg.source.generator.family.multi_valued)]
    cfg.features.categorical = [*cfg.features.categorical, *multi]
    return cfg


def movielens_side_raw() -> pa.Table:
    """MovieLens-100k in time order with the user and item side fields joined on (strings)."""
    inter = movielens_raw()
    inter = inter.append_column("_row", pa.array(range(inter.num_rows), pa.int64()))
    opts = pacsv.ParseOptions(delimiter="\t")

    def side(name: str, key: str, fields: list[str]) -> pa.Table:
        convert = pacsv.ConvertOptions(column_types={f: pa.string() for f in fields}, include_columns=[key, *fields])
        return pacsv.read_csv(DATA / "movielens-100k" / name, parse_options=opts, convert_options=convert)

    t = inter.join(side("ml-100k.user", "user_id:token", USER_FIELDS), "user_id:token", join_type="left outer")
    t = t.join(side("ml-100k.item", "item_id:token", ITEM_FIELDS), "item_id:token", join_type="left outer")
    t = t.sort_by("_row").drop_columns(["_row"])
    for f in USER_FIELDS + ITEM_FIELDS:
        col = pc.if_else(pc.equal(pc.utf8_length(pc.fill_null(t.column(f), "")), 0), "unknown", t.column(f))
        t = t.set_column(t.schema.get_field_index(f), f, col)
    return t


def movielens_side_config(base: JobConfig) -> JobConfig:
    """``jobs/movielens.yaml`` with the side fields as string ids."""
    cfg = base.model_copy(deep=True)
    cfg.features.categorical = [*cfg.features.categorical,
                                *(CategoricalField(name=f, type="string") for f in USER_FIELDS + ITEM_FIELDS)]
    return cfg
