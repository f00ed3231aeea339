"""The standalone CLI (`v2g-bench ev`), run for real as a subprocess against the lab process's SECC:
every message printed as it goes, a summary at the end, exit code = verdict."""
from __future__ import annotations

import json
import subprocess
import sys
import time


def _cli(*args, timeout=90):
    t = time.monotonic()
    cp = subprocess.run([sys.executable, "-m", "v2g_bench.cli", "ev", *args], capture_output=True, text=True,
                        timeout=timeout)
    return cp, time.monotonic() - t


def test_cli_runs_a_session_against_the_lab_secc(lab_wire, tmp_path):
    lab_wire.wait_idle()
    o = lab_wire.net.ev_options
    trace = tmp_path / "cli-trace.jsonl"
    cp, _ = _cli("--iface", o["interface"], "--netns", o["netns"], "--protocol", "ISO15118-20",
                 "--service", "DC_BPT", "--plan", "3000:1.5,-3000:1.5", "--timeout", "60",
                 "--soc", str(lab_wire.state()["soc"]), "--trace", str(trace))
    out = cp.stdout.splitlines()
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    lines = [line.split() for line in out if line.strip() and line.split()[0].replace(".", "").isdigit()]
    printed = [(p[1], p[2]) for p in lines]
    assert printed[0] == ("tx", "supportedAppProtocolReq") and printed[-1] == ("rx", "SessionStopRes"), printed
    assert ("tx", "DC_ChargeLoopReq") in printed and ("rx", "DC_ChargeLoopRes") in printed
    summary = out[-1]
    assert summary.startswith("passed: ISO15118-20 DC_BPT scheduled at SessionStopRes"), summary
    assert "charge loops" in summary and "SOC" in summary
    rows = [json.loads(x) for x in trace.read_text().splitlines()]
    assert [(r["dir"], r["name"]) for r in rows if r.get("dir") in ("tx", "rx")] == printed


def test_cli_against_no_charger_fails_fast_with_exit_code_1(lab_wire):
    from v2g_bench.ev import netns

    with netns.EvNetns() as ns, netns.VethPair.create(ev_netns=ns) as pair:   # a wire with nobody on it
        cp, wall = _cli("--iface", pair.ev_iface, "--netns", ns.name, "--plan", "3000:1", "--timeout", "5",
                        timeout=40)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert cp.stdout.splitlines()[-1].startswith("failed:") and "SDP" in cp.stdout.splitlines()[-1]
    assert wall < 30


def test_cli_rejects_a_missing_interface():
    cp, _ = _cli("--plan", "1000:1", timeout=30)
    assert cp.returncode == 2 and "--iface" in (cp.stdout + cp.stderr)
