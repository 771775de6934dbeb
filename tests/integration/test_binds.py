"""Listeners: UNIX sockets, IPv6, and a port somebody else holds."""

import os
import socket
import stat

import pytest

from conftest import TEST_PYTHON, free_port, ipv6_loopback_available


def test_unix_socket_bind_serves_and_the_socket_file_is_mode_0660(arbiter):
    path = arbiter.workdir / "app.sock"
    arbiter.run(workers=1, bind=f"unix:{path}")
    arbiter.wait_ready(1)

    assert arbiter.try_get_json() is not None
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660, oct(stat.S_IMODE(mode))


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_bind_serves(arbiter):
    arbiter.run(workers=1, bind=f"[::1]:{free_port('::1')}")
    arbiter.wait_ready(1)

    assert arbiter.get("/").status_code == 200


def test_address_in_use_exits_2_before_starting_any_worker_and_names_the_address(arbiter):
    # A wrapper interpreter records every invocation, so we can tell whether a worker was started.
    invocations = arbiter.workdir / "python-invocations"
    wrapper = arbiter.workdir / "python"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{invocations}"\nexec "{TEST_PYTHON}" "$@"\n')
    wrapper.chmod(0o755)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        address = f"127.0.0.1:{holder.getsockname()[1]}"

        arbiter.run(workers=2, bind=address, python=str(wrapper))
        code = arbiter.wait_exit(20)

    assert code == 2
    output = arbiter.output()
    assert address in output
    assert "in use" in output.lower()
    started = invocations.read_text() if invocations.exists() else ""
    assert "arbiter_worker" not in started, f"a worker was started: {started}"


def test_websocket_through_a_worker_echoes_messages(arbiter):
    from websockets.sync.client import connect

    arbiter.run(app="websocket_app:app", workers=1)
    arbiter.wait_ready(1)

    with connect(f"ws://{arbiter.bind}/echo", open_timeout=10, close_timeout=5) as websocket:
        websocket.send("hello")
        reply = websocket.recv(timeout=10)

    assert reply.endswith(":hello")
