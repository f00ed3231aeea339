"""OCPP words (the bench plays the CSMS, the charger is the station under test).

    ocpp.connected()                                    given: the station connected in the row's version, booted
    ocpp.call("SetChargingProfile", payload, save_as="answer")        stimulus: the CSMS sends a CALL
    ocpp.answer(status="Accepted", req="K01.FR.07")                   the last answer has these fields
    ocpp.expect("TransactionEvent", within_s=15, req="E02.FR.02",
                eventType="Started", save_as="started")              the station sends this CALL, in time
    ocpp.no_call("TransactionEvent", for_s=5, req=...)                the station stays silent about it
    ocpp.dut_action("start_transaction")                              operator / lab / EV-side action

Timing is judged from the wire: the CSMS records each frame when its loop reads it; the bench's own lateness
(its event loop lagging, measured by a probe) is subtracted before blaming the charger, and a verdict that only
the bench's lateness would decide is inconclusive, naming the bench's delay.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from v2g_bench.conformance.match import check_fields, expand_dotted, matches, mismatches
from v2g_bench.conformance.steps import Step
from v2g_bench.errors import CaseDefinitionError, Inconclusive, Nonconformance

CALL, CALLRESULT, CALLERROR = 2, 3, 4


def _fields(fields: dict | None, kw: dict) -> dict:
    want = dict(fields or {})
    want.update(kw)
    return want


def _csms_lag(ctx, t0: float, t1: float) -> float:
    loop = getattr(ctx.csms, "_loop", None)
    lag = getattr(loop, "lag", None)
    return lag.max_lag(t0, t1) if lag is not None else 0.0


class connected(Step):  # noqa: N801 - step words read as verbs in a case table
    """Given: the station is connected to the CSMS in the row's OCPP version and has booted."""

    kind = "given"

    def __init__(self, *, within_s: float = 15.0, security_profile: int | None = None, save_as: str = "boot"):
        self.within_s, self.security_profile, self.save_as = within_s, security_profile, save_as
        self.name = "the station connects and sends BootNotification"
        self.req = None

    def run(self, ctx):
        csms, dut = ctx.csms, ctx.dut
        opts = ctx.bench_profile.roles["csms"].options
        version = ctx.version or "2.0.1"
        sp = self.security_profile if self.security_profile is not None else int(opts.get("security_profile", 1))
        if opts.get("password") is not None:
            csms.provisioned(opts["station_id"], password=opts["password"])
        dut.connect_ocpp(csms.url_for(opts["station_id"]), security_profile=sp, password=opts.get("password"),
                         ocpp_version=version)
        boot = csms.expect("BootNotification", timeout=self.within_s)
        ctx.save(self.save_as, boot.payload)
        ctx.vars["_station_version"] = version
        ctx.last_wire_t = boot.t
        ctx.attach("BootNotification", boot.payload)


class call(Step):  # noqa: N801
    """The CSMS sends a CALL; the station's answer (CALLRESULT payload, or the CALLERROR) is saved."""

    kind = "stimulus"

    def __init__(self, action: str, payload: Any = None, *, save_as: str = "answer", timeout_s: float | None = None,
                 req: str | tuple[str, ...] | None = None, validate: bool = True):
        if not isinstance(action, str) or not action[:1].isupper():
            raise CaseDefinitionError(f"call({action!r}): an OCPP action name is needed")
        self.action, self.payload, self.save_as, self.timeout_s, self.req = action, payload, save_as, timeout_s, req
        self.validate = validate
        self.name = f"CSMS sends {action}"

    def run(self, ctx):
        payload = ctx.resolve(self.payload if self.payload is not None else {})
        frame = ctx.csms.call_frame(self.action, payload, timeout=self.timeout_s, validate=self.validate)
        ctx.last_wire_t = frame.t
        if frame.msg_type == CALLERROR:
            answer = {"_callerror": True, "errorCode": frame.payload.get("errorCode"),
                      "errorDescription": frame.payload.get("errorDescription")}
        else:
            answer = frame.payload
        ctx.save(self.save_as, answer)
        ctx.attach(f"{self.action} ->", payload)
        ctx.attach(f"{self.action} <-", answer)


class answer(Step):  # noqa: N801
    """The last answer (or the saved one named `of`) has these fields."""

    kind = "expect"

    def __init__(self, fields: dict | None = None, *, req: str | tuple[str, ...] | None = None, of: str = "answer",
                 **kw):
        self.want, self.req, self.of = _fields(fields, kw), req, of
        if not self.want:
            raise CaseDefinitionError("answer(): no expected field given")
        expand_dotted(self.want)
        self.name = "the answer has " + ", ".join(f"{k}={v!r}" for k, v in self.want.items())

    def run(self, ctx):
        if self.of not in ctx.vars:
            raise CaseDefinitionError(f"answer(): no earlier step saved {self.of!r}")
        got = ctx.vars[self.of]
        if isinstance(got, dict) and got.get("_callerror") and "errorCode" not in self.want:
            raise Nonconformance(f"the station answered CALLERROR {got.get('errorCode')}: "
                                 f"{got.get('errorDescription')!r}; wanted {self._want_text()}", req=self.reqs())
        check_fields(got, ctx.resolve(self.want), req=self.reqs(), what=f"the answer ({self.of})")

    def _want_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.want.items())


class expect(Step):  # noqa: N801
    """The station sends `action` with these fields within `within_s` of the last stimulus (wire time)."""

    kind = "expect"

    def __init__(self, action: str, fields: dict | None = None, *, within_s: float = 10.0,
                 req: str | tuple[str, ...] | None = None, save_as: str | None = None, fresh: bool = False,
                 timer: str | None = None, **kw):
        if not isinstance(action, str) or not action[:1].isupper():
            raise CaseDefinitionError(f"expect({action!r}): an OCPP action name is needed")
        if not (isinstance(within_s, (int, float)) and within_s > 0):
            raise CaseDefinitionError(f"expect({action!r}): within_s = {within_s!r} is not a positive time")
        self.action, self.want, self.within_s, self.req = action, _fields(fields, kw), float(within_s), req
        self.save_as, self.fresh, self.timer = save_as, fresh, timer
        expand_dotted(self.want)
        cond = ", ".join(f"{k}={v!r}" for k, v in self.want.items())
        self.name = f"the station sends {action}" + (f" with {cond}" if cond else "") + f" within {within_s:g} s"

    def run(self, ctx):
        limit = ctx.timer(self.timer, self.within_s) if self.timer else self.within_s
        ref = ctx.last_wire_t if ctx.last_wire_t is not None else time.monotonic()
        grace = max(1.0, 0.5 * limit)
        want = ctx.resolve(self.want)

        after = ctx.vars.get("_last_frame_t", ref) if self.fresh else None

        def where(f) -> bool:
            return (after is None or f.t > after) and matches(f.payload, want)

        try:
            frame = ctx.csms.expect(self.action, where=where,
                                    timeout=max(0.1, ref + limit + grace - time.monotonic()))
        except Nonconformance as e:
            lag = _csms_lag(ctx, ref, time.monotonic())
            if lag > 0.25 * limit:
                raise Inconclusive(f"no {self.action} seen within {limit:g} s, but the bench's CSMS loop was late by "
                                   f"{lag * 1000:.0f} ms in that window: no verdict") from e
            near = self._near_misses(ctx)
            raise Nonconformance(f"no {self.action} matching {self._cond()} within {limit:g} s (+{grace:g} s grace)"
                                 + (f"; closest frames: {near}" if near else f"; {e}"), req=self.reqs()) from None
        elapsed = frame.t - ref
        ctx.save(self.save_as, frame.payload)
        ctx.vars.setdefault("_frames", {})[self.save_as or self.action] = frame
        ctx.attach(f"{self.action} <- (after {elapsed:.3f} s)", frame.payload)
        if elapsed > limit:
            lag = _csms_lag(ctx, ref, frame.t)
            if elapsed - lag <= limit:
                raise Inconclusive(f"{self.action} arrived {elapsed:.3f} s after the stimulus (limit {limit:g} s), "
                                   f"but the bench's CSMS loop was late by {lag * 1000:.0f} ms: no verdict")
            raise Nonconformance(f"{self.action} came {elapsed:.3f} s after the stimulus; the limit is {limit:g} s "
                                 f"(bench lateness {lag * 1000:.0f} ms already allowed for)", req=self.reqs())
        # timing stays relative to the stimulus (OCTT: "after the stimulus, within N s"); `fresh` orders frames
        ctx.vars["_last_frame_t"] = frame.t

    def _cond(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self.want.items()) + "}" if self.want else "(any)"

    def _near_misses(self, ctx) -> str:
        frames = [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == CALL and f.action == self.action]
        out = []
        for f in frames[-3:]:
            bad = mismatches(f.payload, expand_dotted(ctx.resolve(self.want)))
            out.append("; ".join(f"{p}={json.dumps(g, default=str)[:60]}" for p, _, g in bad[:3]) or "(matched, "
                       "already taken by an earlier step)")
        return " | ".join(out)


class no_call(Step):  # noqa: N801
    """The station does NOT send `action` (with these fields) for `for_s` seconds after the last stimulus."""

    kind = "expect"

    def __init__(self, action: str, fields: dict | None = None, *, for_s: float,
                 req: str | tuple[str, ...] | None = None, **kw):
        self.action, self.want, self.for_s, self.req = action, _fields(fields, kw), float(for_s), req
        self.name = f"the station sends no {action} for {for_s:g} s"

    def run(self, ctx):
        ref = ctx.last_wire_t if ctx.last_wire_t is not None else time.monotonic()
        end = ref + self.for_s
        while time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        bad = [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == CALL and f.action == self.action
               and ref <= f.t <= end and matches(f.payload, ctx.resolve(self.want))]
        if bad:
            raise Nonconformance(f"the station sent {self.action} {bad[0].t - ref:.2f} s after the stimulus: "
                                 f"{json.dumps(bad[0].payload)[:200]}", req=self.reqs())


class dut_action(Step):  # noqa: N801
    """An action on the DUT that OCTT asks of an operator (plug in, present a token, power-cycle, …), performed by
    the bench's DUT-actions provider (virtual lab, operator prompt, EV-side hardware)."""

    kind = "action"

    def __init__(self, name: str, *args, req: str | tuple[str, ...] | None = None, **kw):
        self.action, self.args, self.kw, self.req = name, args, kw, req
        self.name = f"DUT action: {name}" + (f" {args}" if args else "")

    def run(self, ctx):
        perform = _action_performer(ctx)
        result = perform(self.action, *ctx.resolve(self.args), **ctx.resolve(self.kw))
        ctx.last_wire_t = time.monotonic()
        # while the test itself keeps the station offline, a station that cannot reach the CSMS is no nonconformance
        if self.action == "cut_network" and ctx.has_role("csms"):
            ctx.vars["_network_cut"] = ctx.csms.bench_fault(
                "the test cut the station's network (DUT action cut_network) and has not restored it")
        elif self.action == "restore_network" and ctx.vars.get("_network_cut") is not None:
            ctx.vars.pop("_network_cut").end()
        if result is not None:
            ctx.attach(f"action {self.action}", result if isinstance(result, (dict, list, str)) else repr(result))


def _action_performer(ctx) -> Callable[..., Any]:
    """The DUT actions provider of this bench: v2g_bench.dut.actions when present, else the dut role's own
    methods (the virtual lab's dut role has plug_in, start_transaction, …)."""
    try:
        from v2g_bench.dut import actions as provider
    except ImportError:
        provider = None
    perform = getattr(provider, "perform", None)
    if callable(perform):
        return lambda name, *a, **k: perform(ctx, name, *a, **k)
    dut = ctx.dut

    def via_role(name, *a, **k):
        fn = getattr(dut, name, None)
        if not callable(fn):
            raise Inconclusive(f"the bench cannot perform the DUT action {name!r} (no provider, dut role "
                               f"{type(dut).__name__} has no such method)")
        return fn(*a, **k)
    return via_role
