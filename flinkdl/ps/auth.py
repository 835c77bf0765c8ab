"""Who may call what on the parameter server: three roles, each with its own bearer token.

- ``read``: pull, describe, list tables, dense values, versions, health (serving jobs, export);
- ``write``: all of that, plus push, create tables, dense deltas, commit and annotate (trainers);
- ``admin``: all of that, plus rollback (operators, and exactly-once trainers, which roll back on
  recovery).

Tokens come from the environment (``FLINKDL_PS_TOKEN`` = write, ``FLINKDL_PS_READ_TOKEN``,
``FLINKDL_PS_ADMIN_TOKEN``) or a YAML file mapping role → token, never from a command line.
A server with no token at all lets every caller do everything, so it binds to loopback only
unless started with ``--insecure``.

>>> role_allows("read", "pull"), role_allows("read", "push"), role_allows("write", "rollback")
(True, False, False)
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml
from pyarrow import flight

from flinkdl.ps.errors import PsError

ROLES = ("read", "write", "admin")  # each may do what the ones before it may
ENV_VARS = {"write": "FLINKDL_PS_TOKEN", "read": "FLINKDL_PS_READ_TOKEN", "admin": "FLINKDL_PS_ADMIN_TOKEN"}
#: The role each call needs; a call not listed needs ``admin``.
NEEDS = {
    "pull": "read", "health": "read", "describe": "read", "list_tables": "read", "dense_get": "read",
    "versions": "read", "whoami": "read",
    "push": "write", "create_table": "write", "dense_add": "write", "commit": "write", "fence": "write",
    "annotate": "write", "lane_commit": "write", "record_cut": "write", "lane_compact": "write",
    "lane_info": "read", "cuts": "read", "allreduce": "write",
    "rollback": "admin", "lane_rollback": "admin", "end_lanes": "admin",
}
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

#: Called with ``(op, reason)`` for every refused call; reason is ``unauthenticated`` or ``permission_denied``.
OnRefused = Callable[[str, str], None]


def role_allows(role: str, op: str) -> bool:
    return ROLES.index(role) >= ROLES.index(NEEDS.get(op, "admin"))


def load_tokens(environ: Mapping[str, str], token_file: str | Path | None = None) -> dict[str, str]:
    """role → token, from ``token_file`` (YAML mapping) and then the environment (which wins)."""
    tokens: dict[str, str] = {}
    if token_file is not None:
        try:
            doc = yaml.safe_load(Path(token_file).read_text())
        except OSError as e:
            raise PsError(f"--token-file {str(token_file)!r}: {e.strerror}") from None
        if not isinstance(doc, dict) or not set(doc) <= set(ROLES):
            raise PsError(f"--token-file {str(token_file)!r}: expected a mapping of roles {ROLES} to tokens")
        tokens.update({str(k): str(v) for k, v in doc.items() if v})
    tokens.update({role: environ[var] for role, var in ENV_VARS.items() if environ.get(var)})
    if len(set(tokens.values())) < len(tokens):
        raise PsError("two roles share one token: give each role its own")
    return tokens


def check_bind(host: str, tokens: Mapping[str, str], insecure: bool) -> None:
    """Refuse to serve a non-loopback address without a token, unless ``insecure``."""
    if host not in LOOPBACK and not tokens and not insecure:
        raise PsError(f"refusing to serve on {host} without a token: anyone who reaches the port could push rows "
                      f"or roll the model back. Set {ENV_VARS['write']} (and {ENV_VARS['read']}, "
                      f"{ENV_VARS['admin']}) or --token-file, or pass --insecure to accept it")


class _Role(flight.ServerMiddleware):
    def __init__(self, role: str) -> None:
        self.role = role


class TokenAuthFactory(flight.ServerMiddlewareFactory):
    """Maps the ``authorization: Bearer TOKEN`` header to a role; refuses a call without a known token."""

    def __init__(self, tokens: Mapping[str, str], on_refused: OnRefused | None = None) -> None:
        super().__init__()
        self._bearers = [(f"Bearer {t}".encode(), role) for role, t in tokens.items()]
        self._on_refused = on_refused

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> _Role:
        for given in headers.get("authorization", []):
            for bearer, role in self._bearers:  # compare_digest: no timing hint of how much matched
                if hmac.compare_digest(given.encode(), bearer):
                    return _Role(role)
        if self._on_refused is not None:
            self._on_refused(str(info.method).rsplit(".", 1)[-1].lower(), "unauthenticated")
        raise flight.FlightUnauthenticatedError("flinkdl ps: missing or wrong token")


def authorize(context: flight.ServerCallContext, op: str, on_refused: OnRefused | None = None) -> str:
    """The caller's role (``admin`` on a server without tokens); raises if it may not call ``op``."""
    mw = context.get_middleware("auth")
    role = mw.role if isinstance(mw, _Role) else "admin"
    if not role_allows(role, op):
        if on_refused is not None:
            on_refused(op, "permission_denied")
        raise flight.FlightUnauthorizedError(
            f"flinkdl ps: permission denied: a {role} token may not {op} (needs {NEEDS.get(op, 'admin')})")
    return role
