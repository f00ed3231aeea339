"""Role `ev_io`: the EV-side interface board (control pilot, proximity, plug relay, E-stop) over serial.

Driver `evio_serial` speaks the "EV-IO line protocol v1" (docs/physical-layer.md): ASCII lines
terminated by LF, one reply line per command, `ERR <code> <text>` on a refused command.

    *IDN?  *RST  CP <A..E>  CP?  DIODE <0|1>  PP <ohm|OPEN>  PLUG <0|1>  ESTOP  ESTOP CLEAR  WDOG <s>
    MEAS?  -> MEAS t=<ms> cp=<A..F|?> hi=<V> lo=<V> duty=<%> freq=<Hz> pp=<ohm|OPEN> hv=<V> plug=<0|1> estop=<0|1>
    EVT?   -> EVT <t_ms> <CP|HV|ESTOP|SAFE> <value>  |  EVT NONE

The resource is a pyserial URL: `/dev/ttyUSB0` on a real bench, the lab's pseudo-terminal
(`{lab.serial_board.path}`) in the virtual lab, `socket://host:port` for a board behind a terminal
server. The board is made safe by the bench's unwind (`safe_state`): CP B (the EV asks the charger
to stop), the inlet voltage seen gone, CP A and the plug relay open — verified by reading back. If the
charger keeps the inlet energized, or the board does not answer, E-stop (CP shorted to PE) and a
SafeStateError. A board-side watchdog (`watchdog_s`, fed by a keep-alive thread) opens the relay if
this process dies.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError, InstrumentTimeout, SafeStateError
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver

HV_OFF_V = 60.0


@dataclass(frozen=True)
class EvIoMeasurement:
    t_ms: int
    cp: str | None           # decoded state A..F (None: invalid voltage)
    high_v: float
    low_v: float
    duty_pct: float
    freq_hz: float
    pp_ohm: float | None
    hv_v: float
    plug: bool
    estop: bool


@dataclass(frozen=True)
class EvIoEvent:
    t_ms: int
    what: str                 # CP (state applied), HV (inlet energized 1/0), ESTOP, SAFE
    value: str


def parse_meas(line: str) -> EvIoMeasurement:
    """`MEAS t=.. cp=..` -> EvIoMeasurement; ValueError naming the field on anything else."""
    if not line.startswith("MEAS "):
        raise ValueError("not a MEAS line")
    kv = {}
    for item in line[5:].split():
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"field {item!r} is not key=value")
        kv[k] = v
    need = ("t", "cp", "hi", "lo", "duty", "freq", "pp", "hv", "plug", "estop")
    missing = [k for k in need if k not in kv]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    try:
        return EvIoMeasurement(
            t_ms=int(kv["t"]), cp=None if kv["cp"] == "?" else kv["cp"], high_v=float(kv["hi"]),
            low_v=float(kv["lo"]), duty_pct=float(kv["duty"]), freq_hz=float(kv["freq"]),
            pp_ohm=None if kv["pp"].upper() == "OPEN" else float(kv["pp"]), hv_v=float(kv["hv"]),
            plug=kv["plug"] == "1", estop=kv["estop"] == "1")
    except ValueError as e:
        raise ValueError(f"bad value: {e}") from None


class EvIoSerialBoard(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("ev_io",)
    transport: ClassVar[str] = "serial"
    description = "EV-side interface board (CP/PP/plug relay/E-stop), EV-IO line protocol v1 over pyserial"

    def __init__(self, port, *, label: str, timeout_s: float = 1.0, watchdog_s: float = 3.0,
                 stop_timeout_s: float = 3.0):
        self.port = port
        self.label = label
        self.timeout_s = timeout_s
        self.watchdog_s = watchdog_s
        self.stop_timeout_s = stop_timeout_s
        self._io = threading.Lock()
        self._keepalive: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self.event_log: list[EvIoEvent] = []

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        problems = []
        if not cfg.resource:
            problems.append(f"{cfg.where('resource')}: missing (a serial port, e.g. /dev/ttyUSB0)")
        wd = cfg.options.get("watchdog_s", 3.0)
        if not isinstance(wd, (int, float)) or not 0 <= wd <= 60:
            problems.append(f"{cfg.where('watchdog_s')}: {wd!r} must be 0..60 s")
        return problems

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None) -> "EvIoSerialBoard":
        import serial
        label = f"{cfg.role} [{cfg.driver} @ {cfg.resource}]"
        try:
            port = serial.serial_for_url(cfg.resource, baudrate=int(cfg.options.get("baudrate", 115200)),
                                         timeout=cfg.timeout_s, write_timeout=cfg.timeout_s)
        except (serial.SerialException, ValueError) as e:
            raise InstrumentError(f"cannot open the serial port: {e}", instrument=label,
                                  fix="check the resource (e.g. /dev/ttyUSB0), cabling and permissions "
                                      "(group dialout)") from None
        drv = cls(port, label=label, timeout_s=cfg.timeout_s, watchdog_s=float(cfg.options.get("watchdog_s", 3.0)),
                  stop_timeout_s=float(cfg.options.get("stop_timeout_s", 3.0)))
        try:
            port.reset_input_buffer()
            ident = drv.identify()
            if not ident.upper().startswith(("V2G-BENCH,EVIO", "EVIO")) and not cfg.options.get("any_identity"):
                raise InstrumentError("not an EV-IO board", instrument=label, command="*IDN?", answer=ident,
                                      fix="check the port, or set any_identity = true for a compatible board")
            drv.command("WDOG %g" % drv.watchdog_s)
        except BaseException:
            port.close()
            raise
        drv._start_keepalive()
        return drv

    # -- the line protocol -------------------------------------------------------------------------
    def query(self, cmd: str) -> str:
        if self._closed:
            raise InstrumentError("the board is closed", instrument=self.label, command=cmd)
        import serial
        with self._io:
            try:
                self.port.write(cmd.encode("ascii") + b"\n")
                raw = self.port.readline()
            except serial.SerialException as e:
                raise InstrumentError(f"serial link lost: {e}", instrument=self.label, command=cmd,
                                      fix="check the USB/serial cable; the board's watchdog opens its relay") from None
        if not raw.endswith(b"\n"):
            raise InstrumentTimeout(f"no answer within {self.timeout_s:g} s", instrument=self.label, command=cmd,
                                    answer=raw.decode("latin-1") if raw else None,
                                    fix="check the board is powered and the baud rate")
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            self.port.reset_input_buffer()
            raise InstrumentError("the board answered garbage (not ASCII)", instrument=self.label, command=cmd,
                                  answer=raw.decode("latin-1"), fix="check baud rate and that this is an EV-IO board") from None
        if text.startswith("ERR"):
            raise InstrumentError("the board refused the command", instrument=self.label, command=cmd, answer=text)
        return text

    def command(self, cmd: str) -> None:
        ans = self.query(cmd)
        if ans != "OK":
            raise InstrumentError("unexpected answer", instrument=self.label, command=cmd, answer=ans)

    # -- role API ----------------------------------------------------------------------------------
    def identify(self) -> str:
        return self.query("*IDN?")

    def set_cp(self, state: str) -> None:
        """Load the CP line as the EV does: A (not connected), B (connected), C (ready), D (ready,
        ventilation), E (CP shorted to PE)."""
        st = str(state).upper()
        if st not in ("A", "B", "C", "D", "E"):
            raise ValueError(f"CP state {state!r}: A, B, C, D or E")
        self.command(f"CP {st}")

    def set_diode(self, present: bool) -> None:
        self.command(f"DIODE {int(bool(present))}")

    def set_pp(self, ohms: float | None) -> None:
        self.command("PP OPEN" if ohms is None else f"PP {float(ohms):g}")

    def plug(self, connected: bool) -> None:
        self.command(f"PLUG {int(bool(connected))}")

    def plug_in(self, *, pp_ohm: float | None = None, state: str = "B") -> None:
        """Plug the EV in: PP (cable), relay closed, CP in `state`."""
        self.set_pp(pp_ohm)
        self.set_cp(state)
        self.plug(True)

    def unplug(self) -> None:
        self.set_cp("A")
        self.plug(False)

    def ev_ready(self) -> None:
        """The EV asks for energy (state C) — the DUT action `ev_ready`."""
        self.set_cp("C")

    def ev_suspend(self) -> None:
        """The EV stops asking for energy (state B) — the DUT action `ev_suspend`."""
        self.set_cp("B")

    def estop(self) -> None:
        self.command("ESTOP")

    def measure(self) -> EvIoMeasurement:
        line = self.query("MEAS?")
        try:
            return parse_meas(line)
        except ValueError as e:
            raise InstrumentError(f"unreadable measurement: {e}", instrument=self.label, command="MEAS?",
                                  answer=line) from None

    def events(self, limit: int = 256) -> list[EvIoEvent]:
        """Drain the board's event queue (time-stamped on the board's clock)."""
        out = []
        for _ in range(limit):
            line = self.query("EVT?")
            if line == "EVT NONE":
                break
            parts = line.split()
            if len(parts) != 4 or parts[0] != "EVT" or not parts[1].lstrip("-").isdigit():
                raise InstrumentError("unreadable event", instrument=self.label, command="EVT?", answer=line)
            out.append(EvIoEvent(int(parts[1]), parts[2], parts[3]))
        self.event_log.extend(out)
        return out

    def wait_for(self, pred, *, timeout_s: float, what: str, poll_s: float = 0.02) -> EvIoMeasurement:
        """Poll MEAS? until pred(measurement) is true; InstrumentTimeout naming `what` otherwise."""
        deadline = time.monotonic() + timeout_s
        m = self.measure()
        while not pred(m):
            if time.monotonic() > deadline:
                raise InstrumentTimeout(f"{what} not seen within {timeout_s:g} s (last: {m})", instrument=self.label,
                                        command="MEAS?")
            time.sleep(poll_s)
            m = self.measure()
        return m

    # -- safety ------------------------------------------------------------------------------------
    def _start_keepalive(self) -> None:
        if self.watchdog_s <= 0:
            return

        def run():
            while not self._stop.wait(self.watchdog_s / 3.0):
                try:
                    self.query("CP?")
                except Exception:          # the next command / safe_state reports the link
                    pass
        self._keepalive = threading.Thread(target=run, name=f"evio-keepalive-{id(self):x}", daemon=True)
        self._keepalive.start()

    def safe_state(self) -> None:
        """CP B (EV stops) -> inlet de-energized -> CP A, relay open; verified. E-stop if it is not."""
        problems: list[str] = []
        try:
            m = self.measure()
            if m.estop:
                self.command("ESTOP CLEAR")
            if m.hv_v > HV_OFF_V and m.cp in ("C", "D"):
                self.set_cp("B")
                try:
                    self.wait_for(lambda x: x.hv_v <= HV_OFF_V, timeout_s=self.stop_timeout_s,
                                  what="inlet de-energized after CP B")
                except InstrumentTimeout as e:
                    problems.append(str(e))
            self.set_cp("A")
            self.plug(False)
            m = self.measure()
            if m.plug:
                problems.append("read back: the plug relay is still closed")
            if m.hv_v > HV_OFF_V:
                problems.append(f"the inlet is still energized ({m.hv_v:g} V) with the EV unplugged")
        except (InstrumentError, OSError) as e:
            problems.append(f"board unreachable: {e}")
        if problems:
            try:
                self.command("ESTOP")
            except Exception as e:  # noqa: BLE001
                problems.append(f"E-stop could not be sent: {e}")
            raise SafeStateError("; ".join(problems), where=self.label,
                                 fix="E-stop sent; check the charger and unplug the EV by hand")

    def close(self) -> None:
        if self._closed:
            return
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=2.0)
        try:
            self.command("WDOG 0")       # a clean close: the board must not time out on us later
        except Exception:  # noqa: BLE001 - a lost link: the board's watchdog makes it safe instead
            pass
        self._closed = True
        try:
            self.port.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def status(self) -> dict[str, Any]:
        return self.measure().__dict__
