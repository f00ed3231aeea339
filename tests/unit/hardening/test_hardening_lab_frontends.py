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


def _raw_client(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while b"< hi >" not in buf:
        buf += s.recv(64)
    s.sendall(b"< open can0 >< rawmode >")
    buf = b""
    while buf.count(b"< ok >") < 2:
        buf += s.recv(64)
    return s


def test_socketcand_flooding_client_cannot_starve_the_others():
    import threading
    import time

    from v2g_bench.lab.frontends.can import CLIENT_BURST, CLIENT_MAX_FPS, SocketcandServer

    loop = LoopThread("can-hardening")
    hub = SocketcandServer(Plant(), period_s=0.1)
    port = loop.run(hub.start("127.0.0.1", 0), 10)
    stop = threading.Event()
    try:
        flooder, victim, listener = _raw_client(port), _raw_client(port), _raw_client(port)
        flood_sent = [0]

        def flood():
            chunk = b"< send 001 8 FF FF FF FF FF FF FF FF >" * 500
            flooder.settimeout(0.2)
            while not stop.is_set():
                try:
                    flooder.sendall(chunk)
                    flood_sent[0] += 500
                except (socket.timeout, OSError):
                    pass

        got: dict[int, float] = {}
        n_flood_seen = [0]

        def listen():
            buf = b""
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    buf += listener.recv(1 << 16)
                except socket.timeout:
                    continue
                except OSError:
                    return
                while b">" in buf:
                    elem, _, buf = buf.partition(b">")
                    parts = elem.split()
                    if len(parts) >= 5 and parts[1] == b"frame":
                        if parts[2] == b"123":
                            got[int(parts[4][:4], 16)] = time.monotonic()
                        elif parts[2] == b"001":
                            n_flood_seen[0] += 1

        threads = [threading.Thread(target=f, daemon=True) for f in (flood, listen)]
        for t in threads:
            t.start()
        time.sleep(0.3)                        # the flood is on
        sent_at = {}
        t_flood0, seen0 = time.monotonic(), n_flood_seen[0]
        for i in range(20):
            sent_at[i] = time.monotonic()
            victim.sendall(f"< send 123 2 {i >> 8:02X} {i & 0xFF:02X} >".encode())
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        while len(got) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        flood_rate = (n_flood_seen[0] - seen0) / (time.monotonic() - t_flood0)
        stop.set()
        for t in threads:
            t.join(5)
        assert len(got) == 20, f"the listener got {len(got)} of the other client's 20 frames during the flood"
        worst = max(got[i] - sent_at[i] for i in got)
        assert worst < 1.0, f"the other client's frames waited up to {worst:.2f} s behind the flood"
        # the flooder gets at most its share of the bus (plus its burst), not the whole lab
        assert flood_rate < 1.5 * CLIENT_MAX_FPS + CLIENT_BURST, f"flooder reached {flood_rate:.0f} frames/s"
        for s in (flooder, victim, listener):
            s.close()
    finally:
        stop.set()
        loop.run(hub.stop(), 10)
        loop.stop()
