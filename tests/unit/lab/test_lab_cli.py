"""`v2g-bench lab` Typer app: fault list, foreground run with the port table, Ctrl-C stop."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from v2g_bench.lab.cli import app
from v2g_bench.lab.plant import FAULTS


def test_faults_command_lists_every_fault():
    r = CliRunner().invoke(app, ["faults"])
    assert r.exit_code == 0
    for name in FAULTS:
        assert name in r.output


def test_foreground_run_prints_ports_and_stops_on_ctrl_c(tmp_path):
    ready = tmp_path / "ready.json"
    p = subprocess.Popen([sys.executable, "-m", "v2g_bench.lab.cli", "--time-scale", "5",
                          "--ready-file", str(ready), "--log", str(tmp_path / "lab.log")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < end and p.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), p.stderr.read().decode() if p.poll() is not None else "no ready file"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        assert p.returncode == 0
        text = out.decode()
        assert "battery_scpi" in text and "TCPIP0::127.0.0.1::" in text and "control" in text
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=5)


def test_bad_option_exits_non_zero(tmp_path):
    r = CliRunner().invoke(app, ["--config", str(tmp_path / "nope.toml")])
    assert r.exit_code == 2
