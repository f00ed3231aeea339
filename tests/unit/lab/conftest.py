"""Fixtures for the lab tests: a real lab process (python -m v2g_bench.lab) on loopback."""
from __future__ import annotations

import pytest

from v2g_bench.lab.control import LabControl
from vl_labproc import TEST_SERVICE, LabProc


@pytest.fixture(scope="module")
def vlab(tmp_path_factory):
    """One lab process per test module, 20x time scale, with the test service enabled."""
    tmp = tmp_path_factory.mktemp("vlab")
    (tmp / "vl_testsvc.py").write_text(TEST_SERVICE)
    lab = LabProc(tmp, ["--seed", "3", "--time-scale", "20",
                        "--set", "services.testsvc.module=vl_testsvc",
                        "--set", "services.testsvc.greeting=hello-lab"])
    try:
        lab.wait_ready()
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def ctl(vlab):
    """Control client; every test starts from a clean plant (no faults, stage idle, output on)."""
    c = LabControl("127.0.0.1", vlab.port("control"), timeout=3.0)
    c.clear_faults()
    c.emulator(clear_protection=True, emulation="BATTERY", voltage_set_v=370.0, current_limit_pos_a=40.0,
               current_limit_neg_a=-40.0, power_limit_w=20000.0, ovp_v=550.0, ocp_enabled=False,
               output_on=True)
    c.setpoint(0)
    c.contactor(False)
    c.power_limits(1e9, 1e9)
    c.set_grid(freq_hz=50.0, voltage_v=230.0)
    c.battery(soc=0.5)
    try:
        yield c
    finally:
        c.clear_faults()
        c.close()
