"""CSMS emulator under abuse: one live connection per station id, refusals logged with the reason,
unsafe settings refused or warned about (issue 16 item 4)."""
from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from v2g_bench.csms import pki as pki_mod
from v2g_bench.csms.server import CsmsOptions, CsmsServer
from v2g_bench.errors import ProfileError

N_CONCURRENT = 500


async def _concurrent_connects(n: int) -> tuple[int, CsmsServer, list]:
    srv = CsmsServer(CsmsOptions.from_dict({"security_profile": 0, "retain_frames": False}))
    await srv.start()
    clients: list = []
    try:
        async def one():
            try:
                ws = await connect(srv.url("SAME-ID"), subprotocols=["ocpp2.0.1"], open_timeout=60,
                                   close_timeout=5, ping_interval=None)
                clients.append(ws)
            except (OSError, InvalidStatus, asyncio.TimeoutError, ConnectionClosed):
                pass
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 120)

        def settled():
            # every replaced session closed by the server; only the current one open
            return all(ws.state.name != "OPEN" for ws in clients
                       if ws is not _client_of(clients, srv)) and not srv._closing
        deadline = asyncio.get_running_loop().time() + 60
        while not settled() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        open_now = [ws for ws in clients if ws.state.name == "OPEN"]
        return len(open_now), srv, clients
    finally:
        for ws in clients:
            await ws.close()
        await srv.stop()


def _client_of(clients, srv):
    """The client whose server side is the CSMS's current session (matched by local port)."""
    cur = srv.sessions.get("SAME-ID")
    if cur is None:
        return None
    peer_port = cur.ws.remote_address[1]
    return next((ws for ws in clients if ws.local_address[1] == peer_port), None)


def test_csms_keeps_one_connection_per_station_id_under_500_concurrent_connects():
    n_open, srv, clients = asyncio.run(_concurrent_connects(N_CONCURRENT))
    accepted = [e for e in srv.events if e.kind == "accepted"]
    assert len(accepted) >= N_CONCURRENT * 0.9, f"only {len(accepted)} of {N_CONCURRENT} handshakes completed"
    assert n_open == 1, f"{n_open} connections of one station id left open (expected exactly 1)"


def test_csms_logs_a_refused_tls_handshake_with_its_reason(tmp_path, caplog):
    pki = pki_mod.TestPKI.create(tmp_path / "pki")

    async def go():
        opts = CsmsOptions.from_dict({"security_profile": 3})
        srv = CsmsServer(opts, ssl_context=pki.server_context(require_client_cert=True), pki=pki)
        await srv.start()
        try:
            ctx = ssl.create_default_context(cafile=str(pki.ca_cert))   # no client certificate
            ctx.check_hostname = False
            with pytest.raises((ssl.SSLError, OSError, WebSocketException, EOFError)):
                async with connect(srv.url("CS-NOCERT"), subprotocols=["ocpp2.0.1"], ssl=ctx,
                                   open_timeout=10) as ws:
                    await ws.recv()
            await srv.wait_until(lambda: [e for e in srv.events if e.kind == "rejected"], 10)
            return srv.events
        finally:
            await srv.stop()

    with caplog.at_level(logging.WARNING, logger="v2g_bench.csms"):
        events = asyncio.run(go())
    rejected = [e for e in events if e.kind == "rejected"]
    assert rejected and "TLS handshake failed" in rejected[0].detail
    assert "CERTIFICATE" in rejected[0].detail.upper()          # the reason, not just "failed"
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


def test_csms_logs_an_authentication_failure_as_a_warning_with_the_reason(caplog):
    import base64

    async def go():
        srv = CsmsServer(CsmsOptions.from_dict({"security_profile": 1, "password": "a-good-password-0123"}))
        await srv.start()
        try:
            hdr = {"Authorization": "Basic " + base64.b64encode(b"CS1:wrong-password-00000").decode()}
            with pytest.raises(InvalidStatus) as ei:
                async with connect(srv.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=hdr,
                                   open_timeout=10):
                    pass
            return ei.value.response.status_code
        finally:
            await srv.stop()

    with caplog.at_level(logging.WARNING, logger="v2g_bench.csms"):
        status = asyncio.run(go())
    assert status == 401
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("wrong password for station 'CS1'" in m for m in msgs), msgs


def test_csms_refuses_no_security_on_a_network_address_and_warns_on_weak_settings():
    with pytest.raises(ProfileError, match="security_profile = 0"):
        CsmsOptions.from_dict({"host": "0.0.0.0", "security_profile": 0})
    CsmsOptions.from_dict({"host": "::1", "security_profile": 0})     # loopback: fine for a bench
    warns = CsmsOptions.from_dict({"host": "0.0.0.0", "security_profile": 1, "password": "short"}).security_warnings()
    assert any("clear text" in w for w in warns)
    assert any("5 characters" in w and "A00.FR.205" in w for w in warns)
    ok = CsmsOptions.from_dict({"host": "127.0.0.1", "security_profile": 1, "password": "a-good-password-0123"})
    assert ok.security_warnings() == []
    bad_chars = CsmsOptions.from_dict({"security_profile": 2, "stations": {"CS1": "sixteen chars ok!"}})
    assert any("passwordString" in w for w in bad_chars.security_warnings())


def test_csms_keeps_a_bounded_number_of_violations_from_a_garbage_spewing_station(monkeypatch):
    from v2g_bench.csms import server as srv_mod
    monkeypatch.setattr(srv_mod, "MAX_VIOLATIONS_KEPT", 50)

    async def go():
        srv = CsmsServer(CsmsOptions.from_dict({"security_profile": 0, "retain_frames": False,
                                                "record_path": "/dev/null"}))
        await srv.start()
        try:
            async with connect(srv.url("CS-SPEW"), subprotocols=["ocpp2.0.1"], open_timeout=10) as ws:
                for i in range(200):
                    await ws.send("not json %d" % i)
                for _ in range(200):
                    await asyncio.wait_for(ws.recv(), 10)          # each answered with a CALLERROR
            return len(srv.violations), srv.violations_dropped
        finally:
            await srv.stop()

    kept, dropped = asyncio.run(go())
    assert kept == 50 and dropped == 150
