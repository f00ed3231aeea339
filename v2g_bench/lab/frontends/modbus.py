"""Modbus TCP front-end (pymodbus server): the charger's local control and an energy meter.

One server, two unit ids (pymodbus `device_id`):

Unit 1 - charger local control, Wallbox-Quasar-like holding registers (FC03 read, FC06/FC16 write):
  0x0051  remote control          1 = remote (Modbus) control enabled, 0 = local (writes to
                                  0x0101/0x0102 are refused with exception 03 while local)
  0x0101  start/stop              write 1 = start (contactor closes, setpoint applied),
                                  2 = stop (setpoint 0, contactor opens); reads the last command
  0x0102  current setpoint        signed int16, A, DC side; + = charge, - = discharge;
                                  outside the stage's limits -> exception 03 ILLEGAL DATA VALUE
  0x020E  AC active power         signed int16, 1 W per LSB, + = import from the grid (saturates)
  0x0219  charger state           0 ready (no EV/battery output off), 1 charging,
                                  2 connected, waiting for demand, 4 paused (stopped over Modbus),
                                  7 error (contactor/protection fault), 11 discharging
  0x021A  SoC                     unsigned, %
Unit 2 - energy meter, Eastron SDM630 input registers (FC04), IEEE-754 float32 big-endian
  (high word first): 0x0000/02/04 L1/L2/L3 voltage V, 0x0006/08/0A L1/L2/L3 current A,
  0x000C/0E/10 L1/L2/L3 active power W, 0x0034 total system power W, 0x0046 frequency Hz,
  0x0048 import kWh, 0x004A export kWh (+ = import, as the SDM630 reports).
  Addresses inside 0x0000..0x004B that the lab does not model read as 0.0; others -> exception 02.

The current setpoint becomes a DC power setpoint I x V_dc at the time of the write (the plant's
stage regulates power); it is re-applied on every later Modbus access so it tracks V_dc.
Faults (booked on the plant): modbus_exception(unit, code), delay/drop/disconnect(transport=modbus).
"""
from __future__ import annotations

import asyncio
import logging
import struct

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from v2g_bench.lab.plant import Plant

REG_REMOTE, REG_STARTSTOP, REG_CURRENT = 0x51, 0x101, 0x102
REG_AC_POWER, REG_STATE, REG_SOC = 0x20E, 0x219, 0x21A
CHARGER_REGS = (REG_REMOTE, REG_STARTSTOP, REG_CURRENT, REG_AC_POWER, REG_STATE, REG_SOC)
WRITABLE = (REG_REMOTE, REG_STARTSTOP, REG_CURRENT)
STATE_READY, STATE_CHARGING, STATE_CONNECTED, STATE_PAUSED, STATE_ERROR, STATE_DISCHARGING = 0, 1, 2, 4, 7, 11
METER_WORDS = 0x4C

log = logging.getLogger("v2g_bench.lab.frontends.modbus")


def _i16(v: int) -> int:
    return v - 0x10000 if v & 0x8000 else v


def _u16(v: float) -> int:
    return int(max(-32768, min(32767, round(v)))) & 0xFFFF


def _f32_words(x: float) -> tuple[int, int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return hi, lo


class ChargerMeterModbus:
    """State of unit 1 (charger) and the register image of unit 2 (meter)."""

    def __init__(self, plant: Plant):
        self.plant = plant
        self.remote = 0
        self.startstop = 2
        self.current_a = 0
        self.started = False

    # -- unit 1 --------------------------------------------------------------------------------

    def _apply(self) -> None:
        if self.started:
            s = self.plant.state()
            v = s.dc_voltage_v if s.dc_voltage_v > 0 else s.battery_ocv_v
            self.plant.set_power_setpoint(self.current_a * v)

    def charger_state(self) -> int:
        s = self.plant.state()
        if any(f.split(":")[0] in ("contactor", "ovp_trip", "ocp_trip", "opp_trip") for f in s.faults) or self.plant.protection:
            return STATE_ERROR
        if not s.battery_output_on:
            return STATE_READY
        if not self.started:
            return STATE_PAUSED if self.startstop == 2 and self.remote else STATE_CONNECTED
        if s.dc_power_w > 1.0:
            return STATE_CHARGING
        if s.dc_power_w < -1.0:
            return STATE_DISCHARGING
        return STATE_CONNECTED

    def read_charger(self, addr: int) -> int:
        if addr == REG_REMOTE:
            return self.remote
        if addr == REG_STARTSTOP:
            return self.startstop
        if addr == REG_CURRENT:
            return self.current_a & 0xFFFF
        if addr == REG_AC_POWER:
            return _u16(self.plant.measure("meter").ac_power_w)
        if addr == REG_STATE:
            return self.charger_state()
        if addr == REG_SOC:
            return int(round(self.plant.state().soc * 100))
        return 0

    def write_charger(self, addr: int, value: int) -> ExcCodes | None:
        if addr == REG_REMOTE:
            if value not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            self.remote = value
            return None
        if not self.remote:
            return ExcCodes.ILLEGAL_VALUE          # local mode: remote writes refused
        if addr == REG_STARTSTOP:
            if value == 1:
                self.startstop, self.started = 1, True
                self.plant.set_contactor(True)
                self._apply()
            elif value == 2:
                self.startstop, self.started = 2, False
                self.plant.set_power_setpoint(0.0)
                self.plant.set_contactor(False)
            else:
                return ExcCodes.ILLEGAL_VALUE
            return None
        if addr == REG_CURRENT:
            a = _i16(value)
            st = self.plant.cfg.stage
            if a > st.charge.i_max_a or -a > st.discharge.i_max_a:
                return ExcCodes.ILLEGAL_VALUE
            self.current_a = a
            self._apply()
            return None
        return ExcCodes.ILLEGAL_ADDRESS               # read-only register

    # -- unit 2 ---------------------------------------------------------------------------------

    def meter_image(self) -> list[int]:
        m = self.plant.measure("meter")
        frozen = self.plant.fault("frozen", "meter") or self.plant.fault("frozen", "all")
        if frozen and getattr(self, "_frozen_energy", None) is not None:
            imp, exp = self._frozen_energy
        else:
            s = self.plant.state()
            imp, exp = s.ac_import_wh / 1000.0, s.ac_export_wh / 1000.0
            self._frozen_energy = (imp, exp) if frozen else None
        n = self.plant.cfg.grid.phases
        regs = [0] * METER_WORDS
        vals = {0x00: m.ac_voltage_v, 0x06: m.ac_current_a, 0x0C: m.ac_power_w / n,
                0x34: m.ac_power_w, 0x46: m.freq_hz, 0x48: imp, 0x4A: exp}
        if n == 3:
            vals.update({0x02: m.ac_voltage_v, 0x04: m.ac_voltage_v, 0x08: m.ac_current_a,
                         0x0A: m.ac_current_a, 0x0E: m.ac_power_w / 3, 0x10: m.ac_power_w / 3})
        for a, x in vals.items():
            regs[a], regs[a + 1] = _f32_words(x)
        return regs


async def start_modbus(plant: Plant, host: str, port: int = 0) -> tuple["ModbusFrontEnd", int]:
    fe = ModbusFrontEnd(plant)
    p = await fe.start(host, port)
    return fe, p


MBAP_LEN = 7
MAX_MBAP_LENGTH = 254        # unit id + a PDU of at most 253 bytes (Modbus TCP: ADU <= 260 bytes)


def mbap_problem(buf: bytes) -> str | None:
    """What is wrong with the MBAP header at the start of `buf` (None: fine or not complete yet).
    pymodbus only logs a non-zero protocol id and keeps the bytes, so the buffer of a client that
    sends junk grows without end; a real device drops such a connection."""
    if len(buf) < 6:
        return None
    pid, length = struct.unpack_from(">HH", buf, 2)
    if pid != 0:
        return f"protocol id {pid} (Modbus is 0)"
    if length < 2 or length > MAX_MBAP_LENGTH:
        return f"length field {length} (2..{MAX_MBAP_LENGTH})"
    return None


class _StrictMbapHandler(ServerRequestHandler):
    """Closes the connection on a malformed MBAP header instead of buffering forever (or, for a
    chunk over pymodbus' 264-byte buffer, silently dropping it and waiting on)."""

    def datagram_received(self, data: bytes, addr: tuple | None) -> None:
        problem = mbap_problem(self.recv_buffer + data[:8])
        if problem is not None:
            log.warning("Modbus: malformed MBAP header (%s): closing the connection", problem)
            self.recv_buffer = b""
            self.close()
            return
        super().datagram_received(data, addr)

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        problem = mbap_problem(data)       # the next frame of a pipelined chunk
        if problem is not None:
            log.warning("Modbus: malformed MBAP header (%s): closing the connection", problem)
            self.close()
            return len(data)
        return super().callback_data(data, addr)


class _StrictModbusTcpServer(ModbusTcpServer):
    def callback_new_connection(self):
        return _StrictMbapHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class ModbusFrontEnd:
    def __init__(self, plant: Plant):
        self.plant = plant
        self.model = ChargerMeterModbus(plant)
        self.server: ModbusTcpServer | None = None
        self.port = 0

    async def _fault_gate(self, unit: int) -> ExcCodes | None:
        d = self.plant.fault("delay", "modbus")
        if d:
            await asyncio.sleep(float(d["delay_s"]))
        e = self.plant.fault("modbus_exception")
        if e and int(e["unit"]) == unit:
            return ExcCodes(int(e["code"])) if int(e["code"]) in ExcCodes._value2member_map_ else ExcCodes.DEVICE_FAILURE
        return None

    async def _charger_action(self, fc, start, address, count, regs, values):
        if (r := await self._fault_gate(1)) is not None:
            return r
        if values is not None:
            for k, v in enumerate(values):
                r = self.model.write_charger(address + k, int(v))
                if r is not None:
                    return r
            return None
        self.model._apply()
        for a in CHARGER_REGS:
            if address <= a < address + count:
                regs[a - start] = self.model.read_charger(a)
        return None

    async def _meter_action(self, fc, start, address, count, regs, values):
        if (r := await self._fault_gate(2)) is not None:
            return r
        if values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        img = self.model.meter_image()
        regs[: len(img)] = img
        return None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # A 'drop' fault swallows every response (the TCP connection stays up; clients time out).
        if sending and self.plant.fault("drop", "modbus"):
            return b""
        if not sending and self.plant.fault("disconnect", "modbus"):
            self.drop_connections()
            return b""
        return data

    def drop_connections(self) -> None:
        if self.server is None:
            return
        for conn in list(self.server.active_connections.values()):
            try:
                conn.close()
            except Exception:       # already closing
                pass

    async def start(self, host: str, port: int = 0) -> int:
        hr = [SimData(a, values=0, datatype=DataType.REGISTERS) for a in CHARGER_REGS]
        charger = SimDevice(1, simdata=([SimData(0, datatype=DataType.BITS, values=False)],
                                        [SimData(0, datatype=DataType.BITS, values=False)],
                                        hr, [SimData(0, values=0, datatype=DataType.REGISTERS)]),
                            action=self._charger_action)
        meter = SimDevice(2, simdata=([SimData(0, datatype=DataType.BITS, values=False)],
                                      [SimData(0, datatype=DataType.BITS, values=False)],
                                      [SimData(0, values=0, datatype=DataType.REGISTERS)],
                                      [SimData(0, count=METER_WORDS, values=0, datatype=DataType.REGISTERS)]),
                          action=self._meter_action)
        self.server = _StrictModbusTcpServer([charger, meter], address=(host, port),
                                      trace_packet=self._trace_packet)
        await self.server.serve_forever(background=True)
        sock = self.server.transport.sockets[0]
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
