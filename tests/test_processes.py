"""unilseg/processes.py: the port and health checks of the local servers."""

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


def test_http_ok_is_true_only_for_a_200():
    import http.server
    import threading

    from unilseg.processes import http_ok

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Health) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert http_ok(f"{url}/health") and not http_ok(f"{url}/other")
        server.shutdown()
    assert not http_ok(f"http://127.0.0.1:{free_port()}/health")  # nobody listening

    with socket.socket() as s:  # something that answers, but not in HTTP
        s.bind(("127.0.0.1", 0))
        s.listen()

        def junk():
            conn, _ = s.accept()
            conn.sendall(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\r\n")
            conn.close()

        threading.Thread(target=junk, daemon=True).start()
        assert not http_ok(f"http://127.0.0.1:{s.getsockname()[1]}/health")
