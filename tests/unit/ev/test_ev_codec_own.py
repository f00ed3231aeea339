"""codec = "own": the EV encodes/decodes with v2g_bench.exi (no JVM on the EV side) and runs a whole
-20 DC_BPT session against the lab process's SECC, which still uses the stack's jar codec - so every
message crosses between the two codecs."""
from __future__ import annotations


def test_own_codec_session_against_the_jar_secc(lab_wire):
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.ev.model import Phase
    from v2g_bench.ev.trace import Trace
    from v2g_bench.roles import BenchContext, RoleConfig

    lab_wire.wait_idle()
    cfg = RoleConfig(role="ev", driver="iso15118_evcc",
                     options={"codec": "own", "model": {"soc": lab_wire.state()["soc"]}})
    ev = EVEmulator.open(cfg, BenchContext(lab=lab_wire.lab))
    try:
        assert ev._codec.kind == "own" and "v2g-bench-exi" in ev._codec.get_version()
        n_enc, n_dec = len(ev._codec.stats.encode_s), len(ev._codec.stats.decode_s)
        res = ev.run_session(protocol="ISO15118-20", service="DC_BPT",
                             plan=[Phase(4000, 1.5), Phase(-4000, 1.5)], timeout=60)
    finally:
        ev.safe_state()
        ev.close()
    assert res.passed, res.summary()
    rows = Trace.load(res.trace_path)
    msgs = [r for r in rows if r.get("dir") in ("tx", "rx")]
    # every request was encoded and every answer decoded by OUR codec
    assert len(ev._codec.stats.encode_s) - n_enc >= len([r for r in msgs if r["dir"] == "tx"]) - 1
    assert len(ev._codec.stats.decode_s) - n_dec >= len([r for r in msgs if r["dir"] == "rx"]) - 1
    assert all(isinstance(r["decoded"], dict) and "undecodable" not in r["decoded"] for r in msgs[1:])
    currents = [h["evse_a"] for h in res.history if h["evse_a"] is not None]
    assert max(currents) > 3.0 and min(currents) < -3.0, currents
