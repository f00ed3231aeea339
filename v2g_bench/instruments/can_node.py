"""Role API: CAN nodes defined by DBC files (cantools) on a python-can bus from the role options.

`CanDbcNode` sends and receives any message of its DBC; `SmaBmsNode` reads the SMA/Pylontech
"CAN-bus BMS" set (instruments/can/bms_sma.dbc) as one status. Sign: that set's battery current is
+ = charging, the same as ours, so no conversion.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError, InstrumentTimeout
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver

from v2g_bench.instruments.profile import profile_path
from v2g_bench.instruments.transport import open_can_bus


class CanDbcNode(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("can",)
    transport: ClassVar[str] = "can"
    default_dbc: ClassVar[str] = ""
    description = "CAN node from a DBC file (cantools + python-can)"

    def __init__(self, bus, db, *, name: str = "can", instrument_name: str | None = None,
                 dbc: str = "", options: dict[str, Any] | None = None):
        self.bus, self.db, self.name = bus, db, name
        self.instrument_name = instrument_name or name
        self.dbc = dbc
        self.options = dict(options or {})
        self._periodic: list = []

    @staticmethod
    def load_dbc(name_or_path: str):
        import cantools
        path = profile_path(name_or_path, "can")
        try:
            return cantools.database.load_file(str(path))
        except FileNotFoundError:
            raise InstrumentError(f"DBC file {path} not found", instrument="can") from None

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        problems = []
        for key in ("interface", "channel"):
            if key not in cfg.options:
                problems.append(f"{cfg.where(key)}: missing (python-can {key}, e.g. interface = \"socketcand\")")
        dbc = cfg.options.get("dbc", cls.default_dbc)
        if not dbc:
            problems.append(f"{cfg.where('dbc')}: missing (a DBC file under instruments/can/)")
        elif not profile_path(dbc, "can").exists():
            problems.append(f"{cfg.where('dbc')}: {profile_path(dbc, 'can')} does not exist")
        return problems

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None):
        dbc = cfg.options.get("dbc", cls.default_dbc)
        db = cls.load_dbc(dbc)
        label = f"{cfg.role} [{cfg.driver} @ {cfg.options.get('interface')}:{cfg.options.get('channel')}]"
        bus = open_can_bus(cfg.options, name=label, where=cfg.where())
        return cls(bus, db, name=cfg.role, instrument_name=label, dbc=dbc, options=cfg.options)

    def identify(self) -> str:
        return f"CAN node, DBC {self.dbc} ({len(self.db.messages)} messages) on {self.bus.channel_info}"

    def self_test(self) -> str:
        return "ok: " + self.identify()

    def encode(self, message: str, **signals) -> "can.Message":  # noqa: F821
        import can
        m = self.db.get_message_by_name(message)
        try:
            data = m.encode(signals)
        except Exception as e:
            raise InstrumentError(f"cannot encode {message}: {e}", instrument=self.instrument_name,
                                  command=message) from e
        return can.Message(arbitration_id=m.frame_id, data=data, is_extended_id=m.is_extended_frame)

    def send(self, message: str, **signals) -> bytes:
        msg = self.encode(message, **signals)
        try:
            self.bus.send(msg, timeout=1.0)
        except Exception as e:
            raise InstrumentError(f"CAN send failed ({e})", instrument=self.instrument_name, command=message) from e
        return bytes(msg.data)

    def send_periodic(self, message: str, period_s: float, **signals):
        task = self.bus.send_periodic(self.encode(message, **signals), period_s)
        self._periodic.append(task)
        return task

    def receive(self, message: str, timeout_s: float = 2.0) -> dict[str, Any]:
        """Wait (bounded) for the next frame of `message` and decode it."""
        m = self.db.get_message_by_name(message)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            frame = self.bus.recv(timeout=left)
            if frame is None or frame.arbitration_id != m.frame_id:
                continue
            try:
                return m.decode(bytes(frame.data), decode_choices=False)
            except Exception as e:
                raise InstrumentError(f"malformed {message} frame ({e})", instrument=self.instrument_name,
                                      command=f"recv 0x{m.frame_id:X}", answer=bytes(frame.data).hex()) from e
        raise InstrumentTimeout(f"no {message} (0x{m.frame_id:X}) within {timeout_s:g} s",
                                instrument=self.instrument_name, command=f"recv 0x{m.frame_id:X}",
                                fix="check the CAN wiring/bitrate and that the node is sending")

    def safe_state(self) -> None:
        for task in self._periodic:
            try:
                task.stop()
            except Exception:
                pass
        self._periodic.clear()

    def close(self) -> None:
        self.safe_state()
        try:
            self.bus.shutdown()
        except Exception:
            pass


@dataclass(frozen=True)
class BmsStatus:
    t: float
    charge_voltage_limit_v: float
    charge_current_limit_a: float
    discharge_current_limit_a: float
    discharge_voltage_limit_v: float
    soc_percent: float
    soh_percent: float
    voltage_v: float
    current_a: float          # + = charging (into the battery)
    temperature_c: float


class SmaBmsNode(CanDbcNode):
    """Reads the BMS frames a battery emulator / BMS sends (SMA/Pylontech CAN-bus BMS set)."""

    default_dbc = "bms_sma"
    description = "SMA/Pylontech CAN-bus BMS (0x351/0x355/0x356/0x35A)"

    def status(self, timeout_s: float = 3.0) -> BmsStatus:
        """The next 0x351, 0x355 and 0x356 frames (each bounded by timeout_s)."""
        lim = self.receive("BMS_Limits", timeout_s)
        soc = self.receive("BMS_SocSoh", timeout_s)
        meas = self.receive("BMS_Measurements", timeout_s)
        return BmsStatus(time.monotonic(), lim["ChargeVoltageLimit"], lim["ChargeCurrentLimit"],
                         lim["DischargeCurrentLimit"], lim["DischargeVoltageLimit"], soc["SOC"], soc["SOH"],
                         meas["BatteryVoltage"], meas["BatteryCurrent"], meas["BatteryTemperature"])

    def alarms(self, timeout_s: float = 3.0) -> dict[str, bool]:
        """Active alarms/warnings from 0x35A (2-bit fields: 2 = active)."""
        raw = self.receive("BMS_AlarmsWarnings", timeout_s)
        return {k: v == 2 for k, v in raw.items()}
