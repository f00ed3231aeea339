"""Bench self-check: before any verdict on the DUT, the bench's own instruments must identify
themselves and agree with each other. A disagreement is a bench error, never the DUT's fault."""
import pytest

from v2g_bench.errors import BenchError

INSTRUMENT_ROLES = ("battery", "analyzer", "meter", "charger", "can", "dut")


def test_every_instrument_identifies(bench, evidence):
    idents = {}
    for role in INSTRUMENT_ROLES:
        if bench.has_role(role):
            idents[role] = bench.role(role).self_test()
    evidence.attach_json("identities", idents)
    assert idents, "the bench profile defines no instrument role"
    bad = {r: s for r, s in idents.items() if not s.startswith("ok")}
    if bad:
        raise BenchError(f"instrument self-test failed: {bad}")


@pytest.mark.requires("LocalControl")
def test_dc_channel_agrees_between_battery_emulator_and_analyzer(dc_link, analyzer, charger, evidence):
    battery = dc_link
    """Both instruments see the same DC link; their readings must agree within their stated accuracy."""
    from v2g_bench.harness.sampling import Recorder
    charger.set_current(10)
    charger.start()
    def read():
        a, b = analyzer.read()[1], battery.read()
        return {"analyzer_v": a.voltage_v, "analyzer_a": a.current_a, "battery_v": b.voltage_v, "battery_a": b.current_a}
    with Recorder(read, rate_hz=10, name="dc-crosscheck.csv") as rec:
        _, row = rec.wait_until(lambda r: abs(r["analyzer_a"] - 10) < 0.5, timeout=10, what="10 A on the DC link")
    dv = abs(row["analyzer_v"] - row["battery_v"])
    di = abs(row["analyzer_a"] - row["battery_a"])
    evidence.attach_json("crosscheck", {**row, "dv": dv, "di": di})
    if dv > 0.005 * row["analyzer_v"] + 0.5 or di > 0.01 * abs(row["analyzer_a"]) + 0.1:
        raise BenchError(f"battery emulator and analyzer disagree on the DC link: dV = {dv:.3f} V, dI = {di:.3f} A",
                         fix="check the wiring/calibration of the DC channel before judging the DUT")
