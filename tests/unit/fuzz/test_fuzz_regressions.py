"""Regression tests for the defects the fuzz campaign found (each input that crashed or hung a
target), plus the campaign machinery itself on a short run."""
from __future__ import annotations

import json

import pytest

from websockets.sync.client import connect

from v2g_bench.csms.server import CsmsOptions, CsmsServer
from v2g_bench.harness.asyncrt import LoopThread


def test_csms_answers_deeply_nested_json_with_a_callerror_and_keeps_the_connection(tmp_path):
    """Found by `make fuzz` (target csms): '[' * 2000 raised RecursionError out of the frame
    handler; the connection died with 1011 and a traceback."""
    loop = LoopThread("fuzz-regression-csms")
    srv = CsmsServer(CsmsOptions.from_dict({"security_profile": 0, "record_path": str(tmp_path / "f.jsonl")}))
    loop.run(srv.start(), 10)
    try:
        with connect(srv.url("CS-DEEP"), subprotocols=["ocpp2.0.1"], open_timeout=10) as ws:
            ws.send("[" * 2000 + "]" * 2000)
            err = json.loads(ws.recv(timeout=10))
            assert err[0] == 4 and err[1] == "-1" and err[2] == "RpcFrameworkError"
            ws.send(json.dumps([2, "after", "Heartbeat", {}]))
            assert json.loads(ws.recv(timeout=10))[:2] == [3, "after"]
        assert any("nested too deeply" in p for v in srv.violations for p in v.problems)
    finally:
        loop.run(srv.stop(), 10)
        loop.stop()


@pytest.mark.parametrize("old, new", [
    ("seed = 7", "seed = nan"),                       # ValueError: cannot convert float NaN to integer
    ("seed = 7", "seed = inf"),                       # OverflowError
    ("seed = 7", "seed = -1"),                        # numpy: expected non-negative integer
    ("seed = 7", 'seed = "V2X"'),                     # invalid literal for int()
    ("template = {", "template = 1.5\nx_template = {"),   # 'float' object is not iterable
])
def test_scenario_loader_refuses_hostile_values_with_a_scenario_error(tmp_path, old, new):
    """Found by `make fuzz` (target profiles -> scenario loader): these raised ValueError,
    OverflowError or TypeError with a traceback instead of a ScenarioError naming the file."""
    from pathlib import Path

    from v2g_bench.errors import BenchError
    from v2g_bench.scheduler.scenario import load_scenario

    src = (Path(__file__).resolve().parents[3] / "scenarios" / "delivery-vans-50.toml").read_text()
    assert old in src
    f = tmp_path / "bad.toml"
    f.write_text(src.replace(old, new, 1))
    with pytest.raises(BenchError) as ei:
        load_scenario(f)
    assert str(f) in str(ei.value)


def test_scenario_loader_refuses_binary_junk(tmp_path):
    from v2g_bench.errors import BenchError
    from v2g_bench.scheduler.scenario import load_scenario
    f = tmp_path / "junk.toml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BenchError, match="not a text file"):
        load_scenario(f)


def test_station_answers_deeply_nested_json_with_a_callerror_and_keeps_the_connection(tmp_path):
    """Found by `make fuzz` (target station): '[' * 2000 from the CSMS raised RecursionError out of
    ocpp's unpack; the simulated station's connection died (1011) and it was silent until it
    reconnected."""
    from v2g_bench.lab.charger.station import start_service
    from v2g_bench.lab.plant import Plant

    class Ops:
        def __init__(self):
            self.ops = {}

        def register_op(self, name, fn):
            self.ops[name] = fn

    csms_loop, st_loop = LoopThread("fuzz-reg-csms"), LoopThread("fuzz-reg-station")
    srv = CsmsServer(CsmsOptions.from_dict({"security_profile": 0, "record_path": str(tmp_path / "f.jsonl"),
                                            "ocpp_versions": ["2.0.1"]}))
    csms_loop.run(srv.start(), 10)
    ctx = Ops()
    svc = st_loop.run(start_service(Plant(), {"ocpp_version": "2.0.1", "meter_interval_s": 5.0}, ctx), 10)
    try:
        r = st_loop.run(ctx.ops["station.connect"](url=srv.url(), security_profile=0, ocpp_version="2.0.1"), 20)
        assert r["connected"], r
        sid = next(iter(srv.sessions))
        session = srv.sessions[sid]
        session.raw_ids.add("-1")
        errors = []
        srv.recorder.listeners.append(lambda f: errors.append(f) if f.direction == "in" and f.msg_type == 4 else None)
        csms_loop.run(session.send("[" * 2000 + "]" * 2000), 10)
        csms_loop.run(srv.wait_until(lambda: errors, 10), 15)
        assert errors[0].error_code == "RpcFrameworkError"
        probe = {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}
        ans = csms_loop.run(session.call("GetVariables", probe, timeout=10), 15)
        assert ans.msg_type == 3                      # same connection, still answering
        assert not session.closed.is_set()
    finally:
        st_loop.run(svc.stop(), 10)
        st_loop.stop()
        csms_loop.run(srv.stop(), 10)
        csms_loop.stop()
