"""NHR 9300, Chroma 17040 and EA PSB 10000 drivers: exact strings and answers (expected_protocol)."""
import pytest
from pymeasure.test import expected_protocol

from v2g_bench.errors import InstrumentError, SafeStateError
from v2g_bench.instruments.dc_source import BatteryModel, DCLimits
from v2g_bench.instruments.vendors.chroma_17040 import Chroma17040, Chroma17040Instrument
from v2g_bench.instruments.vendors.nhr_9300 import NhResearch9300, Nhr9300Instrument
from v2g_bench.instruments.vendors.scpi_dc_source import EaPsb10000

OK = (b"SYST:ERR?", b'0,"No error"')
LIM = DCLimits(voltage_max_v=450, current_charge_max_a=50, current_discharge_max_a=40, power_max_w=20000,
               ovp_v=460)


def test_nhr9300_limits_via_safety_table_battery_mode_and_same_acquisition_read():
    seq = [(b"*CLS", None), OK, (b"CONF:CIN 0", None), OK, (b"SYST:REM", None), OK,
           # apply_limits: safety table after currents and after power, then read-back
           (b"OUTP:SAF 0,-1,460,0,50,0,40,0,0,0,0,0,-1", None), OK,
           (b"OUTP:SAF 0,-1,460,0,50,0,40,0,20000,0,20000,0,-1", None), OK,
           (b"OUTP:SAF?", b"0,-1,460,0,50,0,40,0,20000,0,20000,0,-1"),
           (b"OPER 1,7,400,50,20000,0", None), OK,                      # set_voltage in standby
           (b"SYST:WATC:INT 2", None), OK,                               # watchdog armed before on
           (b"OPER 4,7,400,50,20000,0", None), OK, (b"OPER?", b"4,7,400,50,20000,0"),
           (b"MEAS:VOLT?", b"401.2"), (b"FETC:CURR?", b"-12.5"), (b"FETC:POW?", b"-5015"),
           (b"FETC:BACK:ALL?", b"401,-12.5,-5015,1,2,3,4,5,1.5,0.25,6,7,8,9,10,11,12,13,14,15"),
           (b"OPER 0,7,400,50,20000,0", None), OK, (b"OPER?", b"0,7,400,50,20000,0")]
    with expected_protocol(Nhr9300Instrument, seq, name="battery") as inst:
        d = NhResearch9300.from_instrument(inst, limits=LIM, options={"ramp_steps": 1})
        d.apply_limits()
        d.set_voltage(400)
        d.output_on()
        r = d.read()
        assert (r.voltage_v, r.current_a, r.power_w) == (401.2, -12.5, -5015.0)   # CIN 0: - = discharging
        assert d.energy_wh() == (1500.0, 250.0)
        d._set_current_limits = lambda c, dd: None     # ramp covered by RP7900 tests; here: off + verify
        d.safe_state()


def test_nhr9300_garbage_operation_answer_is_an_error():
    seq = [(b"*CLS", None), OK, (b"CONF:CIN 0", None), OK, (b"SYST:REM", None), OK, (b"OPER?", b"busy")]
    with expected_protocol(Nhr9300Instrument, seq, name="battery") as inst:
        d = NhResearch9300.from_instrument(inst, limits=LIM)
        with pytest.raises(InstrumentError, match="OPER"):
            d.output_is_on()


LIM_SYM = DCLimits(voltage_max_v=450, current_charge_max_a=50, current_discharge_max_a=50, power_max_w=20000)


def test_chroma17040_battery_mode_model_limits_and_output():
    seq = [(b"*CLS", None), OK, (b"OUTP:MOD 1", None), OK,
           (b"BATT:CAP 60", None), OK, (b"BATT:ESR 0.05", None), OK,
           (b"BATT:CURV 0,2,300.00,420.00", None), OK, (b"BATT:CURV 1,2,0.0,100.0", None), OK,
           (b"BATT:INIT 0", None), OK, (b"BATT:INIT:CAP 50", None), OK,
           (b"BATT:VOH 450", None), OK, (b"BATT:VOLP 0", None), OK, (b"BATT:OCP 50", None), OK,
           (b"BATT:OCP?", b"50.0"), (b"BATT:VOH?", b"450.0"),
           (b"BATT:OUTP 1", None), OK, (b"BATT:OUTP?", b"1"),
           (b"MEAS:VOLT?", b"360.5"), (b"MEAS:CURR?", b"10.0"), (b"MEAS:POW?", b"3605"),
           (b"BATT:OCP 0", None), OK, (b"BATT:OUTP 0", None), OK, (b"BATT:OUTP?", b"0")]
    with expected_protocol(Chroma17040Instrument, seq, name="battery") as inst:
        d = Chroma17040.from_instrument(inst, limits=LIM_SYM, options={"ramp_steps": 1})
        d.set_battery_model(BatteryModel(capacity_ah=60, soc=0.5, internal_resistance_ohm=0.05,
                                         ocv_table=[(0.0, 300.0), (1.0, 420.0)]))
        d.apply_limits()
        with pytest.raises(InstrumentError, match="OCV curve"):
            d.set_voltage(400)
        d.output_on()
        assert d.read().current_a == 10.0
        d.safe_state()


def test_chroma17040_rejects_asymmetric_current_limits_in_config():
    from v2g_bench.roles import RoleConfig
    cfg = RoleConfig(role="battery", driver="chroma_17040", resource="TCPIP0::1.2.3.4::60000::SOCKET",
                     limits={"voltage_max_v": 450, "current_charge_max_a": 50, "current_discharge_max_a": 40,
                             "power_max_w": 1000})
    assert any("symmetric OCP" in p for p in Chroma17040.validate_config(cfg))


def test_ea_psb10000_remote_lock_units_in_answers_and_separate_sink_limits():
    cls = EaPsb10000.instrument_class()
    seq = [(b"*CLS", None), OK, (b"SYST:LOCK ON", None), OK,
           (b"VOLT:PROT 460", None), OK,
           (b"SINK:CURR 50", None), OK, (b"SOUR:CURR 40", None), OK,
           (b"SOUR:POW 20000", None), OK, (b"SINK:POW 20000", None), OK,
           (b"SINK:CURR?", b"50.00 A"), (b"SOUR:CURR?", b"40.00 A"), (b"VOLT:PROT?", b"460.00 V"),
           (b"SOUR:POW?", b"20000 W"), (b"SINK:POW?", b"20000 W"),
           (b"MEAS:VOLT?", b"400.10 V"), (b"MEAS:CURR?", b"-30.00 A"), (b"MEAS:POW?", b"-12003 W"),
           (b"OUTP OFF", None), OK, (b"OUTP?", b"ON")]
    with expected_protocol(cls, seq, name="battery") as inst:
        d = EaPsb10000.from_instrument(inst, limits=LIM)
        d.apply_limits()
        r = d.read()
        assert (r.voltage_v, r.current_a, r.power_w) == (400.1, 30.0, 12003.0)   # sinking = charging
        with pytest.raises(SafeStateError, match="still ON"):
            d.hard_stop()
