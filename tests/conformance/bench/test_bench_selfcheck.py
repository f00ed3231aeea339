"""Bench self-check: before any verdict on the DUT, the bench's own instruments must identify themselves and agree
with each other. A disagreement is a bench error, never the DUT's fault."""
from v2g_bench.conformance import Case, cases_test, step
from v2g_bench.errors import BenchError

INSTRUMENT_ROLES = ("battery", "analyzer", "meter", "charger", "can", "dut")


def identities(ctx):
    bench = ctx.role("bench")
    idents = {r: bench.role(r).self_test() for r in INSTRUMENT_ROLES if bench.has_role(r)}
    ctx.attach("identities", idents)
    if not idents:
        raise BenchError("the bench profile defines no instrument role")
    bad = {r: s for r, s in idents.items() if not s.startswith("ok")}
    if bad:
        raise BenchError(f"instrument self-test failed: {bad}")


def drive_10a(ctx):
    _ = ctx.dc_link                  # the battery emulator plays the EV battery: limits read back, output on
    ctx.charger.set_current(10)
    ctx.charger.start()


def crosscheck(ctx):
    from v2g_bench.harness.sampling import Recorder
    analyzer, battery = ctx.analyzer, ctx.dc_link

    def read():
        a, b = analyzer.read()[1], battery.read()
        return {"analyzer_v": a.voltage_v, "analyzer_a": a.current_a, "battery_v": b.voltage_v, "battery_a": b.current_a}
    with Recorder(read, rate_hz=10, name="dc-crosscheck.csv") as rec:
        try:
            _, row = rec.wait_until(lambda r: abs(r["analyzer_a"] - 10) < 0.5, timeout=10, what="10 A on the DC link")
        except TimeoutError as e:
            raise BenchError(f"the bench could not set up 10 A on the DC link: {e}") from None
    dv, di = abs(row["analyzer_v"] - row["battery_v"]), abs(row["analyzer_a"] - row["battery_a"])
    ctx.attach("crosscheck", {**row, "dv": dv, "di": di})
    if dv > 0.005 * row["analyzer_v"] + 0.5 or di > 0.01 * abs(row["analyzer_a"]) + 0.1:
        raise BenchError(f"battery emulator and analyzer disagree on the DC link: dV = {dv:.3f} V, dI = {di:.3f} A",
                         fix="check the wiring/calibration of the DC channel before judging the DUT")


CASES = [
    Case("BENCH-01", title="Every instrument identifies itself and passes its self-test", standard="Bench",
         block="Self-check", covers=("V2GB-BENCH-01",),
         steps=[step("every instrument role answers *IDN? and its self-test", identities)]),
    Case("BENCH-02", title="Battery emulator and analyzer agree on the DC link", standard="Bench", block="Self-check",
         covers=("V2GB-BENCH-02",), requires=("LocalControl",),
         given=[step("10 A on the DC link (local control)", drive_10a, kind="given")],
         steps=[step("both instruments read the same V and I within their accuracy", crosscheck)]),
]
test_bench_selfcheck = cases_test(CASES)
