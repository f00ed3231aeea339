"""Plug & Charge over TLS against the lab process's SECC, with a PKI made at test time by the stack's
create_certs.sh (never committed); TLS 1.3 for ISO 15118-20. A PKI that cannot be made is a failed
verdict, never an exception."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_ensure_pki_makes_a_complete_pki_outside_the_repo(tmp_path):
    import ssl

    from v2g_bench.ev.pki import NEEDED, ensure_pki, pki_complete

    p = ensure_pki(tmp_path / "pki", apply=False)
    assert pki_complete(p) and all((p / f).is_file() for f in NEEDED)
    assert REPO not in p.resolve().parents
    # the SECC's chain loads with its key and password, as the stack will load it
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pw = (p / "iso15118_2/private_keys/seccLeafPassword.txt").read_text().strip()
    ctx.load_cert_chain(p / "iso15118_2/certs/cpoCertChain.pem", p / "iso15118_2/private_keys/seccLeaf.key", pw)
    assert ensure_pki(tmp_path / "pki", apply=False) == p          # made once


def test_tls_without_a_pki_is_a_failed_verdict(tmp_path):
    from v2g_bench.ev.emulator import EVEmulator

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ev = EVEmulator("evnotthere", pki_path=blocker / "pki")   # cannot be created: a file is in the way
    try:
        res = ev.run_session(tls=True, timeout=5)
    finally:
        ev.close()
    assert not res.passed and res.step.startswith("PKI"), res.summary()
    assert "PKI" in res.step and "pki" in res.reason.lower()


@pytest.mark.parametrize("auth", ["PnC", "EIM"])
def test_20_dc_bpt_over_tls13(lab_wire, lab_ev, auth):
    from v2g_bench.ev.model import Phase
    from v2g_bench.ev.trace import Trace

    lab_wire.wait_idle()
    lab_ev.model.soc = lab_wire.state()["soc"]
    res = lab_ev.run_session(protocol="ISO15118-20", service="DC_BPT", tls=True, auth=auth,
                             plan=[Phase(5000, 1.5), Phase(-5000, 1.5)], timeout=60)
    assert res.passed, res.summary()
    rows = Trace.load(res.trace_path)
    notes = [r["note"] for r in rows if r.get("dir") == "note"]
    assert any(n.startswith("SDP:") and n.endswith("TLS") for n in notes), notes
    assert any(n.startswith("TLS TLSv1.3") for n in notes), notes
    auth_req = next(r for r in rows if r.get("name") == "AuthorizationReq")
    selected = auth_req["decoded"]["AuthorizationReq"]["SelectedAuthorizationService"]
    assert selected == ("PnC" if auth == "PnC" else "EIM"), auth_req["decoded"]
    if auth == "PnC":   # PnC: the request carries the contract certificate chain's signed challenge
        assert "PnC_AReqAuthorizationMode" in auth_req["decoded"]["AuthorizationReq"]
