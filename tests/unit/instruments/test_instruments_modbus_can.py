"""Modbus meter / charger: exact requests and parsed answers against a recording client (the pymodbus
client is the layer below; we test our code on top of it). CAN node: a real python-can `virtual` bus."""
import struct
import uuid

import pytest

from v2g_bench.errors import InstrumentError, LimitViolation, ProfileError, SafeStateError
from v2g_bench.instruments.can_node import SmaBmsNode
from v2g_bench.instruments.energy_meter import EastronSDM630
from v2g_bench.instruments.modbus_charger import WallboxQuasar
from v2g_bench.instruments.transport import parse_modbus_resource


class Resp:
    def __init__(self, registers=(), error=False):
        self.registers, self._error = list(registers), error

    def isError(self):
        return self._error

    def __str__(self):
        return "ExceptionResponse(dev_id=1, function_code=132, exception_code=2)" if self._error else "ok"


class RecordingClient:
    """Answers from a register dict; records (function, address, count/value, device_id)."""

    def __init__(self, regs=None, fail=None):
        self.regs, self.calls, self.fail = dict(regs or {}), [], fail

    def _read(self, fc, address, count, device_id):
        self.calls.append((fc, address, count, device_id))
        if self.fail == address:
            return Resp(error=True)
        return Resp([self.regs.get(address + k, 0) for k in range(count)])

    def read_input_registers(self, address, *, count, device_id):
        return self._read(4, address, count, device_id)

    def read_holding_registers(self, address, *, count, device_id):
        return self._read(3, address, count, device_id)

    def write_register(self, address, value, *, device_id):
        self.calls.append((6, address, value, device_id))
        self.regs[address] = value
        return Resp()

    def close(self):
        self.calls.append(("close",))


def f32(v):
    hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    return hi, lo


def test_sdm630_reads_fc04_float32_big_endian_and_converts_kwh():
    regs = {}
    for addr, v in {0x00: 230.5, 0x06: 10.25, 0x0C: 2362.5, 0x34: 7087.5, 0x46: 50.0, 0x48: 12.5, 0x4A: 3.25}.items():
        regs[addr], regs[addr + 1] = f32(v)
    c = RecordingClient(regs)
    m = EastronSDM630(c, device_id=2, name="meter")
    r = m.read()
    assert [x[:4] for x in c.calls] == [(4, a, 2, 2) for a in (0x00, 0x06, 0x0C, 0x34, 0x46, 0x48, 0x4A)]
    assert (r.voltage_l1_v, r.current_l1_a, r.power_total_w, r.frequency_hz) == (230.5, 10.25, 7087.5, 50.0)
    assert (r.energy_import_wh, r.energy_export_wh) == (12500.0, 3250.0)


def test_sdm630_reversed_wiring_and_exception_response():
    regs = {0x34: f32(-500.0)[0], 0x35: f32(-500.0)[1]}
    m = EastronSDM630(RecordingClient(regs, fail=None), device_id=2, name="meter", options={"power_sign": -1})
    assert m.power_w() == 500.0
    bad = EastronSDM630(RecordingClient(regs, fail=0x34), device_id=2, name="meter")
    with pytest.raises(InstrumentError) as ei:
        bad.power_w()
    assert "FC04 0x0034" in ei.value.command and "exception_code=2" in ei.value.answer


def test_quasar_remote_control_signed_setpoint_start_stop_and_state():
    c = RecordingClient({0x219: 11, 0x21A: 64, 0x20E: (-3500) & 0xFFFF})
    q = WallboxQuasar(c, device_id=1, name="charger",
                      limits={"current_charge_max_a": 32, "current_discharge_max_a": 20})
    q.initialize()
    q.set_current(-16)
    q.start()
    assert c.calls == [(6, 0x51, 1, 1), (6, 0x102, 0xFFF0, 1), (6, 0x101, 1, 1)]
    assert q.state() == "discharging" and q.soc_percent() == 64 and q.ac_power_w() == -3500.0
    with pytest.raises(LimitViolation, match="nothing was sent"):
        q.set_current(-21)
    with pytest.raises(LimitViolation):
        q.set_current(33)
    c.regs[0x219] = 99
    with pytest.raises(InstrumentError, match="unknown charger state"):
        q.state()


def test_quasar_safe_state_verifies_and_raises_if_still_energized():
    c = RecordingClient({0x219: 4})
    q = WallboxQuasar(c, device_id=1, name="charger", options={"stop_timeout_s": 0.2},
                      limits={"current_charge_max_a": 32, "current_discharge_max_a": 32})
    q.safe_state()
    assert (6, 0x101, 2, 1) in c.calls and (6, 0x102, 0, 1) in c.calls
    c.regs[0x219] = 1
    c.write_register = lambda a, v, device_id: Resp()     # charger ignores the stop
    with pytest.raises(SafeStateError, match="still charging"):
        q.safe_state()


@pytest.mark.parametrize("bad", ["modbus+tcp://?device_id=1", "tcp://1.2.3.4", "modbus+tcp://h:502?device_id=x",
                                 "modbus+rtu://?baudrate=9600"])
def test_bad_modbus_resource_strings_are_profile_errors(bad):
    with pytest.raises(ProfileError, match="Modbus resource"):
        parse_modbus_resource(bad)


def test_modbus_resource_strings():
    r = parse_modbus_resource("modbus+tcp://127.0.0.1:5020?device_id=2")
    assert (r.kind, r.host, r.port, r.device_id) == ("tcp", "127.0.0.1", 5020, 2)
    r = parse_modbus_resource("modbus+rtu:///dev/ttyUSB0?baudrate=19200&parity=E&device_id=3")
    assert (r.kind, r.device, r.device_id, r.serial["baudrate"], r.serial["parity"]) == ("rtu", "/dev/ttyUSB0", 3, 19200, "E")


def test_sma_bms_node_over_a_real_python_can_bus():
    import can
    from v2g_bench.roles import RoleConfig
    chan = f"in-{uuid.uuid4().hex[:8]}"
    cfg = RoleConfig(role="can", driver="can_bms_sma", options={"interface": "virtual", "channel": chan})
    assert SmaBmsNode.validate_config(cfg) == []
    node = SmaBmsNode.open(cfg)
    peer = SmaBmsNode(can.Bus(interface="virtual", channel=chan), SmaBmsNode.load_dbc("bms_sma"), name="peer")
    try:
        sent = peer.send("BMS_Limits", ChargeVoltageLimit=410.0, ChargeCurrentLimit=100.0,
                         DischargeCurrentLimit=120.0, DischargeVoltageLimit=300.0)
        assert sent.hex() == "0410e803b004b80b"          # 4100, 1000, 1200, 3000 little-endian
        peer.send("BMS_SocSoh", SOC=55, SOH=98, SOC_HiRes=55.0)
        peer.send("BMS_Measurements", BatteryVoltage=398.5, BatteryCurrent=-12.3, BatteryTemperature=25.1)
        st = node.status(timeout_s=1.0)
        assert (st.charge_current_limit_a, st.soc_percent, st.voltage_v, st.current_a) == (100.0, 55, 398.5, -12.3)
        peer.bus.send(can.Message(arbitration_id=0x356, data=b"\x01", is_extended_id=False))
        with pytest.raises(InstrumentError, match="malformed BMS_Measurements"):
            node.receive("BMS_Measurements", timeout_s=1.0)
        with pytest.raises(InstrumentError, match="no BMS_SocSoh"):
            node.receive("BMS_SocSoh", timeout_s=0.1)
    finally:
        node.close()
        peer.close()
