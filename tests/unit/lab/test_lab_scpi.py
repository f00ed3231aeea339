"""SCPI parser core and the two dialects, driven directly (no sockets)."""
from __future__ import annotations

import struct

import pytest

from v2g_bench.lab.frontends.dialects.keysight_rp7900 import KeysightRP7900
from v2g_bench.lab.frontends.dialects.yokogawa_wt import YokogawaWT, eng
from v2g_bench.lab.plant import LabClock, Plant, PlantConfig
from v2g_bench.lab.frontends.scpi import ScpiInstrument, parse_pattern


def plant(output_on: bool = True) -> Plant:
    """A plant whose battery emulator is on (the RP7900 tests below switch it over SCPI themselves)."""
    p = Plant(PlantConfig.from_dict({"measurement": {"noise_rel": 0.0}}), LabClock(manual=True), seed=1)
    p.set_battery_output(output_on)
    return p


def errors(inst: ScpiInstrument) -> list[int]:
    out = []
    while True:
        e = inst.execute("SYST:ERR?")
        if e.startswith(":"):                         # Yokogawa COMM:HEAD ON prefixes the header
            e = e.split(" ", 1)[1]
        code = int(e.split(",")[0])
        if code == 0:
            return out
        out.append(code)


def test_pattern_parsing():
    nodes = parse_pattern("[SOURce:]VOLTage[:LEVel]:ITEM#")
    assert [(n.short, n.long, n.optional, n.suffix) for n in nodes] == [
        ("SOUR", "SOURCE", True, False), ("VOLT", "VOLTAGE", False, False),
        ("LEV", "LEVEL", True, False), ("ITEM", "ITEM", False, True)]


def test_rp7900_powers_up_with_the_output_off():
    p = Plant(PlantConfig(), LabClock(manual=True), seed=1)
    inst = KeysightRP7900(p)
    assert inst.execute("OUTP?") == "0" and float(inst.execute("MEAS:VOLT?")) == 0.0
    inst.execute("OUTP ON")
    assert inst.execute("OUTP?") == "1" and p.state().dc_voltage_v > 300


def test_short_long_case_optional_and_compound():
    inst = KeysightRP7900(plant())
    for form in ("VOLT 400", "volt:lev 401", "SOURce:VOLTage:LEVel:IMMediate:AMPLitude 402",
                 ":sour:volt:ampl 403"):
        inst.execute(form)
    assert float(inst.execute("VOLT?")) == 403.0
    assert errors(inst) == []
    # compound: relative path (CURR:LIM:NEG after CURR:LIM:POS stays under CURR:LIM? no: under CURR)
    out = inst.execute("CURR:LIM 20;:CURR:LIM:NEG -15;:CURR:LIM?;:CURR:LIM:NEG?;*OPC?")
    assert out == "+2.000000E+01;-1.500000E+01;1"
    # relative path: after SOUR:VOLT:PROT 500 the next header is relative to SOUR:VOLT
    inst.execute("SOUR:VOLT:PROT 500;LEV 410")
    assert float(inst.execute("VOLT?")) == 410.0 and float(inst.execute("VOLT:PROT?")) == 500.0
    assert errors(inst) == []
    # numeric suffix with units
    inst.execute("VOLT 0.4kV")
    assert float(inst.execute("VOLT?")) == 400.0


def test_standard_errors_and_queue():
    inst = KeysightRP7900(plant())
    inst.execute("FOO:BAR 1")                         # -113
    inst.execute("VOLT 1e6")                          # -222
    inst.execute("VOLT")                              # -109
    inst.execute("VOLT 1,2")                          # -108
    inst.execute("OUTP MAYBE")                        # -224
    inst.execute("VOLT abc")                          # -104
    inst.execute("VO$LT 5")                           # -102
    inst.execute("EMUL NOPE")                         # -224
    inst.execute("MEAS:VOLT 5")                       # query-only command used as set: -113
    assert errors(inst) == [-113, -222, -109, -108, -224, -104, -102, -224, -113]
    # *ESR? reflects command (32) and execution (16) errors, then clears
    inst.execute("FOO")
    inst.execute("VOLT 1e6")
    assert int(inst.execute("*ESR?")) == 48 and int(inst.execute("*ESR?")) == 0
    # *STB? EAV bit while errors queued; *CLS empties
    assert int(inst.execute("*STB?")) & 4
    inst.execute("*CLS")
    assert int(inst.execute("*STB?")) & 4 == 0
    for _ in range(30):
        inst.execute("BOGUS")
    errs = errors(inst)
    assert len(errs) == 20 and errs[-1] == -350
    inst.execute("VOLT " + "1" * 5000)
    assert errors(inst) == [-363]
    inst.execute("*IDN?", output_pending=True)
    assert errors(inst) == [-410]


def test_parse_error_aborts_rest_of_message_but_answers_earlier_queries():
    inst = KeysightRP7900(plant())
    out = inst.execute("*IDN?;BOGUS;VOLT 12")
    assert out.startswith("Keysight Technologies,RP7952A,")
    assert float(inst.execute("VOLT?")) != 12.0
    assert errors(inst) == [-113]


def test_rp7900_vendor_sign_protection_and_status():
    p = plant()
    inst = KeysightRP7900(p)
    inst.execute("EMUL BATT;:OUTP ON")
    assert inst.execute("EMUL?") == "BATT"
    p.set_contactor(True)
    p.set_power_setpoint(5000)                        # charger charges the battery
    p.step(5)
    v, i, w = (float(inst.execute(q)) for q in ("MEAS:VOLT?", "MEAS:CURR?", "MEAS:POW?"))
    assert 350 < v < 420 and i == pytest.approx(-5000 / v, rel=1e-3) and w == pytest.approx(-5000, rel=1e-3)
    # current limit on the sink side: LIM- bit and CC in OPERation
    inst.execute("CURR:LIM:NEG -5")
    p.step(1)
    assert int(inst.execute("STAT:QUES:COND?")) & 256
    assert int(inst.execute("STAT:OPER:COND?")) == 2
    assert float(inst.execute("MEAS:CURR?")) == pytest.approx(-5.0, rel=1e-3)
    # OCP on -> trips because the output is in current limit
    inst.execute("CURR:PROT:STAT ON")
    p.step(0.1)
    assert int(inst.execute("STAT:QUES:COND?")) & 2
    assert inst.execute("OUTP?") == "0"
    inst.execute("OUTP ON")
    assert inst.execute("OUTP?") == "0"               # latched until PROT:CLE
    inst.execute("CURR:PROT:STAT OFF;:OUTP:PROT:CLE;:OUTP ON")
    assert inst.execute("OUTP?") == "1" and int(inst.execute("STAT:QUES:COND?")) & 3 == 0
    # OVP level below the present voltage trips OV
    inst.execute("VOLT:PROT 100")
    assert int(inst.execute("STAT:QUES:COND?")) & 1 and inst.execute("OUTP?") == "0"
    assert int(inst.execute("STAT:QUES?")) & 3       # event register latched both
    assert int(inst.execute("STAT:QUES?")) == 0      # and cleared on read
    # over-power trip while sinking -> CP- (32); watchdog -> PROT (2048)
    inst.execute("OUTP:PROT:CLE;:VOLT:PROT 550;:OUTP ON")
    p.set_power_setpoint(3000)
    p.step(2)
    p.inject_fault("opp_trip")
    assert int(inst.execute("STAT:QUES:COND?")) == 32 and inst.execute("OUTP?") == "0"
    inst.execute("OUTP:PROT:CLE;:OUTP ON")
    p.watchdog_trip()
    assert int(inst.execute("STAT:QUES:COND?")) & 2048 and inst.execute("OUTP?") == "0"
    inst.execute("OUTP:PROT:CLE")
    # PS4Q: voltage is the programmed one
    inst.execute("*RST")
    assert inst.execute("OUTP?") == "0" and inst.execute("EMUL?") == "PS4Q"
    inst.execute("VOLT 420;:OUTP:PROT:CLE;:OUTP ON")
    p.step(1)
    assert float(inst.execute("MEAS:VOLT?")) == pytest.approx(420)


def test_wt_items_values_and_integration():
    p = plant()
    wt = YokogawaWT(p)
    wt.execute(":COMM:HEAD OFF;:NUM:FORM ASC;:NUM:NORM:NUM 6")
    for n, item in enumerate(["U,1", "I,1", "P,1", "P,2", "FU,2", "FU,1"], 1):
        wt.execute(f":NUM:NORM:ITEM{n} {item}")
    assert wt.execute(":NUM:NORM:ITEM4?") == "P,2"
    p.set_contactor(True)
    p.set_power_setpoint(-4000)                       # discharge (V2G)
    p.step(10)
    vals = wt.execute(":NUM:NORM:VAL?").split(",")
    u, i, p1, p2 = (float(x) for x in vals[:4])
    assert p1 == pytest.approx(-4000, rel=1e-3) and i < 0 and p2 > -4000 and p2 < 0
    assert float(vals[4]) == pytest.approx(50.0) and vals[5] == "NAN"
    # integration: WP+ / WP- per element
    wt.execute(":INTEG:MODE NORM;:INTEG:RES;:INTEG:STAR")
    assert wt.execute(":INTEG:STAT?") == "START"
    p.step(3600)
    wt.execute(":INTEG:STOP")
    wt.execute(":NUM:NORM:ITEM1 WPP,1;ITEM2 WPM,1;ITEM3 WP,2;ITEM4 TIME")
    wpp, wpm, wp2, t = wt.execute(":NUM:NORM:VAL?").split(",")[:4]
    assert float(wpp) == 0.0 and float(wpm) == pytest.approx(-4000, rel=1e-3)
    assert -4000 < float(wp2) < -3500 and t == "3600"
    p.step(100)                                       # stopped: values hold
    assert wt.execute(":NUM:NORM:VAL? 2") == wpm
    wt.execute(":COMM:HEAD ON;:COMM:VERB OFF")
    assert wt.execute(":INTEG:STAT?") == ":INTEG:STAT STOP"
    assert wt.execute(":NUM:NORM:NUM?") == ":NUM:NUM 6"
    wt.execute(":NUM:FORM FLO")
    raw = wt.execute(":NUM:NORM:VAL?").encode("latin-1")
    assert raw[:6] == b"#40024"
    assert struct.unpack(">6f", raw[6:])[1] == pytest.approx(float(wpm), rel=1e-5)
    wt.execute(":RATE 300MS")
    wt.execute(":NUM:NORM:ITEM9 XYZ,1")
    assert errors(wt) == [-224, -224]
    wt.execute(":RATE 100MS")
    assert float(wt.execute(":RATE?").split()[-1]) == pytest.approx(0.1)


def test_wt_overrange_inf():
    p = plant()
    wt = YokogawaWT(p)
    wt.execute(":NUM:NORM:NUM 2;ITEM1 U,1;ITEM2 U,2")
    p.step(1)
    wt.execute(":INP:VOLT:RANG:ELEM1 150")
    assert wt.execute(":NUM:NORM:VAL?").split(",")[0] == "INF"


def test_eng_format():
    assert eng(104.75) == "104.75E+00"
    assert eng(-0.38) == "-380.00E-03"
    assert eng(49.868) == "49.868E+00"
    assert eng(11234.5) == "11.235E+03"
    assert eng(999.996) == "1.0000E+03"
