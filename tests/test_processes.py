"""unilseg/processes.py: the port check the local stack makes before it starts."""

from __future__ import annotations

import socket

from unilseg.processes import free_port, port_taken


def test_port_taken_sees_a_listener_and_not_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_taken(port)
    assert not port_taken(port)
    assert not port_taken(free_port())
