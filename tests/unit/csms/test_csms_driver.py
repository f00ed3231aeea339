"""The CSMS as a bench role: registry, config validation, evidence written while running."""
from __future__ import annotations

import base64
import json

from websockets.sync.client import connect

from v2g_bench.drivers import get_driver
from v2g_bench.harness.evidence import Evidence
from v2g_bench.roles import BenchContext, RoleConfig


def test_registered_and_validates_config():
    cls = get_driver("ocpp_csms")
    assert cls.__name__ == "CSMSEmulator" and cls.transport == "ocpp" and "csms" in cls.roles
    bad = RoleConfig(role="csms", driver="ocpp_csms", options={"security_profile": 7, "ocpp_versions": ["1.6"]})
    problems = cls.validate_config(bad)
    assert any("security_profile" in p for p in problems) and any("ocpp_versions" in p for p in problems)
    assert cls.validate_config(RoleConfig(role="csms", driver="ocpp_csms",
                                          options={"security_profile": 1, "password": "x" * 16})) == []


def test_frames_streamed_to_evidence_while_running_and_summary_at_close(tmp_path):
    ev = Evidence(tmp_path, "tests/unit/csms::test_x")
    cfg = RoleConfig(role="csms", driver="ocpp_csms",
                     options={"security_profile": 1, "station_id": "CS-EV", "password": "evidence-pass-01"})
    csms = get_driver("ocpp_csms").open(cfg, BenchContext(evidence=ev))
    try:
        hdr = {"Authorization": "Basic " + base64.b64encode(b"CS-EV:evidence-pass-01").decode()}
        with connect(csms.url_for("CS-EV"), subprotocols=["ocpp2.1"], additional_headers=hdr) as ws:
            ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
            reply = json.loads(ws.recv(5))
            assert reply[0] == 3 and "currentTime" in reply[2]
            csms.expect("Heartbeat", timeout=5)
            lines = (ev.dir / "ocpp-frames.jsonl").read_text().splitlines()     # written while running
            assert [json.loads(x)["type"] for x in lines] == ["CALL", "CALLRESULT"]
        assert "CSMS emulator" in csms.identify()
    finally:
        csms.safe_state()
        csms.close()
        csms.close()                                                            # idempotent
    summary = json.loads((ev.dir / "ocpp-summary.json").read_text())
    assert summary["frames"] == 2 and [c["kind"] for c in summary["connections"]][:1] == ["accepted"]
