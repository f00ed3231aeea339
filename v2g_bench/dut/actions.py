"""DUT actions: what an OCTT test asks of an operator (plug in, present a token, unplug, power-cycle the
station, cut / restore its network, ...), as one interface with three kinds of performer:

- `VirtualLabActions` — the virtual lab does it (control-port ops of the simulated station);
- `HardwareActions` — bench hardware / the EV emulator does it: hooks registered by other parts of the
  bench (`register_hook("plug_in", fn, source="ev_io board")`; the EV-side interface board registers
  plug_in/unplug through its role; third parties through the entry-point group `v2g_bench.dut_actions`);
- `OperatorPrompt` — a person does it: the request is shown on the terminal (/dev/tty, so it works
  under pytest's capture), the answer awaited with a timeout; an answers file (TOML) answers
  unattended runs. Every request and answer is recorded in the case's evidence.

A bench chooses in its profile (`[roles.dut.options] actions = ["hardware", "lab", "operator"]`, the
order tried; `answers_file`, `prompt_timeout_s`); the default is hardware, then the virtual lab when
the dut role is the lab's, then the operator when a terminal or an answers file exists. A case states
the actions it needs; `missing(ctx, names)` gives the reason to skip when one cannot be performed.
"""
from __future__ import annotations

import os
import select
import time
import tomllib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from v2g_bench.errors import BenchError, Inconclusive

# what each action means to whoever performs it (the operator reads these)
ACTIONS: dict[str, str] = {
    "plug_in": "Plug the EV (or the EV simulator's cable) into the charging station",
    "unplug": "Unplug the cable from the EV side",
    "present_token": "Present the RFID card / token {id_token} at the station's reader",
    "present_invalid_token": "Present an INVALID (unknown) RFID card at the station's reader",
    "power_cycle": "Switch the charging station off, wait 10 s, switch it on again",
    "cut_network": "Disconnect the station's network (pull the Ethernet cable / disable the modem)",
    "restore_network": "Reconnect the station's network",
    "start_transaction": "Start a charging transaction at the station (plug in and authorize)",
    "stop_transaction": "Stop the charging transaction at the station (present the same card)",
    "ev_ready": "Let the EV request energy (EV ready to charge)",
    "ev_suspend": "Make the EV suspend charging (EV not ready)",
    "emergency_stop": "Press the station's emergency stop",
    "set_cp_state": "Set the control pilot to state {state}",
}


@dataclass
class ActionResult:
    action: str
    performer: str
    detail: Any = None

    def to_dict(self) -> dict:
        return {"action": self.action, "performed_by": self.performer, "detail": self.detail}


class DutActions(ABC):
    """One way of performing DUT actions."""

    name = "actions"

    @abstractmethod
    def can(self, action: str) -> bool: ...

    @abstractmethod
    def perform(self, action: str, **kw) -> ActionResult: ...

    def why_not(self, action: str) -> str:
        return f"{self.name} cannot {action}"


# -- virtual lab -------------------------------------------------------------------------------------
class VirtualLabActions(DutActions):
    """The lab performs them on the simulated charger (through the dut role's control port)."""

    name = "virtual lab"
    OPS = {"plug_in": "station.plug_in", "unplug": "station.unplug", "present_token": "station.present_token",
           "present_invalid_token": "station.present_token", "power_cycle": "station.power_cycle",
           "cut_network": "station.cut_network", "restore_network": "station.restore_network",
           "start_transaction": "station.start_transaction", "stop_transaction": "station.stop_transaction"}

    def __init__(self, dut):
        self.dut = dut          # the virtual_lab_dut role (its op() allows for the CSMS round trips)

    def can(self, action: str) -> bool:
        return action in self.OPS

    def perform(self, action: str, **kw) -> ActionResult:
        if action == "present_invalid_token":
            kw = {"id_token": kw.get("id_token", "INVALID-0000"), **kw}
        return ActionResult(action, self.name, self.dut.op(self.OPS[action], timeout_s=15.0, **kw))


# -- bench hardware / EV emulator hooks ------------------------------------------------------------
_HOOKS: dict[str, tuple[Callable[..., Any], str]] = {}


def register_hook(action: str, fn: Callable[..., Any], *, source: str) -> None:
    """Bench hardware that can perform `action` registers here (e.g. the EV-side interface board's role
    registers plug_in/unplug when it opens; it unregisters when it closes)."""
    if action not in ACTIONS:
        raise BenchError(f"unknown DUT action {action!r}", where=f"register_hook from {source}",
                         fix=f"one of {', '.join(ACTIONS)}")
    _HOOKS[action] = (fn, source)


def unregister_hook(action: str) -> None:
    _HOOKS.pop(action, None)


def _entry_point_hooks() -> None:
    from importlib.metadata import entry_points
    for ep in entry_points(group="v2g_bench.dut_actions"):
        if ep.name in ACTIONS and ep.name not in _HOOKS:
            try:
                _HOOKS[ep.name] = (ep.load(), f"entry point {ep.value}")
            except Exception:  # noqa: BLE001 - a broken plugin makes its action unavailable, no more
                continue


class HardwareActions(DutActions):
    name = "bench hardware"

    def __init__(self):
        _entry_point_hooks()

    def can(self, action: str) -> bool:
        return action in _HOOKS

    def perform(self, action: str, **kw) -> ActionResult:
        fn, source = _HOOKS[action]
        return ActionResult(action, f"{self.name} ({source})", fn(**kw))


class RoleActions(DutActions):
    """A bench role that can perform some actions itself: the EV-side interface board (`ev_io`) plugs,
    unplugs, sets the control pilot and presses the E-stop. Opened on first use."""

    def __init__(self, ctx, role: str, methods: dict[str, str]):
        self.ctx, self.role, self.methods = ctx, role, methods
        self.name = f"role {role}"

    def can(self, action: str) -> bool:
        return action in self.methods

    def perform(self, action: str, **kw) -> ActionResult:
        drv = self.ctx.role(self.role)
        return ActionResult(action, self.name, getattr(drv, self.methods[action])(**kw))


EV_IO_METHODS = {"plug_in": "plug_in", "unplug": "unplug", "set_cp_state": "set_cp", "emergency_stop": "estop"}


# -- operator ------------------------------------------------------------------------------------------
class OperatorPrompt(DutActions):
    """A person performs the action. Interactive: the request on /dev/tty, Enter when done, 's' + Enter
    when it cannot be done (the case becomes inconclusive), no answer within the timeout → inconclusive.
    Unattended: the answers file says per action "done" (arranged by other means) or "unable"."""

    name = "operator"

    def __init__(self, *, answers: dict[str, str] | None = None, timeout_s: float = 120.0, tty: str | None = "/dev/tty",
                 log: list | None = None):
        self.answers = answers
        self.timeout_s = timeout_s
        self.tty = tty if (tty and answers is None and _tty_usable(tty)) else None
        self.log = log if log is not None else []

    @classmethod
    def from_options(cls, opts: dict) -> "OperatorPrompt":
        answers = None
        path = opts.get("answers_file")
        if path:
            answers = load_answers(path)
        return cls(answers=answers, timeout_s=float(opts.get("prompt_timeout_s", 120.0)))

    def can(self, action: str) -> bool:
        if self.answers is not None:
            return self.answers.get(action) == "done"
        return self.tty is not None and action in ACTIONS

    def why_not(self, action: str) -> str:
        if self.answers is not None:
            return f"the answers file says {self.answers.get(action, 'nothing')!r} for {action} (needs \"done\")"
        return "no terminal for the operator prompt and no answers file ([roles.dut.options] answers_file)"

    def perform(self, action: str, **kw) -> ActionResult:
        text = ACTIONS[action].format(**{"id_token": kw.get("id_token", "(the test card)"),
                                         "state": kw.get("state", "?"), **kw})
        t0 = time.time()
        if self.answers is not None:
            answer = self.answers.get(action, "unable")
            entry = {"action": action, "request": text, "answer": answer, "source": "answers file", "t": t0}
        else:
            answer = self._ask(text)
            entry = {"action": action, "request": text, "answer": answer, "source": "operator at the terminal",
                     "t": t0, "waited_s": round(time.time() - t0, 1)}
        self.log.append(entry)
        if answer != "done":
            raise Inconclusive(f"the operator did not perform {action!r} ({answer}): {text}")
        return ActionResult(action, self.name, entry)

    def _ask(self, text: str) -> str:
        # a terminal is not seekable: raw reads and writes on its descriptor (the line discipline gives a line)
        fd = os.open(self.tty, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, (f"\n>>> OPERATOR: {text}\n    Enter when done, 's' + Enter if you cannot "
                          f"(timeout {self.timeout_s:g} s): ").encode())
            ready, _, _ = select.select([fd], [], [], self.timeout_s)
            if not ready:
                os.write(fd, b"\n    (no answer: timed out)\n")
                return "timeout"
            line = os.read(fd, 1024).decode(errors="replace").strip().lower()
        finally:
            os.close(fd)
        return "unable" if line.startswith("s") else "done"


def _tty_usable(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def load_answers(path: str | os.PathLike) -> dict[str, str]:
    """The answers file: `[actions]` table of action = "done" | "unable"."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BenchError(f"cannot read the DUT actions answers file: {e}", where=str(p),
                         fix='a TOML file with [actions] plug_in = "done", power_cycle = "unable", ...') from None
    table = data.get("actions")
    if not isinstance(table, dict):
        raise BenchError("the answers file has no [actions] table", where=str(p))
    bad = {k: v for k, v in table.items() if k not in ACTIONS or v not in ("done", "unable")}
    if bad:
        raise BenchError(f"answers file: bad entries {bad}", where=str(p),
                         fix=f"keys from {', '.join(ACTIONS)}; values \"done\" or \"unable\"")
    return dict(table)


# -- choosing and performing -----------------------------------------------------------------------
class ActionChain:
    """The performers of one bench, tried in order."""

    def __init__(self, performers: list[DutActions]):
        self.performers = performers

    def performer(self, action: str) -> DutActions | None:
        return next((p for p in self.performers if p.can(action)), None)

    def missing(self, actions) -> str | None:
        reasons = []
        for a in actions:
            if self.performer(a) is None:
                why = "; ".join(p.why_not(a) for p in self.performers) or "no performer configured"
                reasons.append(f"{a} ({why})")
        return ("no way to perform the DUT action(s): " + ", ".join(reasons)) if reasons else None

    def perform(self, action: str, **kw) -> ActionResult:
        p = self.performer(action)
        if p is None:
            raise Inconclusive(self.missing([action]) or f"cannot perform {action}")
        return p.perform(action, **kw)


def chain_for(ctx) -> ActionChain:
    """The chain of this bench (cached on the case context)."""
    cached = getattr(ctx, "_dut_actions", None)
    if cached is not None:
        return cached
    roles = ctx.bench_profile.roles
    opts = dict(roles["dut"].options) if "dut" in roles else {}
    lab_dut = "dut" in roles and roles["dut"].driver == "virtual_lab_dut"
    order = opts.get("actions") or (["lab", "hardware", "operator"] if lab_dut else ["hardware", "operator"])
    if isinstance(order, str):
        order = [order]
    performers: list[DutActions] = []
    for kind in order:
        if kind == "hardware":
            performers.append(HardwareActions())
            if "ev_io" in roles:
                performers.append(RoleActions(ctx, "ev_io", EV_IO_METHODS))
        elif kind == "lab":
            if lab_dut:
                performers.append(VirtualLabActions(ctx.dut))
        elif kind == "operator":
            performers.append(OperatorPrompt.from_options(opts))
        else:
            raise BenchError(f"[roles.dut.options] actions: unknown performer {kind!r}",
                             fix='a list of "hardware", "lab", "operator"')
    chain = ActionChain(performers)
    ctx._dut_actions = chain
    return chain


def missing(ctx, actions) -> str | None:
    """Why the bench cannot perform `actions` (the reason a case is skipped), or None."""
    return chain_for(ctx).missing(actions)


def perform(ctx, action: str, *args, **kw) -> dict:
    """Perform a DUT action (the conformance vocabulary's `dut_action` calls this); evidence recorded."""
    if action not in ACTIONS:
        raise BenchError(f"unknown DUT action {action!r}", fix=f"one of {', '.join(ACTIONS)}")
    if args:
        raise BenchError(f"DUT action {action}: pass arguments by name")
    result = chain_for(ctx).perform(action, **kw).to_dict()
    try:
        ctx.attach(f"dut-action-{action}", result)
    except Exception:  # noqa: BLE001 - evidence must not turn an action into an error
        pass
    return result
