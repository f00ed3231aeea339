"""A generated results set of N cases, made by running a generated pytest suite through `v2g-bench run`
(the real plugin: evidence, attach-or-link policy, labels, manifest), for the report size/speed
benchmark and the report tests. Each case carries what a conformance case carries: engine-style
labels (standard + version, block, case ID), 5 steps, a message trace, a plot, figures with
uncertainty, a samples file and a pcap large enough to be linked beside the report.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SUITE = r'''
import os, random
import allure, pytest
from v2g_bench.errors import BenchError, Inconclusive, Nonconformance
from v2g_bench.report.figures import record_figure

N, VARIANT, PLOT = {n}, {variant}, {plot!r}
STANDARDS = [("ISO 15118-20", ["DC_ChargeLoop", "SessionSetup", "PowerDelivery", "ServiceDiscovery"], "V2G20-{{:04d}}"),
             ("OCPP 2.0.1", ["K Smart charging", "E Transactions", "B Provisioning"], "TC_K_{{:02d}}_CS"),
             ("OCPP 2.1", ["Q Bidirectional power transfer", "R DER control"], "TC_Q_{{:03d}}_CS")]


@pytest.mark.parametrize("i", range(N), ids=lambda i: f"case{{i:03d}}")
def test_case(i, evidence):
    std, blocks, idfmt = STANDARDS[i % 3]
    case_id = idfmt.format(100 + i)
    allure.dynamic.parent_suite(std)
    allure.dynamic.suite(blocks[(i // 3) % len(blocks)])
    allure.dynamic.label("as_id", case_id)
    allure.dynamic.title(f"{{case_id}}: generated case {{i}}")
    allure.dynamic.link(f"https://example.invalid/{{case_id}}", link_type="tms", name=case_id)
    rng = random.Random(i)
    for s in range(5):
        with allure.step(f"step {{s}}: stimulus and expectation"):
            pass
    evidence.path("v2gtp-trace.jsonl").write_text("".join(
        f'{{{{"t": {{k * 0.05:.3f}}, "dir": "rx", "msg": "DC_ChargeLoopRes", "EVSEPresentVoltage": {{370 + rng.random():.2f}}}}}}\n'
        for k in range(400)))
    evidence.attach_png("power-tracking", PLOT)
    evidence.path("dc-samples.csv").write_text("t_s,dc_v,dc_a,dc_w\n" + "".join(
        f"{{k * 0.01:.2f}},{{370 + rng.random():.3f}},{{18.9 + rng.random():.3f}},{{7000 + 50 * rng.random():.1f}}\n"
        for k in range(12000)))
    evidence.path("capture.pcap").write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
                                              + os.urandom(300_000))
    drift = 1.0 + (0.03 if VARIANT and i % 10 == 0 else 0.0)
    record_figure("DC power at 7 kW", (7000 + rng.gauss(0, 5)) * drift, "W", uncertainty=35.0, limit=7300, op="<=")
    record_figure("charge-loop response time", 0.1 + 0.05 * rng.random(), "s", limit=0.25, op="<=")
    record_figure("round-trip efficiency", 0.90 + 0.01 * rng.random(), "", uncertainty=0.011, limit=0.85, op=">=")
    if i % 7 == 2:      # as the conformance engine records a timer judged by a PIXIT on request
        evidence.attach_json("case-steps", {{"pixit": {{"V2G_SECC_Sequence_Performance_Time": {{"limit_s": 1.0, "normative_s": 0.25}}}},
                                            "deviations": ["[pixit] V2G_SECC_Sequence_Performance_Time judged at 1 s on the lab's request (normative 0.25 s)"]}})
    flip = VARIANT and i % 50 == 1
    if i % 17 == 3 or flip:
        raise Nonconformance("EVSEPresentCurrent outside the tolerance band", req=case_id)
    if i % 23 == 5:
        raise Inconclusive("the EV did not reach the charge loop in time")
    if i % 29 == 7:
        raise BenchError("battery emulator: no answer to MEAS:VOLT? within 2 s")
    if i % 31 == 11:
        pytest.skip("the DUT does not claim AC_BPT (dut.toml: [claims]); nothing was checked")
'''


def plot_png(path: Path) -> Path:
    """A real matplotlib power-tracking plot (rendered once, reused by every generated case)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    t = np.linspace(0, 60, 600)
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    ax.step(t, np.where(t < 30, 7000, -4000), label="commanded")
    ax.plot(t, np.where(t < 30, 7000, -4000) + 40 * np.sin(t), label="measured")
    ax.set_xlabel("t / s")
    ax.set_ylabel("DC power / W")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def make_suite(folder: Path, n: int, *, variant: int = 0) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png = plot_png(folder / "plot.png")
    test = folder / "test_generated.py"
    test.write_text(SUITE.format(n=n, variant=variant, plot=str(png)))
    return test


def generate_run(folder: Path, reports: Path, n: int, *, variant: int = 0, timeout_s: float = 900,
                 extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the generated suite through `v2g-bench run` (no HTML: the caller times that). Returns the process."""
    test = make_suite(folder, n, variant=variant)
    cmd = [sys.executable, "-c", "from v2g_bench.cli import main; main()", "run", "--suite", str(test),
           "--reports", str(reports), "--no-html", "--no-test-report", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
