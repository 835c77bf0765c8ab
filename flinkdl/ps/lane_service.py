"""The parameter service's lane calls (:mod:`flinkdl.ps.lanes`): writer commit, writer rollback,
cuts, and the state of a cut for serving and export."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

import pyarrow.fs as pafs

from flinkdl.ps.checkpoint import State
from flinkdl.ps.errors import PsError
from flinkdl.ps.lanes import LaneBook, apply

if TYPE_CHECKING:
    from flinkdl.ps.checkpoint import CheckpointStore
    from flinkdl.ps.service import ParameterService


class LaneCalls:
    """Mixed into :class:`~flinkdl.ps.service.ParameterService`."""

    lanes: LaneBook | None
    _cut_cache: tuple[str, ParameterService] | None

    def _book(self) -> LaneBook:
        if self.lanes is None:
            raise PsError("this server has no --checkpoint-dir: no writer lanes (exactly-once at parallelism > 1)")
        return self.lanes

    def _restore_lanes(self, checkpoint: CheckpointStore) -> None:
        """On start, with lanes on disk: the lanes' base version plus every committed segment."""
        svc = cast("ParameterService", self)
        svc.lanes = LaneBook(checkpoint.fs, checkpoint.root)
        svc._cut_cache = None
        if not svc.lanes.active():
            return
        base = svc.lanes.base()
        svc._clear()
        if base is not None:
            svc._load(checkpoint.restore(base))
        for seg in svc.lanes.segments():
            apply(svc, seg, 1)
        svc.lanes.restore_on_start()

    def _clear(self) -> None:
        svc = cast("ParameterService", self)
        svc._load(State(0, {}, {}, {}))
        svc.base_version = None

    def _specs(self) -> dict[str, dict]:
        svc = cast("ParameterService", self)
        return {n: {"dim": t.dim, "slots": list(t.slots)} for n, t in svc.tables[0].items()}

    def lane_commit(self, writer: str, seq: int | None = None) -> dict:
        """Seal ``writer``'s pushes since its last segment as segment ``seq`` (default: the next)."""
        svc = cast("ParameterService", self)
        return self._book().commit(writer, seq, svc.base_version, svc._specs())

    def lane_rollback(self, writer: str, seq: int) -> dict:
        """Subtract ``writer``'s deltas after its segment ``seq`` from the live state; other lanes stay."""
        svc = cast("ParameterService", self)
        book = self._book()
        with svc._commit_lock:
            segments = book.take_back(writer, int(seq), svc.base_version)
            svc._cut.acquire_write()
            try:
                for seg in segments:
                    apply(svc, seg, -1)
            finally:
                svc._cut.release_write()
        return {"writer": writer, "seq": int(seq), "segments": len(segments) - 1}

    def end_lanes(self) -> dict:
        """Forget every lane (the live state stays): the job goes on with global versions only."""
        svc = cast("ParameterService", self)
        with svc._commit_lock:
            if svc.lanes is not None:
                svc.lanes.clear()
        return {}

    def lane_compact(self, floors: dict[str, int], drop_cuts_below: int | None = None) -> dict:
        """Fold each writer's segments up to its floor into one, drop the cut records before
        ``drop_cuts_below`` (:mod:`flinkdl.ps.lane_compact`)."""
        from flinkdl.ps import lane_compact

        book = self._book()
        folded = {w: lane_compact.fold(book, w, int(f)) for w, f in floors.items()}
        dropped = lane_compact.drop_cuts_below(book, int(drop_cuts_below)) if drop_cuts_below else 0
        return {"folded": folded, "cuts_dropped": dropped}

    def lane_info(self, writer: str) -> dict:
        return self._book().info(writer)

    def record_cut(self, cut_id: int, cut: dict[str, int]) -> dict:
        """Record that ``{writer: seq}`` is the model of checkpoint-like ``cut_id`` (see :class:`PsCut`)."""
        return self._book().record_cut(cut_id, cut)

    def cuts(self) -> list[dict]:
        svc = cast("ParameterService", self)
        return self._book().list_cuts() if svc.lanes is not None else []

    def _at_cut(self, cut: dict[str, int]) -> ParameterService:
        """A read-only service holding the lanes' base plus each writer's segments up to the cut."""
        from flinkdl.ps.service import ParameterService

        svc = cast("ParameterService", self)
        book = self._book()
        key = json.dumps(cut, sort_keys=True)
        cached = svc._cut_cache
        if cached is None or cached[0] != key:
            view = ParameterService(svc.shards, shard_ids=svc.shard_ids)
            base = book.base() if book.active() else None
            if base is not None and svc.ckpt is not None:
                view._load(svc.ckpt.restore(base))
            for seg in book.segments(cut):
                apply(view, seg, 1)
            svc._cut_cache = cached = (key, view)
        return cached[1]



def newest_cut_state(uri: str) -> State | None:
    """The model of the newest recorded cut under checkpoint ``uri`` (one server's directory, or a
    sharded PS's root: every shard's part merged), read from the files; None when no cut was recorded.
    ``State.version`` is the cut's id."""
    from flinkdl.ps.checkpoint import CheckpointStore, open_uri
    from flinkdl.ps.commits import is_cluster, shard_dir
    from flinkdl.ps.service import ParameterService

    fs, root = open_uri(uri)
    cuts = LaneBook(fs, root if not is_cluster(uri) else shard_dir(root, 0)).list_cuts()
    if not cuts:
        return None
    newest = cuts[-1]
    shards = sum(1 for i in fs.get_file_info(pafs.FileSelector(root))
                 if i.type == pafs.FileType.Directory and i.base_name.startswith("shard-"))
    dirs = [shard_dir(uri, k) for k in range(shards)] if is_cluster(uri) else [uri]
    out = State(int(newest["id"]), {}, {}, {})
    for k, d in enumerate(dirs):
        store = CheckpointStore(d)
        book = LaneBook(store.fs, store.root)
        base = book.base() if book.active() else None
        shards = store.manifest(base)["shards"] if base is not None else len(dirs)
        view = ParameterService(shards, shard_ids=None if len(dirs) == 1 else [k])
        if base is not None:
            view._load(store.restore(base))
        for seg in book.segments(newest["cut"]):
            apply(view, seg, 1)
        for s, tables in zip(view.shard_ids, view.tables, strict=True):
            for name, t in tables.items():
                out.tables[name] = {"dim": t.dim, "slots": list(t.slots)}
                out.rows[(s, name)] = t.all_rows()
        out.dense.update(view.dense.get())
    return out
