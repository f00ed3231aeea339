"""Fixtures shared by the conformance suite."""
import pytest

from v2g_bench.errors import BenchError


@pytest.fixture
def dc_link(battery, bench_profile, evidence):
    """The battery emulator playing the EV battery: limits programmed and read back, then output on,
    its communication watchdog fed for the length of the test.

    If the output drops during the test (watchdog, protection trip), that is a bench error, not the
    DUT's fault. Unwound (ramp down, output off, verified) by the Bench after the test."""
    battery.apply_limits()
    # a protection latched by an earlier test (e.g. its watchdog tripped) would keep the output off: clear it,
    # and keep the record, so one bench fault does not turn every later case into an error
    latched = {k: v for k, v in battery.protection_status().items() if v}
    if latched:
        evidence.attach_json("battery-protection-cleared", latched)
        battery.clear_protection()
    battery.set_voltage(float(bench_profile.roles["battery"].options.get("voltage_v", 370.0)))
    battery.output_on()
    with battery.keep_alive() as status:
        yield battery
    if status["error"] is not None:
        raise BenchError(f"lost the battery emulator during the test: {status['error']}")
    if status["dropped"]:
        raise BenchError("the battery emulator's output turned off during the test (watchdog or protection)",
                         fix="read battery.protection_status() and the instrument's error queue")
