"""End to end against the virtual lab process: the CSMS (this process) commands a discharge profile
to the simulated station (inside the lab process); the lab's Yokogawa analyzer (SCPI, element 1 =
DC link) shows the DC power follow it, and the energy registers in the station's TransactionEvents
agree with the analyzer's integrators.

Tolerances (stated): DC power within max(150 W, 3 %) of the commanded setpoint once settled
(the stage ramps at 5 kW/s; measurement noise 0.05 %); energy within max(0.5 Wh, 3 %) of the
analyzer's WP+/WP- over the transaction (sampling instants of the two differ by < 0.2 s).
"""
from __future__ import annotations

import socket
import time

import pytest

from csms_helpers import PASSWORD
from v2g_bench.lab.control import LabControl
from v2g_bench.harness.labproc import running_lab

POWER_TOL_W, POWER_TOL_REL = 150.0, 0.03
ENERGY_TOL_WH, ENERGY_TOL_REL = 0.5, 0.03


class Scpi:
    """A raw SCPI-over-TCP session (newline-terminated), as the analyzer's socket interface."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.buf = b""

    def write(self, cmd: str) -> None:
        self.sock.sendall(cmd.encode() + b"\n")

    def query(self, cmd: str) -> str:
        self.write(cmd)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"analyzer closed the connection on {cmd!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().strip()

    def values(self) -> list[float]:
        return [float(x) for x in self.query(":NUMeric:NORMal:VALue?").split(",")]

    def close(self):
        self.sock.close()


def registers(frame) -> tuple[float, float]:
    vals = {sv["measurand"]: sv["value"] for mv in frame["meterValue"] for sv in mv["sampledValue"]}
    return vals["Energy.Active.Import.Register"], vals["Energy.Active.Export.Register"]


def settle(analyzer: Scpi, target_w: float, timeout: float = 10.0) -> list[float]:
    """DC power samples (element 1) until within tolerance for 1 s; AssertionError with the trace otherwise."""
    tol = max(POWER_TOL_W, POWER_TOL_REL * abs(target_w))
    trace, inside_since = [], None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = analyzer.values()[2]                       # ITEM3 = P, element 1 (the DC link)
        trace.append(round(p, 1))
        if abs(p - target_w) <= tol:
            inside_since = inside_since or time.monotonic()
            if time.monotonic() - inside_since >= 1.0:
                return trace
        else:
            inside_since = None
        time.sleep(0.1)
    raise AssertionError(f"DC power did not settle at {target_w} W +- {tol:.0f} W within {timeout} s: {trace[-30:]}")


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_TC_Q_109_CS_discharge_profile_followed_and_energy_agrees_with_analyzer(make_csms, tmp_path, version):
    csms = make_csms(security_profile=1, password=PASSWORD)
    overrides = {"services.station.enabled": "true", "services.station.meter_location": '"dc"',
                 "services.station.meter_interval_s": "1.0", "services.station.ocpp_version": f'"{version}"'}
    # the battery emulator powers up off: limits, then output on through its driver, as a bench does
    with running_lab(workdir=tmp_path / "lab", overrides=overrides, timeout_s=60) as lab, lab.dc_link():
        ctl = LabControl("127.0.0.1", lab.ports["control"], timeout=20)
        analyzer = Scpi(lab.ports["analyzer_scpi"])
        try:
            r = ctl.call("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
            assert r["connected"], r
            csms.expect("BootNotification", timeout=10)
            analyzer.write(":INTEGrate:MODE NORMal")
            analyzer.write(":INTEGrate:RESet")
            analyzer.write(":INTEGrate:STARt")
            ctl.call("station.start_transaction")
            started = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=10)
            tx = started["transactionInfo"]["transactionId"]
            settle(analyzer, 11000.0)                                      # charging at the EV's max
            prof = csms.charging_profile(1, "TxProfile", [(0, -5000.0)], transaction_id=tx)
            assert csms.set_charging_profile(1, prof)["status"] == "Accepted"
            trace = settle(analyzer, -5000.0)
            time.sleep(2.0)                                                # discharge for a while (energy)
            ctl.call("station.stop_transaction")
            ended = csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Ended", timeout=10)
            analyzer.write(":INTEGrate:STOP")
            vals = analyzer.values()
            wpp, wpm = vals[3], abs(vals[4])                               # ITEM4/5 = WP+ / WP- element 1
            imp0, exp0 = registers(started)
            imp1, exp1 = registers(ended)
            d_imp, d_exp = imp1 - imp0, exp1 - exp0
            report = (f"OCPP {version}: station import {d_imp:.2f} Wh / export {d_exp:.2f} Wh; analyzer WP+ "
                      f"{wpp:.2f} Wh / WP- {wpm:.2f} Wh; DC trace after the profile {trace[-5:]}")
            print(report)
            assert d_exp > 1.0 and d_imp > 1.0, report
            assert abs(d_imp - wpp) <= max(ENERGY_TOL_WH, ENERGY_TOL_REL * wpp), report
            assert abs(d_exp - wpm) <= max(ENERGY_TOL_WH, ENERGY_TOL_REL * wpm), report
            st = ctl.call("station.status")
            assert st["errors"] == [] and st["queued"] == 0, st
            csms.assert_conformant()
        finally:
            analyzer.close()
            try:
                ctl.call("station.disconnect")
            except Exception:
                pass
