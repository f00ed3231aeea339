"""Keysight RP7900 driver: exact SCPI strings and answers (pymeasure expected_protocol, no I/O)."""
import pytest
from pymeasure.test import expected_protocol

from v2g_bench.errors import BenchError, InstrumentError, LimitViolation, SafeStateError
from v2g_bench.instruments.dc_source import DCLimits
from v2g_bench.instruments.vendors.scpi_dc_source import KeysightRP7900

OK = (b"SYST:ERR?", b'+0,"No error"')
LIM = DCLimits(voltage_max_v=500, current_charge_max_a=100, current_discharge_max_a=80, power_max_w=40000)
CLS = KeysightRP7900.instrument_class()


def drv(inst, **opts):
    return KeysightRP7900.from_instrument(inst, limits=LIM, options={"ramp_steps": 2, **opts})


INIT = [(b"*CLS", None), OK]
LIMITS = [
    (b"VOLT:PROT 500", None), OK,
    (b"CURR:PROT:STAT ON", None), OK,
    (b"CURR:LIM:NEG -100", None), OK,      # charge limit = instrument sinking, a negative number
    (b"CURR:LIM 80", None), OK,            # discharge limit = instrument sourcing
    (b"POW:LIM 40000", None), OK,
    (b"CURR:LIM:NEG?", b"-1.000000E+02"), (b"CURR:LIM?", b"+8.000000E+01"),
    (b"VOLT:PROT?", b"+5.000000E+02"), (b"POW:LIM?", b"+4.000000E+04"),
]
ON = [(b"OUTP:PROT:WDOG:DEL 2", None), OK, (b"OUTP:PROT:WDOG ON", None), OK,
      (b"OUTP:PROT:WDOG?", b"1"), (b"OUTP:PROT:WDOG:DEL?", b"+2.000000E+00"),
      (b"OUTP ON", None), OK, (b"OUTP?", b"1")]
OFF_RAMP = [(b"CURR:LIM:NEG -50", None), OK, (b"CURR:LIM 40", None), OK,
            (b"CURR:LIM:NEG 0", None), OK, (b"CURR:LIM 0", None), OK,
            (b"OUTP OFF", None), OK, (b"OUTP?", b"0")]


def test_rp7900_limits_readback_then_output_on_arms_watchdog():
    with expected_protocol(CLS, INIT + LIMITS + ON, name="battery") as inst:
        d = drv(inst)
        got = d.apply_limits()
        assert got == {"voltage_protection_v": 500.0, "current_charge_a": 100.0,
                       "current_discharge_a": 80.0, "power_w": 40000.0}
        d.output_on()


def test_rp7900_read_converts_sign_sourcing_is_discharge():
    # RP7900 reports +20 A / +8000 W while SOURCING: the EV battery is discharging -> negative for us.
    with expected_protocol(CLS, INIT + [(b"MEAS:VOLT?", b"+4.000000E+02"), (b"MEAS:CURR?", b"+2.000000E+01"),
                                        (b"MEAS:POW?", b"+8.000000E+03")], name="battery") as inst:
        r = drv(inst).read()
    assert (r.voltage_v, r.current_a, r.power_w) == (400.0, -20.0, -8000.0)


def test_rp7900_read_sinking_is_charge_positive():
    with expected_protocol(CLS, INIT + [(b"MEAS:VOLT?", b"399.5"), (b"MEAS:CURR?", b"-25"),
                                        (b"MEAS:POW?", b"-9987.5")], name="battery") as inst:
        r = drv(inst).read()
    assert (r.current_a, r.power_w) == (25.0, 9987.5)


def test_rp7900_output_on_refused_before_limits_and_nothing_sent():
    with expected_protocol(CLS, INIT, name="battery") as inst:
        d = drv(inst)
        with pytest.raises(BenchError, match="apply_limits"):
            d.output_on()


@pytest.mark.parametrize("call", [
    lambda d: d.set_voltage(500.1), lambda d: d.set_voltage(-1), lambda d: d.set_voltage(float("nan")),
    lambda d: d.set_current_limits(100.5, 10), lambda d: d.set_current_limits(10, 81),
    lambda d: d.set_current_limits(-1, 10), lambda d: d.set_power_limit(40001),
])
def test_rp7900_out_of_range_setpoints_refused_before_sending(call):
    with expected_protocol(CLS, INIT, name="battery") as inst:   # nothing beyond INIT may be sent
        with pytest.raises(LimitViolation, match="nothing was sent"):
            call(drv(inst))


def test_rp7900_readback_mismatch_blocks_output():
    bad = LIMITS[:-4] + [(b"CURR:LIM:NEG?", b"-50"), (b"CURR:LIM?", b"80"), (b"VOLT:PROT?", b"500"),
                         (b"POW:LIM?", b"40000")]
    with expected_protocol(CLS, INIT + bad, name="battery") as inst:
        d = drv(inst)
        with pytest.raises(InstrumentError, match="current_charge_a.*programmed 100, read 50"):
            d.apply_limits()
        with pytest.raises(BenchError, match="apply_limits"):
            d.output_on()


def test_rp7900_error_in_queue_after_set_raises_naming_command_and_answer():
    with expected_protocol(CLS, INIT + [(b"VOLT 450", None), (b"SYST:ERR?", b'-222,"Data out of range"'),
                                        (b"SYST:ERR?", b'+0,"No error"')], name="battery") as inst:
        with pytest.raises(InstrumentError) as ei:
            drv(inst).set_voltage(450)
    e = ei.value
    assert e.command == "VOLT 450" and "-222" in e.answer and e.instrument == "battery"


def test_rp7900_garbage_answer_raises():
    with expected_protocol(CLS, INIT + [(b"MEAS:VOLT?", b"hello")], name="battery") as inst:
        with pytest.raises(InstrumentError, match="MEAS:VOLT.*hello"):
            drv(inst).read()


def test_rp7900_safe_state_ramps_to_zero_then_off_verified():
    with expected_protocol(CLS, INIT + LIMITS + ON + OFF_RAMP, name="battery") as inst:
        d = drv(inst)
        d.apply_limits()
        d.output_on()
        d.safe_state()
        assert d.last_shutdown_problems == []


def test_rp7900_safe_state_raises_if_output_stays_on():
    seq = INIT + [(b"CURR:LIM:NEG 0", None), OK, (b"CURR:LIM 0", None), OK, (b"OUTP OFF", None), OK,
                  (b"OUTP?", b"1")]
    with expected_protocol(CLS, seq, name="battery") as inst:
        d = KeysightRP7900.from_instrument(inst, limits=LIM, options={"ramp_steps": 1})
        with pytest.raises(SafeStateError, match="still ON"):
            d.safe_state()


def test_rp7900_protection_status_and_clear_and_emulation():
    seq = INIT + [(b"STAT:QUES:COND?", b"+3"), (b"OUTP:PROT:CLE", None), OK, (b"EMUL BATT", None), OK,
                  (b"*IDN?", b"Keysight Technologies,RP7952A,MY123,B.01")]
    with expected_protocol(CLS, seq, name="battery") as inst:
        d = drv(inst)
        st = d.protection_status()
        assert st["over_voltage"] and st["over_current"] and not st["inhibit"]
        d.clear_protection()
        d.set_emulation("BATT")
        assert d.identify().startswith("Keysight Technologies,RP7952A")
