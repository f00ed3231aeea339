"""The lab's EV-side interface board on a real pseudo-terminal (a lab service).

A HIL bench's EV-side board sits between the charger's connector and the bench: it loads the
control pilot (R2/R3 and the diode: states A-E), sets the proximity resistor, switches a plug relay
(CP/PP/PE to the inlet), shorts CP to PE on E-stop, and measures the CP (high/low level, duty,
frequency) and the voltage at the inlet. This emulation speaks the line protocol of
`v2g_bench.instruments.ev_io` (docs/physical-layer.md, "EV-IO line protocol v1") on the slave side of
`os.openpty()`; the driver opens the slave path with pyserial exactly as it opens /dev/ttyUSB0.

Its clock is the plant clock (ms); events (CP applied, inlet voltage on/off) carry it, so the bench
judges the charger's reaction time from the board's timestamps, not from a loaded host.

The board is safe on its own: a watchdog (`WDOG <s>`) and a closed/lost host link open the plug
relay (the charger then sees state A); E-stop shorts CP to PE (state E) and opens the relay.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import termios
import tty

from v2g_bench.lab.charger.coupling import charger_for
from v2g_bench.lab.charger.pilot_reaction import attach as attach_reaction

log = logging.getLogger("v2g_bench.lab.frontends.serial_board")

IDENT = "V2G-BENCH,EVIO-1,{serial},1.0"
MAX_LINE = 128
HV_PRESENT_V = 60.0          # inlet voltage above this counts as energized (ELV limit, IEC 61851-1)


class SerialBoard:
    def __init__(self, plant, *, serial: str = "VLAB-EVIO-01"):
        self.plant = plant
        self.serial = serial
        self.cp = "A"              # what the host asked for
        self.pp: float | None = None
        self.diode = True
        self.plug = False
        self.estop = False
        self.events: collections.deque[tuple[int, str, str]] = collections.deque(maxlen=256)
        self.faults = {"garbage": False, "mute": False}
        self.watchdog_s = 0.0
        self._wd_handle: asyncio.TimerHandle | None = None
        self._buf = b""
        self.master = self.slave = -1
        self.path = ""
        self.lines_in = 0
        self._hv = False
        attach_reaction(plant, charger_for(plant))
        plant.add_listener(self._on_plant)

    # -- pty ---------------------------------------------------------------------------------------
    def open(self) -> str:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)      # no echo, no line discipline: bytes as sent
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        asyncio.get_running_loop().add_reader(self.master, self._readable)
        return self.path

    def close(self) -> None:
        self._safe("board stopped")
        if self.master >= 0:
            try:
                asyncio.get_running_loop().remove_reader(self.master)
            except RuntimeError:
                pass
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.master = self.slave = -1

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:          # EIO: no process holds the slave open any more
            data = b""
        if not data:
            return
        self._buf += data
        while b"\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n", 1)
            self._line(raw.rstrip(b"\r"))
        if len(self._buf) > MAX_LINE:
            self._buf = b""
            self._reply("ERR 1 line too long")

    def _reply(self, text: str) -> None:
        if self.faults["mute"]:
            return
        if self.faults["garbage"]:
            text = "\x15\xfe?#" + text[::-1]
        try:
            os.write(self.master, text.encode("latin-1", "replace") + b"\n")
        except OSError as e:
            log.warning("serial board write failed: %s", e)

    # -- protocol ------------------------------------------------------------------------------------
    def _line(self, raw: bytes) -> None:
        self.lines_in += 1
        self._feed_watchdog()
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            self._reply("ERR 1 not ASCII")
            return
        if not text:
            return
        try:
            self._reply(self.handle(text))
        except ValueError as e:
            self._reply(f"ERR 2 {e}")

    def handle(self, text: str) -> str:
        parts = text.split()
        cmd, args = parts[0].upper(), parts[1:]
        if cmd == "*IDN?":
            return IDENT.format(serial=self.serial)
        if cmd == "*RST":
            self.cp, self.pp, self.diode, self.plug = "A", None, True, False
            self._apply()
            return "OK"
        if cmd == "CP?":
            return f"CP {self.cp}"
        if cmd == "CP" and len(args) == 1:
            st = args[0].upper()
            if st not in ("A", "B", "C", "D", "E"):
                raise ValueError(f"CP state {args[0]!r} (A, B, C, D or E)")
            if self.estop:
                raise ValueError("E-stop latched (ESTOP CLEAR first)")
            self.cp = st
            self._apply()
            return "OK"
        if cmd == "DIODE" and args in (["0"], ["1"]):
            self.diode = args[0] == "1"
            self._apply()
            return "OK"
        if cmd == "PP" and len(args) == 1:
            if args[0].upper() == "OPEN":
                self.pp = None
            else:
                try:
                    ohm = float(args[0])
                except ValueError:
                    raise ValueError(f"PP {args[0]!r}: ohms or OPEN") from None
                if not 0 <= ohm <= 100_000:
                    raise ValueError(f"PP {ohm:g} ohm outside 0..100000")
                self.pp = ohm
            self._apply()
            return "OK"
        if cmd == "PLUG" and args in (["0"], ["1"]):
            if args[0] == "1" and self.estop:
                raise ValueError("E-stop latched (ESTOP CLEAR first)")
            self.plug = args[0] == "1"
            self._apply()
            return "OK"
        if cmd == "ESTOP" and not args:
            self.estop = True
            self._event("ESTOP", "1")
            self._apply()
            return "OK"
        if cmd == "ESTOP" and [a.upper() for a in args] == ["CLEAR"]:
            self.estop = False
            self.cp, self.plug = "A", False
            self._event("ESTOP", "0")
            self._apply()
            return "OK"
        if cmd == "WDOG" and len(args) == 1:
            try:
                s = float(args[0])
            except ValueError:
                raise ValueError(f"WDOG {args[0]!r}: seconds (0 = off)") from None
            if not 0 <= s <= 60:
                raise ValueError("WDOG 0..60 s")
            self.watchdog_s = s
            self._feed_watchdog()
            return "OK"
        if cmd == "MEAS?":
            return self.measure_line()
        if cmd == "EVT?":
            if not self.events:
                return "EVT NONE"
            t, what, val = self.events.popleft()
            return f"EVT {t} {what} {val}"
        raise ValueError(f"unknown command {text[:40]!r}")

    # -- the board's physics --------------------------------------------------------------------------
    def applied_state(self) -> str:
        """What loads the CP line: E on E-stop (CP shorted to PE), A with the relay open."""
        if self.estop:
            return "E"
        return self.cp if self.plug else "A"

    def _apply(self) -> None:
        pilot = self.plant.pilot
        st = self.applied_state()
        before = pilot.reading().ev_state
        if not self.plug and not self.estop:
            # relay open: the board is off the inlet. The charger sees A; then the line is no longer driven by
            # a board, so the lab's protocol-only tests (no CP at all) run as before it was plugged
            if pilot.driven:
                self._event("CP", "A")
                pilot.set_ev_state("A")
                pilot.release()
            elif not self.events:
                self._event("CP", "A")
            self._check_hv()
            return
        if st != before or not self.events:
            self._event("CP", st)        # stamped when the board switches, before the charger can react
        pilot.set_pp(self.pp if self.plug and not self.estop else None)
        pilot.set_diode(self.diode)
        pilot.set_ev_state(st)
        self._check_hv()

    def _safe(self, why: str) -> None:
        """Host gone / watchdog: relay open (the charger sees A)."""
        if self.plug or self.cp != "A":
            log.warning("serial board: %s -> plug relay open, CP A", why)
            self._event("SAFE", why.replace(" ", "_"))
        self.plug, self.cp = False, "A"
        try:
            self._apply()
        except Exception:
            log.exception("serial board safe state failed")

    def _feed_watchdog(self) -> None:
        if self._wd_handle is not None:
            self._wd_handle.cancel()
            self._wd_handle = None
        if self.watchdog_s > 0:
            self._wd_handle = asyncio.get_running_loop().call_later(self.watchdog_s, self._safe, "watchdog")

    def _event(self, what: str, val: str) -> None:
        self.events.append((int(round(self.plant.clock.now() * 1000)), what, val))

    def _on_plant(self, event: str, info: dict) -> None:
        if event == "contactor":
            self._check_hv(bool(info.get("closed")))

    def _inlet_v(self) -> float:
        s = self.plant.state()
        return s.dc_voltage_v if s.contactor_closed else 0.0

    def _check_hv(self, closed: bool | None = None) -> None:
        if closed is None:
            on = self._inlet_v() > HV_PRESENT_V
        else:                      # called from the plant's emit (its lock held): no state() call
            on = closed and self.plant.emulator.output_on
        if on != self._hv:
            self._hv = on
            self._event("HV", "1" if on else "0")

    def measure_line(self) -> str:
        r = self.plant.pilot.reading()
        pp = "OPEN" if r.pp_ohm is None else f"{r.pp_ohm:g}"
        return (f"MEAS t={int(round(r.t * 1000))} cp={r.state or '?'} hi={r.high_v:.2f} lo={r.low_v:.2f} "
                f"duty={r.duty_pct:.1f} freq={r.freq_hz:.0f} pp={pp} hv={self._inlet_v():.1f} "
                f"plug={int(self.plug)} estop={int(self.estop)}")

    def status(self) -> dict:
        return {"path": self.path, "cp": self.cp, "applied": self.applied_state(), "plug": self.plug,
                "estop": self.estop, "pp": self.pp, "diode": self.diode, "watchdog_s": self.watchdog_s,
                "faults": dict(self.faults), "lines_in": self.lines_in, "meas": self.measure_line()}


class SerialBoardService:
    def __init__(self, board: SerialBoard):
        self.board = board

    async def stop(self) -> None:
        self.board.close()
        self.board.plant.pilot.release()


async def start_service(plant, cfg: dict, ctx) -> SerialBoardService:
    board = SerialBoard(plant, serial=str(cfg.get("serial", "VLAB-EVIO-01")))
    path = board.open()
    reaction = attach_reaction(plant)
    reaction.configure(mode=cfg.get("cp_mode", "hlc"), max_current_a=float(cfg.get("max_current_a", 32.0)))
    if ctx is not None:
        ctx.ready["serial_board"] = {"path": path}

        def evio_fault(garbage: bool | None = None, mute: bool | None = None) -> dict:
            for k, v in (("garbage", garbage), ("mute", mute)):
                if v is not None:
                    board.faults[k] = bool(v)
            return dict(board.faults)

        def evio_reset() -> dict:
            board.faults = {"garbage": False, "mute": False}
            board.estop, board.watchdog_s = False, 0.0
            board._safe("reset")
            reaction.clear()
            plant.pilot.release()
            return board.status()

        ops = {"evio.status": board.status, "evio.fault": evio_fault, "evio.reset": evio_reset,
               "pilot.status": reaction.status, "pilot.configure": reaction.configure,
               "pilot.defect": reaction.set_defect,
               "pilot.set_state_f": lambda: plant.pilot.set_state_f().as_dict()}
        for name, fn in ops.items():
            ctx.register_op(name, fn)
    log.info("EV-IO serial board on %s", path)
    return SerialBoardService(board)


class Celeron55Board:
    """The same board speaking pyPLC's "celeron55device" line protocol (uhi22/pyPLC hardwareInterface.py,
    PevMode with celeron55's EV-side interface): the host writes `cp=0|1` (state B/C), `contactor=0|1`,
    `lock`, `unlock`, `disp<n>=<text>`; the device streams `inlet_v=`, `dc_link_v=`, `cp_pwm=`,
    `cp_output_state=`, `ccs_contactor_wanted_closed=`, `contactor_confirmed=`, `plugged_in=` lines every
    `period_s`. It has no plug relay, no PP, no E-stop and no timestamps: the plug is physical (always in here)."""

    def __init__(self, plant, *, period_s: float = 0.1):
        self.plant, self.period_s = plant, period_s
        self.cp_c = False
        self.contactor_wanted = False
        self.master = self.slave = -1
        self.path = ""
        self._buf = b""
        self._task: asyncio.Task | None = None
        attach_reaction(plant, charger_for(plant))

    def open(self) -> str:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        asyncio.get_running_loop().add_reader(self.master, self._readable)
        self._task = asyncio.get_running_loop().create_task(self._stream())
        self.plant.pilot.set_ev_state("B")          # plugged in: the device's CP rests in B
        return self.path

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.master >= 0:
            asyncio.get_running_loop().remove_reader(self.master)
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.master = self.slave = -1
        self.plant.pilot.release()

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        self._buf += data
        while b"\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").strip()
            if line in ("cp=0", "cp=1"):
                self.cp_c = line == "cp=1"
                self.plant.pilot.set_ev_state("C" if self.cp_c else "B")
            elif line in ("contactor=0", "contactor=1"):
                self.contactor_wanted = line == "contactor=1"
            # lock/unlock/disp lines: accepted, nothing to model

    async def _stream(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            s = self.plant.state()
            r = self.plant.pilot.reading()
            inlet = s.dc_voltage_v if s.contactor_closed else 0.0
            lines = [f"inlet_v={round(inlet)}", f"dc_link_v={round(s.battery_ocv_v)}",
                     f"cp_pwm={round(r.duty_pct) if r.pwm_on else 0}", f"cp_output_state={int(self.cp_c)}",
                     f"ccs_contactor_wanted_closed={int(self.contactor_wanted)}",
                     f"contactor_confirmed={int(self.contactor_wanted)}", "plugged_in=1"]
            try:
                os.write(self.master, ("\n".join(lines) + "\n").encode())
            except OSError:
                pass


class Celeron55Service:
    def __init__(self, board: Celeron55Board):
        self.board = board

    async def stop(self) -> None:
        self.board.close()


async def start_celeron55_service(plant, cfg: dict, ctx) -> Celeron55Service:
    """The pyPLC celeron55 dialect on its own pty (not part of the default lab; its tests start it directly)."""
    board = Celeron55Board(plant, period_s=float(cfg.get("period_s", 0.1)))
    path = board.open()
    if ctx is not None:
        ctx.ready["serial_board_c55"] = {"path": path}
    return Celeron55Service(board)
