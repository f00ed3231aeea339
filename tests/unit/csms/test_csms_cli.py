"""`v2g-bench csms` by hand: starts, prints frames live, records them, stops on its own."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys

from websockets.asyncio.client import connect


def test_cli_prints_and_records_frames(tmp_path):
    record = tmp_path / "frames.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", "from v2g_bench.csms.cli import app; app()", "--port", "0",
                             "--security-profile", "1", "--record", str(record), "--duration", "6"],
                            env={**os.environ, "V2G_BENCH_CSMS_PASSWORD": "cli-password-0042"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/ocpp/", line)
        assert m, line
        port = int(m.group(1))

        async def station():
            hdr = {"Authorization": "Basic " + base64.b64encode(b"CLI-CS:cli-password-0042").decode()}
            async with connect(f"ws://127.0.0.1:{port}/ocpp/CLI-CS", subprotocols=["ocpp2.0.1"],
                               additional_headers=hdr) as ws:
                await ws.send(json.dumps([2, "c1", "BootNotification", {"reason": "PowerUp", "chargingStation": {
                    "model": "M", "vendorName": "V"}}]))
                return json.loads(await asyncio.wait_for(ws.recv(), 5))
        reply = asyncio.run(station())
        assert reply[0] == 3 and reply[2]["status"] == "Accepted"
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "BootNotification" in out and "-> CALL" in out and "<- CALLRESULT" in out, out
    assert "accepted CLI-CS" in out and "2 frames recorded" in out, out
    recs = [json.loads(x) for x in record.read_text().splitlines()]
    assert [(r["dir"], r["type"], r["action"]) for r in recs] == [("in", "CALL", "BootNotification"),
                                                                  ("out", "CALLRESULT", "BootNotification")]
    assert recs[0]["raw"].startswith('[2, "c1"')


def test_cli_refuses_a_password_on_the_command_line_and_reads_a_stations_file(tmp_path):
    from v2g_bench.csms.cli import read_credentials
    from v2g_bench.errors import BenchError
    import pytest
    with pytest.raises(BenchError, match="visible"):
        read_credentials(None, None, ["CS1=secret-password-0001"])
    f = tmp_path / "stations"
    f.write_text("# id=password\nCS1 = secret-password-0001\n\nCS2=other-password-00002\n")
    pw, stations = read_credentials(None, f, [])
    assert pw is None and stations == {"CS1": "secret-password-0001", "CS2": "other-password-00002"}
    bad = tmp_path / "bad"
    bad.write_text("CS1 secret\n")
    with pytest.raises(BenchError, match="line 1: expected ID=PASSWORD"):
        read_credentials(None, bad, [])
    unknown = subprocess.run([sys.executable, "-c", "from v2g_bench.csms.cli import app; app()", "--password", "x"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0 and "password" in (unknown.stderr + unknown.stdout)
