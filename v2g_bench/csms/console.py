"""A CSMS you can drive by hand: a small command language over the running CSMS emulator, for a test
engineer exploring a charger. Every CSMS-initiated call can be sent (raw JSON or a shortcut), every frame
is shown live above the prompt (prompt_toolkit), and the session — commands and answers — is recorded.

    stations                                  connected stations (the first one is used unless `use`)
    await [SECONDS]                           until a station connects (scripts begin with it)
    use CS-001
    call SetVariables {"setVariableData": [...]}          any CSMS-to-station action, payload as JSON
    profile 1 TxProfile 10 0:5000 60:-4000 120:0 [stack=1] [tx=last|ID] [unit=A]
                                              a charging profile in the station's OCPP version
                                              (power in W, - = discharge; 2.1: CentralSetpoint for discharge)
    setpoint 1 -3000 [tx=last]                2.1: a TxProfile with one CentralSetpoint period
    composite 1 300 [W|A]      clear 10 | clear purpose=TxDefaultProfile stack=0
    trigger StatusNotification [evse]         getvar OCPPCommCtrlr.HeartbeatInterval ...
    setvar OCPPCommCtrlr.HeartbeatInterval=60 ...
    start 7 [TOKEN]     stop [last|TXID]      reset [OnIdle|Immediate]
    wait TransactionEvent [seconds]           the next CALL of that action from the station
    frames [n]   live on|off   record FILE   help   quit

Scripts (`--script FILE`, one command a line, # comments) run the same language unattended; a session
recording (`record FILE`) is JSON lines of {t, command, result}.
"""
from __future__ import annotations

import asyncio
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from v2g_bench.csms import payloads as P
from v2g_bench.csms.recording import CALL, CALLERROR
from v2g_bench.csms.server import CsmsServer
from v2g_bench.errors import BenchError, Nonconformance

HELP = __doc__.split("\n\n")[1]


class ConsoleError(Exception):
    """A command the console could not run (bad syntax, no station): shown to the user, the session goes on."""


@dataclass
class Result:
    ok: bool
    text: str
    data: Any = None


class Console:
    def __init__(self, server: CsmsServer, *, echo: Callable[[str], None] = print, timeout_s: float = 15.0):
        self.server, self.echo, self.timeout_s = server, echo, timeout_s
        self.station: str | None = None
        self.live = True
        self.recording: Path | None = None
        self.last_tx: str | None = None
        self._seen = 0          # frames before this seq are not looked at by `wait`

    # -- the language -------------------------------------------------------------------------------
    async def execute(self, line: str) -> Result:
        line = line.strip()
        if not line or line.startswith("#"):
            return Result(True, "")
        try:
            words = shlex.split(line, posix=True) if not line.split(None, 1)[0] == "call" else line.split(None, 2)
        except ValueError as e:
            return self._done(line, Result(False, f"cannot parse the command: {e}"))
        cmd, args = words[0].lower(), words[1:]
        fn = getattr(self, f"cmd_{cmd}", None)
        if fn is None:
            return self._done(line, Result(False, f"unknown command {cmd!r} (help lists them)"))
        try:
            res = await fn(args)
        except ConsoleError as e:
            res = Result(False, str(e))
        except ConnectionError as e:
            res = Result(False, f"the station went away: {e}")
        except (BenchError, Nonconformance) as e:       # an invalid payload, a station that did not answer
            res = Result(False, str(e))
        except asyncio.TimeoutError:
            res = Result(False, f"no answer within {self.timeout_s:g} s")
        return self._done(line, res)

    def _done(self, line: str, res: Result) -> Result:
        if self.recording is not None:
            with self.recording.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"t": time.time(), "command": line, "ok": res.ok, "result": res.data
                                    if res.data is not None else res.text}, default=str) + "\n")
        return res

    # -- helpers ------------------------------------------------------------------------------------------
    def _session(self):
        live = {sid: s for sid, s in self.server.sessions.items() if not s.closed.is_set()}
        if not live:
            raise ConsoleError("no station is connected")
        sid = self.station or next(iter(live))
        if sid not in live:
            raise ConsoleError(f"station {sid!r} is not connected (connected: {', '.join(live)})")
        return live[sid]

    async def _call(self, action: str, payload: dict) -> Result:
        s = self._session()
        self._seen = self.server.recorder.count      # `wait` looks at what the station sent from here on
        frame = await asyncio.wait_for(s.call(action, payload, timeout=self.timeout_s), self.timeout_s + 1)
        if frame.msg_type == CALLERROR:
            return Result(False, f"{action}: CALLERROR {json.dumps(frame.payload)}", frame.payload)
        if frame.problems:
            return Result(False, f"{action} answer breaks the schema: {'; '.join(frame.problems)}", frame.payload)
        return Result(True, f"{action} -> {json.dumps(frame.payload)}", frame.payload)

    @staticmethod
    def _kv(args: list[str]) -> tuple[list[str], dict[str, str]]:
        pos, kw = [], {}
        for a in args:
            if "=" in a and not a.startswith("{"):
                k, v = a.split("=", 1)
                kw[k] = v
            else:
                pos.append(a)
        return pos, kw

    def _tx(self, value: str | None) -> str | None:
        if value in (None, "last"):
            if value == "last" and self.last_tx is None:
                raise ConsoleError("no transaction seen yet (tx=last)")
            return self.last_tx if value == "last" else None
        return value

    def note_frame(self, f) -> None:
        """Frame listener: remember the running transaction for tx=last / stop."""
        if f.direction == "in" and f.msg_type == CALL and f.action == "TransactionEvent" and isinstance(f.payload, dict):
            tx = (f.payload.get("transactionInfo") or {}).get("transactionId")
            if tx:
                self.last_tx = tx

    # -- commands -----------------------------------------------------------------------------------------
    async def cmd_help(self, args):
        return Result(True, HELP)

    async def cmd_stations(self, args):
        live = [f"{sid} (OCPP {s.version})" for sid, s in self.server.sessions.items() if not s.closed.is_set()]
        return Result(True, ", ".join(live) or "no station connected", live)

    async def cmd_await(self, args):
        """await [SECONDS]: until a station is connected (scripts start with it)."""
        secs = float(args[0]) if args else 60.0

        def live():
            return [sid for sid, s in self.server.sessions.items() if not s.closed.is_set()]
        try:
            got = await self.server.wait_until(live, secs)
        except TimeoutError:
            return Result(False, f"no station connected within {secs:g} s")
        return Result(True, f"connected: {', '.join(got)}", got)

    async def cmd_use(self, args):
        if len(args) != 1:
            raise ConsoleError("use STATION_ID")
        self.station = args[0]
        return Result(True, f"using {args[0]}")

    async def cmd_call(self, args):
        if not args:
            raise ConsoleError("call ACTION {json payload}")
        action = args[0]
        text = args[1] if len(args) > 1 else "{}"
        try:
            payload = json.loads(text)
        except ValueError as e:
            raise ConsoleError(f"the payload is not JSON: {e}") from None
        if not isinstance(payload, dict):
            raise ConsoleError("the payload must be a JSON object")
        s = self._session()
        if action not in s.schemas.actions:
            raise ConsoleError(f"{action} is not an OCPP {s.version} action")
        problems = s.schemas.check(action, "Request", payload)
        if problems:
            raise ConsoleError(f"{action}Request breaks the schema: {'; '.join(map(str, problems[:3]))} "
                               "(sent nothing)")
        return await self._call(action, payload)

    async def cmd_profile(self, args):
        pos, kw = self._kv(args)
        if len(pos) < 4:
            raise ConsoleError("profile EVSE PURPOSE ID START:W [START:W ...] [stack=N] [tx=last|ID] [unit=W|A]")
        try:
            evse, purpose, pid = int(pos[0]), pos[1], int(pos[2])
            periods = [(int(a), float(b)) for a, b in (p.split(":") for p in pos[3:])]
            stack = int(kw.get("stack", 0))
        except ValueError:
            raise ConsoleError("EVSE, ID, stack and START:W must be numbers") from None
        version = self._session().version
        try:
            prof = P.charging_profile(pid, purpose, periods, version=version, stack_level=stack,
                                      unit=kw.get("unit", "W"), transaction_id=self._tx(kw.get("tx")))
        except ValueError as e:
            raise ConsoleError(str(e)) from None
        return await self._call("SetChargingProfile", {"evseId": evse, "chargingProfile": prof})

    async def cmd_setpoint(self, args):
        pos, kw = self._kv(args)
        if len(pos) != 2:
            raise ConsoleError("setpoint EVSE WATTS [tx=last|ID] [id=N]")
        if self._session().version != "2.1":
            raise ConsoleError("setpoints are OCPP 2.1 (the station speaks 2.0.1: use profile with a negative limit)")
        evse, w = int(pos[0]), float(pos[1])
        prof = P.charging_profile(int(kw.get("id", 900)), "TxProfile", [(0, w)], version="2.1",
                                  transaction_id=self._tx(kw.get("tx", "last")))
        prof["chargingSchedule"][0]["chargingSchedulePeriod"] = [
            {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": w, "limit": max(w, 0.0),
             "dischargeLimit": min(w, 0.0)}]
        return await self._call("SetChargingProfile", {"evseId": evse, "chargingProfile": prof})

    async def cmd_composite(self, args):
        if len(args) < 2:
            raise ConsoleError("composite EVSE DURATION_S [W|A]")
        return await self._call("GetCompositeSchedule", {"evseId": int(args[0]), "duration": int(args[1]),
                                                         "chargingRateUnit": args[2] if len(args) > 2 else "W"})

    async def cmd_clear(self, args):
        pos, kw = self._kv(args)
        payload: dict[str, Any] = {}
        if pos:
            payload["chargingProfileId"] = int(pos[0])
        crit = {k2: (int(kw[k1]) if k1 in ("evse", "stack") else kw[k1])
                for k1, k2 in (("evse", "evseId"), ("purpose", "chargingProfilePurpose"), ("stack", "stackLevel"))
                if k1 in kw}
        if crit:
            payload["chargingProfileCriteria"] = crit
        return await self._call("ClearChargingProfile", payload)

    async def cmd_trigger(self, args):
        if not args:
            raise ConsoleError("trigger MESSAGE [EVSE]")
        payload: dict[str, Any] = {"requestedMessage": args[0]}
        if len(args) > 1:
            payload["evse"] = {"id": int(args[1])}
        return await self._call("TriggerMessage", payload)

    async def cmd_getvar(self, args):
        items = []
        for a in args:
            c, _, v = a.partition(".")
            if not v:
                raise ConsoleError(f"{a!r}: COMPONENT.VARIABLE")
            items.append({"component": {"name": c}, "variable": {"name": v}})
        if not items:
            raise ConsoleError("getvar COMPONENT.VARIABLE ...")
        return await self._call("GetVariables", {"getVariableData": items})

    async def cmd_setvar(self, args):
        items = []
        for a in args:
            cv, eq, val = a.partition("=")
            c, _, v = cv.partition(".")
            if not (eq and v):
                raise ConsoleError(f"{a!r}: COMPONENT.VARIABLE=VALUE")
            items.append({"component": {"name": c}, "variable": {"name": v}, "attributeValue": val})
        if not items:
            raise ConsoleError("setvar COMPONENT.VARIABLE=VALUE ...")
        return await self._call("SetVariables", {"setVariableData": items})

    async def cmd_start(self, args):
        if not args:
            raise ConsoleError("start REMOTE_START_ID [TOKEN]")
        return await self._call("RequestStartTransaction", {
            "remoteStartId": int(args[0]), "evseId": 1,
            "idToken": {"idToken": args[1] if len(args) > 1 else "CONSOLE", "type": "Central"}})

    async def cmd_stop(self, args):
        tx = self._tx(args[0] if args else "last")
        return await self._call("RequestStopTransaction", {"transactionId": tx})

    async def cmd_reset(self, args):
        return await self._call("Reset", {"type": args[0] if args else "OnIdle"})

    async def cmd_wait(self, args):
        if not args:
            raise ConsoleError("wait ACTION [SECONDS]")
        action, secs = args[0], float(args[1]) if len(args) > 1 else self.timeout_s
        start = self._seen       # since the last call sent (a fast answer may already be here), not taken yet

        def found():
            for f in self.server.recorder.frames:
                if f.seq >= start and f.direction == "in" and f.msg_type == CALL and f.action == action:
                    return f
            return None
        try:
            f = await self.server.wait_until(found, secs)
        except TimeoutError:
            return Result(False, f"no {action} within {secs:g} s")
        self._seen = f.seq + 1
        return Result(True, f"{action}: {json.dumps(f.payload)}", f.payload)

    async def cmd_frames(self, args):
        n = int(args[0]) if args else 10
        frames = list(self.server.recorder.frames)[-n:]
        text = "\n".join(f"{f.wall[11:23]} {f.station} {'->' if f.direction == 'in' else '<-'} {f.kind} "
                         f"{f.action or ''} {json.dumps(f.payload)[:200]}" for f in frames)
        return Result(True, text or "no frames")

    async def cmd_live(self, args):
        self.live = not args or args[0] != "off"
        return Result(True, f"live frame view {'on' if self.live else 'off'}")

    async def cmd_record(self, args):
        if not args:
            raise ConsoleError("record FILE")
        self.recording = Path(args[0])
        self.recording.parent.mkdir(parents=True, exist_ok=True)
        return Result(True, f"recording this session to {self.recording}")

    async def cmd_quit(self, args):
        raise EOFError


async def run_script(console: Console, path: Path, *, stop_on_error: bool = True) -> int:
    """Run a command file; the number of failed commands."""
    failed = 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            res = await console.execute(line)
        except EOFError:
            break
        if res.text:
            console.echo(f"[{n}] {line.strip()}\n    {res.text}")
        if not res.ok:
            failed += 1
            if stop_on_error:
                break
    return failed


async def interactive(console: Console) -> None:
    """The prompt: line editing and history (prompt_toolkit), frames printed above it as they arrive."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.patch_stdout import patch_stdout

    words = [n[4:] for n in dir(Console) if n.startswith("cmd_")] + sorted(_csms_actions())
    session: PromptSession = PromptSession(completer=WordCompleter(words, ignore_case=True))
    with patch_stdout():
        while True:
            try:
                line = await session.prompt_async("csms> ")
            except (EOFError, KeyboardInterrupt):
                return
            try:
                res = await console.execute(line)
            except EOFError:
                return
            if res.text:
                console.echo(res.text if res.ok else f"error: {res.text}")


def _csms_actions() -> set[str]:
    from v2g_bench.csms.directions import csms_sends
    from v2g_bench.csms.validation import schemas_for
    return set(csms_sends("2.1", schemas_for("2.1").actions))
