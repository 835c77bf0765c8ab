"""One JSON document per version, written atomically (manifests and commit records)."""

from __future__ import annotations

import pytest

from flinkdl.ps.checkpoint import open_uri
from flinkdl.ps.errors import PsError
from flinkdl.ps.version_docs import VersionDocs


def test_versions_read_write_delete_and_hidden_names(tmp_path):
    fs, root = open_uri(str(tmp_path))
    docs = VersionDocs(fs, f"{root}/commits")
    assert docs.versions() == [] and docs.latest() is None
    for v in (3, 12, 7):
        docs.write(v, {"version": v})
    (tmp_path / "commits" / ".v00000013.abc.tmp").write_text("{")  # a write whose move never happened
    assert docs.versions() == [3, 7, 12] and docs.latest() == 12 and docs.read(7) == {"version": 7}
    assert not [p for p in (tmp_path / "commits").iterdir() if p.name.endswith(".tmp") and "abc" not in p.name]
    docs.delete(7)
    docs.delete(99)  # no document: nothing to do
    assert docs.versions() == [3, 12] and not docs.exists(7)
    with pytest.raises(PsError, match=r"unknown version 7 \(have \[3, 12\]\)"):
        docs.read(7)
