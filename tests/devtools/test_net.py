"""Loopback port helpers."""

import socket

from flinkdl.devtools.net import bindable, free_port, listening, wait_port_free


def test_free_port_is_bindable_then_taken_while_listening() -> None:
    port = free_port()
    assert bindable(port) and not listening(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert listening(port) and not bindable(port)
        assert not wait_port_free(port, 0.1)
    assert wait_port_free(port, 5.0)
