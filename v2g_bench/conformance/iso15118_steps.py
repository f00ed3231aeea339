"""ISO 15118 SECC suite words (extends v2g_bench.conformance.iso15118): the ISO 15118-4 negative pattern
and the independent oracle. Expected values come from what the EV sent, the capture and instruments.

    ev_session(service="DC_BPT", misbehave=("wrong_session_id", "ServiceDiscoveryReq"), linger_s=6)
    answered("ServiceDiscoveryRes", ResponseCode="FAILED_UnknownSession", req="V2G20-460")
    secc_closes_tcp(within_s=5, req="V2G20-1633")
    oracle_clean(req="V2G20-736")                # every SECC frame strict-valid; no rule broken
    response_time("DC_ChargeLoopReq", req="V2G20-1502")

A session without misbehaviour is `shared`: one run per (protocol, service, control mode, plan, SECC
defects) per test process serves every good case that judges its content (each case still judges its
own requirement on that real session and attaches its evidence).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from v2g_bench.conformance.iso15118 import _body, find_key, rational
from v2g_bench.conformance.match import check_fields, expand_dotted
from v2g_bench.conformance.steps import Step
from v2g_bench.errors import BenchError, CaseDefinitionError, Inconclusive, Nonconformance

EV_RESPONSE_FLOOR_S = 8.0        # the EV waits this long for any response: times are judged from the capture
OVERLOAD_SLACK_S = 1.0           # lateness an overloaded shared machine can explain (virtual lab only)
_SHARED: dict[tuple, Any] = {}
_SHARED_LOCK = threading.Lock()


def default_plan(service: str) -> list:
    from v2g_bench.ev.model import Phase

    if service.endswith("BPT"):
        return [Phase(3000.0, 1.5), Phase(-3000.0, 1.5)]
    return [Phase(3000.0, 1.5)]


def active_defects(ctx) -> tuple:
    """The simulated charger's switched-on defects (part of a shared session's key); () on a real bench."""
    dut = ctx.dut if ctx.has_role("dut") else None
    control = getattr(dut, "control", None)
    if control is None:
        return ()
    try:
        return tuple(sorted((k, tuple(sorted(v.items()))) for k, v in control.call("secc.defects")["active"].items()))
    except Exception:  # noqa: BLE001 - a lab without the op: no defects
        return ()


class ev_session(Step):  # noqa: N801
    """The EV runs a session (captured) with at most one misbehaviour: (kind, at[, params]); `linger_s`: after
    the end the EV keeps TCP open that long to see the charger close it."""

    kind = "stimulus"

    def __init__(self, *, protocol: str = "ISO15118-20", service: str = "DC_BPT", control_mode: str = "dynamic",
                 plan: Any = None, misbehave: tuple | None = None, linger_s: float | None = None,
                 ev_model: dict | None = None, timeout_s: float = 60.0, save_as: str = "session",
                 measure: bool = False, response_floor_s: float = EV_RESPONSE_FLOOR_S,
                 tls: bool = False, auth: str = "EIM", req: str | tuple[str, ...] | None = None):
        self.protocol, self.service, self.control_mode = protocol, service, control_mode
        self.tls, self.auth = tls, auth
        self.plan, self.misbehave, self.linger_s, self.ev_model = plan, misbehave, linger_s, ev_model
        self.timeout_s, self.save_as, self.measure, self.req = timeout_s, save_as, measure, req
        self.response_floor_s = response_floor_s
        what = "" if not misbehave else f", the EV {misbehave[0]} at {misbehave[1]}"
        over = f" over TLS ({auth})" if tls else ""
        self.name = f"the EV runs a {protocol} {service} {control_mode} session{over}{what}"

    def check(self):
        if self.misbehave is not None:
            from v2g_bench.ev.misbehaviour import Misbehaviour
            if not isinstance(self.misbehave, tuple) or len(self.misbehave) not in (2, 3):
                return [f"misbehave={self.misbehave!r}: (kind, at) or (kind, at, params)"]
            try:
                Misbehaviour(self.misbehave[0])
            except ValueError:
                return [f"misbehave kind {self.misbehave[0]!r} unknown"]
        return []

    @property
    def shared(self) -> bool:
        return self.misbehave is None and self.linger_s is None and not self.ev_model and not self.measure

    def run(self, ctx):
        plan = ctx.resolve(self.plan) if self.plan is not None else default_plan(self.service)
        key = (self.protocol, self.service, self.control_mode, self.tls, self.auth, repr(plan), active_defects(ctx),
               id(ctx.bench_profile))
        if self.shared:
            with _SHARED_LOCK:
                hit = _SHARED.get(key)
            if hit is not None:
                ctx.vars[self.save_as] = hit
                ctx.attach("session-summary", f"(shared session, run by an earlier case) {hit.summary()}\n"
                                              f"trace: {hit.trace_path}\ncapture: {hit.pcap_path}")
                return
        res = self._run(ctx, plan)
        if self.shared and res.passed:
            with _SHARED_LOCK:
                _SHARED[key] = res
        ctx.vars[self.save_as] = res

    def _run(self, ctx, plan):
        if self.service.startswith("DC") and ctx.has_role("battery"):
            # a DC session precharges to the EV battery's voltage: the battery emulator must hold the DC link
            ctx.role("dc_link")
        ev = ctx.ev
        ev.response_timeout_floor_s = self.response_floor_s
        saved = {}
        for k, v in (ctx.resolve(self.ev_model) or {}).items():
            if not hasattr(ev.model, k):
                raise CaseDefinitionError(f"ev_session(ev_model={{{k!r}: ...}}): the EV model has no {k!r}")
            saved[k] = getattr(ev.model, k)
            setattr(ev.model, k, v)
        ev.linger_s = self.linger_s
        meter = _PowerLog(ctx) if self.measure else None
        try:
            for attempt in (1, 2):
                ev.injector.disarm_all()
                if self.misbehave is not None:
                    kind, at, *rest = self.misbehave
                    ev.misbehave(kind, at=at, **(rest[0] if rest else {}))
                n = getattr(ctx, "_v2g_sessions", 0) + 1
                ctx._v2g_sessions = n
                cap = ev.start_capture(ctx.evidence.path(f"session-{n}.pcap"))
                if meter:
                    meter.start()
                try:
                    res = ev.run_session(protocol=self.protocol, service=self.service,
                                         control_mode=self.control_mode, plan=plan, timeout=self.timeout_s,
                                         tls=self.tls, auth=self.auth)
                finally:
                    if meter:
                        meter.stop()
                    time.sleep(0.2)          # the last segments (FIN) reach the capture
                    res_pcap = ev.stop_capture(cap)
                res.pcap_path = str(res_pcap)
                # SDP lost on a loaded machine (the stack tries one cycle): once more, said in the report
                if attempt == 1 and res.step.startswith("SDP") and not ev.injector.fired \
                        and "SDP security mismatch" not in res.reason:
                    ctx.deviations.append(f"SDP failed once ({res.reason[:120]}); the session was run again")
                    continue
                break
        finally:
            ev.linger_s = None
            for k, v in saved.items():
                setattr(ev.model, k, v)
        if self.misbehave is not None and not ev.injector.fired:
            raise Inconclusive(f"the session ended ({res.step}: {res.reason[:200]}) before the EV reached "
                               f"{self.misbehave[1]}: the misbehaviour never fired")
        res.power_log = meter.rows if meter else None
        res.current_log = meter.currents if meter else None
        ctx.attach("session-summary", res.summary())
        ctx.attach("session-capture", f"pcap: {res.pcap_path}\ntrace: {res.trace_path}")
        return res


class _PowerLog:
    """The battery emulator's V/I/P sampled in a thread while the session runs (the EV reads the analyzer)."""

    def __init__(self, ctx):
        self.battery = ctx.dc_link
        self.rows: list[tuple[float, float]] = []
        self.currents: list[tuple[float, float]] = []      # (t, A), + into the EV
        self._stop = threading.Event()
        self._th: threading.Thread | None = None

    def start(self):
        def run():
            while not self._stop.wait(0.1):
                try:
                    r = self.battery.read()
                    self.rows.append((r.t, r.power_w))
                    self.currents.append((r.t, r.current_a))
                except Exception:  # noqa: BLE001 - a gap in the log shows in the judgement
                    pass
        self._th = threading.Thread(target=run, name="power-log", daemon=True)
        self._th.start()

    def stop(self):
        self._stop.set()
        if self._th:
            self._th.join(5.0)


def session_of(ctx, name: str = "session"):
    res = ctx.vars.get(name)
    if res is None:
        raise CaseDefinitionError(f"no earlier ev_session saved {name!r}")
    return res


def oracle_of(ctx, name: str = "session"):
    """The independent oracle's report of a session's capture (computed once per session)."""
    res = session_of(ctx, name)
    rep = getattr(res, "oracle_report", None)
    if rep is None:
        from v2g_bench.oracle import analyze
        if not getattr(res, "pcap_path", None):
            raise Inconclusive("no capture of the session: the oracle cannot judge it")
        # -20 without TLS is always evaluated; oracle_clean leaves it to the row that checks it (V2G20-2356)
        rep = analyze(res.pcap_path, trace=res.trace_path, tls_required_for_20=True)
        res.oracle_report = rep
    return rep


def _rows(entries_path: str) -> list[dict]:
    import json
    with open(entries_path, encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


class answered(Step):  # noqa: N801
    """The charger's response to the request the EV spoiled has these fields (e.g. ResponseCode)."""

    kind = "expect"

    def __init__(self, message: str, fields: dict | None = None, *, of: str = "session",
                 req: str | tuple[str, ...] | None = None, **kw):
        self.message, self.want, self.of, self.req = message, {**(fields or {}), **kw}, of, req
        expand_dotted(self.want)
        self.name = f"the spoiled request is answered by {message} with {self.want}"

    def run(self, ctx):
        res = session_of(ctx, self.of)
        rows = _rows(res.trace_path)
        i = next((k for k, r in enumerate(rows) if r.get("dir") == "tx" and "misbehaviour" in r.get("note", "")),
                 None)
        if i is None:
            raise Inconclusive("the trace shows no spoiled request")
        answer = next((r for r in rows[i + 1:] if r.get("dir") == "rx"), None)
        if answer is None:
            raise Nonconformance(f"no response to the spoiled request ({rows[i].get('note')}); the session ended: "
                                 f"{res.reason[:200]}", req=self.reqs())
        ctx.attach("answer", answer)
        if answer.get("name") != self.message:
            raise Nonconformance(f"the spoiled request was answered by {answer.get('name')}, not {self.message}",
                                 req=self.reqs())
        body = _body(answer.get("decoded"), self.message) or {}
        check_fields(body, ctx.resolve(self.want), req=self.reqs(), what=self.message)


class not_answered(Step):  # noqa: N801
    """The charger sent nothing in reply to the spoiled frame (it ignores it, or closes the connection)."""

    kind = "expect"

    def __init__(self, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.of, self.req = of, req
        self.name = "the charger does not answer the invalid frame"

    def run(self, ctx):
        res = session_of(ctx, self.of)
        rows = _rows(res.trace_path)
        i = next((k for k, r in enumerate(rows) if r.get("dir") == "tx" and "misbehaviour" in r.get("note", "")),
                 None)
        if i is None:
            raise Inconclusive("the trace shows no spoiled frame")
        answer = next((r for r in rows[i + 1:] if r.get("dir") == "rx"), None)
        if answer is not None:
            raise Nonconformance(f"the charger answered the invalid frame ({rows[i].get('note')}) with "
                                 f"{answer.get('name')}", req=self.reqs())


class secc_closes_tcp(Step):  # noqa: N801
    """After its final response the charger closes the TCP connection within `within_s` (the EV lingers)."""

    kind = "expect"

    def __init__(self, *, within_s: float = 5.0, at_least_s: float | None = None, of: str = "session",
                 req: str | tuple[str, ...] | None = None):
        self.within_s, self.at_least_s, self.of, self.req = within_s, at_least_s, of, req
        self.name = f"the charger closes TCP within {within_s:g} s" + (
            f" (not before {at_least_s:g} s)" if at_least_s else "")

    def run(self, ctx):
        rep = oracle_of(ctx, self.of)
        streams = [s for s in rep.capture.streams if s.frames]
        if not streams:
            raise Inconclusive("no V2GTP connection in the capture")
        st = streams[-1]
        last_secc = max((f.t for f in st.frames if f.direction == "secc->ev"), default=None)
        last_any = max(f.t for f in st.frames)
        ref = last_any if self.at_least_s else (last_secc or last_any)
        ctx.attach("tcp-close", {"closed_by": st.closed_by, "t_closed": st.t_closed, "last_frame_t": last_any,
                                 "last_secc_frame_t": last_secc})
        if st.t_closed is None:
            raise Nonconformance(f"the charger did not close the TCP connection (the EV waited "
                                 f"{self.within_s:g} s and more)", req=self.reqs())
        dt = st.t_closed - ref
        if st.closed_by != "secc":
            if dt > self.within_s:     # the EV waited out the limit (linger) and gave up: the charger never closed
                raise Nonconformance(f"the charger kept TCP open {dt:.2f} s after its last message (limit "
                                     f"{self.within_s:g} s); the EV closed it", req=self.reqs())
            raise Inconclusive(f"the EV closed the connection first ({dt:.2f} s after the last frame)")
        if dt > self.within_s:
            raise Nonconformance(f"the charger closed TCP {dt:.2f} s after its last message (limit "
                                 f"{self.within_s:g} s)", req=self.reqs())
        if self.at_least_s and dt < self.at_least_s:
            raise Nonconformance(f"the charger closed TCP after {dt:.2f} s of EV silence, before its sequence "
                                 f"timeout {self.at_least_s:g} s", req=self.reqs())


class oracle_clean(Step):  # noqa: N801
    """The independent oracle finds no violation in the capture (rules: all but response times, or those named)."""

    kind = "judge"

    def __init__(self, *, rules: tuple[str, ...] | None = None,
                 ignore: tuple[str, ...] = ("response-time", "-20-without-TLS"),
                 of: str = "session", req: str | tuple[str, ...] | None = None):
        self.rules, self.ignore, self.of, self.req = rules, ignore, of, req
        self.name = "the oracle (own strict EXI decoding, own rules) finds no violation" + (
            f" of {', '.join(rules)}" if rules else "")

    def run(self, ctx):
        rep = oracle_of(ctx, self.of)
        ctx.attach("oracle", {**rep.summary(), "messages": [m.row() for m in rep.messages]})
        bad = [v for v in rep.violations if (self.rules is None or v.rule in self.rules)
               and v.rule not in self.ignore]
        if bad:
            mine = set(self.reqs())
            # a violation of the step's own requirement is not prefixed again (Nonconformance prefixes the IDs)
            raise Nonconformance("; ".join(_violation_text(v, mine) for v in bad[:6]), req=self.reqs())


def _violation_text(v, step_reqs: set[str]) -> str:
    """A violation for a Nonconformance message: its ID only when it is not one the step already names."""
    tag = v.req or v.rule
    where = f" (stream {v.stream}, t={v.t:.6f})" if v.t is not None else ""
    bit = f" [bit {v.bit}]" if v.bit is not None else ""
    return ("" if tag in step_reqs else f"[{tag}] ") + v.text + where + bit


def bench_overloaded() -> str | None:
    """Why response times measured now are not representative (the virtual DUT shares the CPUs), or None."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    return f"load average {load:.1f} on {cpus} CPUs" if load > cpus else None


class response_time(Step):  # noqa: N801
    """Every response to `request` came within its limit, from the capture's wire timestamps (a PIXIT may only
    tighten it). A late response of the simulated charger on an overloaded machine is inconclusive."""

    kind = "judge"

    def __init__(self, request: str, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.request, self.of, self.req = request, of, req
        self.name = f"each response to {request} within its performance time (capture timestamps)"

    def run(self, ctx):
        rep = oracle_of(ctx, self.of)
        want = self.request.replace("_", "").lower()
        pairs = [m for m in rep.messages if m.direction == "secc->ev" and m.response_time_s is not None
                 and m.name.replace("_", "").lower().removesuffix("res") == want.removesuffix("req")]
        if not pairs:
            raise Inconclusive(f"no response to {self.request} in the capture")
        lim = pairs[0].limit
        limit = ctx.timer(f"performance_time_{self.request}", lim.seconds)
        times = sorted(m.response_time_s for m in pairs)
        ctx.attach(f"response-times-{self.request}", {"n": len(times), "max_s": times[-1],
                                                      "p50_s": times[len(times) // 2], "limit_s": limit,
                                                      "source": lim.source})
        late = [t for t in times if t > limit]
        if late:
            why = bench_overloaded()
            msg = (f"{len(late)} of {len(times)} responses to {self.request} later than {limit * 1000:.0f} ms "
                   f"(worst {times[-1] * 1000:.0f} ms on the wire; {lim.source})")
            # the simulated charger shares the CPUs with the bench: on an overloaded machine a response up to
            # OVERLOAD_SLACK_S late says nothing about it; later than that no scheduling hiccup explains it
            if why and ctx.bench_profile.uses_builtin_lab and times[-1] <= limit + OVERLOAD_SLACK_S:
                raise Inconclusive(f"{msg}; the simulated charger shares an overloaded machine ({why})")
            raise Nonconformance(msg, req=self.reqs())


class first_response(Step):  # noqa: N801
    """A check `fn(body) -> problem or None` on the first `message` of the session (what fields cannot say)."""

    kind = "expect"

    def __init__(self, message: str, what: str, fn, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.message, self.fn, self.of, self.req = message, fn, of, req
        self.name = f"{message}: {what}"

    def run(self, ctx):
        res = session_of(ctx, self.of)
        rows = [r for r in _rows(res.trace_path) if r.get("dir") == "rx" and r.get("name") == self.message]
        if not rows:
            raise Nonconformance(f"the charger sent no {self.message}", req=self.reqs())
        body = _body(rows[0]["decoded"], self.message) or {}
        problem = self.fn(body, ctx)
        if problem:
            raise Nonconformance(f"{self.message}: {problem}", req=self.reqs())


class measured_discharge_within(Step):  # noqa: N801
    """The DC power measured on the link (battery emulator) never discharges beyond the EV's maximum discharge
    power (+ the DUT's power tolerance)."""

    kind = "judge"

    def __init__(self, ev_max_discharge_w: float, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.limit_w, self.of, self.req = ev_max_discharge_w, of, req
        self.name = f"measured discharge never beyond the EV's maximum {ev_max_discharge_w:g} W"

    def run(self, ctx):
        res = session_of(ctx, self.of)
        rows = getattr(res, "power_log", None) or []
        if len(rows) < 10:
            raise Inconclusive(f"only {len(rows)} DC power samples during the session")
        tol = ctx.dut_profile.tolerance("power_abs_w", 500.0)
        worst = min(p for _, p in rows)
        ctx.attach("dc-power", {"samples": len(rows), "most_negative_w": worst, "limit_w": -self.limit_w,
                                "tolerance_w": tol})
        if worst < -(self.limit_w + tol):
            raise Nonconformance(f"the charger discharged at {-worst:.0f} W; the EV's maximum is {self.limit_w:.0f} W "
                                 f"(+{tol:.0f} W tolerance)", req=self.reqs())


class measured_discharge_current_within(Step):  # noqa: N801
    """The DC current measured on the link (battery emulator) never discharges beyond the EV's maximum discharge
    current (+ the DUT's current tolerance)."""

    kind = "judge"

    def __init__(self, ev_max_discharge_a: float, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.limit_a, self.of, self.req = ev_max_discharge_a, of, req
        self.name = f"measured discharge current never beyond the EV's maximum {ev_max_discharge_a:g} A"

    def run(self, ctx):
        res = session_of(ctx, self.of)
        rows = getattr(res, "current_log", None) or []
        if len(rows) < 10:
            raise Inconclusive(f"only {len(rows)} DC current samples during the session")
        tol = ctx.dut_profile.tolerance("current_abs_a", 0.5)
        worst = min(i for _, i in rows)
        ctx.attach("dc-current", {"samples": len(rows), "most_negative_a": worst, "limit_a": -self.limit_a,
                                  "tolerance_a": tol})
        if worst < -(self.limit_a + tol):
            raise Nonconformance(f"the charger discharged at {-worst:.1f} A; the EV's maximum is {self.limit_a:g} A "
                                 f"(+{tol:g} A tolerance)", req=self.reqs())


class measured_power_tracks_target(Step):  # noqa: N801
    """Scheduled control: the DC power measured on the link follows the EV's target (EVTargetCurrent x voltage,
    charge and discharge) within the DUT's band (power_abs_w + power_rel x |target|) once settled (settle_s after
    each change of target); samples before that are not judged."""

    kind = "judge"

    def __init__(self, *, window: bool = False, of: str = "session", req: str | tuple[str, ...] | None = None):
        # window (dynamic control): the charger decides the power, so only the EV's window counts: between its
        # maximum discharge and maximum charge power of the moment (0 on the side it does not offer)
        self.window, self.of, self.req = window, of, req
        self.name = ("measured DC power stays within the EV's offered window (dynamic) once settled" if window else
                     "measured DC power follows the EV's target within the DUT's band once settled")

    def _error(self, p: float, target: float) -> float:
        if not self.window:
            return p - target
        lo, hi = min(target, 0.0), max(target, 0.0)
        return p - hi if p > hi else p - lo if p < lo else 0.0

    def run(self, ctx):
        res = session_of(ctx, self.of)
        log = getattr(res, "power_log", None) or []
        hist = [h for h in res.history if h.get("tm") is not None and h.get("asked_w") is not None]
        if len(log) < 10 or len(hist) < 4:
            raise Inconclusive(f"{len(log)} power samples, {len(hist)} charge-loop rows")
        d = ctx.dut_profile
        settle = d.tolerance("settle_s", 5.0)
        abs_w, rel = d.tolerance("power_abs_w", 500.0), d.tolerance("power_rel", 0.02)
        # the EV's target as a step function of time, and when it last changed
        changes, last = [], None
        for h in hist:
            if last is None or abs(h["asked_w"] - last) > 1.0:
                changes.append((h["tm"], h["asked_w"]))
                last = h["asked_w"]
        judged, worst = 0, None
        for t, p in log:
            prior = [c for c in changes if c[0] <= t]
            if not prior or t > hist[-1]["tm"] or t - prior[-1][0] < settle:
                continue
            target = prior[-1][1]
            judged += 1
            err = self._error(p, target)
            if worst is None or abs(err) - (abs_w + rel * abs(target)) > abs(worst[1]) - (abs_w + rel * abs(worst[0])):
                worst = (target, err, t)
        ctx.attach("tracking", {"judged_samples": judged, "settle_s": settle, "band_w": f"{abs_w:g} + {rel:g} x |target|",
                                "targets": [c[1] for c in changes],
                                "worst": None if worst is None else {"target_w": worst[0], "error_w": worst[1]}})
        if judged < 5:
            raise Inconclusive(f"only {judged} settled samples (settle {settle:g} s): the plan's phases are too short")
        band = abs_w + rel * abs(worst[0])
        if abs(worst[1]) > band:
            what = (f"outside the EV's window [{min(worst[0], 0):.0f}, {max(worst[0], 0):.0f}] W by {worst[1]:.0f} W"
                    if self.window else f"against the EV's target {worst[0]:.0f} W")
            raise Nonconformance(f"measured DC power {what} (band +-{band:.0f} W, {settle:g} s after the change)",
                                 req=self.reqs())


class present_values_track_measured(Step):  # noqa: N801
    """EVSEPresentVoltage x EVSEPresentCurrent in the loop responses follow the measured DC power (not stale)."""

    kind = "judge"

    def __init__(self, *, of: str = "session", req: str | tuple[str, ...] | None = None):
        self.of, self.req = of, req
        self.name = "present V x I reported in the charge loop follows the measured DC power"

    def run(self, ctx):
        res = session_of(ctx, self.of)
        log = getattr(res, "power_log", None) or []
        hist = [h for h in res.history if h.get("evse_v") is not None and h.get("evse_a") is not None]
        if len(log) < 10 or len(hist) < 4:
            raise Inconclusive(f"{len(log)} power samples, {len(hist)} loop responses with present values")
        reported = [h["evse_v"] * h["evse_a"] for h in hist]
        measured = [p for _, p in log]
        span_r = max(reported) - min(reported)
        span_m = max(measured) - min(measured)
        tol = ctx.dut_profile.tolerance("power_abs_w", 500.0)
        ctx.attach("present-vs-measured", {"reported_span_w": span_r, "measured_span_w": span_m, "tolerance_w": tol})
        if span_m > 4 * tol and span_r < 0.5 * span_m:
            raise Nonconformance(f"the reported present power spans {span_r:.0f} W while the measured DC power "
                                 f"spans {span_m:.0f} W: stale or invented present values", req=self.reqs())


def value_of(body: dict, key: str) -> float | None:
    return rational(find_key(body, key))


_ = BenchError
