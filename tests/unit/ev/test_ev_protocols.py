"""The protocol matrix against the SECC inside the lab process: ISO 15118-20 DC and AC_BPT, ISO 15118-2
DC and AC, DIN 70121 DC. Each session charges (AC_BPT also discharges), the lab's analyzer sees the
energy, and the session stops cleanly."""
from __future__ import annotations

import pytest

LOOP = {"ISO15118-20": {"DC": "DC_ChargeLoopReq", "AC": "AC_ChargeLoopReq"},
        "ISO15118-2": {"DC": "CurrentDemandReq", "AC": "ChargingStatusReq"},
        "DIN70121": {"DC": "CurrentDemandReq"}}


@pytest.mark.parametrize("protocol,service,control_mode", [
    ("ISO15118-20", "DC", "scheduled"),
    ("ISO15118-20", "AC_BPT", "scheduled"),
    ("ISO15118-20", "AC_BPT", "dynamic"),
    ("ISO15118-2", "DC", "scheduled"),
    ("ISO15118-2", "AC", "scheduled"),
    ("DIN70121", "DC", "scheduled"),
])
def test_protocol_session_against_the_lab(lab_wire, lab_ev, protocol, service, control_mode):
    from v2g_bench.ev.model import Phase
    from v2g_bench.ev.trace import Trace

    lab_wire.wait_idle()
    lab_ev.model.soc = lab_wire.state()["soc"]
    wp0 = lab_wire.analyzer.energy_wh(1)
    bpt = service.endswith("BPT")
    plan = [Phase(5000, 2.5)] + ([Phase(-5000, 3.0)] if bpt else [])
    res = lab_ev.run_session(protocol=protocol, service=service, control_mode=control_mode, plan=plan, timeout=90)
    assert res.passed, (res.summary(), lab_wire.secc_status()["sessions_ended"][-1:])
    rows = Trace.load(res.trace_path)
    names = [r.get("name") for r in rows if r.get("dir") in ("tx", "rx")]
    assert names[0] == "supportedAppProtocolReq" and names[-1] == "SessionStopRes", names
    sap = next(r for r in rows if r.get("name") == "supportedAppProtocolRes")
    assert "OK_SuccessfulNegotiation" in str(sap["decoded"]), sap["decoded"]
    kind = "AC" if service.startswith("AC") else "DC"
    loops = names.count(LOOP[protocol][kind])
    assert loops >= 2 and abs(loops - res.charge_loops) <= 1, (names, res.charge_loops)   # first/last loop
    st = lab_wire.wait_idle()
    wp1 = lab_wire.analyzer.energy_wh(1)
    assert wp1[0] - wp0[0] > 0.5, (wp0, wp1)                      # the plant charged the battery
    if bpt:
        assert wp1[1] - wp0[1] > 0.5, (wp0, wp1)                  # ... and discharged it
    assert not st["contactor_closed"]
