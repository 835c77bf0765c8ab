"""A small client for Flink's REST API (the parts the CLI needs).

>>> FlinkRest("http://127.0.0.1:8081").url
'http://127.0.0.1:8081'
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


class FlinkRestError(RuntimeError):
    pass


@dataclass(frozen=True)
class JobInfo:
    id: str
    name: str
    state: str
    start_time_ms: int
    duration_ms: int
    last_checkpoint: dict | None = None


class FlinkRest:
    def __init__(self, url: str = "http://127.0.0.1:8081", timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, body: dict | None = None, method: str | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise FlinkRestError(f"{method or 'GET'} {path}: HTTP {e.code}: {e.read().decode()[:500]}") from None
        except (urllib.error.URLError, OSError) as e:
            raise FlinkRestError(f"Flink REST API at {self.url} unreachable: {e}") from None
        return json.loads(raw) if raw else {}

    def reachable(self) -> bool:
        try:
            self.overview()
            return True
        except FlinkRestError:
            return False

    def overview(self) -> dict:
        """Cluster overview: ``taskmanagers``, ``slots-total``, ``slots-available``, job counts."""
        return self._call("/overview")

    def jobs(self) -> list[JobInfo]:
        out = []
        for j in self._call("/jobs/overview").get("jobs", []):
            out.append(JobInfo(j["jid"], j["name"], j["state"], j["start-time"], j["duration"],
                               self.last_checkpoint(j["jid"])))
        return out

    def job(self, job_id: str) -> dict:
        return self._call(f"/jobs/{job_id}")

    def last_checkpoint(self, job_id: str) -> dict | None:
        try:
            latest = self._call(f"/jobs/{job_id}/checkpoints").get("latest", {}) or {}
        except FlinkRestError:
            return None
        done = latest.get("completed")
        return None if not done else {"id": done["id"], "path": done.get("external_path"),
                                      "completed_ms": done.get("latest_ack_timestamp")}

    def stop_with_savepoint(self, job_id: str, target_dir: str, timeout: float = 120.0) -> str:
        """Stop the job with a savepoint in ``target_dir``; returns the savepoint path."""
        trigger = self._call(f"/jobs/{job_id}/stop", {"targetDirectory": target_dir, "drain": False})
        request_id = trigger["request-id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self._call(f"/jobs/{job_id}/savepoints/{request_id}")
            if status["status"]["id"] == "COMPLETED":
                op = status.get("operation", {})
                if "failure-cause" in op:
                    trace = op["failure-cause"].get("stack-trace", "")[:800]
                    raise FlinkRestError(f"savepoint of {job_id} failed: {trace}")
                return op["location"]
            time.sleep(0.5)
        raise FlinkRestError(f"savepoint of job {job_id} not done after {timeout:.0f}s")

    def wait_for_state(self, job_id: str, states: set[str], timeout: float = 120.0) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.job(job_id)["state"]
            if state in states:
                return state
            time.sleep(0.5)
        raise FlinkRestError(f"job {job_id} not in {sorted(states)} after {timeout:.0f}s")
