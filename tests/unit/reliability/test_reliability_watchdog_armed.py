"""On a real bench nothing but the instrument can switch off after the harness dies: the battery emulator
driver arms the instrument's own I/O watchdog (with the profile's delay) BEFORE it switches the output on.
Shown on the wire: a TCP relay between the RP7900 driver and the virtual lab logs every command in order."""
import socket
import threading
import time

import pytest

from v2g_bench.instruments.vendors.scpi_dc_source import KeysightRP7900
from v2g_bench.roles import RoleConfig

LIMITS = {"voltage_max_v": 450.0, "current_charge_max_a": 35.0, "current_discharge_max_a": 35.0,
          "power_max_w": 15000.0, "ovp_v": 500.0}


class WireLog:
    """A one-connection TCP relay that records the client's lines (the commands as sent)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.lines: list[str] = []
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.srv.settimeout(10)
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        try:
            client, _ = self.srv.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        for src, dst, log in ((client, upstream, True), (upstream, client, False)):
            t = threading.Thread(target=self._pump, args=(src, dst, log), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, src, dst, log):
        buf = b""
        try:
            while data := src.recv(65536):
                if log:
                    buf += data
                    *done, buf = buf.split(b"\n")
                    self.lines += [d.decode(errors="replace").strip() for d in done]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.srv.close()
        for t in self._threads:
            t.join(5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from v2g_bench.harness.labproc import start_lab
    handle = start_lab(workdir=tmp_path_factory.mktemp("wdoglab"), timeout_s=90)
    try:
        yield handle
    finally:
        handle.stop()


def _index(lines, predicate, what):
    for i, line in enumerate(lines):
        if predicate(line.upper()):
            return i
    raise AssertionError(f"{what} never sent; the wire: {lines}")


def test_output_on_arms_the_instrument_watchdog_first(lab):
    wire = WireLog(lab.ports["battery_scpi"])
    battery = KeysightRP7900.open(RoleConfig(role="battery", driver="keysight_rp7900", limits=LIMITS,
                                             resource=f"TCPIP0::127.0.0.1::{wire.port}::SOCKET",
                                             options={"watchdog_s": 1.5}))
    try:
        battery.apply_limits()
        battery.output_on()
        lines = list(wire.lines)
        delay = _index(lines, lambda s: s.startswith("OUTP:PROT:WDOG:DEL ") and float(s.split()[1]) == 1.5,
                       "the watchdog delay (1.5 s)")
        armed = _index(lines, lambda s: s in ("OUTP:PROT:WDOG ON", "OUTP:PROT:WDOG 1"), "watchdog ON")
        on = _index(lines, lambda s: s in ("OUTP ON", "OUTP 1"), "output ON")
        assert delay < on and armed < on, lines
        # and the instrument itself says so (its own state, not the driver's belief)
        st = lab.control().call("state")
        assert st["battery_output_on"] is True
    finally:
        battery.safe_state()
        battery.close()
        wire.close()


def test_the_armed_watchdog_switches_off_when_the_bench_goes_silent(lab):
    battery = KeysightRP7900.open(RoleConfig(role="battery", driver="keysight_rp7900", limits=LIMITS,
                                             resource=f"TCPIP0::127.0.0.1::{lab.ports['battery_scpi']}::SOCKET",
                                             options={"watchdog_s": 1.0}))
    ctl = lab.control()
    try:
        battery.apply_limits()
        battery.output_on()
        t_silent = time.monotonic()
        # silence on the battery's SCPI port IS the condition under test; the lab's control port is another server
        deadline = t_silent + 5.0
        while ctl.state()["battery_output_on"]:
            assert time.monotonic() < deadline, "the watchdog did not switch the output off within 5 s"
            time.sleep(0.05)
        assert time.monotonic() - t_silent >= 0.9            # not before its delay
        assert ctl.call("emulator")["protection"] == ["WDOG"]           # latched as the watchdog, not OV/OC
    finally:
        ctl.call("emulator", clear_protection=True)
        battery.close()
