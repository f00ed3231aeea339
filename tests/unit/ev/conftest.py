"""Fixtures for EV tests against the REAL lab process (python -m v2g_bench.lab) and its SECC service.

One lab process per test session (the SECC inside it starts its own JVM: seconds on 2 cores), one
EV netns + veth pair from v2g_bench.ev.labnet, the lab's WT5000 analyzer opened over its SCPI port.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest


@dataclass
class LabWire:
    net: object            # v2g_bench.ev.labnet.LabNetwork
    lab: object            # v2g_bench.harness.labproc.LabHandle
    analyzer: object       # YokogawaWT5000 over the lab's analyzer_scpi port
    battery: object        # KeysightRP7900 over the lab's battery_scpi port: the DC link, on for the session

    def state(self) -> dict:
        return self.lab.control().call("state")

    def secc_status(self) -> dict:
        return self.lab.control().call("secc_status")

    def wait_idle(self, timeout: float = 10.0) -> dict:
        """Wait until the lab's power stage carries no current (bounded)."""
        end = time.monotonic() + timeout
        st = self.state()
        while time.monotonic() < end:
            st = self.state()
            if abs(st.get("dc_current_a", 0.0)) < 0.05 and abs(st.get("setpoint_w", 0.0)) < 1e-6:
                return st
            time.sleep(0.1)
        raise AssertionError(f"lab power stage not idle within {timeout} s: {st}")


class _Roles:
    """The bench's role registry as EVEmulator.open sees it (ctx.roles.role(name))."""

    def __init__(self, **roles):
        self._roles = roles

    def role(self, name):
        return self._roles[name]


@pytest.fixture(scope="session")
def lab_wire(tmp_path_factory):
    from v2g_bench.ev.labnet import lab_network
    from v2g_bench.instruments.vendors.scpi_analyzer import YokogawaWT5000
    from v2g_bench.harness.labproc import start_lab
    from v2g_bench.roles import RoleConfig

    # TLS offered on request (plain TCP still accepted), PnC offered on TLS only: one lab serves all tests
    # and a 4 s SECC sequence timeout (stack default 60 s) so misbehaviour tests can probe it quickly
    with lab_network({"secc": {"tls": True, "auth": ["EIM", "PnC"], "sequence_timeout_s": 4.0}}) as net:
        if net.unavailable:
            pytest.skip(net.unavailable)
        lab = start_lab(workdir=tmp_path_factory.mktemp("evlab"), overrides=net.overrides, timeout_s=90)
        analyzer = None
        try:
            analyzer = YokogawaWT5000.open(RoleConfig(
                role="analyzer", driver="yokogawa_wt5000", options={"elements": [1, 2]},
                resource=f"TCPIP0::127.0.0.1::{lab.ports['analyzer_scpi']}::SOCKET"))
            analyzer.set_update_interval(0.05)
            with lab.dc_link() as battery:    # the emulator powers up off: limits, then output on (driver)
                yield LabWire(net, lab, analyzer, battery)
        finally:
            if analyzer is not None:
                analyzer.close()
            code = lab.stop()
            assert code == 0, f"lab exited with {code}{' (killed after the grace)' if lab.killed else ''}:\n{lab.log_tail()}"


@pytest.fixture(scope="session")
def lab_ev(lab_wire):
    """The EV emulator opened like the harness does: [roles.ev] options from the lab's ready file,
    SOC from the analyzer role's element 1 counters."""
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.roles import BenchContext, RoleConfig

    soc = lab_wire.state()["soc"]
    cfg = RoleConfig(role="ev", driver="iso15118_evcc",
                     options={"energy_from": "analyzer", "model": {"capacity_wh": 60_000.0, "soc": soc}})
    ctx = BenchContext(lab=lab_wire.lab, roles=_Roles(analyzer=lab_wire.analyzer))
    ev = EVEmulator.open(cfg, ctx)
    try:
        yield ev
    finally:
        ev.safe_state()
        ev.close()
