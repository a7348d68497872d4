from __future__ import annotations

import errno
import socket
import time

from devtools import services


def _port_left_in_time_wait() -> int:
    """A loopback port whose only socket is a closed connection waiting in TIME_WAIT, as
    after a quick restart of a server that closed its connections first."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((services.LOOPBACK, 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection((services.LOOPBACK, port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        assert client.recv(1) == b""
        client.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as plain:
            try:
                plain.bind((services.LOOPBACK, port))
            except OSError as error:
                assert error.errno == errno.EADDRINUSE
                return port
        time.sleep(0.05)
    raise AssertionError(f"port {port} never reached TIME_WAIT")


def test_a_port_with_only_time_wait_connections_is_free_for_a_server():
    port = _port_left_in_time_wait()
    assert services.port_is_free(port)


def test_a_port_with_a_listener_is_busy():
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((services.LOOPBACK, 0))
        listener.listen()
        assert not services.port_is_free(listener.getsockname()[1])
