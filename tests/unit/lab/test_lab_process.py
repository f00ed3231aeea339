"""The lab process: ready file, ports, services, clean stop, time scale, config errors."""
from __future__ import annotations

import socket
import time

import pytest

from vl_labproc import LabProc, wait_until
from v2g_bench.errors import LabError
from v2g_bench.lab.control import LabControl
from v2g_bench.lab.server import load_config, parse_set


def test_ready_file_lists_listening_ports_and_service_extras(vlab):
    r = vlab.ready
    assert r["pid"] == vlab.proc.pid
    for name in ("battery_scpi", "analyzer_scpi", "modbus", "can", "control", "testsvc"):
        with socket.create_connection(("127.0.0.1", r["ports"][name]), timeout=2):
            pass
    assert r["testsvc"] == {"greeting": "hello-lab"}           # --set reached the service cfg
    assert r["resources"]["battery_scpi"] == f"TCPIP0::127.0.0.1::{r['ports']['battery_scpi']}::SOCKET"
    assert r["time_scale"] == 20 and r["seed"] == 3


def test_service_op_and_port_drive_the_same_plant(vlab, ctl):
    ctl.battery(soc=0.61)
    with socket.create_connection(("127.0.0.1", vlab.port("testsvc")), timeout=2) as s:
        s.sendall(b"ping\n")
        answer = s.makefile().readline().split()
    assert float(answer[0]) == pytest.approx(0.61, abs=1e-4) and answer[1] == "ping"
    assert ctl.call("svc_setpoint", p_w=3000)["setpoint_w"] == 3000
    st = wait_until(lambda: (s := ctl.state())["dc_power_w"] > 2990 and s, 5, "stage to reach 3 kW")
    assert st["contactor_closed"] and "svc_setpoint" in ctl.call("ops")["ops"]


def test_control_call_timeout_per_op(vlab):
    """LabControl.call(timeout=) bounds one op's wait; the client's default stays for the others."""
    c = LabControl("127.0.0.1", vlab.port("control"), timeout=0.3)
    try:
        with pytest.raises(LabError, match="got no answer within 0.3 s"):
            c.call("svc_sleep", s=1.0)
        assert c.call("svc_sleep", s=1.0, timeout=5.0) == {"ok": True, "slept": 1.0}
        assert c.timeout == 0.3 and c.call("ping")["ok"]
        for bad in (0, -1, float("nan"), "5", True):
            with pytest.raises(LabError, match="timeout must be a positive number"):
                c.call("ping", timeout=bad)
    finally:
        c.close()


def test_time_scale_runs_plant_faster(vlab, ctl):
    t0, w0 = ctl.state()["t"], time.monotonic()
    time.sleep(0.5)
    t1, w1 = ctl.state()["t"], time.monotonic()
    assert 15 <= (t1 - t0) / (w1 - w0) <= 21


def test_sigterm_stops_cleanly_and_removes_ready_file(tmp_path):
    lab = LabProc(tmp_path, ["--time-scale", "100"])
    try:
        lab.wait_ready()
        c = LabControl("127.0.0.1", lab.port("control"))
        c.emulator(output_on=True)       # it powers up off
        c.contactor(True)
        c.setpoint(5000)
        wait_until(lambda: c.state()["dc_power_w"] > 4900, 5, "power flowing")
        c.close()
        rc, took = lab.stop()
        assert rc == 0 and took < 5.0
        assert not lab.ready_path.exists()
        assert "lab stopped" in lab.log_text()
    finally:
        lab.stop()


def test_faster_than_100x(tmp_path):
    lab = LabProc(tmp_path, ["--time-scale", "500"])
    try:
        lab.wait_ready()
        c = LabControl("127.0.0.1", lab.port("control"))
        # bracket each plant-time read by wall-clock reads: request latency on a loaded machine then widens the
        # bracket instead of biasing the rate
        a0 = time.monotonic()
        t0 = c.state()["t"]
        b0 = time.monotonic()
        time.sleep(0.4)
        a1 = time.monotonic()
        t1 = c.state()["t"]
        b1 = time.monotonic()
        c.close()
        slowest, fastest = (t1 - t0) / (b1 - a0), (t1 - t0) / (a1 - b0)
        assert slowest <= 505 and fastest >= 400, (slowest, fastest)
    finally:
        lab.stop()


@pytest.mark.parametrize("args, message", [
    (["--set", "plant.battery.capasity_wh=5"], "capasity_wh"),
    (["--set", "frontends.gpib.enabled=true"], "frontends.gpib"),
    (["--set", "services.x.module=no_such_module_vl"], "no_such_module_vl"),
    (["--host", "10.0.0.1"], "not loopback"),
    (["--time-scale", "0.5"], "time_scale"),
])
def test_bad_configuration_exits_with_a_clear_error(tmp_path, args, message):
    lab = LabProc(tmp_path, args)
    try:
        rc = lab.proc.wait(20)
        err = lab.proc.stderr.read().decode()
        assert rc == 2 and message in err
        assert not lab.ready_path.exists()
    finally:
        lab.stop()


def test_parse_set_and_load_config_errors(tmp_path):
    assert parse_set("a.b=3") == (["a", "b"], 3)
    assert parse_set("services.secc.iface=vl-secc0") == (["services", "secc", "iface"], "vl-secc0")
    assert parse_set("x=[1, 2]") == (["x"], [1, 2])
    with pytest.raises(LabError):
        parse_set("novalue")
    bad = tmp_path / "bad.toml"
    bad.write_text("[lab\n")
    with pytest.raises(LabError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(LabError, match="not found"):
        load_config(tmp_path / "missing.toml")
    cfg = load_config(None, ["services.secc.enabled=true", "services.secc.iface=vl-x"])
    assert cfg["services"]["secc"] == {"enabled": True, "module": "v2g_bench.lab.charger.secc", "iface": "vl-x"}


def _run_manual(tmp, seed):
    """A manual-clock lab: the same control sequence, then 20 analyzer samples over SCPI."""
    import pyvisa
    tmp.mkdir()
    lab = LabProc(tmp, ["--seed", str(seed), "--set", "lab.clock=manual",
                        "--set", "plant.measurement.noise_rel=0.01"])
    try:
        lab.wait_ready()
        c = LabControl("127.0.0.1", lab.port("control"))
        c.contactor(True)
        c.setpoint(7000)
        rm = pyvisa.ResourceManager("@py")
        wt = rm.open_resource(f"TCPIP0::127.0.0.1::{lab.port('analyzer_scpi')}::SOCKET",
                              read_termination="\n", write_termination="\n", timeout=2000)
        wt.write(":NUM:NORM:NUM 3;ITEM1 U,1;ITEM2 I,1;ITEM3 P,2;:RATE 100MS")
        out = []
        for _ in range(20):
            c.advance(0.1)
            out.append(wt.query(":NUM:NORM:VAL?"))
        wt.close()
        rm.close()
        c.close()
        return out
    finally:
        lab.stop()


def test_same_seed_and_clock_give_the_same_samples_through_scpi(tmp_path):
    a = _run_manual(tmp_path / "a", 11)
    b = _run_manual(tmp_path / "b", 11)
    c = _run_manual(tmp_path / "c", 12)
    assert a == b
    assert a != c
    assert len(set(a)) > 10                 # the samples really are noisy and moving
