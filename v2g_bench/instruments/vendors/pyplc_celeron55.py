"""Role `ev_io`, second driver family: the EV-side interface device of pyPLC's PevMode ("celeron55device",
protocol as implemented in uhi22/pyPLC hardwareInterface.py — the one public line protocol of a real EV-side
board we found). Host -> device: `cp=0|1` (CP state B/C), `contactor=0|1`, `lock`, `unlock`; device -> host,
streamed: `inlet_v=`, `dc_link_v=`, `cp_pwm=`, `cp_output_state=`, `ccs_contactor_wanted_closed=`,
`contactor_confirmed=`, `plugged_in=` (integers).

What it cannot do, so the bench says so instead of pretending: states A/D/E (no plug relay, no short: the plug is
physical), PP, E-stop, CP voltage/frequency and time-stamped events (the CP timing cases are a bench error with it;
use an EV-IO v1 board for them)."""
from __future__ import annotations

import math
import threading
import time
from typing import ClassVar

from v2g_bench.errors import InstrumentError, InstrumentTimeout, SafeStateError
from v2g_bench.instruments.ev_io import HV_OFF_V, EvIoMeasurement
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver

FIELDS = ("inlet_v", "dc_link_v", "cp_pwm", "cp_output_state", "ccs_contactor_wanted_closed", "contactor_confirmed",
          "plugged_in")


class Celeron55EvIo(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("ev_io",)
    transport: ClassVar[str] = "serial"
    description = "pyPLC celeron55 EV-side device (cp=0/1 and streamed inlet_v/cp_pwm lines)"

    def __init__(self, port, *, label: str, stale_s: float = 1.0):
        self.port, self.label, self.stale_s = port, label, stale_s
        self.values: dict[str, int] = {}
        self.seen_t = 0.0
        self.garbage = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._rx = threading.Thread(target=self._reader, name="celeron55-rx", daemon=True)
        self._rx.start()

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        return [] if cfg.resource else [f"{cfg.where('resource')}: missing (the device's serial port)"]

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None) -> "Celeron55EvIo":
        import serial
        label = f"{cfg.role} [{cfg.driver} @ {cfg.resource}]"
        try:
            port = serial.serial_for_url(cfg.resource, baudrate=int(cfg.options.get("baudrate", 115200)), timeout=0.1)
        except (serial.SerialException, ValueError) as e:
            raise InstrumentError(f"cannot open the serial port: {e}", instrument=label) from None
        drv = cls(port, label=label, stale_s=float(cfg.options.get("stale_s", 1.0)))
        try:
            drv._fresh(cfg.timeout_s * 2)
        except BaseException:
            drv.close()
            raise
        return drv

    def _reader(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                buf += self.port.read(256)
            except Exception:  # noqa: BLE001 - a lost port shows as stale values
                if self._stop.wait(0.1):
                    return
                continue
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                key, sep, val = raw.decode("utf-8", "replace").strip().partition("=")
                with self._lock:
                    if sep and key in FIELDS and val.lstrip("-").isdigit():
                        self.values[key] = int(val)
                        self.seen_t = time.monotonic()
                    elif raw.strip():
                        self.garbage += 1
            if len(buf) > 1024:
                buf = b""

    def _fresh(self, timeout_s: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if self.seen_t and time.monotonic() - self.seen_t <= self.stale_s and "inlet_v" in self.values:
                    return dict(self.values)
                garbage = self.garbage
            if time.monotonic() > deadline:
                what = "garbage only" if garbage else "nothing"
                raise InstrumentTimeout(f"no status lines from the device within {timeout_s:g} s ({what} received)",
                                        instrument=self.label, fix="check the port/baud rate and the device's power")
            time.sleep(0.02)

    def _write(self, line: str) -> None:
        try:
            self.port.write(line.encode() + b"\n")
        except Exception as e:  # noqa: BLE001
            raise InstrumentError(f"serial link lost: {e}", instrument=self.label, command=line) from None

    def identify(self) -> str:
        v = self._fresh(2.0)
        return f"pyPLC celeron55 EV-side device on {self.port.port} (plugged_in={v.get('plugged_in')})"

    def set_cp(self, state: str) -> None:
        st = str(state).upper()
        if st not in ("B", "C"):
            raise InstrumentError(f"CP state {st}: this device switches only B and C", instrument=self.label,
                                  fix="use an EV-IO v1 board (driver evio_serial) for A, D and E")
        self._write(f"cp={int(st == 'C')}")

    def plug_in(self, *, pp_ohm=None, state: str = "B") -> None:
        self.set_cp(state)

    def unplug(self) -> None:
        raise InstrumentError("this device has no plug relay", instrument=self.label, fix="unplug by hand")

    def estop(self) -> None:
        raise InstrumentError("this device has no E-stop output", instrument=self.label)

    def events(self, limit: int = 256) -> list:
        return []                                # no time-stamped events in this protocol

    def measure(self) -> EvIoMeasurement:
        v = self._fresh(1.0)
        cp = ("C" if v.get("cp_output_state") else "B") if v.get("plugged_in") else "A"
        return EvIoMeasurement(t_ms=int(self.seen_t * 1000), cp=cp, high_v=math.nan, low_v=math.nan,
                               duty_pct=float(v.get("cp_pwm", 0)) or 100.0, freq_hz=math.nan, pp_ohm=None,
                               hv_v=float(v.get("inlet_v", 0)), plug=bool(v.get("plugged_in")), estop=False)

    def wait_for(self, pred, *, timeout_s: float, what: str, poll_s: float = 0.05) -> EvIoMeasurement:
        deadline = time.monotonic() + timeout_s
        m = self.measure()
        while not pred(m):
            if time.monotonic() > deadline:
                raise InstrumentTimeout(f"{what} not seen within {timeout_s:g} s (last: {m})", instrument=self.label)
            time.sleep(poll_s)
            m = self.measure()
        return m

    def safe_state(self) -> None:
        """CP B and contactor request off; verified: the inlet de-energized (it cannot unplug: A is by hand)."""
        try:
            self._write("contactor=0")
            self._write("cp=0")
            self.wait_for(lambda m: m.hv_v <= HV_OFF_V, timeout_s=3.0, what="inlet de-energized after CP B")
        except InstrumentError as e:
            raise SafeStateError(str(e), where=self.label, fix="unplug the EV by hand; check the charger") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._rx.join(2.0)
        try:
            self.port.close()
        except Exception:  # noqa: BLE001
            pass
