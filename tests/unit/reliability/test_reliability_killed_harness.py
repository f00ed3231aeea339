"""`kill -9` of the harness mid power transfer: the lab falls to its safe state and exits; the veth and the
namespace the harness made are found and removed by the next run (and by `v2g-bench doctor`)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from v2g_bench.ev import netns
from v2g_bench.harness import leftovers

# A stand-in for `v2g-bench run`: starts the lab the way the plugin does, drives -5.5 kW through a
# closed contactor (the state), makes the ISO 15118 wire if it can, reports, then waits to be killed.
HARNESS = textwrap.dedent("""
    import json, sys, time
    from v2g_bench.harness.labproc import start_lab
    from v2g_bench.ev import netns
    out = sys.argv[1]
    h = start_lab(workdir=out + "/lab", timeout_s=90)
    c = h.control()
    c.call("emulator", output_on=True)
    c.call("contactor", closed=True)
    c.call("setpoint", p_w=-5500.0)
    st = c.state()
    wire = {}
    if netns.veth_unavailable_reason() is None and netns.netns_unavailable_reason() is None:
        ns = netns.EvNetns()
        pair = netns.VethPair.create(ev_netns=ns)
        wire = {"netns": ns.name, "veth": pair.secc_iface}
    with open(out + "/harness.json", "w") as f:
        json.dump({"lab_pid": h.pid, "log": str(h.log_path), "state": st, **wire}, f)
    time.sleep(120)
""")


def _wait(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_killed_harness_leaves_a_safe_plant_and_its_leftovers_are_removed(tmp_path):
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "harness.err", "wb"))
    lab_pid = None
    try:
        info = _wait(lambda: _read_json(tmp_path / "harness.json") or harness.poll() is not None, 120,
                     "the harness to start the lab")
        assert isinstance(info, dict), (tmp_path / "harness.err").read_text()[-2000:]
        lab_pid = info["lab_pid"]
        # the state the issue describes: power flowing out of the battery through a closed contactor
        assert info["state"]["contactor_closed"] and info["state"]["setpoint_w"] == -5500.0
        assert info["state"]["battery_output_on"]

        harness.send_signal(signal.SIGKILL)        # no finally, no atexit: only the lab can save itself
        harness.wait(10)
        _wait(lambda: not psutil.pid_exists(lab_pid) or psutil.Process(lab_pid).status() == psutil.STATUS_ZOMBIE,
              15, "the orphaned lab to exit")
        log = open(info["log"]).read()
        assert "is gone: outputs off (contactor closed=False, setpoint 0 W, emulator output on=False)" in log, log[-3000:]
        assert "lab stopped" in log

        if "netns" in info:                        # the next run finds the killed run's wire and removes it
            stale = {(lo.kind, lo.name) for lo in netns.stale_links()}
            assert ("netns", info["netns"]) in stale and ("veth", info["veth"]) in stale
            found, problems = leftovers.remove_all()
            assert not problems
            assert info["netns"] not in netns._namespaces() and info["veth"] not in netns._links()
            assert {name for _, name, _ in found} >= {info["netns"], info["veth"]}
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
        if lab_pid and psutil.pid_exists(lab_pid):
            leftovers.stop_lab(lab_pid, grace_s=3)
        netns.remove_stale()


def test_a_lab_orphaned_before_owners_were_recorded_is_found_and_stopped(tmp_path):
    """A lab without owners whose parent died (reparented to init) is stale for the doctor; a lab start leaves
    it (it may be someone's hand-started lab); another run's lab is never stale."""
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if k != "V2G_BENCH_LAB_OWNERS"}
    # the shell starts the lab in the background and exits at once: the lab is an orphan
    subprocess.run(["sh", "-c", f"'{sys.executable}' -m v2g_bench.lab --ready-file '{ready}' "
                                f"--log '{tmp_path}/lab.log' >/dev/null 2>&1 &"], env=env, timeout=10, check=True)
    info = _wait(lambda: _read_json(ready), 90, "the orphaned lab to be ready")
    pid = info["pid"]
    try:
        stale = {lab.pid: lab.reason for lab in leftovers.stale_labs()}
        assert pid in stale and "orphaned" in stale[pid]
        assert os.getpid() not in stale
        assert pid not in {lab.pid for lab in leftovers.stale_labs(include_orphans=False)}  # a lab start spares it
        assert leftovers.remove_stale_labs(include_orphans=True) == []                    # the doctor does not
        _wait(lambda: not psutil.pid_exists(pid), 10, "the stale lab to be gone")
        assert "lab stopped" in (tmp_path / "lab.log").read_text()   # it went through its safe stop
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_names_carry_the_owner_pid_and_live_owners_are_never_stale():
    base = netns.unique_base()
    assert len(base + "a") <= 15
    mine = netns._owner_alive(base + "a")
    assert mine == (True, f"pid {os.getpid()}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    name = f"evnm{netns._b36(dead.pid, netns.PID_DIGITS)}01"
    assert netns._owner_alive(name) == (False, f"pid {dead.pid}")
    assert netns._owner_alive("eth0") is None and netns._owner_alive("evil0") is None  # not ours
    assert netns._owner_alive(f"v2gdoc{os.getpid()}") == (True, f"v2g-bench doctor pid {os.getpid()}")


def test_doctor_finds_and_removes_a_dead_runs_namespace_and_veth():
    if netns.veth_unavailable_reason() or netns.netns_unavailable_reason():
        pytest.skip(f"needs root/CAP_NET_ADMIN: {netns.veth_unavailable_reason() or netns.netns_unavailable_reason()}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    tag = netns._b36(dead.pid, netns.PID_DIGITS)
    ns_name, veth = f"evnm{tag}zz", f"evm{tag}zzb"
    subprocess.run(["ip", "netns", "add", ns_name], check=True, timeout=10)
    subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", f"evm{tag}zza"], check=True, timeout=10)
    try:
        r = subprocess.run([sys.executable, "-m", "v2g_bench.cli", "doctor"], capture_output=True, text=True,
                           timeout=180, env={**os.environ, "COLUMNS": "400"})
        assert "leftovers of killed runs" in r.stdout
        assert f"netns {ns_name}" in r.stdout and f"veth {veth}" in r.stdout, r.stdout[-3000:]
        assert ns_name not in netns._namespaces() and veth not in netns._links()
    finally:
        subprocess.run(["ip", "netns", "del", ns_name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", veth], capture_output=True, timeout=10)


RUN_SUITE = textwrap.dedent("""
    import json, os, time
    def test_hold_power(lab):
        c = lab.control()
        c.call("emulator", output_on=True)
        c.call("contactor", closed=True)
        c.call("setpoint", p_w=-5500.0)
        end = time.monotonic() + 20
        while c.state()["dc_power_w"] > -5000 and time.monotonic() < end:   # until the power flows
            time.sleep(0.05)
        wire = lab.info.get("iso15118") or {}
        with open(os.environ["V2G_KILL_MARK"], "w") as f:
            json.dump({"lab_pid": lab.pid, "log": str(lab.log_path), "state": c.state(),
                       "veth": wire.get("secc_iface"), "netns": wire.get("ev_netns")}, f)
        time.sleep(120)
""")


def test_kill_9_of_v2g_bench_run_mid_transfer(tmp_path):
    """The issue's case end to end: `v2g-bench run` (default virtual-lab profile, its ISO 15118 wire when the
    machine allows one) killed with SIGKILL while -5.5 kW flow."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_hold.py").write_text(RUN_SUITE)
    mark = tmp_path / "mark.json"
    run = subprocess.Popen([sys.executable, "-m", "v2g_bench.cli", "run", "--suite", str(suite),
                            "--reports", str(tmp_path / "reports"), "--no-html"],
                           env={**os.environ, "V2G_KILL_MARK": str(mark)}, stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "run.err", "wb"))
    lab_pid = None
    try:
        info = _wait(lambda: _read_json(mark) or run.poll() is not None, 180, "the run to hold power")
        assert isinstance(info, dict), (tmp_path / "run.err").read_text()[-3000:]
        lab_pid = info["lab_pid"]
        assert info["state"]["contactor_closed"] and info["state"]["dc_power_w"] < -1000
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        _wait(lambda: not psutil.pid_exists(lab_pid) or psutil.Process(lab_pid).status() == psutil.STATUS_ZOMBIE,
              15, "the lab of the killed run to exit")
        log = open(info["log"]).read()
        assert "is gone: outputs off (contactor closed=False, setpoint 0 W, emulator output on=False)" in log
        if netns.veth_unavailable_reason() is None and netns.netns_unavailable_reason() is None:
            assert info.get("netns") and info.get("veth"), info          # the run made its ISO 15118 wire
        if info.get("netns"):
            stale = {lo.name for lo in netns.stale_links()}
            assert info["netns"] in stale and info["veth"] in stale
            found, problems = leftovers.remove_all()
            assert not problems and info["netns"] not in netns._namespaces()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
        if lab_pid and psutil.pid_exists(lab_pid):
            leftovers.stop_lab(lab_pid, grace_s=3)
        netns.remove_stale()
