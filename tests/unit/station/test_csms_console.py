"""The CSMS console's command language against the simulated station (real CSMS emulator, real station)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from v2g_bench.csms.console import Console

PASSWORD = "bench-password-0123"


@pytest.fixture
def driven(online):
    def go(version):
        csms, st = online(version)
        con = Console(csms.server, echo=lambda s: None)
        csms.server.recorder.listeners.append(con.note_frame)
        return csms, st, (lambda line: csms._loop.run(con.execute(line), 30)), con
    return go


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_console_drives_variables_profiles_composite_and_transactions(driven, version, tmp_path):
    csms, st, run, con = driven(version)
    rec = tmp_path / "session.jsonl"
    assert run(f"record {rec}").ok
    assert "LAB-CS-001" in run("stations").text
    r = run("getvar OCPPCommCtrlr.HeartbeatInterval")
    assert r.ok and r.data["getVariableResult"][0]["attributeStatus"] == "Accepted"
    assert run("setvar OCPPCommCtrlr.OfflineThreshold=90").data["setVariableResult"][0]["attributeStatus"] == "Accepted"
    r = run("start 7 CONSOLE-TOKEN")
    assert r.ok and r.data["status"] == "Accepted"
    assert run("wait TransactionEvent 10").ok
    assert con.last_tx is not None
    r = run("profile 1 TxProfile 10 0:-4000 tx=last")
    assert r.ok and r.data["status"] == "Accepted", r.text
    if version == "2.1":
        assert run("setpoint 1 -3000").data["status"] == "Accepted"
    r = run("composite 1 120")
    first = r.data["schedule"]["chargingSchedulePeriod"][0]
    assert (first.get("setpoint") if version == "2.1" else first["limit"]) < 0        # discharge
    assert run("trigger Heartbeat").data["status"] == "Accepted"
    assert run("stop").data["status"] == "Accepted"
    assert run("wait TransactionEvent 10").data["eventType"] == "Ended"
    lines = [json.loads(x) for x in rec.read_text().splitlines()]
    assert [x["command"].split()[0] for x in lines][:4] == ["record", "stations", "getvar", "setvar"]
    assert all("ok" in x for x in lines)
    csms.assert_conformant()


def test_console_bad_input_is_an_error_not_a_crash(driven):
    csms, st, run, con = driven("2.0.1")
    assert not run("selfdestruct").ok
    r = run('call GetVariables {"getVariableData": ')
    assert not r.ok and "not JSON" in r.text
    r = run('call GetVariables {"getVariableData": "nope"}')
    assert not r.ok and "sent nothing" in r.text
    assert not run("call NoSuchAction {}").ok
    assert not run("profile 1 TxProfile x 0:100").ok
    assert not run("setpoint 1 -3000").ok              # 2.0.1 has no setpoints: said so
    r = run('call DataTransfer {"vendorId": "com.example"}')
    assert r.ok and r.data == {"status": "UnknownVendorId"}
    assert run("use NOBODY").ok and not run("getvar OCPPCommCtrlr.HeartbeatInterval").ok
    assert run("use LAB-CS-001").ok and run("getvar OCPPCommCtrlr.HeartbeatInterval").ok


def test_csms_cli_script_mode_exit_status(tmp_path, monkeypatch):
    from v2g_bench.csms.cli import app
    monkeypatch.setenv("V2G_BENCH_CSMS_PASSWORD", PASSWORD)
    good = tmp_path / "good.txt"
    good.write_text("# nothing connected: only local commands\nhelp\nframes 3\nlive off\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("await 0.2\n")
    args = ["--port", "0", "--record", str(tmp_path / "f.jsonl")]
    r = CliRunner().invoke(app, [*args, "--script", str(good), "--session-record", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s.jsonl").read_text().count("\n") == 4         # record + the 3 commands (the comment is not one)
    r = CliRunner().invoke(app, [*args, "--script", str(bad)])
    assert r.exit_code == 1 and "no station connected" in r.output
