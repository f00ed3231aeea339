"""Lab front-ends under abuse (issue 16 item 5): a malformed Modbus MBAP closes the connection, a
flooding socketcand client cannot starve the others."""
from __future__ import annotations

import socket
import struct

import pytest

from v2g_bench.harness.asyncrt import LoopThread
from v2g_bench.lab.plant import Plant


@pytest.fixture
def modbus_port():
    from v2g_bench.lab.frontends.modbus import start_modbus
    loop = LoopThread("modbus-hardening")
    fe, port = loop.run(start_modbus(Plant(), "127.0.0.1", 0), 10)
    try:
        yield port
    finally:
        loop.run(fe.stop(), 10)
        loop.stop()


def _fc03(tid: int, unit: int = 1, addr: int = 0x219, *, pid: int = 0, length: int = 6) -> bytes:
    return struct.pack(">HHHBBHH", tid, pid, length, unit, 3, addr, 1)


def _closed_within(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("bad, why", [
    (_fc03(1, pid=1), "protocol id 1"),
    (_fc03(2, length=0), "length 0"),
    (_fc03(3, length=1), "length 1 (no function code)"),
    (struct.pack(">HHHB", 4, 0, 300, 1) + bytes(300), "length 300 > 254"),
    (b"\xff" * 4096, "junk"),
])
def test_modbus_malformed_mbap_closes_the_connection(modbus_port, bad, why):
    with socket.create_connection(("127.0.0.1", modbus_port), timeout=5) as s:
        s.sendall(_fc03(0x10))                  # a good request first: answered
        s.settimeout(5)
        ans = s.recv(64)
        assert ans[:2] == b"\x00\x10" and ans[7] == 3
        s.sendall(bad)
        assert _closed_within(s, 3.0), f"connection left open after a malformed MBAP ({why})"
    with socket.create_connection(("127.0.0.1", modbus_port), timeout=5) as s:   # the server still serves
        s.sendall(_fc03(0x11))
        s.settimeout(5)
        assert s.recv(64)[:2] == b"\x00\x11"
