"""Fixtures shared by the conformance suite."""
import pytest


@pytest.fixture
def dc_link(battery, bench_profile):
    """The battery emulator playing the EV battery: limits programmed and read back, then output on.

    Unwound (ramp down, output off, verified) by the Bench after the test."""
    battery.apply_limits()
    battery.set_voltage(float(bench_profile.roles["battery"].options.get("voltage_v", 370.0)))
    battery.output_on()
    return battery
