"""The commit log of a sharded parameter server (several processes): which versions are whole.

Layout under the PS's checkpoint URI (shared by every shard process: one directory, or an object
store prefix)::

    shard-0/manifests/v00000007.json  shard-0/data/v00000007/...   shard 0's part of version 7
    shard-1/...                                                    (each a CheckpointStore)
    commits/v00000007.json            written LAST, by shard 0: version 7 exists on every shard
    fencing.json                      the latest epoch issued to each writer

A shard's own manifest only says that its part is *prepared*; a version is committed exactly when
its record in ``commits/`` exists. A shard that starts drops its prepared versions above the last
committed one (a commit that died half way), so every shard restores the same cut.

>>> # log = CommitLog("runs/ps"); log.latest(); log.record(8, {"rows": 10}); restore_cluster("runs/ps", 8)
"""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow.fs as pafs

from flinkdl.ps.checkpoint import CheckpointStore, State, open_uri
from flinkdl.ps.version_docs import VersionDocs, write_json


def shard_dir(root: str, shard: int) -> str:
    """The checkpoint directory (or URI) of shard ``shard`` under the PS's ``root``."""
    return f"{root.rstrip('/')}/shard-{shard}"


class CommitLog:
    """Commit records of a sharded PS under ``uri``."""

    def __init__(self, uri: str, filesystem: pafs.FileSystem | None = None) -> None:
        if filesystem is None:
            self.fs, root = open_uri(uri)
        else:
            self.fs, root = filesystem, uri
        self.root = root.rstrip("/")
        self.docs = VersionDocs(self.fs, f"{self.root}/commits")

    # ------------------------------------------------------------------ commits

    def versions(self) -> list[int]:
        return self.docs.versions()

    def latest(self) -> int | None:
        return self.docs.latest()

    def exists(self, version: int) -> bool:
        return self.docs.exists(version)

    def get(self, version: int) -> dict:
        return self.docs.read(version)

    def record(self, version: int, doc: dict) -> dict:
        """Mark ``version`` committed on every shard (the last write of a commit)."""
        doc = {**doc, "version": version, "created": time.time()}
        self.docs.write(version, doc)
        return doc

    def forget(self, keep: set[int]) -> None:
        """Delete the records of versions not in ``keep`` (retention removed their files)."""
        for v in self.versions():
            if v not in keep:
                self.docs.delete(v)


class EpochFile:
    """The fencing epochs (``fencing.json``) under a PS's checkpoint URI, read at start, rewritten
    at each issue (rare: once per writer start)."""

    def __init__(self, uri: str) -> None:
        self.fs, root = open_uri(uri)
        self.path = f"{root.rstrip('/')}/fencing.json"

    def load(self) -> dict[str, int]:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return {str(k): int(v) for k, v in json.loads(f.read()).items()}
        except (FileNotFoundError, OSError):
            return {}

    def save(self, epochs: dict[str, int]) -> None:
        self.fs.create_dir(self.path.rpartition("/")[0], recursive=True)
        write_json(self.fs, self.path, epochs, indent=None)


def is_cluster(uri: str) -> bool:
    """Whether ``uri`` holds a sharded PS's checkpoints (a ``commits/`` directory)."""
    fs, root = open_uri(uri)
    return fs.get_file_info(f"{root.rstrip('/')}/commits").type == pafs.FileType.Directory


def restore_cluster(uri: str, version: int | None = None) -> State | None:
    """Committed ``version`` (default the latest) of a sharded PS, every shard's rows merged
    (``ps export`` reads a version this way, without any server running)."""
    log = CommitLog(uri)
    v = log.latest() if version is None else version
    if v is None:
        return None
    shards = int(log.get(v)["shards"])
    rows: dict = {}
    dense: dict[str, np.ndarray] = {}
    tables: dict = {}
    for k in range(shards):
        part = CheckpointStore(shard_dir(uri, k), shards).restore(v)
        rows.update(part.rows)
        tables = tables or part.tables
        dense = part.dense if k == 0 else dense
    return State(v, tables, rows, dense)
