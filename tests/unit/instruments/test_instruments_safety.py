"""Safety paths with exact protocols: exception mid-test, KeyboardInterrupt, dead instrument, an error
in the queue after a set, and the module-level hard stop. Every path must end with OUTP OFF verified."""
import pytest
from pymeasure.adapters import ProtocolAdapter
from pymeasure.test import expected_protocol

from v2g_bench.errors import InstrumentError, SafeStateError
from v2g_bench.instruments import hard_stop_all
from v2g_bench.instruments.safety import open_sources
from v2g_bench.instruments.vendors.scpi_dc_source import KeysightRP7900

# the RP7900 exchanges (init, limits with read-back, output on) are the ones its own tests pin down
from test_instruments_rp7900 import INIT, LIM, LIMITS, OK, ON  # noqa: E402
CLS = KeysightRP7900.instrument_class()
RAMP_OFF = [(b"CURR:LIM:NEG 0", None), OK, (b"CURR:LIM 0", None), OK, (b"OUTP OFF", None), OK, (b"OUTP?", b"0")]


def energized(inst):
    d = KeysightRP7900.from_instrument(inst, limits=LIM, options={"ramp_steps": 1})
    d.apply_limits()
    d.output_on()
    return d


@pytest.mark.parametrize("exc", [RuntimeError("test step failed"), KeyboardInterrupt()])
def test_exception_or_ctrl_c_mid_test_ends_with_output_off_verified(exc):
    with expected_protocol(CLS, INIT + LIMITS + ON + [(b"VOLT 400", None), OK] + RAMP_OFF, name="battery") as inst:
        with pytest.raises(type(exc)):
            with energized(inst) as d:       # RoleDriver.__exit__: safe_state() then close()
                d.set_voltage(400)
                raise exc
        assert d.last_shutdown_problems == []


def test_error_in_queue_after_a_set_then_shutdown_still_runs():
    seq = INIT + LIMITS + ON + [(b"VOLT 450", None), (b"SYST:ERR?", b'-221,"Settings conflict"'),
                                (b"SYST:ERR?", b'+0,"No error"')] + RAMP_OFF
    with expected_protocol(CLS, seq, name="battery") as inst:
        with pytest.raises(InstrumentError) as ei:
            with energized(inst) as d:
                d.set_voltage(450)
    assert ei.value.command == "VOLT 450" and "-221" in ei.value.answer


class DyingAdapter(ProtocolAdapter):
    """The instrument 'disappears' (socket reset) after `alive` writes."""

    def __init__(self, comm_pairs, alive):
        super().__init__(comm_pairs)
        self.alive = alive

    def _write(self, command, **kwargs):
        if self.alive <= 0:
            raise ConnectionResetError(104, "Connection reset by peer")
        self.alive -= 1
        super()._write(command, **kwargs)


def test_dead_instrument_gives_safe_state_error_naming_it_and_is_unregistered_after_close():
    pairs = INIT + LIMITS + ON
    writes = sum(1 for c, _ in pairs if c is not None)
    d = energized(CLS(DyingAdapter(pairs, alive=writes), name="battery [rp7900 @ TCPIP0::10.0.0.5::5025::SOCKET]"))
    assert d in open_sources()
    with pytest.raises(InstrumentError, match="transport failed.*reset by peer") as ei:
        d.read()
    assert ei.value.command == "MEAS:VOLT?"
    with pytest.raises(SafeStateError, match="could not be verified") as ei:
        d.safe_state()
    assert "TCPIP0::10.0.0.5" in str(ei.value) and "E-stop" in str(ei.value)
    problems = hard_stop_all()           # the emergency path reports, never raises
    assert any("could not be verified" in p for p in problems)
    d.close()
    assert d not in open_sources()


def test_hard_stop_all_switches_every_open_source_off_without_ramp():
    with expected_protocol(CLS, INIT + LIMITS + ON + [(b"OUTP OFF", None), OK, (b"OUTP?", b"0")],
                           name="battery") as inst:
        d = energized(inst)
        assert hard_stop_all() == []
        d.close()
