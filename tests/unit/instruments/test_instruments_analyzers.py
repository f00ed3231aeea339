"""Yokogawa WT5000/WT1800 and Hioki PW3390/PW6001 drivers: exact strings and parsed answers."""
import math

import pytest
from pymeasure.test import expected_protocol

from v2g_bench.errors import InstrumentError
from v2g_bench.instruments.vendors.scpi_analyzer import (HiokiPW3390, HiokiPW6001, YokogawaWT1800,
                                                          YokogawaWT5000)

YOK_OK = (b":STAT:ERR?", b'0,"No error"')


def yoko_init(elements=(1, 2)):
    seq = [(b"*CLS", None), YOK_OK, (b":COMM:HEAD OFF", None), YOK_OK, (b":NUM:FORM ASC", None), YOK_OK,
           (b":INTEG:MODE NORM", None), YOK_OK, (f":NUM:NORM:NUM {7 * len(elements)}".encode(), None), YOK_OK]
    k = 0
    for e in elements:
        for f in ("U", "I", "P", "LAMB", "FU", "WPP", "WPM"):
            k += 1
            seq += [(f":NUM:NORM:ITEM{k} {f},{e}".encode(), None), YOK_OK]
    return seq


@pytest.mark.parametrize("cls", [YokogawaWT5000, YokogawaWT1800])
def test_yokogawa_one_acquisition_all_elements_with_wiring_sign(cls):
    ans = (b"4.0012E+02,2.5000E+01,1.0003E+04,NAN,NAN,1.2E+03,1.0E+01,"
           b"2.3001E+02,4.4000E+01,-1.0100E+04,9.99E-01,5.0E+01,2.0E+01,1.3E+03")
    seq = yoko_init() + [(b":NUM:NORM:VAL?", ans)]
    with expected_protocol(cls.instrument_class(), seq, name="analyzer") as inst:
        a = cls.from_instrument(inst, options={"elements": [1, 2], "element_sign": {"2": -1}})
        r = a.read()
    dc, ac = r[1], r[2]
    assert (dc.voltage_v, dc.current_a, dc.power_w) == (400.12, 25.0, 10003.0)
    assert math.isnan(dc.power_factor) and math.isnan(dc.frequency_hz)
    assert (dc.energy_in_wh, dc.energy_out_wh) == (1200.0, 10.0)
    # element 2 wired the other way round: P and I flip, energy directions swap
    assert (ac.power_w, ac.current_a, ac.frequency_hz) == (10100.0, -44.0, 50.0)
    assert (ac.energy_in_wh, ac.energy_out_wh) == (1300.0, 20.0)


def test_yokogawa_integration_rate_and_ranges():
    seq = yoko_init([1]) + [(b":INTEG:RES", None), YOK_OK, (b":INTEG:STAR", None), YOK_OK,
                            (b":INTEG:STAT?", b"START"), (b":INTEG:STOP", None), YOK_OK,
                            (b":RATE 100MS", None), YOK_OK,
                            (b":INP:VOLT:RANG:ELEM1 1000", None), YOK_OK, (b":INP:CURR:RANG:ELEM1 50", None), YOK_OK]
    with expected_protocol(YokogawaWT5000.instrument_class(), seq, name="analyzer") as inst:
        a = YokogawaWT5000.from_instrument(inst, options={"elements": [1]})
        a.integration_reset()
        a.integration_start()
        assert a.integration_state() == "START"
        a.integration_stop()
        a.set_update_interval(0.1)
        with pytest.raises(InstrumentError, match="0.3 s not offered"):
            a.set_update_interval(0.3)
        a.element(1).set_ranges(voltage_v=1000, current_a=50)
        with pytest.raises(InstrumentError, match="element 3"):
            a.element(3)


def test_yokogawa_short_or_garbage_answer_raises_with_command_and_answer():
    seq = yoko_init([1]) + [(b":NUM:NORM:VAL?", b"1.0,2.0,3.0")]
    with expected_protocol(YokogawaWT5000.instrument_class(), seq, name="analyzer") as inst:
        a = YokogawaWT5000.from_instrument(inst, options={"elements": [1]})
        with pytest.raises(InstrumentError) as ei:
            a.read()
    assert ei.value.command == ":NUM:NORM:VAL?" and ei.value.answer == "1.0,2.0,3.0"


def test_yokogawa_setup_error_reported():
    seq = [(b"*CLS", None), (b":STAT:ERR?", b'113,"Undefined header"'), (b":STAT:ERR?", b'0,"No error"')]
    with expected_protocol(YokogawaWT5000.instrument_class(), seq, name="analyzer") as inst:
        with pytest.raises(InstrumentError, match="113"):
            YokogawaWT5000.from_instrument(inst)


@pytest.mark.parametrize("cls", [HiokiPW3390, HiokiPW6001])
def test_hioki_items_in_query_and_no_data_marker(cls):
    seq = [(b"*CLS", None), (b":HEAD OFF", None),
           (b":MEAS? U1,I1,P1,PF1,FREQ1,WP+1,WP-1",
            b"+400.12E+0;+25.000E+0;+10.003E+3;+777.77E+9;+777.77E+9;+1.2000E+3;-0.0100E+3"),
           (b":INTEG:STAT START", None), (b":INTEG:STAT?", b"START")]
    with expected_protocol(cls.instrument_class(), seq, name="analyzer") as inst:
        a = cls.from_instrument(inst, options={"elements": [1]})
        r = a.read()[1]
        a.integration_start()
        assert a.integration_state() == "START"
    assert (r.voltage_v, r.current_a, r.power_w) == (400.12, 25.0, 10003.0)
    assert math.isnan(r.power_factor) and (r.energy_in_wh, r.energy_out_wh) == (1200.0, 10.0)
