"""Loopback port helpers for local servers, tests and benchmarks.

>>> 0 < free_port() < 65536
True
"""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def bindable(port: int) -> bool:
    """True if nothing listens on ``port`` (a bind test: a connect test can self-connect on Linux)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_port_free(port: int, timeout: float) -> bool:
    """Wait until ``port`` can be bound again. A SIGKILLed process's leader thread can be reaped while
    its other threads still hold the listening socket, so 'dead' comes a moment before 'port free'."""
    deadline = time.monotonic() + timeout
    while not bindable(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
