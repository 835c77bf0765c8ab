"""Client of the parameter server: routes rows to shards, speaks the Flight protocol of ``server.py``.

>>> # c = PsClient("grpc://127.0.0.1:8815", token="t"); c.create_table("emb", 16)
>>> # c.push("emb", ids, delta); rows, exists = c.pull("emb", ids); c.commit()
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pyarrow import flight

from flinkdl.config.schema import PsConfig
from flinkdl.ps.errors import PsError
from flinkdl.ps.fencing import headers
from flinkdl.ps.lane_client import LaneCalls
from flinkdl.ps.store import is_sorted
from flinkdl.ps.wire import batch_rows, dense_items, dense_table, ipc_bytes, ipc_table, rows_batch, shard_of

#: Ids per pull ticket (8 bytes each) and rows per pushed record batch.
PULL_CHUNK = 1 << 18
PUSH_CHUNK = 1 << 16


def read_token(cfg: PsConfig) -> str | None:
    """``cfg.token``, else the stripped content of ``cfg.token_file``, else None."""
    if cfg.token:
        return cfg.token
    if cfg.token_file is not None:
        try:
            return cfg.token_file.read_text().strip() or None
        except OSError as e:
            raise PsError(f"ps.token_file = {str(cfg.token_file)!r}: {e.strerror}") from None
    return None


def addresses_of(address: str | Sequence[str]) -> list[str]:
    """``ps.address`` as a list of ``scheme://host:port``: one server, or a sharded PS's shards in order
    (a list, or one string with commas)."""
    items = [address] if isinstance(address, str) else list(address)
    out = [a.strip() for item in items for a in item.split(",") if a.strip()]
    if not out:
        raise PsError("ps.address is empty")
    return [a if "://" in a else f"grpc://{a}" for a in out]


class PsClient(LaneCalls):
    """Connections to a parameter server: one process (its ``shards`` read on connect), or a sharded PS
    of several processes, one shard each, given in shard order (shard 0 first: it coordinates
    commits, rollbacks and fencing, and holds the dense variables)."""

    def __init__(self, address: str | Sequence[str], token: str | None = None, tls_root_certs: bytes | None = None,
                 connect_timeout_s: float = 0.0) -> None:
        kwargs = {"tls_root_certs": tls_root_certs} if tls_root_certs else {}
        self.addresses = addresses_of(address)
        self.address = ",".join(self.addresses)
        self._clients = [flight.connect(a, **kwargs) for a in self.addresses]
        self._auth = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self.writer: str | None = None
        self.epoch: int | None = None
        self._lane: int | None = None  # the fenced writer's last committed lane segment, once known
        self.incarnations: list[str | None] = [None] * len(self._clients)
        self._set_options()
        deadline = time.monotonic() + connect_timeout_s
        healths = [self._wait_health(k, deadline) for k in range(len(self._clients))]
        if len(healths) == 1:
            self.shards = int(healths[0]["shards"])
            self._route = [0] * self.shards
        else:
            self.shards = len(healths)
            self._route = list(range(self.shards))
            for k, h in enumerate(healths):
                if h.get("shard_ids") != [k] or int(h["shards"]) != self.shards:
                    raise PsError(f"{self.addresses[k]} is not shard {k} of a {self.shards}-shard PS (it holds "
                                  f"shards {h.get('shard_ids')} of {h['shards']}): list the shards in order")
        self.incarnations = [h.get("incarnation") for h in healths]
        self._set_options()
        self._pool = ThreadPoolExecutor(max(1, self.shards)) if self.shards > 1 else None
        self._widths: dict[str, int] = {}

    def _wait_health(self, k: int, deadline: float) -> dict:
        while True:
            try:
                return json.loads(self._action("health", None, k))
            except flight.FlightUnavailableError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _set_options(self) -> None:
        """Per connection: the token, and for writes the fencing epoch and the incarnation seen."""
        self._opts = [flight.FlightCallOptions(headers=self._auth + headers(self.writer, self.epoch, inc))
                      for inc in self.incarnations]

    def fence(self, writer: str) -> int:
        """Take a new epoch for ``writer`` (e.g. one name per Flink subtask): from now on the server
        refuses writes of this name's earlier clients; this client's writes carry the epoch."""
        epoch = int(self._json("fence", {"writer": writer})["epoch"])
        self.writer, self.epoch, self._lane = writer, epoch, None
        self._set_options()
        return epoch

    @classmethod
    def from_config(cls, cfg: PsConfig, connect_timeout_s: float | None = None) -> PsClient:
        """A client for ``cfg`` (address, token, TLS roots), waiting up to ``cfg.connect_timeout_s``."""
        certs = cfg.tls_root_certs.read_bytes() if cfg.tls_root_certs else None
        timeout = cfg.connect_timeout_s if connect_timeout_s is None else connect_timeout_s
        return cls(cfg.address, read_token(cfg), certs, connect_timeout_s=timeout)

    def role(self) -> str:
        """What this client's token may do: ``read``, ``write`` or ``admin`` (see :mod:`flinkdl.ps.auth`)."""
        return str(self._json("whoami")["role"])

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()
        for c in self._clients:
            c.close()

    def __enter__(self) -> PsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ actions

    def _action(self, kind: str, body: dict | bytes | None = None, conn: int = 0) -> bytes:
        data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        try:
            results = list(self._clients[conn].do_action(flight.Action(kind, data), self._opts[conn]))
        except (flight.FlightServerError, flight.FlightUnauthorizedError) as e:
            raise PsError(_message(e)) from None
        return results[0].body.to_pybytes() if results else b""

    def _json(self, kind: str, body: dict | None = None, conn: int = 0):
        return json.loads(self._action(kind, body, conn))

    def health(self) -> dict:
        return self._json("health")

    def allreduce(self, key: str, round_no: int, rank: int, world: int, blob: bytes, timeout_s: float) -> list[bytes]:
        """Hand ``blob`` to shard 0's rendezvous; every rank's blob of that round, in rank order
        (:mod:`flinkdl.parallel.rendezvous`)."""
        head = json.dumps({"key": key, "round": round_no, "rank": rank, "world": world, "timeout_s": timeout_s})
        try:
            results = self._clients[0].do_action(flight.Action("allreduce", head.encode() + b"\n" + blob),
                                                 self._opts[0])
            return [r.body.to_pybytes() for r in results]
        except (flight.FlightServerError, flight.FlightUnauthorizedError) as e:
            raise PsError(_message(e)) from None

    def create_table(self, name: str, dim: int, slots: list[str] | tuple[str, ...] = ()) -> dict:
        """Create (or find, with the same spec) a table of ``dim`` values plus ``dim`` per slot."""
        for k in range(len(self._clients)):
            out = self._json("create_table", {"name": name, "dim": dim, "slots": list(slots)}, k)
        return out if len(self._clients) == 1 else self.describe(name)

    def describe(self, name: str) -> dict:
        parts = [self._json("describe", {"name": name}, k) for k in range(len(self._clients))]
        if len(parts) == 1:
            return parts[0]
        return {**parts[0], "rows": sum(p["rows"] for p in parts),
                "rows_per_shard": [r for p in parts for r in p["rows_per_shard"]]}

    def list_tables(self) -> list[str]:
        return self._json("list_tables")

    def commit(self) -> dict:
        """Persist a new version (rows changed since the last one, on every shard); returns its summary.
        Refused when a server restarted since this client connected (its uncommitted pushes are gone)."""
        return self._json("commit", {"incarnations": self.incarnations})

    def annotate(self, version: int, trained_event_ts: int) -> dict:
        """Raise committed ``version``'s ``trained_event_ts`` (epoch ms of the newest event trained
        into it; later versions inherit it) to at least this value."""
        return self._json("annotate", {"version": int(version), "trained_event_ts": int(trained_event_ts)})

    def versions(self) -> list[dict]:
        """Committed versions: ``version, parent, kind, rows, bytes, created, trained_event_ts``."""
        return self._json("versions")

    def rollback(self, version: int) -> dict:
        return self._json("rollback", {"version": version})

    def dense_add(self, delta: dict[str, np.ndarray], init: dict[str, np.ndarray] | None = None) -> None:
        """Add dense deltas; a variable created by this call starts at ``init[name]`` (else zeros)."""
        self._action("dense_add", ipc_bytes(dense_table(delta, init)))

    def dense_get(self, version: int | str | dict | None = None) -> dict[str, np.ndarray]:
        body = self._action("dense_get", {"version": version})
        return dense_items(ipc_table(body))

    # ------------------------------------------------------------------ rows

    def _width(self, table: str) -> int:
        if table not in self._widths:
            self._widths[table] = int(self.describe(table)["width"])
        return self._widths[table]

    def _split(self, ids: np.ndarray) -> list[np.ndarray]:
        """Indexes of ``ids`` per shard."""
        if self.shards == 1:
            return [np.arange(len(ids))]
        s = shard_of(ids, self.shards)
        return [np.flatnonzero(s == k) for k in range(self.shards)]

    def _map(self, fn, items: list) -> list:
        if self._pool is None or len(items) == 1:
            return [fn(*x) for x in items]
        return list(self._pool.map(lambda x: fn(*x), items))

    def push(self, table: str, ids: np.ndarray, delta: np.ndarray, init: np.ndarray | None = None,
             assign: bool = False) -> int:
        """Add ``delta [n, width]`` to the rows of ``ids``; ``init`` is where rows created now start.
        ``assign``: set the rows to ``delta`` instead (a single writer pushing its values)."""
        ids = np.ascontiguousarray(ids, np.int64)
        delta = np.asarray(delta, np.float32)
        delta = delta if delta.ndim == 2 else delta.reshape(len(ids), -1)
        init = None if assign else init  # an assigned row needs no start value
        parts = [(k, idx) for k, idx in enumerate(self._split(ids)) if len(idx)]

        def one(shard: int, idx: np.ndarray) -> None:
            if len(idx) == len(ids) and is_sorted(ids):
                self._put(table, shard, ids, delta, init, assign)
                return
            idx = idx[np.argsort(ids[idx], kind="stable")]  # the server looks sorted ids up fastest
            self._put(table, shard, ids[idx], np.take(delta, idx, axis=0),
                      None if init is None else np.take(init, idx, axis=0), assign)

        self._map(one, parts)
        return len(ids)

    def _put(self, table: str, shard: int, ids: np.ndarray, delta: np.ndarray, init: np.ndarray | None,
             assign: bool = False) -> None:
        first = rows_batch(ids[:PUSH_CHUNK], delta[:PUSH_CHUNK], None if init is None else init[:PUSH_CHUNK])
        cmd = {"op": "push", "table": table, "shard": shard, **({"assign": True} if assign else {})}
        desc = flight.FlightDescriptor.for_command(json.dumps(cmd))
        conn = self._route[shard]
        try:
            writer, _ = self._clients[conn].do_put(desc, first.schema, self._opts[conn])
            writer.write_batch(first)
            for lo in range(PUSH_CHUNK, len(ids), PUSH_CHUNK):
                hi = lo + PUSH_CHUNK
                writer.write_batch(rows_batch(ids[lo:hi], delta[lo:hi], None if init is None else init[lo:hi]))
            writer.done_writing()
            writer.close()
        except (flight.FlightServerError, flight.FlightUnauthorizedError) as e:
            raise PsError(_message(e)) from None

    def _pin(self, version: int | str | dict | None) -> int | str | dict | None:
        """``"latest"`` as one number on a sharded PS, so every shard answers the same version even
        if a commit lands between their answers."""
        if version != "latest" or len(self._clients) == 1:
            return version
        committed = self.versions()
        if not committed:
            raise PsError("no committed version yet")
        return max(int(v["version"]) for v in committed)

    def pull(self, table: str, ids: np.ndarray,
             version: int | str | dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows [n, width], exists [n])`` of live rows, or of a committed ``version`` (``"latest"``,
        or ``{"cut": {writer: seq}}``: the lanes' base plus those segments)."""
        ids = np.ascontiguousarray(ids, np.int64)
        width = self._width(table)
        version = self._pin(version)
        rows = np.zeros((len(ids), width), np.float32)
        exists = np.zeros(len(ids), bool)
        parts = [(k, idx) for k, idx in enumerate(self._split(ids)) if len(idx)]

        def one(shard: int, idx: np.ndarray) -> None:
            for lo in range(0, len(idx), PULL_CHUNK):
                sel = idx[lo:lo + PULL_CHUNK]
                whole = len(sel) == len(ids)
                for start, r, e in self._stream(table, shard, ids[sel], version):
                    part = slice(start, start + len(e)) if whole else sel[start:start + len(e)]
                    rows[part], exists[part] = r, e

        self._map(one, parts)
        return rows, exists

    def pull_all(self, table: str, version: int | str | dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every ``(ids, rows)`` of the table (live or a committed version)."""
        version = self._pin(version)
        got = self._map(lambda s: self._get(table, s, None, version)[:2], [(s,) for s in range(self.shards)])
        return np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])

    def _stream(self, table: str, shard: int, ids: np.ndarray | None, version: int | str | dict | None):
        """Yield ``(offset, rows, exists)`` per answered batch (no concatenation)."""
        head = {"table": table, "shard": shard, "version": version, "all": ids is None}
        ticket = json.dumps(head).encode() + b"\n" + (b"" if ids is None else ids.tobytes())
        conn = self._route[shard]
        try:
            offset = 0
            for chunk in self._clients[conn].do_get(flight.Ticket(ticket), self._opts[conn]):
                _, rows, _ = batch_rows(chunk.data)
                exists = chunk.data.column(2).to_numpy(zero_copy_only=False)
                yield offset, rows, exists
                offset += len(exists)
        except (flight.FlightServerError, flight.FlightUnauthorizedError) as e:
            raise PsError(_message(e)) from None

    def _get(self, table: str, shard: int, ids: np.ndarray | None,
             version: int | str | dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every answered ``(ids, rows, exists)`` of one ticket, concatenated."""
        head = {"table": table, "shard": shard, "version": version, "all": ids is None}
        ticket = json.dumps(head).encode() + b"\n" + (b"" if ids is None else ids.tobytes())
        conn = self._route[shard]
        try:
            data = self._clients[conn].do_get(flight.Ticket(ticket), self._opts[conn]).read_all()
        except (flight.FlightServerError, flight.FlightUnauthorizedError) as e:
            raise PsError(_message(e)) from None
        got_ids, rows, _ = batch_rows(data)
        return got_ids, rows, data.column("exists").to_numpy()


def _message(e: Exception) -> str:
    """The server's message without gRPC's detail suffix."""
    text = str(e)
    return text.split(". Detail:")[0].split("flinkdl ps: ", 1)[-1]
