"""ParseFeatures (featurize) without Flink: a big chunk of lines leaves as batches of at most max_batch_rows rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from flinkdl.config.loader import load_config
from flinkdl.exchange.channel import unpack
from flinkdl.exchange.envelope import Envelope
from flinkdl.exchange.letters import decode_letters
from flinkdl.exchange.schema import FeatureLayout
from flinkdl.pipeline.featurize import ParseFeatures

JOB = Path(__file__).resolve().parents[2] / "jobs" / "movielens.yaml"
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def _run(tmp_path, max_rows: int, chunks: list[list[str]]) -> list:
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", f"source.directory.path={tmp_path}",
                            f"source.max_batch_rows={max_rows}"])
    op = ParseFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    schema = FeatureLayout.from_config(cfg.features).schema()
    out = []
    for lines in chunks:
        for row in op.flat_map(["\n".join(lines), len(lines)]):
            e = Envelope.of(row)
            ids = unpack(e.payload, schema).column("event_id").to_pylist()
            dead = [d["position"] for d in decode_letters(e.dead_letters).dead]
            out.append((e.seq, e.rows_in, ids, dead))
    return out


def _lines(n: int, bad: set[int]) -> list[str]:
    """A header, then ``n`` rows; rows in ``bad`` have a field too few (dead letter field_count)."""
    rows = [f"{i % 7}\t{i}\t{1 + i % 5}\t{1000 + i}" if i not in bad else f"{i}\t{i}\t3" for i in range(n)]
    return [HEADER, *rows]


def test_a_chunk_is_split_into_batches_with_their_dead_letters(tmp_path) -> None:
    bad = {0, 4, 5, 11, 12}  # first row, a run inside a batch, and the last rows of the chunk
    (whole,) = _run(tmp_path / "a", 1000, [_lines(13, bad)])
    envs = _run(tmp_path / "b", 3, [_lines(13, bad), _lines(4, {1})])
    first, second = envs[:3], envs[3:]
    # the same events and dead letters as one unsplit batch, in order, at most 3 rows a batch
    assert [i for e in first for i in e[2]] == whole[2] == [1, 2, 3, 6, 7, 8, 9, 10]
    assert [d for e in first for d in e[3]] == whole[3] == sorted(bad)
    assert [len(e[2]) for e in first] == [3, 3, 2] and sum(e[1] for e in first) == whole[1] == 13
    # a batch covers positions from its first good row to the next batch's: its dead letters
    # ride with it (before the first batch's rows: the first; after the last rows: the last)
    assert [e[3] for e in first] == [[0, 4, 5], [], [11, 12]]
    assert [e[1] for e in first] == [len(e[2]) + len(e[3]) for e in first]
    # seq: one per envelope, consecutive; the next chunk continues seq and positions
    assert [e[0] for e in envs] == list(range(len(envs)))
    assert [i for e in second for i in e[2]] == [14, 16, 17] and [d for e in second for d in e[3]] == [15]
    assert sum(e[1] for e in second) == 4


def test_a_chunk_of_dead_letters_only_is_one_envelope(tmp_path) -> None:
    (piece,) = _run(tmp_path, 2, [_lines(5, set(range(5)))])
    assert piece[2] == [] and piece[3] == [0, 1, 2, 3, 4] and piece[1] == 5


def test_a_directory_window_is_joined_with_a_side_table(tmp_path) -> None:
    """The side table's columns need not be in the files (source.directory.columns): they are joined."""
    (tmp_path / "items.tsv").write_text("item_id:token\tclass:token_seq\n1\tDrama War\n")
    table = f"{{path: {tmp_path / 'items.tsv'}, key: 'item_id:token', columns: ['class:token_seq']}}"
    cfg = load_config(JOB, [f"job.run_dir={tmp_path}", f"source.directory.path={tmp_path}", f"enrich=[{table}]",
                            'features.categorical=[{name: "item_id:token", type: int}, '
                            '{name: "class:token_seq", multi: {sep: " ", max_len: 2}}]'])
    op = ParseFeatures(cfg.model_dump_json())
    op.open(SimpleNamespace(get_index_of_this_subtask=lambda: 0))
    lines = [HEADER, "1\t1\t5\t10", "1\t2\t5\t11"]
    (row,) = op.flat_map(["\n".join(lines), len(lines)])
    batch = unpack(Envelope.of(row).payload, FeatureLayout.from_config(cfg.features).schema())
    bag = [batch.column(f"id_{k}").to_pylist() for k in (1, 2)]
    assert [sum(v >= 0 for v in r) for r in zip(*bag, strict=True)] == [2, 1]  # Drama War; item 2: missing id
