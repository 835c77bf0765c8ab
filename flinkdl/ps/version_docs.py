"""JSON documents on a PS checkpoint filesystem, each written atomically.

:func:`write_json` writes a hidden temporary file beside the target and moves it into place (atomic
on a filesystem; a reader sees the old document or the new one). :class:`VersionDocs` keeps one
document per version, ``DIR/v<version:08d>.json``: a shard's manifests
(:class:`~flinkdl.ps.checkpoint.CheckpointStore`) and a sharded PS's commit records
(:class:`~flinkdl.ps.commits.CommitLog`). Hidden names (``.…tmp``) are never versions.
"""

from __future__ import annotations

import json
import uuid

import pyarrow.fs as pafs

from flinkdl.ps.errors import PsError


def write_json(fs: pafs.FileSystem, path: str, doc: dict, indent: int | None = 1) -> None:
    """Write ``doc`` to ``path`` atomically (a hidden temporary file beside it, then a move)."""
    head, _, name = path.rpartition("/")
    tmp = f"{head}/.{name.removesuffix('.json')}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(doc, indent=indent).encode())
    fs.move(tmp, path)


class VersionDocs:
    """One JSON document per version in directory ``path`` of ``fs`` (created if missing)."""

    def __init__(self, fs: pafs.FileSystem, path: str) -> None:
        self.fs, self.path = fs, path.rstrip("/")
        fs.create_dir(self.path, recursive=True)

    def path_of(self, version: int) -> str:
        return f"{self.path}/v{version:08d}.json"

    def versions(self) -> list[int]:
        """The versions with a document, ascending."""
        sel = pafs.FileSelector(self.path, allow_not_found=True)
        return sorted(int(i.base_name[1:-5]) for i in self.fs.get_file_info(sel)
                      if i.base_name.startswith("v") and i.base_name.endswith(".json"))

    def latest(self) -> int | None:
        v = self.versions()
        return v[-1] if v else None

    def exists(self, version: int) -> bool:
        return self.fs.get_file_info(self.path_of(version)).type == pafs.FileType.File

    def read(self, version: int) -> dict:
        """``version``'s document; :class:`PsError` if it has none."""
        try:
            with self.fs.open_input_stream(self.path_of(version)) as f:
                return json.loads(f.read())
        except (FileNotFoundError, OSError) as e:
            raise PsError(f"unknown version {version} (have {self.versions()})") from e

    def write(self, version: int, doc: dict) -> None:
        write_json(self.fs, self.path_of(version), doc)

    def delete(self, version: int) -> None:
        """Remove ``version``'s document if it has one."""
        if self.exists(version):
            self.fs.delete_file(self.path_of(version))
