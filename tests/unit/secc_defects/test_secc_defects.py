"""The simulated charger's switchable defects: the switch itself (validation, on/off), each hook's effect on the
real iso15118 SECC objects (no lab needed), and the suite's case x defect table (every case has a defect or a
written reason; the CI subset exercises every defect)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from v2g_bench.errors import BenchError
from v2g_bench.lab.charger import secc_defects as d

SUITE = Path(__file__).resolve().parents[2] / "conformance" / "iso15118_20"


@pytest.fixture(autouse=True)
def _clean():
    d.disable()
    yield
    d.disable()


def test_switch_validates_names_and_parameters():
    with pytest.raises(BenchError, match="unknown SECC defect"):
        d.enable("no_such_defect")
    with pytest.raises(BenchError, match="has no parameter"):
        d.enable("ignore_sequence", seconds=3)
    with pytest.raises(BenchError, match="must be a number"):
        d.enable("late_response", seconds="soon")
    with pytest.raises(BenchError, match="out of 0..120"):
        d.enable("late_response", seconds=1e6)
    assert d.enable("late_response", seconds=2) == {"message": "AuthorizationRes", "seconds": 2.0}
    assert d.active("late_response")["seconds"] == 2.0
    assert d.active("ignore_sequence") is None
    d.enable("ignore_sequence")
    assert d.active("ignore_sequence") is not None and bool(d.active("ignore_sequence"))   # no params, still on
    d.disable("late_response")
    assert set(d.snapshot()) == {"ignore_sequence"}


def _res(code="OK"):
    from iso15118.shared.messages.iso15118_20.common_messages import Service, ServiceDiscoveryRes, ServiceList
    from iso15118.shared.messages.iso15118_20.common_types import MessageHeader, ResponseCode
    return ServiceDiscoveryRes(header=MessageHeader(session_id="AB" * 8, timestamp=1),
                               response_code=ResponseCode(code), service_renegotiation_supported=False,
                               energy_service_list=ServiceList(services=[Service(service_id=2, free_service=False)]))


def _secc_state():
    """A real SECC state object (ServiceDiscovery) with just the session ID it needs."""
    from iso15118.secc.states.iso15118_20_states import ServiceDiscovery

    class _Session:
        session_id = "AB" * 8
    st = ServiceDiscovery.__new__(ServiceDiscovery)
    st.comm_session = _Session()
    return st


def _through_hook(msg):
    """Run the patched State.create_next_message on a SECC state; the stack's own part after the hook may need
    a full session, so only the mutation of `msg` is looked at."""
    from iso15118.shared.states import State
    try:
        State.create_next_message(_secc_state(), None, msg, 60, "ns")
    except Exception:  # noqa: BLE001, S110 - the mutation happens before the stack's encoding
        pass
    return msg


def test_wrong_response_code_rewrites_only_the_named_response():
    d.install()
    d.enable("wrong_response_code", message="ServiceDiscoveryRes", code="FAILED")
    assert _through_hook(_res()).response_code.value == "FAILED"
    d.enable("wrong_response_code", message="SessionSetupRes", code="FAILED")
    assert _through_hook(_res()).response_code.value == "OK"
    d.disable()
    assert _through_hook(_res()).response_code.value == "OK"


def test_accept_any_session_id_rewrites_the_request_header():
    from iso15118.secc.states.secc_state import StateSECC
    from iso15118.shared.messages.iso15118_20.common_messages import ServiceDiscoveryReq
    from iso15118.shared.messages.iso15118_20.common_types import MessageHeader
    d.install()
    st = _secc_state()
    req = ServiceDiscoveryReq(header=MessageHeader(session_id="DEADBEEF00000000", timestamp=1))
    d.enable("accept_any_session_id")
    try:
        StateSECC.check_msg(st, req, type(req).__mro__[1], [ServiceDiscoveryReq])
    except Exception:  # noqa: BLE001, S110 - only the header rewrite before the stack's check matters here
        pass
    assert req.header.session_id == "AB" * 8
    d.disable()
    req2 = ServiceDiscoveryReq(header=MessageHeader(session_id="DEADBEEF00000000", timestamp=1))
    try:
        StateSECC.check_msg(st, req2, type(req2).__mro__[1], [ServiceDiscoveryReq])
    except Exception:  # noqa: BLE001, S110
        pass
    assert req2.header.session_id == "DEADBEEF00000000"


def test_answer_invalid_v2gtp_takes_a_bad_header_as_valid():
    from iso15118.shared.exceptions import InvalidV2GTPMessageError
    from iso15118.shared.messages.enums import Protocol
    from iso15118.shared.messages.v2gtp import V2GTPMessage
    d.install()
    frame = bytes([0xFF, 0x00, 0x80, 0x02, 0, 0, 0, 2, 0x80, 0x00])
    with pytest.raises(InvalidV2GTPMessageError):
        V2GTPMessage.from_bytes(Protocol.ISO_15118_20_DC, frame)
    d.enable("answer_invalid_v2gtp")
    assert V2GTPMessage.from_bytes(Protocol.ISO_15118_20_DC, frame).payload == b"\x80\x00"


def test_bad_response_header_changes_the_bytes_sent():
    d.install()
    inner = type("M", (), {"to_bytes": lambda self: bytes([1, 0xFE, 0x80, 2, 0, 0, 0, 0])})()
    assert d._BadHeader(inner).to_bytes()[:2] == bytes([2, 0xFD])


def test_case_x_defect_table_is_complete():
    sys.path.insert(0, str(SUITE))
    try:
        from secc20_mutations import CI_EXTRA, CI_SUBSET, CRASH_DEFECTS, NO_DEFECT, mutations
        from secc20_rows import message_group_cases, timeout_cases
        from secc20_special import special_cases
    finally:
        sys.path.remove(str(SUITE))
    ids = {c.id for c in message_group_cases() + special_cases() + timeout_cases()}
    table = mutations()
    assert len(ids) >= 120
    assert not ids - set(table) - set(NO_DEFECT), "cases with neither a defect nor a reason"
    assert not set(table) - ids, "defects listed for cases that do not exist"
    used = {defect for defect, _ in table.values()} | {defect for defect, _ in CI_EXTRA.values()}
    assert used <= set(d.DEFECTS), used - set(d.DEFECTS)
    ci = {table[c][0] for c in CI_SUBSET.values() if c in table} | {x for x, _ in CI_EXTRA.values()}
    missing = set(d.DEFECTS) - ci - set(CRASH_DEFECTS) - {"never_timeout"}
    assert not missing, f"defects the CI subset does not exercise: {missing}"
    for defect, case in CI_SUBSET.items():
        assert case in ids and (table.get(case, (None,))[0] == defect), (defect, case)


@pytest.mark.parametrize("which", ["expired", "untrusted"])
def test_bad_chains_fail_verification_against_the_v2g_root_and_the_good_one_passes(tmp_path, which):
    """The chains the TLS defects present (made here with `cryptography`): an EV trusting only the test PKI's V2G
    root refuses them for the named reason, and accepts the stack's own chain (a real TLS handshake, loopback)."""
    import socket
    import ssl
    import threading

    from iso15118.shared.settings import shared_settings

    from v2g_bench.ev.pki import ensure_pki

    pki = ensure_pki(tmp_path / "pki", apply=False) / "iso15118_2"
    old = shared_settings.get("PKI_PATH")
    shared_settings["PKI_PATH"] = str(pki.parent) + "/"
    d._bad_chains.clear()
    try:
        cert, key = d._bad_chain(which)
    finally:
        shared_settings["PKI_PATH"] = old
        d._bad_chains.clear()

    def handshake(certfile, keyfile, password=None) -> str | None:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(certfile, keyfile, password)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.load_verify_locations(pki / "certs/v2gRootCACert.pem")
        a, b = socket.socketpair()
        err: list[str] = []

        def serve():
            try:
                with server.wrap_socket(a, server_side=True) as s:
                    s.recv(1)
            except (ssl.SSLError, OSError):
                pass
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        try:
            with client.wrap_socket(b) as c:
                c.sendall(b"x")
        except ssl.SSLCertVerificationError as e:
            err.append(e.verify_message)
        th.join(5)
        return err[0] if err else None

    pw = (pki / "private_keys/seccLeafPassword.txt").read_text().strip()
    assert handshake(pki / "certs/cpoCertChain.pem", pki / "private_keys/seccLeaf.key", pw) is None
    why = handshake(cert, key)
    assert why is not None
    assert ("expired" in why) if which == "expired" else ("self-signed" in why or "issuer" in why), why
