"""ISO 15118 words (the bench plays the EV, the charger's SECC is under test).

    iso15118.session(service="DC_BPT", control_mode="dynamic", plan=[...], save_as="session")   stimulus
    iso15118.session_ok(req=...)                         the session reached SessionStopRes with every response OK
    iso15118.response("DC_ChargeLoopRes", req="...", ResponseCode="OK")    every such response has these fields
    iso15118.performance_time("DC_ChargeLoopReq", normative_s=0.25, req="V2G20-1502",
                              timer="secc_charge_loop_performance_time_s")  judged from the capture

Expected values come from what the EV emulator sent and from instruments, never from the charger's own account.
"""
from __future__ import annotations

import json
import threading
from typing import Any

from v2g_bench.conformance.match import check_fields, expand_dotted
from v2g_bench.conformance.steps import Step
from v2g_bench.conformance.wire import response_times
from v2g_bench.exi.values import find_key, rational  # noqa: F401 - re-exported for case tables
from v2g_bench.errors import BenchError, CaseDefinitionError, Inconclusive, Nonconformance


def trace_entries(res) -> list[dict]:
    """The EV emulator's own record of the wire (tx = what the EV sent, rx = what the charger answered)."""
    if not getattr(res, "trace_path", None):
        raise Inconclusive("the EV emulator wrote no V2GTP trace")
    with open(res.trace_path, encoding="utf-8") as f:
        return [e for e in map(json.loads, f) if e.get("dir") in ("tx", "rx")]






def first_entry(entries: list[dict], direction: str, name: str) -> dict:
    for e in entries:
        if e["dir"] == direction and e["name"] == name:
            return e
    raise Inconclusive(f"no {name} ({direction}) in the EV's trace")


def session_result(ctx, name: str = "session"):
    """The finished session an earlier `session` step saved (waits for a background one)."""
    return _result(ctx, name)


class session(Step):  # noqa: N801
    """The EV runs a session against the charger (in the foreground, or in the background with `background=True`
    so later steps talk to the CSMS while it runs; `session_ok` then waits for it). Captured to a pcap."""

    kind = "stimulus"

    def __init__(self, *, protocol: str = "ISO15118-20", service: str = "DC_BPT", control_mode: str = "dynamic",
                 plan: Any, ev_model: dict | None = None, timeout_s: float = 90.0, background: bool = False,
                 save_as: str = "session", req: str | tuple[str, ...] | None = None):
        self.protocol, self.service, self.control_mode, self.plan = protocol, service, control_mode, plan
        self.ev_model, self.timeout_s, self.background, self.save_as, self.req = ev_model, timeout_s, background, \
            save_as, req
        self.name = f"the EV runs a {protocol} {service} {control_mode} session" + (" (in the background)"
                                                                                     if background else "")

    def run(self, ctx):
        ev = ctx.ev
        for k, v in (ctx.resolve(self.ev_model) or {}).items():
            if not hasattr(ev.model, k):
                raise CaseDefinitionError(f"session(ev_model={{{k!r}: ...}}): the EV model has no {k!r}")
            setattr(ev.model, k, v)
        plan = ctx.resolve(self.plan)
        _slac_first(ctx)
        cap = ev.start_capture()
        box: dict[str, Any] = {}

        def go():
            try:
                box["res"] = ev.run_session(protocol=self.protocol, service=self.service,
                                            control_mode=self.control_mode, plan=plan, timeout=self.timeout_s)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting step
                box["exc"] = e
            finally:
                try:
                    box["pcap"] = ev.stop_capture(cap)
                except Exception as e:  # noqa: BLE001
                    box["pcap_error"] = e
        th = threading.Thread(target=go, name="ev-session", daemon=True)
        th.start()
        ctx.vars[self.save_as] = _Pending(th, box, self.timeout_s + 30)
        # what the station sends because of the session is judged from here on, not from an older stimulus
        ctx.last_wire_t = None
        if not self.background:
            _result(ctx, self.save_as)


def _slac_first(ctx) -> None:
    """On a bench whose `plc` role says `before_session = true` (a real charger over PLC), the link is matched by
    SLAC (ISO 15118-3) before the session; a link that does not come up is a precondition not reached."""
    if not ctx.has_role("plc") or not ctx.bench_profile.roles["plc"].options.get("before_session"):
        return
    r = ctx.role("plc").match()
    ctx.attach("slac", {"matched": r.matched, "evse_mac": r.evse_mac, "frames": r.frames,
                        "duration_s": r.ended_t - r.started_t})
    if not r.matched:
        raise Inconclusive("SLAC did not match before the session (see the SLAC cases and slac-*.pcap): "
                           "no ISO 15118 verdict")


class _Pending:
    def __init__(self, thread: threading.Thread, box: dict, timeout_s: float):
        self.thread, self.box, self.timeout_s = thread, box, timeout_s


def _result(ctx, name: str):
    v = ctx.vars.get(name)
    if v is None:
        raise CaseDefinitionError(f"no earlier session step saved {name!r}")
    if isinstance(v, _Pending):
        v.thread.join(v.timeout_s)
        if v.thread.is_alive():
            raise BenchError(f"the EV emulator's session did not return within {v.timeout_s:g} s",
                             fix="the EV emulator hung: see the EV trace in the evidence")
        if "exc" in v.box:
            e = v.box["exc"]
            if isinstance(e, (Nonconformance, Inconclusive, BenchError)):
                raise e
            raise BenchError(f"the EV emulator crashed: {type(e).__name__}: {e}") from e
        res = v.box["res"]
        res.pcap_path = v.box.get("pcap")
        ctx.vars[name] = res
        ctx.attach("session-summary", res.summary())
        if res.pcap_path:
            ctx.attach("session-capture", f"pcap of the EV's interface: {res.pcap_path}")
        return res
    return v


class session_ok(Step):  # noqa: N801
    """The session ran to SessionStopRes with every response OK (a failed session names the message)."""

    kind = "expect"

    def __init__(self, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.of, self.req = of, req
        self.name = "the session ends with SessionStopRes, every response OK"

    def run(self, ctx):
        res = _result(ctx, self.of)
        if not res.passed:
            raise Nonconformance(f"the {res.protocol} {res.service} session failed at {res.step}: {res.reason}; "
                                 f"last messages: {' | '.join(res.last_messages)}", req=self.reqs())
        if not res.rx_names or res.rx_names[-1] != "SessionStopRes":
            raise Nonconformance(f"the session did not end with SessionStopRes (last: {res.rx_names[-3:]})",
                                 req=self.reqs())


class response(Step):  # noqa: N801
    """Every (or the first, `which="first"`) `message` the charger sent in the session has these fields."""

    kind = "expect"

    def __init__(self, message: str, fields: dict | None = None, *, which: str = "all", of: str = "session",
                 req: str | tuple[str, ...] | None = None, **kw):
        if which not in ("all", "first", "last"):
            raise CaseDefinitionError(f"response({message!r}, which={which!r}): all, first or last")
        self.message, self.want, self.which, self.of, self.req = message, {**(fields or {}), **kw}, which, of, req
        expand_dotted(self.want)
        self.name = f"{which} {message} has {', '.join(self.want) or 'arrived'}"

    def run(self, ctx):
        res = _result(ctx, self.of)
        got = [e for e in trace_entries(res) if e["dir"] == "rx" and e["name"] == self.message]
        if not got:
            raise Nonconformance(f"the charger sent no {self.message} in the session", req=self.reqs())
        pick = got if self.which == "all" else [got[0] if self.which == "first" else got[-1]]
        for k, e in enumerate(pick):
            body = _body(e["decoded"], self.message)
            check_fields(body, ctx.resolve(self.want), req=self.reqs(), what=f"{self.message} #{k + 1}")


def _body(decoded: Any, name: str) -> Any:
    """The message element inside the decoded document (whatever wraps it)."""
    if isinstance(decoded, dict):
        if name in decoded:
            return decoded[name]
        for v in decoded.values():
            if isinstance(v, dict):          # a -2/DIN header's leaf values are not the message
                r = _body(v, name)
                if r is not None:
                    return r
    return decoded if not isinstance(decoded, dict) else None


class performance_time(Step):  # noqa: N801
    """Each response to `request` came within the normative performance time (a PIXIT may only tighten it),
    measured on the capture (request out → response in, kernel timestamps)."""

    kind = "judge"

    def __init__(self, request: str, *, normative_s: float, timer: str | None = None, of: str = "session",
                 req: str | tuple[str, ...] | None = None):
        self.request, self.normative_s, self.timer, self.of, self.req = request, normative_s, timer, of, req
        self.name = f"each response to {request} within {normative_s:g} s (capture timestamps)"

    def run(self, ctx):
        res = _result(ctx, self.of)
        limit = ctx.timer(self.timer or f"performance_time_{self.request}", self.normative_s)
        pcap = getattr(res, "pcap_path", None)
        if not pcap:
            raise Inconclusive("no capture of the session: response times cannot be judged from the wire")
        times = response_times(pcap)
        names = list(res.tx_names)
        if len(times) < len(names) - 1:
            raise Inconclusive(f"the capture holds {len(times)} request/response pairs, the EV sent {len(names)}: "
                               f"capture incomplete")
        mine = [dt for name, dt in zip(names, times) if name == self.request]
        if not mine:
            raise Inconclusive(f"no {self.request} in the session")
        worst = max(mine)
        mine_sorted = sorted(mine)
        stats = {"request": self.request, "n": len(mine), "max_s": worst, "p50_s": mine_sorted[len(mine) // 2],
                 "limit_s": limit, "normative_s": self.normative_s, "source": "pcap kernel timestamps"}
        ctx.attach(f"response-times-{self.request}", stats)
        if worst > limit:
            raise Nonconformance(f"a response to {self.request} took {worst * 1000:.1f} ms on the wire; the limit is "
                                 f"{limit * 1000:.0f} ms ({len([t for t in mine if t > limit])} of {len(mine)} late)",
                                 req=self.reqs())
