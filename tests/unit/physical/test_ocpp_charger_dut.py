"""The real-bench `dut` driver (ocpp_charger) against the virtual lab's station playing a real charger: it waits
for the charger to connect to the bench's CSMS (the operator configured it), asks a connected one for a fresh
BootNotification, and its unwind verifies no DC power on the analyzer."""
from __future__ import annotations

import threading
import time

import pytest

from v2g_bench.errors import BenchError


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from pathlib import Path

    from v2g_bench.harness.dryrun import _lab
    from v2g_bench.profiles import load_bench
    tmp = tmp_path_factory.mktemp("ocppdut")
    text = (Path(__file__).parents[3] / "profiles" / "virtual-lab.bench.toml").read_text()
    text = text.replace('driver = "virtual_lab_dut"', 'driver = "ocpp_charger"\nconnect_timeout_s = 10.0')
    text = text.replace("[lab.iso15118]", "[lab.iso15118]\nenabled = false")
    p = tmp / "ocpp-dut.bench.toml"
    p.write_text(text)
    prof = load_bench(p)
    cm = _lab(prof, tmp)
    lab = cm.__enter__()
    try:
        yield prof, lab
    finally:
        cm.__exit__(None, None, None)


def test_connect_trigger_boot_and_verified_unwind(bench):
    from v2g_bench.harness.bench import Bench
    prof, lab = bench
    b = Bench(prof, lab=lab)
    try:
        csms, dut, analyzer = b.role("csms"), b.role("dut"), b.role("analyzer")
        assert "over OCPP" in dut.identify()
        opts = prof.roles["csms"].options
        url = csms.url_for(opts["station_id"])
        ctl = lab.control(timeout=15.0)

        def operator():                      # the operator configures the charger's CSMS URL
            time.sleep(0.5)
            ctl.call("station.connect", url=url, security_profile=1, password=opts["password"])
        t = threading.Thread(target=operator)
        t.start()
        r = dut.connect_ocpp(url, security_profile=1)
        t.join(20)
        assert r["connected"] and "connected" in r["how"]
        csms.expect("BootNotification", timeout=10)
        r = dut.connect_ocpp(url, security_profile=1)          # already connected: a fresh boot on request
        assert "TriggerMessage" in r["how"], r
        boot = csms.expect("BootNotification", where=lambda f: f.payload.get("reason") in ("Triggered", "RemoteReset"),
                           timeout=10)
        assert boot.payload["reason"] in r["how"] or "Reset" in r["how"]
        assert abs(analyzer.read()[1].power_w) < 50
        ctl.call("station.disconnect")
        ctl.close()
    finally:
        records = b.close()
    assert any(r.role == "dut" and r.step == "safe_state" and r.ok for r in records)


def test_a_charger_that_never_connects_is_a_bench_error_with_the_fix(bench):
    from v2g_bench.harness.bench import Bench
    prof, lab = bench
    b = Bench(prof, lab=lab)
    try:
        dut, csms = b.role("dut"), b.role("csms")
        dut.connect_timeout_s = 1.0
        with pytest.raises(BenchError, match="configure the charger's CSMS URL"):
            dut.connect_ocpp(csms.url_for("NOBODY"))
    finally:
        b.close()
