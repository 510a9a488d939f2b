"""``devstack.processes.free_port``: a port is handed out once per process, so two servers
chosen before either binds never get the same one."""

from __future__ import annotations

import socket

from devstack import processes


def unused_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_a_port_is_never_handed_out_twice(monkeypatch):
    first, second = unused_ports(2)
    drawn = iter([first, first, second])
    monkeypatch.setattr(processes.random, "randrange", lambda *_: next(drawn))
    monkeypatch.setattr(processes, "_handed_out", set())
    assert processes.free_port() == first
    assert processes.free_port() == second  # `first` is still free, but already handed out
