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
import uuid

import numpy as np
import pyarrow.fs as pafs

from flinkdl.ps.checkpoint import CheckpointStore, State, open_uri
from flinkdl.ps.errors import PsError


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
        self.fs.create_dir(self._p("commits"), recursive=True)

    def _p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _write(self, path: str, doc: dict) -> None:
        """Write a hidden temporary file, then move it into place (atomic on a filesystem)."""
        head, _, name = path.rpartition("/")
        tmp = f"{head}/.{name}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps(doc, indent=1).encode())
        self.fs.move(tmp, path)

    # ------------------------------------------------------------------ commits

    def versions(self) -> list[int]:
        sel = pafs.FileSelector(self._p("commits"), allow_not_found=True)
        return sorted(int(i.base_name[1:-5]) for i in self.fs.get_file_info(sel)
                      if i.base_name.startswith("v") and i.base_name.endswith(".json"))

    def latest(self) -> int | None:
        v = self.versions()
        return v[-1] if v else None

    def exists(self, version: int) -> bool:
        return self.fs.get_file_info(self._p("commits", f"v{version:08d}.json")).type == pafs.FileType.File

    def get(self, version: int) -> dict:
        try:
            with self.fs.open_input_stream(self._p("commits", f"v{version:08d}.json")) as f:
                return json.loads(f.read())
        except (FileNotFoundError, OSError) as e:
            raise PsError(f"unknown version {version} (committed: {self.versions()})") from e

    def record(self, version: int, doc: dict) -> dict:
        """Mark ``version`` committed on every shard (the last write of a commit)."""
        doc = {**doc, "version": version, "created": time.time()}
        self._write(self._p("commits", f"v{version:08d}.json"), doc)
        return doc

    def forget(self, keep: set[int]) -> None:
        """Delete the records of versions not in ``keep`` (retention removed their files)."""
        for v in self.versions():
            if v not in keep:
                self.fs.delete_file(self._p("commits", f"v{v:08d}.json"))


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
        head, _, name = self.path.rpartition("/")
        self.fs.create_dir(head, recursive=True)
        tmp = f"{head}/.{name}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps(epochs).encode())
        self.fs.move(tmp, self.path)


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
