"""End to end through the REAL lab process: our EV emulator (this process, in its own netns) vs the
SECC service inside `python -m v2g_bench.lab` (root netns), over a veth pair made by
v2g_bench.ev.labnet. The EV's SOC follows the lab's Yokogawa WT5000 DC energy counters (element 1,
WP+/WP-) read over the analyzer's real SCPI port; trace and pcap go to the test's evidence.
"""
from __future__ import annotations

import pytest

# Stated tolerance: the EV's SOC change (x capacity) vs the analyzer's DC WP+ - WP- over the session,
# and the analyzer vs the plant's own DC counters: 0.2 Wh + 1 % of the energy moved (the analyzer
# samples the link at its update rate (50 ms) with 0.05 % noise; the EV reads it once per loop).
ABS_TOL_WH = 0.2
REL_TOL = 0.01


def _evidence():
    from v2g_bench.harness.evidence import Evidence
    return Evidence.current()


@pytest.mark.parametrize("control_mode", ["scheduled", "dynamic"])
def test_dc_bpt_charge_discharge_stop_via_lab_process(lab_wire, lab_ev, control_mode):
    from v2g_bench.ev.model import Phase
    from v2g_bench.ev.scapy_v2gtp import decode_pcap
    from v2g_bench.ev.trace import Trace

    ev = lab_ev
    lab_wire.wait_idle()
    st0 = lab_wire.state()
    ev.model.soc = st0["soc"]                       # the EV's battery is the lab's battery
    wp0 = lab_wire.analyzer.energy_wh(1)
    cap = ev.start_capture()                        # -> Evidence.current().path("ev.pcap")
    try:
        # a short idle tail: the stage ramps to 0 before SessionStop, so the counters settle
        res = ev.run_session(protocol="ISO15118-20", service="DC_BPT", control_mode=control_mode,
                             plan=[Phase(6000, 3.0), Phase(-6000, 4.0), Phase(0, 1.5)], timeout=60)
    finally:
        pcap = ev.stop_capture(cap)
    assert res.passed, res.summary()
    assert res.rx_names[-1] == "SessionStopRes"
    st1 = lab_wire.wait_idle()
    wp1 = lab_wire.analyzer.energy_wh(1)
    # charged, then discharged: the present current the SECC reported (from the plant) changed sign
    currents = [h["evse_a"] for h in res.history if h["evse_a"] is not None]
    assert max(currents) > 5.0 and min(currents) < -5.0, currents
    # present I came from the plant, not the request: while the stage ramps (5 kW/s) the reported
    # current lags the EV's ask; later it reaches it
    asks = [(h["asked_w"] / h["evse_v"], h["evse_a"]) for h in res.history
            if h["asked_w"] > 0 and h["evse_v"] and h["evse_a"] is not None]
    assert any(abs(got) < 0.5 * want for want, got in asks), asks
    assert any(abs(got - want) < 0.2 * want for want, got in asks), asks
    # the SOC followed the analyzer: during the charge phase up, during the discharge phase down
    moved = [h["moved_wh"] for h in res.history]
    peak = max(range(len(moved)), key=moved.__getitem__)
    assert moved[peak] > 2.0 and moved[-1] < moved[peak] - 2.0, moved
    analyzer_wh = (wp1[0] - wp0[0]) - (wp1[1] - wp0[1])
    plant_wh = (st1["dc_import_wh"] - st0["dc_import_wh"]) - (st1["dc_export_wh"] - st0["dc_export_wh"])
    gross = (wp1[0] - wp0[0]) + (wp1[1] - wp0[1])
    tol = ABS_TOL_WH + REL_TOL * gross
    ev_wh = (res.soc_end - res.soc_start) * ev.model.capacity_wh
    figures = {"ev_wh": ev_wh, "analyzer_wh": analyzer_wh, "plant_wh": plant_wh, "gross_wh": gross,
               "tol_wh": tol, "charge_wh": wp1[0] - wp0[0], "discharge_wh": wp1[1] - wp0[1],
               "soc": [res.soc_start, res.soc_end], "lab_soc": [st0["soc"], st1["soc"]]}
    if _evidence():
        _evidence().attach_json("soc-vs-analyzer", figures)
    assert wp1[0] - wp0[0] > 2.0 and wp1[1] - wp0[1] > 2.0, figures
    assert abs(ev_wh - analyzer_wh) <= tol, figures
    assert abs(analyzer_wh - plant_wh) <= tol, figures
    # the SECC in the lab process saw the same session end and left the stage safe
    status = lab_wire.secc_status()
    assert status["running"] and status["setpoint_w"] == 0.0, status
    assert not st1["contactor_closed"], st1
    # evidence: trace with raw EXI + decoded bodies; pcap of the veth decodable with our scapy layer
    rows = Trace.load(res.trace_path)
    assert _evidence() is None or str(_evidence().dir) in res.trace_path
    loop_rx = [r for r in rows if r.get("name") == "DC_ChargeLoopRes"]
    assert loop_rx and all(r["exi"] and r["decoded"] for r in loop_rx)
    frames = decode_pcap(pcap)
    kinds = [f[1] for f in frames]
    assert "SDPReq" in kinds and "SDPRes" in kinds
    v2gtp = [f for f in frames if f[1] == "V2GTP"]
    sent = [r for r in rows if r.get("dir") in ("tx", "rx")]
    assert len(v2gtp) == len(sent)
    assert {f[2]["exi"] for f in v2gtp} == {r["exi"] for r in sent}


def test_ev_open_finds_the_wire_in_the_lab_ready_file(lab_wire):
    """[roles.ev] without `interface`: EVEmulator.open takes it from ctx.lab.info["iso15118"]."""
    info = lab_wire.lab.info["iso15118"]
    assert info["ev_iface"] == lab_wire.net.ev_options["interface"]
    assert info["ev_netns"] == lab_wire.net.ev_options["netns"]
    assert info["secc_iface"] == lab_wire.net.secc_iface


def test_ev_open_without_interface_or_lab_wire_is_a_profile_error():
    from v2g_bench.errors import ProfileError
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.roles import BenchContext, RoleConfig

    with pytest.raises(ProfileError, match="interface"):
        EVEmulator.open(RoleConfig(role="ev", driver="iso15118_evcc", options={}), BenchContext(lab=None))
