"""Modbus plumbing shared by the meter and charger drivers (pymodbus sync client, typed errors)."""
from __future__ import annotations

import re
import struct
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError, InstrumentTimeout
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver

from v2g_bench.instruments.transport import open_modbus, parse_modbus_resource, initialized, role_label


class ModbusDevice(RoleDriver):
    transport: ClassVar[str] = "modbus"

    def __init__(self, client, *, device_id: int, name: str, instrument_name: str | None = None,
                 options: dict[str, Any] | None = None):
        self.client = client
        self.device_id = device_id
        self.name = name
        self.instrument_name = instrument_name or name
        self.options = dict(options or {})

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        if not cfg.resource:
            return [f"{cfg.where('resource')}: missing (e.g. \"modbus+tcp://10.0.0.7:502?device_id=1\")"]
        try:   # `{lab.ports.x}` placeholders are ports: validate the shape with a stand-in
            parse_modbus_resource(re.sub(r"\{lab\.[^}]+\}", "1", cfg.resource), cfg.where("resource"))
        except Exception as e:
            return [str(e)]
        return []

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None):
        res = parse_modbus_resource(cfg.resource or "", cfg.where("resource"))
        label = role_label(cfg)
        client = open_modbus(res, name=label, timeout_s=cfg.timeout_s)
        drv = cls(client, device_id=res.device_id, name=cfg.role, instrument_name=label, options=cfg.options)
        return initialized(drv)

    def initialize(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass

    # -- register access with errors that name the device, the function and the address ----
    def _call(self, what: str, fn, *args, **kw):
        try:
            rr = fn(*args, device_id=self.device_id, **kw)
        except Exception as e:   # pymodbus ConnectionException / ModbusIOException ...
            text = f"{type(e).__name__}: {e}"
            cls = InstrumentTimeout if "timeout" in text.lower() or "no response" in text.lower() else InstrumentError
            raise cls(f"Modbus request failed ({text})", instrument=self.instrument_name, command=what,
                      fix="check the device address (device_id), wiring/network and that it is powered") from e
        if rr.isError():
            raise InstrumentError("Modbus exception response", instrument=self.instrument_name, command=what,
                                  answer=str(rr), fix="check the register map / address for this model")
        return rr

    def read_registers(self, function: int, address: int, count: int) -> list[int]:
        fn = self.client.read_input_registers if function == 4 else self.client.read_holding_registers
        what = f"FC{function:02d} 0x{address:04X} x{count} @{self.device_id}"
        rr = self._call(what, fn, address, count=count)
        regs = list(rr.registers)
        if len(regs) != count:
            raise InstrumentError(f"expected {count} registers", instrument=self.instrument_name, command=what,
                                  answer=str(regs))
        return regs

    def read_float32(self, function: int, address: int) -> float:
        hi, lo = self.read_registers(function, address, 2)
        return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]

    def read_int16(self, address: int) -> int:
        (v,) = self.read_registers(3, address, 1)
        return v - 0x10000 if v >= 0x8000 else v

    def write_int16(self, address: int, value: int) -> None:
        what = f"FC06 0x{address:04X} := {value} @{self.device_id}"
        if not -0x8000 <= value <= 0xFFFF:
            raise InstrumentError("value does not fit in a 16-bit register", instrument=self.instrument_name,
                                  command=what)
        self._call(what, self.client.write_register, address, value & 0xFFFF)
