"""One process of a sharded parameter server: shard ``index`` of ``len(cluster)``; shard 0 coordinates.

Every shard process holds one partition of every table (ids routed by
:func:`flinkdl.ps.wire.shard_of`) and writes its part of each version under
``ROOT/shard-<index>`` (:mod:`flinkdl.ps.commits`). Shard 0 also holds the dense variables and
runs the cluster-wide calls:

- ``commit``: two-phase. *Prepare* on every shard in parallel (each cuts and writes its changed
  rows as version V, its manifest included, and keeps V *pending*); when all prepared, shard 0
  writes the commit record ``commits/vV.json`` (the commit point), then tells each shard to
  *confirm* (compaction and retention may then touch V). If any shard fails to prepare, the others
  are told to *abort* V (its files deleted, its rows marked changed again) and no record is
  written. A shard that missed the confirm or the abort settles V at its next prepare, by whether
  the record exists; a shard that starts drops every prepared version above the last record.
- ``rollback V`` on every shard; ``fence`` (a writer's new epoch) issued, persisted and sent to
  every shard before it is returned; ``versions`` from the commit records.
"""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyarrow import flight

from flinkdl.ps.checkpoint import CheckpointStore, ShardRows, State
from flinkdl.ps.commits import CommitLog, EpochFile, shard_dir
from flinkdl.ps.errors import PsError
from flinkdl.ps.fencing import Fences
from flinkdl.ps.service import ParameterService


class PeerUnavailable(PsError):
    """A shard did not answer (down or restarting)."""


class _Peer:
    """Shard-to-shard calls (admin actions), connected lazily: peers may start after shard 0."""

    def __init__(self, address: str, token: str | None) -> None:
        self.address = address if "://" in address else f"grpc://{address}"
        self._opts = flight.FlightCallOptions(
            headers=[(b"authorization", f"Bearer {token}".encode())] if token else [], timeout=120)
        self._client: flight.FlightClient | None = None

    def call(self, kind: str, body: dict) -> dict:
        if self._client is None:
            self._client = flight.connect(self.address)
        try:
            out = list(self._client.do_action(flight.Action(kind, json.dumps(body).encode()), self._opts))
        except flight.FlightUnavailableError as e:
            raise PeerUnavailable(f"shard at {self.address} is unavailable: {str(e).split('. Detail:')[0]}") from None
        except flight.FlightError as e:
            raise PsError(f"shard at {self.address}: {str(e).split('. Detail:')[0]}") from None
        return json.loads(out[0].body.to_pybytes()) if out else {}


class ShardMember(ParameterService):
    """Shard ``index`` of a PS spread over the processes at ``cluster`` (addresses in shard order)."""

    def __init__(self, index: int, cluster: list[str], root: str, retain: int = 5, compact_after: int = 8,
                 token: str | None = None) -> None:
        """``root``: the checkpoint URI shared by all shards; ``token``: sent to peers (admin role)."""
        n = len(cluster)
        if not 0 <= index < n:
            raise PsError(f"--shard-index {index} outside the cluster of {n} addresses")
        self.index, self.cluster = index, list(cluster)
        self.log = CommitLog(root)
        self.pending: tuple[int, int | None, ShardRows] | None = None  # (version, parent, rows) prepared
        self.store = CheckpointStore(shard_dir(root, index), n, retain, compact_after)
        super().__init__(n, self.store, shard_ids=[index])
        epochs = EpochFile(root)
        self.fences = Fences(epochs.load(), epochs.save if index == 0 else None)
        self.peers = {k: _Peer(a, token) for k, a in enumerate(cluster) if k != index} if index == 0 else {}
        self._pool = ThreadPoolExecutor(max(1, n))
        self._coord = threading.Lock()  # one cluster-wide commit or rollback at a time

    def _restore_on_start(self, checkpoint: CheckpointStore) -> State | None:
        committed = self.log.latest()
        for v in checkpoint.versions():
            if committed is None or v > committed:
                checkpoint.discard(v)  # prepared, but its commit never happened
        checkpoint.gc()
        return checkpoint.restore(committed) if committed is not None else None

    def health(self) -> dict:
        return {**super().health(), "shard_index": self.index, "cluster": self.cluster,
                "latest_version": self.log.latest()}

    # ------------------------------------------------------------------ this shard's part

    def prepare(self, version: int, parent: int | None) -> dict:
        """Write this shard's changed rows as ``version`` (not yet committed)."""
        with self._commit_lock:
            self._settle()
            m, rows = self._write_version(version, parent, maintain=False)
            self.pending = (version, parent, rows)
        return {k: m[k] for k in ("version", "kind", "rows", "bytes", "seconds")}

    def confirm(self, version: int) -> dict:
        with self._commit_lock:
            if self.pending is not None and self.pending[0] == version:
                self.pending = None
                self.store.maintain(version)
        return {"version": version}

    def abort(self, version: int) -> dict:
        with self._commit_lock:
            if self.pending is not None and self.pending[0] == version:
                self._drop_pending(remark=True)
        return {"version": version}

    def _settle(self, remark: bool = True) -> None:
        """Decide a pending version that was neither confirmed nor aborted: the record says."""
        if self.pending is None:
            return
        if self.log.exists(self.pending[0]):
            v, self.pending = self.pending[0], None
            self.store.maintain(v)
        else:
            self._drop_pending(remark)

    def _drop_pending(self, remark: bool) -> None:
        assert self.pending is not None
        version, parent, rows = self.pending
        self.pending = None
        self.store.discard(version)
        if remark:  # the live rows still hold those changes: the next version writes them
            self._mark_dirty(rows)
        self.base_version = parent

    def rollback_local(self, version: int) -> dict:
        if not self.log.exists(version):
            raise PsError(f"unknown version {version} (committed: {self.log.versions()})")
        with self._commit_lock:
            self._settle(remark=False)
        return super().rollback(version)

    def _committed(self, version: int | str | dict) -> ParameterService:
        if isinstance(version, dict):
            return super()._committed(version)
        v = self.log.latest() if version == "latest" else int(version)
        if v is None:
            raise PsError("no committed version yet")
        if not self.log.exists(v):
            raise PsError(f"unknown version {v} (committed: {self.log.versions()})")
        return super()._committed(v)

    def versions(self) -> list[dict]:
        out = []
        here = set(self.store.versions())  # retention may have removed older ones since the last record
        for v in (v for v in self.log.versions() if v in here):
            rec = {**self.log.get(v), "kind": self.store.manifest(v)["kind"]}  # compaction changes the kind
            out.append({k: rec.get(k) for k in ("version", "parent", "kind", "rows", "bytes", "created")})
        return out

    # ------------------------------------------------------------------ cluster-wide (shard 0)

    def _coordinator(self, what: str) -> None:
        if self.index != 0:
            raise PsError(f"{what} goes to shard 0 ({self.cluster[0]}), the coordinator; this is shard {self.index}")

    def _everywhere(self, kind: str, body: dict, local: Any, per_shard: dict[int, dict] | None = None) -> list[dict]:
        """``kind`` on every shard at once (this one through ``local``); raises the first failure."""
        def one(k: int) -> dict:
            args = {**body, **(per_shard or {}).get(k, {})}
            return local(**args) if k == self.index else self.peers[k].call(kind, args)

        futures = [self._pool.submit(one, k) for k in range(self.shards)]
        return [f.result() for f in futures]

    def _quietly(self, kind: str, body: dict, local: Any) -> None:
        for k in range(self.shards):
            with contextlib.suppress(PsError):  # that shard settles it at its next prepare or start
                local(**body) if k == self.index else self.peers[k].call(kind, body)

    def commit(self, incarnations: list[str] | None = None) -> dict:
        """Two-phase commit of one version across every shard (see the module docstring)."""
        self._coordinator("commit")
        with self._coord:
            version, parent = (self.log.latest() or 0) + 1, self.base_version
            if incarnations is not None:
                self._check_incarnations(incarnations)
            try:
                parts = self._everywhere("prepare", {"version": version, "parent": parent}, self.prepare_checked,
                                         {k: {"incarnation": inc} for k, inc in enumerate(incarnations or [])})
            except Exception as e:
                self._quietly("abort", {"version": version}, self.abort)
                raise PsError(f"commit of version {version} failed, nothing committed: {e}") from None
            rec = self.log.record(version, {"parent": parent, "shards": self.shards, "kind": parts[0]["kind"],
                                            "rows": sum(p["rows"] for p in parts),
                                            "bytes": sum(p["bytes"] for p in parts)})
            self._quietly("confirm", {"version": version}, self.confirm)
            self.log.forget(set(self.store.versions()) | {version})
        return {**{k: rec[k] for k in ("version", "parent", "kind", "rows", "bytes")},
                "seconds": max(p["seconds"] for p in parts)}

    def _check_incarnations(self, incarnations: list[str]) -> None:
        if len(incarnations) != self.shards:
            raise PsError(f"commit names {len(incarnations)} shard incarnations; the PS has {self.shards} shards")

    def prepare_checked(self, version: int, parent: int | None, incarnation: str | None = None) -> dict:
        """:meth:`prepare`, refused when the caller saw another incarnation of this shard."""
        if incarnation is not None and incarnation != self.incarnation:
            raise PsError(f"shard {self.index} restarted since this writer connected: its uncommitted pushes "
                          "are gone; nothing committed (roll back, or reconnect)")
        return self.prepare(version, parent)

    def rollback(self, version: int) -> dict:
        """Every shard to committed ``version``."""
        self._coordinator("rollback")
        with self._coord:
            self._everywhere("rollback_local", {"version": int(version)}, self.rollback_local)
        return {"version": int(version), "tables": self.list_tables()}

    def fence(self, writer: str) -> int:
        """A new epoch for ``writer``, persisted and known to every live shard before it is returned."""
        self._coordinator("fence")
        epoch = self.fences.issue(writer)
        for k, peer in self.peers.items():
            try:
                peer.call("fence_set", {"writer": writer, "epoch": epoch})
            except PeerUnavailable:
                pass  # a shard that is down reads fencing.json when it starts
            except PsError as e:
                raise PsError(f"fence of {writer!r} not known to shard {k}: {e}") from None
        return epoch
