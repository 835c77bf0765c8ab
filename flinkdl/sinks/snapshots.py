"""Snapshot files of the sinks' exactly-once anchors: pickled state under a name that carries its digest.

The name is what Flink's checkpoint keeps (in the anchor), so a file changed after it was written is
refused before it is unpickled.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> path = write_snapshot(folder, "sink", {"events": 3})
>>> read_snapshot(path, "sink")
{'events': 3}
>>> _ = path.write_bytes(pickle.dumps({"events": 4}))
>>> read_snapshot(path, "sink")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: sink snapshot ... it was changed after it was written; refusing to load it
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import time
from pathlib import Path
from typing import Any


def write_snapshot(folder: Path, prefix: str, state: Any, keep: int = 20) -> Path:
    """Pickle ``state`` to a new ``folder/<prefix>-<ns>-<sha256>.pkl`` (atomically); keep the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    path = folder / f"{prefix}-{time.time_ns()}-{hashlib.sha256(data).hexdigest()}.pkl"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    for old in sorted(folder.glob(f"{prefix}-*.pkl"))[:-keep]:
        old.unlink()
    return path


def read_snapshot(path: str | Path, what: str) -> Any:
    """The state in a :func:`write_snapshot` file; refused if it no longer matches its digest."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} snapshot {path} is gone: the checkpoint being restored is older "
                                f"than the snapshots kept in {path.parent}") from None
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), path.stem.rsplit("-", 1)[-1]):
        raise ValueError(f"{what} snapshot {path} does not match the digest in its name: it was changed after "
                         "it was written; refusing to load it")
    return pickle.loads(data)  # verified above against the digest that Flink's checkpoint holds
