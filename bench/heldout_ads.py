"""A held-out ad-click log, written without the built-in generator, and the configs on it vs Vowpal Wabbit.

An Avazu-like log (one CSV line per impression, every field a string): ``id`` (a random 64-bit decimal, as
Avazu's), ``click``, ``hour`` (YYMMDDHH, advancing over ``--days``), ``banner_pos``, ``site_id`` /
``site_domain`` / ``site_category`` or ``app_id`` / ``app_domain`` / ``app_category`` (a row is site traffic or
app traffic, the other side a fixed placeholder), ``device_id`` (one value on most rows, else huge),
``device_ip`` (huge), ``device_model``, ``device_type``, ``device_conn_type``, ``C1``, ``C14``..``C21``
(``C15``..``C21`` derived from the creative ``C14``), hex tokens. The click probability: a base rate, a
per-id effect on most fields (Zipf popularity), and three 2-way interactions no first-order model can
learn: publisher × device_type, publisher category × hour of day, creative × banner_pos. Options: churn
(the tail of the ids is replaced over time: new sites, apps, creatives, devices) and a gradual drift of
the per-id effects. The members (``--member``):

- ``strong``: strong crosses, no churn, CTR about 17 %;
- ``churn``: weak crosses, churn and a mild drift, CTR about 12 %;
- ``lowctr``: medium crosses, churn, CTR about 3 %.

    python bench/heldout_ads.py --member strong --events 300000 --out ads.csv    # the log and its oracle AUC
    python bench/heldout_ads.py --member strong --events 300000 --config ads.yaml \
        --variant default= --variant fm=model.name=fm                           # in memory, vs VW

With ``--config`` each variant (``name=setting;setting``, ``--set`` syntax) of that job config learns the
log in memory (its featurizer and model, steps of ``source.max_batch_rows``, no Flink), and VW
``-b 20 --loss_function logistic`` learns the same rows in the same order. One JSON line each, then a final one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))

MEMBERS = {  # cross scale, churn (share of a field's tail renamed per day), drift (quarter turns), CTR
    "strong": {"cross": 1.0, "churn": 0.0, "drift": 0.0, "ctr": 0.17},
    "churn": {"cross": 0.4, "churn": 0.5, "drift": 0.5, "ctr": 0.12},
    "lowctr": {"cross": 0.7, "churn": 0.3, "drift": 0.0, "ctr": 0.03},
}
#: field: (vocabulary, Zipf exponent, effect s.d., ids below this rank never churn)
ZIPF = {"site_id": (4000, 1.15, 0.6, 40), "app_id": (3000, 1.2, 0.6, 30), "device_id": (400_000, 1.05, 0.5, 0),
        "device_ip": (2_000_000, 1.02, 0.3, 0), "device_model": (6000, 1.1, 0.25, 200), "C14": (2500, 1.0, 0.5, 25)}
#: small fields: (values, probabilities, effect s.d.)
SMALL = {"banner_pos": ([0, 1, 2, 3, 4, 5, 7], [.72, .265, .004, .001, .002, .003, .005], 0.25),
         "device_type": ([1, 0, 4, 5], [.92, .055, .02, .005], 0.35),
         "device_conn_type": ([0, 2, 3, 5], [.86, .08, .05, .01], 0.3),
         "C1": ([1005, 1002, 1010, 1012, 1007, 1001, 1008], [.92, .055, .015, .004, .003, .002, .001], 0.2)}
SIZES = [(320, 50), (300, 250), (728, 90), (216, 36), (480, 320), (1024, 768), (320, 480), (120, 20)]


def mix(*parts: np.ndarray | int) -> np.ndarray:
    """A 64-bit hash (splitmix64 finaliser) of the given integer arrays: ids → effects and tokens, no tables."""
    h = np.full(np.broadcast(*parts).shape, 0x9E3779B97F4A7C15, np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            h = (h ^ np.asarray(p).astype(np.uint64)) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(29)
    return h


def normal(*parts: np.ndarray | int) -> np.ndarray:
    """A standard normal per hashed key (Box-Muller on two hash halves)."""
    h = mix(*parts)
    u1 = ((h >> np.uint64(40)).astype(np.float64) + 0.5) / 2**24
    u2 = ((h & np.uint64(0xFFFFFF)).astype(np.float64) + 0.5) / 2**24
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def token(field: int, ids: np.ndarray) -> np.ndarray:
    """Eight hex digits per id, as Avazu's anonymised values (formatted once per distinct id)."""
    uniq, inv = np.unique(ids, return_inverse=True)
    hexes = np.array([f"{x:08x}" for x in (mix(field, uniq) >> np.uint64(32)).tolist()])
    return hexes[inv]


def zipf(rng: np.random.Generator, n: int, vocab: int, a: float) -> np.ndarray:
    """Ranks 0..vocab-1, P(r) ∝ (r+1)^-a."""
    cdf = np.cumsum(np.arange(1, vocab + 1, dtype=np.float64) ** -a)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n)), vocab - 1)


def generate(member: str, events: int, seed: int, days: int = 10) -> tuple[pa.Table, np.ndarray]:
    """The log (strings, in event order) and each row's true click probability."""
    m, rng = MEMBERS[member], np.random.default_rng(seed)
    day = np.arange(events) * days / events                        # time in days
    hour = np.floor(day * 24).astype(np.int64)
    fid = {f: k + 1 for k, f in enumerate([*ZIPF, *SMALL, "hod", "cat", "x1", "x2", "x3", "drift", "C17"])}
    ids, logit = {}, np.zeros(events)
    is_app = rng.random(events) < 0.35
    active = {"site_id": ~is_app, "app_id": is_app, "device_id": rng.random(events) >= 0.8}  # else a placeholder
    turn = m["drift"] * np.pi / 2 * day / days                      # effects rotate towards fresh ones
    for f, (vocab, a, sd, head) in ZIPF.items():
        r = zipf(rng, events, vocab, a)
        if m["churn"]:                                              # a tail id's name changes on its own day
            phase = (mix(fid[f], r) % np.uint64(1000)).astype(np.float64) / 1000
            gen = np.floor(day * m["churn"] + phase).astype(np.int64)
            r = np.where(r >= head, r + vocab * gen, r)
        ids[f] = r + seed * 10**9
        eff = normal(fid[f], ids[f]) * np.cos(turn) + normal(fid["drift"], fid[f], ids[f]) * np.sin(turn)
        logit += sd * eff * active.get(f, True)
    for f, (values, p, sd) in SMALL.items():
        ids[f] = rng.choice(np.array(values), events, p=np.array(p) / sum(p))
        logit += sd * normal(fid[f], seed, ids[f])
    ids["device_id"] = np.where(active["device_id"], ids["device_id"], -1)    # most rows: the one default id
    pub = np.where(is_app, ids["app_id"], ids["site_id"])
    cat = (mix(fid["cat"], pub) % np.uint64(24)).astype(np.int64) + 100 * is_app
    logit += 0.3 * normal(fid["cat"], cat)
    x = m["cross"]                                                  # the three interactions
    logit += x * 0.8 * normal(fid["x1"], pub, ids["device_type"])
    logit += x * 0.7 * normal(fid["x2"], cat, hour % 24)
    logit += x * 0.7 * normal(fid["x3"], ids["C14"], ids["banner_pos"])
    lo, hi = -10.0, 5.0                                             # the base rate that gives the member's CTR
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 / (1 + np.exp(-(logit + mid)))).mean() < m["ctr"] else (lo, mid)
    prob = 1 / (1 + np.exp(-(logit + lo)))
    click = (rng.random(events) < prob).astype(np.int64)
    c17 = ids["C14"] // 4                                           # the ad group of a creative
    size = (mix(fid["C14"], ids["C14"]) % np.uint64(len(SIZES))).astype(np.int64)
    start = dt.datetime(2014, 10, 21)
    hours = [(start + dt.timedelta(hours=h)).strftime("%y%m%d%H") for h in range(int(hour.max()) + 1)]
    site, app = token(2, ids["site_id"]), token(3, ids["app_id"])
    col = {
        "id": np.char.mod("%d", (mix(seed, np.arange(events)) >> np.uint64(1)).astype(np.int64)),
        "click": click.astype(str), "hour": np.array(hours)[hour], "C1": ids["C1"].astype(str),
        "banner_pos": ids["banner_pos"].astype(str),
        "site_id": np.where(is_app, "85f751fd", site),
        "site_domain": np.where(is_app, "c4e18dd6", token(4, ids["site_id"] // 3)),
        "site_category": np.where(is_app, "50e219e0", token(5, cat)),
        "app_id": np.where(is_app, app, "ecad2386"),
        "app_domain": np.where(is_app, token(6, ids["app_id"] // 5), "7801e8d9"),
        "app_category": np.where(is_app, token(7, cat), "07d7df22"),
        "device_id": np.where(ids["device_id"] == -1, "a99f214a", token(8, ids["device_id"])),
        "device_ip": token(9, ids["device_ip"]), "device_model": token(10, ids["device_model"]),
        "device_type": ids["device_type"].astype(str), "device_conn_type": ids["device_conn_type"].astype(str),
        "C14": (15000 + ids["C14"] % 10**6).astype(str), "C15": np.array([s[0] for s in SIZES])[size].astype(str),
        "C16": np.array([s[1] for s in SIZES])[size].astype(str), "C17": (1700 + c17 % 10**5).astype(str),
        "C18": (c17 % 4).astype(str), "C19": (35 + 8 * (c17 % 20)).astype(str),
        "C20": np.where(mix(fid["C17"], c17) % np.uint64(2) == 0, "-1", (100000 + c17 % 150).astype(str)),
        "C21": (mix(fid["C17"] + 1, c17) % np.uint64(60)).astype(str),
    }
    return pa.table({k: pa.array(v.tolist(), pa.string()) for k, v in col.items()}), prob


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--member", choices=sorted(MEMBERS), default="strong")
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="write the log here (CSV, a header, one line per event)")
    p.add_argument("--config", type=Path, help="a job config for the log: learn it in memory, and VW")
    p.add_argument("--variant", action="append", default=[], help="name=setting;setting (repeatable)")
    p.add_argument("--hour-of-day", action="store_true", help="add a column `hod` (the last two digits of `hour`), "
                   "as a user's preprocessing would: for variants that list it")
    args = p.parse_args()
    from quality import scored

    table, prob = generate(args.member, args.events, args.seed)
    if args.hour_of_day:
        table = table.append_column("hod", pc.utf8_slice_codeunits(table.column("hour"), 6))
    labels = np.array(table.column("click").to_pylist(), np.float32)
    head = {"member": args.member, "events": args.events, "seed": args.seed, "ctr": round(float(labels.mean()), 4),
            "oracle_auc": round(scored(labels, prob)["auc"], 4)}
    print(json.dumps(head), flush=True)
    if args.out:
        with open(args.out, "wb") as fh:  # an unquoted header, as a log exporter writes it
            fh.write((",".join(table.column_names) + "\n").encode())
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    if args.config:
        print(json.dumps({**head, "auc": compare(table, args.config, args.variant)}))


def compare(table: pa.Table, config: Path, variants: list[str]) -> dict[str, float]:
    """VW and each variant of ``config`` on the log, in memory; progressive AUC of each."""
    from defaults import parse_variant
    from family import with_sets
    from quality import run_vw, scored, train
    from streams import featurize, write_vw

    from flinkdl.config.loader import load_config

    base = load_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        _, labels = write_vw(base, table.to_batches(), Path(tmp) / "a.vw")
        out = {"VW": round(scored(labels, run_vw(Path(tmp) / "a.vw", Path(tmp))[0])["auc"], 4)}
    print(json.dumps({"variant": "VW", "auc": out["VW"]}), flush=True)
    # one featurization per distinct features section (a variant may change it)
    feats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, sets in map(parse_variant, variants or ["default="]):
        cfg = with_sets(base, sets)
        key = cfg.features.model_dump_json()
        ids, dense, y = feats[key] = feats.get(key) or featurize(cfg, table.to_batches())
        scores, secs, _ = train(cfg, ids, dense, y, cfg.source.max_batch_rows)
        out[name] = round(scored(y, scores)["auc"], 4)
        print(json.dumps({"variant": name, "auc": out[name], "minus_vw": round(out[name] - out["VW"], 4),
                          "seconds": round(secs, 1)}), flush=True)
    return out


if __name__ == "__main__":
    main()
