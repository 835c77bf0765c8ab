"""Held-out rating logs, written independently of MovieLens, and the job's model on them in memory vs VW.

A seeded generator (numpy only; nothing from ``flinkdl/sources``): users and items with latent factors and
biases (the matrix-factorisation truth), part of which comes from their profile (age band, gender, country;
year, genres), Zipf item popularity, users who arrive over time and rate in sessions (bursts seconds apart),
items released over time (cold start), and ratings 1-5 from the latent score plus noise; label = rating >= 4.
It writes, like a real log would: the interactions file (its own column names and order and separator,
header, sorted by time), ``users`` and ``items`` side tables (genres a ``|``-joined list), and prints the
oracle AUC (the latent score's AUC on the labels: the ceiling of any model).

    python bench/heldout_ratings.py ml1m --events 200000 --out runs/heldout/ml1m     # write a log
    python bench/heldout_ratings.py --evaluate CONFIG LOG [--set k=v ...]            # the job's model, in memory

Members: ``ml1m`` (6k users, 4k items, 1M ratings by default, comma-separated), ``books`` (sparse: most users
rate 1-3 books of 100k, ``;``-separated as Book-Crossing's dump), ``music`` (few users, heavy repeats of
items they liked, tab-separated). ``--evaluate`` learns ``LOG`` (read with the config's columns) with the
config's model in steps of ``source.max_batch_rows``, progressive AUC, and VW ``-b 20 --loss_function
logistic`` on the same rows and order (bench/quality.py, bench/streams.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DAY = 86_400


@dataclass(frozen=True)
class Member:
    users: int
    items: int
    events: int
    user_activity: float  #: Zipf-like exponent of ratings per user (higher: more users with 1-3 ratings)
    item_zipf: float  #: exponent of item popularity
    repeat: float  #: probability that an event repeats an item the user rated before
    sep: str
    columns: tuple[str, str, str, str]  #: names of (user, item, rating, time) in the log
    order: tuple[int, int, int, int]  #: file position of (user, item, rating, time)
    suffix: str


MEMBERS = {
    "ml1m": Member(6_040, 3_900, 1_000_000, 0.9, 0.9, 0.0, ",", ("UserID", "MovieID", "Rating", "Timestamp"),
                   (0, 1, 2, 3), ".csv"),
    "books": Member(80_000, 100_000, 200_000, 1.6, 0.8, 0.0, ";", ("User-ID", "ISBN", "Book-Rating", "ts"),
                    (1, 2, 3, 0), ".csv"),
    "music": Member(1_000, 20_000, 500_000, 0.6, 1.1, 0.5, "\t", ("userid", "trackid", "stars", "time"),
                    (2, 0, 3, 1), ".tsv"),
}
GENRES = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Horror", "SciFi", "Crime", "Kids", "Docs",
          "Fantasy", "War"]
DIM = 8


def generate(m: Member, events: int, seed: int) -> dict:
    """The log's columns (user, item, rating, time) and the side tables, plus the latent score."""
    rng = np.random.default_rng(seed)
    horizon = 3 * 365 * DAY
    # profiles: user (age band, gender, country), item (year, 1-3 genres); each shifts the bias and factors
    age, gender, country = rng.integers(0, 7, m.users), rng.integers(0, 2, m.users), rng.zipf(1.5, m.users) % 40
    year = rng.integers(1950, 2021, m.items)
    genres = [rng.choice(len(GENRES), rng.integers(1, 4), replace=False) for _ in range(m.items)]
    g_vec, a_vec = rng.normal(0, 0.5, (len(GENRES), DIM)), rng.normal(0, 0.5, (7, DIM))
    g_bias, a_bias = rng.normal(0, 0.3, len(GENRES)), rng.normal(0, 0.2, 7)
    p = rng.normal(0, 0.5, (m.users, DIM)) + a_vec[age]
    q = rng.normal(0, 0.5, (m.items, DIM)) + np.stack([g_vec[g].mean(0) for g in genres])
    b_u = rng.normal(0, 0.5, m.users) + a_bias[age] + 0.15 * gender
    b_i = rng.normal(0, 0.4, m.items) + np.array([g_bias[g].mean() for g in genres]) + (year - 1985) * 0.005
    # activity: ratings per user heavy-tailed (min 1), scaled to about ``events``; arrival over the horizon
    act = 1 / np.arange(1, m.users + 1) ** m.user_activity
    over = 1.1 if m.repeat else 1.4  # each user rates an item once: duplicates are dropped
    count = np.maximum(1, np.round(rng.permutation(act) / act.sum() * events * over)).astype(int)
    arrive = rng.uniform(-0.2, 0.95, m.users).clip(0) * horizon
    release = rng.uniform(-1.0, 0.9, m.items).clip(0) * horizon  # a third exist at the start
    pop = rng.permutation(1 / np.arange(1, m.items + 1) ** m.item_zipf)
    users, times = [], []
    for u in range(m.users):
        n = count[u]
        sessions = 1 + rng.poisson(n / 25)
        starts = arrive[u] + np.cumsum(rng.exponential(30 * DAY * min(1.0, 25 / n), sessions))
        t = np.sort(starts[rng.integers(0, sessions, n)] + np.cumsum(rng.exponential(40, n)) % 3600)
        users.append(np.full(n, u))
        times.append(t)
    user, time = np.concatenate(users), np.concatenate(times)
    item = pick_items(rng, pop / pop.sum(), release, time)
    if m.repeat:
        item = repeats(rng, user, item, p, q, m.repeat)
    else:  # each user rates an item once
        _, first = np.unique(user * m.items + item, return_index=True)
        keep = np.zeros(len(user), bool)
        keep[first] = True
        user, time, item = user[keep], time[keep], item[keep]
    order = np.argsort(time, kind="stable")[:events]
    user, time, item = user[order], time[order], item[order]
    score = b_u[user] + b_i[item] + np.einsum("nd,nd->n", p[user], q[item])
    noisy = score + rng.normal(0, 1.3, len(score))
    # rating 1-5 at MovieLens-like shares (6, 11, 27, 34, 22 %): label rating >= 4 is 56 % positive
    cuts = np.quantile(noisy, [0.06, 0.17, 0.44, 0.78])
    rating = 1 + np.searchsorted(cuts, noisy)
    return {"user": user, "item": item, "rating": rating, "time": (1_000_000_000 + time).astype(np.int64),
            "score": score, "age": age, "gender": gender, "country": country, "year": year, "genres": genres}


def pick_items(rng: np.random.Generator, pop: np.ndarray, release: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Zipf-popular items already released at each event's time (resampled until they are)."""
    item = rng.choice(len(pop), len(time), p=pop)
    for _ in range(50):
        bad = np.flatnonzero(release[item] > time)
        if not len(bad):
            break
        item[bad] = rng.choice(len(pop), len(bad), p=pop)
    bad = release[item] > time
    item[bad] = np.argmin(release)
    return item


def repeats(rng: np.random.Generator, user: np.ndarray, item: np.ndarray, p: np.ndarray, q: np.ndarray,
            rate: float) -> np.ndarray:
    """With probability ``rate`` an event repeats one of the user's earlier items, favouring those they like."""
    out = item.copy()
    for u in np.unique(user):
        idx = np.flatnonzero(user == u)
        seq = out[idx]
        for k in range(1, len(idx)):
            if rng.random() < rate:
                prev = seq[:k]
                w = np.exp(2 * (q[prev] @ p[u]))
                seq[k] = prev[rng.choice(k, p=w / w.sum())]
        out[idx] = seq
    return out


def write(m: Member, g: dict, out: Path, name: str) -> dict:
    """The log (header, one line per rating) and the users/items tables; returns paths and counts."""
    out.mkdir(parents=True, exist_ok=True)
    ids_u = [f"u{u}" if name == "music" else str(u + 1) for u in range(len(g["age"]))]
    ids_i = [f"{0x3B000000 + i:010d}X"[-10:] if name == "books" else str(i + 1) for i in range(len(g["year"]))]
    vals = [np.asarray(ids_u)[g["user"]], np.asarray(ids_i)[g["item"]], g["rating"].astype(str),
            g["time"].astype(str)]
    cols = sorted(zip(m.order, m.columns, vals, strict=True))  # (file position, name, values)
    log = out / f"ratings{m.suffix}"
    with open(log, "w") as fh:
        fh.write(m.sep.join(c[1] for c in cols) + "\n")
        fh.write("\n".join(m.sep.join(r) for r in zip(*(c[2] for c in cols), strict=True)) + "\n")
    ages = ["Under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
    with open(out / "users.csv", "w") as fh:
        fh.write("user,age,gender,country\n")
        fh.writelines(f"{ids_u[u]},{ages[a]},{'FM'[s]},c{c}\n"
                      for u, (a, s, c) in enumerate(zip(g["age"], g["gender"], g["country"], strict=True)))
    with open(out / "items.csv", "w") as fh:
        fh.write("item,year,genres\n")
        fh.writelines(f"{ids_i[i]},{y},{'|'.join(GENRES[k] for k in gs)}\n"
                      for i, (y, gs) in enumerate(zip(g["year"], g["genres"], strict=True)))
    return {"log": str(log), "events": len(g["user"]), "users_seen": len(np.unique(g["user"])),
            "items_seen": len(np.unique(g["item"])), "positive": round(float((g["rating"] >= 4).mean()), 4)}


def oracle_auc(g: dict) -> float:
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    return round(float(roc_auc_score(g["rating"] >= 4, g["score"])), 4)


def evaluate(config: Path, log: Path, sets: list[str], sep: str | None) -> dict:
    """The config's model on ``log`` in memory (prequential, steps of max_batch_rows) and VW on the same rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from quality import run_vw, scored, train
    from sklearn.metrics import roc_auc_score
    from streams import featurize, write_vw

    from flinkdl.config.loader import load_config
    from flinkdl.features.enrich import Enricher

    cfg = load_config(config, sets)
    src = cfg.source.kafka if cfg.source.kind == "kafka" else cfg.source.directory
    assert src is not None and src.columns
    delim = sep or {".csv": ",", ".tsv": "\t"}.get(log.suffix, "\t")
    text = dict.fromkeys(src.columns, pa.string())
    raw = pacsv.read_csv(log, read_options=pacsv.ReadOptions(column_names=src.columns, skip_rows=1),
                         parse_options=pacsv.ParseOptions(delimiter=delim),
                         convert_options=pacsv.ConvertOptions(column_types=text))
    if cfg.enrich:
        raw = Enricher(cfg.enrich).enrich(raw)
    for c in (cfg.features.label.column, cfg.features.timestamp):
        if c:
            raw = raw.set_column(raw.column_names.index(c), c, raw.column(c).cast("float64"))
    ids, dense, labels = featurize(cfg, raw.to_batches())
    scores, secs, per = train(cfg, ids, dense, labels, cfg.source.max_batch_rows)
    with tempfile.TemporaryDirectory() as d:
        _, vw_labels = write_vw(cfg, raw.to_batches(), Path(d) / "x.vw")
        vw_scores, _ = run_vw(Path(d) / "x.vw", Path(d))
    vw = float(roc_auc_score(vw_labels, vw_scores))
    auc = scored(labels, scores)["auc"]
    row = {"events": len(labels), "auc": round(auc, 4), "vw": round(vw, 4), "auc_minus_vw": round(auc - vw, 4),
           "seconds": round(secs, 1)}
    if per:
        row["variants"] = {k: round(scored(labels, v)["auc"], 4) for k, v in per.items()}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("member", nargs="?", choices=list(MEMBERS))
    p.add_argument("--events", type=int, default=None, help="ratings (default: the member's)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--out", type=Path, default=None, help="directory for the log and side tables")
    p.add_argument("--evaluate", nargs=2, metavar=("CONFIG", "LOG"), type=Path)
    p.add_argument("--sep", default=None, help="--evaluate: the log's separator (default by extension)")
    p.add_argument("--set", action="append", default=[], help="--evaluate: a config override")
    args = p.parse_args()
    if args.evaluate:
        print(json.dumps({"bench": "heldout_ratings", "config": str(args.evaluate[0]), "sets": args.set,
                          **evaluate(args.evaluate[0], args.evaluate[1], args.set, args.sep)}))
        return
    if not args.member:
        p.error("a member or --evaluate")
    m = MEMBERS[args.member]
    g = generate(m, args.events or m.events, args.seed)
    info = write(m, g, args.out or Path("runs/heldout") / args.member, args.member)
    print(json.dumps({"bench": "heldout_ratings", "member": args.member, "seed": args.seed, **info,
                      "oracle_auc": oracle_auc(g)}))


if __name__ == "__main__":
    main()
