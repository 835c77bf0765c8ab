"""The published directory, in TF Serving's layout: ``BASE/<version>/`` per version.

Each version directory holds the SavedModel (``saved_model.pb``, ``variables/``), ``model.onnx``
(if that format is on) and ``manifest.json``. It is written under a hidden temporary name and
renamed into place, so a reader (TF Serving, ``flinkdl serve``) never sees half a version: a
numeric directory with a manifest is complete. TF Serving serves the highest number and ignores
the other names: ``rolled_back/`` (versions a rollback moved aside), ``refused.jsonl`` (the gate's
refusals, one JSON object a line) and ``HOLD`` (while present, nothing is published).

>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> for v in (3, 5, 9):
...     _ = write_version(base, v, lambda d: None, {"ps_version": v})
>>> versions(base), rollback(base, 5), versions(base), held(base)
([3, 5, 9], [9], [3, 5], 5)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

MANIFEST = "manifest.json"
ROLLED_BACK = "rolled_back"
REFUSED = "refused.jsonl"
HOLD = "HOLD"
#: Name pattern of the file a publishing worker writes in its run directory when its publisher is done.
FINAL_REPORT = "publish-final-{pid}.json"


def versions(base: str | Path) -> list[int]:
    """The complete published versions, ascending."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / MANIFEST).is_file())


def latest(base: str | Path) -> int | None:
    """The version TF Serving serves (the highest), or None."""
    vs = versions(base)
    return vs[-1] if vs else None


def manifest(base: str | Path, version: int) -> dict:
    return json.loads((Path(base) / str(version) / MANIFEST).read_text())


def write_version(base: str | Path, version: int, write: Callable[[Path], None], manifest_doc: dict) -> Path:
    """Run ``write(tmp_dir)``, add the manifest, rename to ``base/<version>``; returns that path."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    final = base / str(version)
    if final.exists():
        raise FileExistsError(f"version {version} is already published in {base}")
    tmp = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest_doc, indent=1, sort_keys=True))
        os.rename(tmp, final)  # atomic on one filesystem
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def prune(base: str | Path, keep: int) -> list[int]:
    """Remove all but the ``keep`` highest versions; returns the removed ones."""
    gone = versions(base)[:-keep]
    for v in gone:
        shutil.rmtree(Path(base) / str(v), ignore_errors=True)
    return gone


def rollback(base: str | Path, version: int, hold: bool = True) -> list[int]:
    """Make ``version`` the served one: move every higher version into ``rolled_back/``.

    With ``hold`` (the default) also write ``HOLD``, so the publisher stops until :func:`resume`
    (else its next version, numbered higher, would be served again).
    """
    base = Path(base)
    have = versions(base)
    if version not in have:
        raise ValueError(f"version {version} is not published in {base} (have {have})")
    moved = [v for v in have if v > version]
    aside = base / ROLLED_BACK
    aside.mkdir(exist_ok=True)
    for v in moved:
        target = aside / str(v)
        if target.exists():
            target = aside / f"{v}-{int(time.time())}"
        os.rename(base / str(v), target)
    if hold:
        (base / HOLD).write_text(f"{version}\n")
    return moved


def held(base: str | Path) -> int | None:
    """The version a rollback holds serving at, or None when publishing is not held."""
    path = Path(base) / HOLD
    return int(path.read_text().strip() or 0) if path.is_file() else None


def resume(base: str | Path) -> bool:
    """Let the publisher publish again; False if it was not held."""
    path = Path(base) / HOLD
    if not path.is_file():
        return False
    path.unlink()
    return True


def record_refusal(base: str | Path, doc: dict) -> None:
    """Append one refusal to ``refused.jsonl``."""
    Path(base).mkdir(parents=True, exist_ok=True)
    with open(Path(base) / REFUSED, "a") as f:
        f.write(json.dumps(doc, sort_keys=True) + "\n")


def refusals(base: str | Path) -> list[dict]:
    path = Path(base) / REFUSED
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def write_final_report(path: str | Path, doc: dict) -> None:
    """Write the publisher's final report (atomically: ``flinkdl run`` waits for it)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True))
    os.replace(tmp, path)


def wait_final_report(run_dir: str | Path, timeout_s: float = 120.0) -> dict | None:
    """Wait until the publishing worker reported that its last version is written (Flink may report
    a job finished, and ``flinkdl run`` exit, before its workers have); the report, or None."""
    deadline = time.monotonic() + timeout_s
    while True:
        paths = sorted(Path(run_dir).glob(FINAL_REPORT.format(pid="*")))
        if paths:
            return json.loads(paths[-1].read_text())
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)
