"""Arrow Flight front end of the parameter server (``flinkdl ps serve``).

Protocol (see ``docs/PS.md``):

- ``DoPut``, descriptor command ``{"op": "push", "table": T, "shard": S}``: a stream of
  ``(id, row[, init])`` batches; all batches are checked, then applied at once (delta-add).
- ``DoGet``, ticket ``JSON header + b"\\n" + int64 ids`` (``{"table", "shard", "version"}``; no ids
  bytes = every row): a stream of ``(id, row, exists)`` batches.
- ``DoAction``: ``health``, ``create_table``, ``describe``, ``list_tables``, ``dense_add`` (body: Arrow
  IPC ``(name, shape, value, init)``), ``dense_get`` (→ IPC), ``commit``, ``annotate``, ``versions``, ``rollback``,
  ``fence``, the writer lanes' ``lane_commit``, ``lane_rollback``, ``lane_info``, ``record_cut``, ``cuts``,
  ``end_lanes``, ``lane_compact`` (:mod:`flinkdl.ps.lanes`); ``allreduce`` (body: JSON header, ``\n``, a blob;
  answers every rank's blob once all came: :mod:`flinkdl.parallel.rendezvous`); between the shards of a sharded PS
  (:mod:`flinkdl.ps.member`)
  ``prepare``, ``confirm``, ``abort``, ``rollback_local``, ``fence_set``; bodies and results are JSON unless noted.

Writes are fenced (:mod:`flinkdl.ps.fencing`): a call whose writer header carries an old epoch, or
whose incarnation header names an earlier start of this server, is refused.

Every call is checked against the caller's role (``authorization: Bearer TOKEN`` header; roles
and their tokens: :mod:`flinkdl.ps.auth`); TLS is enabled by passing a certificate and key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading

import numpy as np
import pyarrow as pa
from pyarrow import flight

from flinkdl.parallel.rendezvous import Rendezvous
from flinkdl.ps.auth import TokenAuthFactory, authorize, check_bind
from flinkdl.ps.checkpoint import CheckpointStore
from flinkdl.ps.commits import EpochFile
from flinkdl.ps.errors import PsError
from flinkdl.ps.fencing import WRITES, CallMetaFactory, Fences, call_meta, parse_writer
from flinkdl.ps.member import ShardMember
from flinkdl.ps.service import ParameterService
from flinkdl.ps.wire import batch_rows, dense_items, dense_table, ipc_bytes, ipc_table, rows_schema

log = logging.getLogger(__name__)
PULL_BATCH_ROWS = 1 << 16


def _refuse(e: Exception) -> Exception:
    """Errors the caller should read: bad requests become Flight server errors with the message."""
    return flight.FlightServerError(f"flinkdl ps: {e}")


def pull_batches(ids: np.ndarray, rows: np.ndarray, exists: np.ndarray):
    """``(id, row, exists)`` record batches of at most ``PULL_BATCH_ROWS`` rows."""
    width = rows.shape[1] if rows.ndim == 2 else 0
    schema = rows_schema(width).append(pa.field("exists", pa.bool_(), False))
    flat = pa.array(np.ascontiguousarray(rows, np.float32).reshape(-1))
    for lo in range(0, max(len(ids), 1), PULL_BATCH_ROWS):
        hi = min(lo + PULL_BATCH_ROWS, len(ids))
        yield pa.record_batch([pa.array(ids[lo:hi], pa.int64()),
                               pa.FixedSizeListArray.from_arrays(flat.slice(lo * width, (hi - lo) * width), width),
                               pa.array(exists[lo:hi], pa.bool_())], schema=schema)


class PsFlightServer(flight.FlightServerBase):
    """Flight server over a :class:`ParameterService`."""

    def __init__(self, service: ParameterService, location: str, tokens: dict[str, str] | None = None,
                 tls_certificates: list[tuple[bytes, bytes]] | None = None, metrics=None) -> None:
        self.service = service
        self.metrics = metrics  # flinkdl.ps.metrics.ServerMetrics or None
        self._on_refused = metrics.auth_refused if metrics is not None else None
        self.rendezvous = Rendezvous()  # synchronous training's gradient exchange (flinkdl.parallel)
        middleware: dict[str, flight.ServerMiddlewareFactory] = {"meta": CallMetaFactory()}
        if tokens:
            middleware["auth"] = TokenAuthFactory(tokens, self._on_refused)
        super().__init__(location, middleware=middleware, tls_certificates=tls_certificates or [])

    # ------------------------------------------------------------------ push

    def _check_write(self, context, op: str) -> None:
        """Refuse a write of a stale writer (older epoch) or of one that saw an earlier start of this server."""
        writer, incarnation = call_meta(context)
        try:
            if incarnation is not None and op not in ("rollback", "lane_rollback") \
                    and incarnation != self.service.incarnation:
                raise PsError("this parameter server restarted since the writer connected: the pushes it made "
                              "since the last committed version are gone; nothing applied (reconnect, roll back)")
            if writer is not None:
                self.service.fences.check(*parse_writer(writer))
        except PsError as e:
            if self.metrics is not None:
                self.metrics.refused.labels(op).inc()
            raise _refuse(e) from e

    def do_put(self, context, descriptor, reader, writer):
        authorize(context, "push", self._on_refused)
        self._check_write(context, "push")
        with self._timed("push") as m:
            try:
                cmd = json.loads(descriptor.command)
                if cmd.get("op") != "push":
                    raise PsError(f"unknown DoPut op {cmd.get('op')!r} (known: push)")
                chunks = [chunk.data for chunk in reader]
                parts = [batch_rows(c) for c in chunks]  # each batch: zero-copy numpy views
                self.service.push_many(cmd["table"], int(cmd.get("shard", 0)), parts, assign=bool(cmd.get("assign")),
                                       writer=_writer_name(context))
                m["rows"] = sum(c.num_rows for c in chunks)
            except (PsError, ValueError, KeyError, pa.ArrowInvalid) as e:
                raise _refuse(e) from e

    # ------------------------------------------------------------------ pull

    def do_get(self, context, ticket):
        authorize(context, "pull", self._on_refused)
        with self._timed("pull") as m:
            ids, rows, exists = self._pull(ticket)
            m["rows"] = len(ids)
        gen = pull_batches(ids, rows, exists)
        first = next(gen)
        return flight.GeneratorStream(first.schema, _chain(first, gen))

    def _pull(self, ticket):
        try:
            raw = ticket.ticket
            head, _, body = raw.partition(b"\n")
            cmd = json.loads(head)
            ids = np.frombuffer(body, np.int64) if body else None
            if cmd.get("all"):
                ids = None
            elif ids is None:
                ids = np.zeros(0, np.int64)
            return self.service.pull(cmd["table"], int(cmd.get("shard", 0)), ids, cmd.get("version"))
        except (PsError, ValueError, KeyError) as e:
            raise _refuse(e) from e

    # ------------------------------------------------------------------ actions

    def list_actions(self, context):
        return [(a, a) for a in ("health", "create_table", "describe", "list_tables", "dense_add",
                                 "dense_get", "commit", "annotate", "versions", "rollback", "whoami", "fence",
                                 "fence_set", "prepare", "confirm", "abort", "rollback_local", "lane_commit",
                                 "lane_rollback", "lane_info", "record_cut", "cuts", "end_lanes", "lane_compact",
                                 "allreduce")]

    def do_action(self, context, action):
        role = authorize(context, action.type, self._on_refused)
        if action.type == "whoami":
            return [json.dumps({"role": role}).encode()]
        if action.type == "allreduce":  # blocks until every rank came: no timing, no service lock
            return self._allreduce(action.body.to_pybytes())
        if action.type in WRITES:
            self._check_write(context, action.type)
        with self._timed(action.type):
            out = self._action(action, _writer_name(context))
        if action.type in ("commit", "rollback") and self.metrics is not None:
            self.metrics.version.set(json.loads(out[0]).get("version", 0) or 0)
        return out

    def _allreduce(self, body: bytes) -> list[bytes]:
        head, _, blob = body.partition(b"\n")
        try:
            a = json.loads(head)
            return self.rendezvous.gather(str(a["key"]), int(a["round"]), int(a["rank"]), int(a["world"]), blob,
                                          float(a["timeout_s"]))
        except (PsError, ValueError, KeyError) as e:
            raise _refuse(e) from e

    def _timed(self, op: str):
        return self.metrics.timed(op) if self.metrics is not None else contextlib.nullcontext({"rows": 0})

    def _action(self, action, writer: str | None = None):
        kind, body = action.type, action.body.to_pybytes() if action.body else b""
        svc = self.service
        try:
            if kind == "dense_add":
                table = ipc_table(body)
                init = dense_items(table, "init") if "init" in table.column_names else None
                svc.dense_add(dense_items(table), init, writer)
                return [b"{}"]
            args = json.loads(body) if body else {}
            if kind == "dense_get":
                return [ipc_bytes(dense_table(svc.dense_get(args.get("version"))))]
            out: object
            if kind == "health":
                out = svc.health()
            elif kind == "create_table":
                out = svc.create_table(args["name"], int(args["dim"]), args.get("slots", []))
            elif kind == "describe":
                out = svc.describe(args["name"])
            elif kind == "list_tables":
                out = svc.list_tables()
            elif kind == "commit":
                out = self._commit(args.get("incarnations"))
            elif kind == "annotate":
                out = svc.annotate(int(args["version"]), int(args["trained_event_ts"]))
            elif kind == "versions":
                out = svc.versions()
            elif kind == "rollback":
                out = svc.rollback(int(args["version"]))
            elif kind == "fence":
                out = {"writer": args["writer"], "epoch": svc.fence(str(args["writer"]))}
            elif kind == "fence_set":
                svc.fences.raise_to(str(args["writer"]), int(args["epoch"]))
                out = {}
            elif kind == "lane_commit":
                out = svc.lane_commit(str(args["writer"]), args.get("seq"))
            elif kind == "lane_rollback":
                out = svc.lane_rollback(str(args["writer"]), int(args["seq"]))
            elif kind == "end_lanes":
                out = svc.end_lanes()
            elif kind == "lane_info":
                out = svc.lane_info(str(args["writer"]))
            elif kind == "record_cut":
                out = svc.record_cut(int(args["id"]), dict(args["cut"]))
            elif kind == "cuts":
                out = svc.cuts()
            elif kind == "lane_compact":
                out = svc.lane_compact(dict(args["floors"]), args.get("drop_cuts_below"))
            elif kind in ("prepare", "confirm", "abort", "rollback_local"):
                out = self._member_action(kind, args)
            else:
                raise PsError(f"unknown action {kind!r}")
        except (PsError, ValueError, KeyError, pa.ArrowInvalid) as e:
            raise _refuse(e) from e
        return [json.dumps(out).encode()]


    def _commit(self, incarnations: list[str] | None) -> dict:
        svc = self.service
        if isinstance(svc, ShardMember):
            return svc.commit(incarnations)
        if incarnations is not None and incarnations != [svc.incarnation]:
            raise PsError("this parameter server restarted since the writer connected: nothing committed")
        return svc.commit()

    def _member_action(self, kind: str, args: dict) -> dict:
        svc = self.service
        if not isinstance(svc, ShardMember):
            raise PsError(f"{kind} is a call between the shards of a sharded PS; this server is not one")
        if kind == "prepare":
            return svc.prepare_checked(int(args["version"]), args.get("parent"), args.get("incarnation"))
        if kind == "confirm":
            return svc.confirm(int(args["version"]))
        if kind == "abort":
            return svc.abort(int(args["version"]))
        return svc.rollback_local(int(args["version"]))


def _writer_name(context) -> str | None:
    """The writer name of a fenced call (its pushes go to that writer's lane), else None."""
    writer, _ = call_meta(context)
    return parse_writer(writer)[0] if writer is not None else None


def _chain(first, rest):
    yield first
    yield from rest


def build_service(checkpoint_dir: str | None, shards: int = 1, retain: int = 5, compact_after: int = 8,
                  cluster: list[str] | None = None, shard_index: int | None = None,
                  tokens: dict[str, str] | None = None) -> ParameterService:
    """The service of one server process: all ``shards`` in it, or shard ``shard_index`` of ``cluster``."""
    if cluster:
        if shard_index is None or checkpoint_dir is None or shards != 1:
            raise PsError("--cluster needs --shard-index and --checkpoint-dir (shared by every shard), "
                          "and one shard per process (no --shards)")
        if tokens and "admin" not in tokens:
            raise PsError("a sharded PS with tokens needs an admin token: its shards call each other with it")
        return ShardMember(shard_index, cluster, checkpoint_dir, retain, compact_after, (tokens or {}).get("admin"))
    ckpt = CheckpointStore(checkpoint_dir, shards, retain, compact_after) if checkpoint_dir else None
    service = ParameterService(shards, ckpt)
    if checkpoint_dir:
        epochs = EpochFile(checkpoint_dir)
        service.fences = Fences(epochs.load(), epochs.save)
    return service


def build_server(host: str = "127.0.0.1", port: int = 0, checkpoint_dir: str | None = None,
                 tokens: dict[str, str] | None = None, shards: int = 1, tls_cert: str | None = None,
                 tls_key: str | None = None, retain: int = 5, compact_after: int = 8,
                 metrics_port: int | None = None, insecure: bool = False,
                 cluster: list[str] | None = None, shard_index: int | None = None) -> PsFlightServer:
    """A started server (Flight serves from the constructor); ``server.port`` is the bound port.

    ``tokens``: role → token (:mod:`flinkdl.ps.auth`); without any, only loopback is served unless
    ``insecure``. ``cluster``: every shard process's address in shard order, this one at ``shard_index``.
    """
    check_bind(host, tokens or {}, insecure)
    if insecure and not tokens:
        log.warning("flinkdl ps: serving %s with no token (--insecure): anyone who reaches it can write", host)
    service = build_service(checkpoint_dir, shards, retain, compact_after, cluster, shard_index, tokens)
    certs = None
    scheme = "grpc+tcp"
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise PsError("TLS needs both --tls-cert and --tls-key")
        with open(tls_cert, "rb") as c, open(tls_key, "rb") as k:
            certs = [(c.read(), k.read())]
        scheme = "grpc+tls"
    metrics = None
    if metrics_port is not None:
        from flinkdl.ps.metrics import ServerMetrics

        metrics = ServerMetrics(metrics_port, host)
    return PsFlightServer(service, f"{scheme}://{host}:{port}", tokens, certs, metrics)


def serve_forever(server: PsFlightServer, announce: bool = True, grace_s: float = 10.0) -> None:
    """Block until SIGTERM/SIGINT, then shut down (waiting at most ``grace_s`` for in-flight calls)."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    if announce:
        h = server.service.health()
        print(json.dumps({"listening": server.port, **h}), flush=True)
    done.wait()
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    stopper.join(grace_s)  # in-flight calls may finish; a client holding a stream open cannot block exit
