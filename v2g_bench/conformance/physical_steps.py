"""Step words for the physical layer: IEC 61851-1 control pilot (through the `ev_io` board), ISO 15118-3 SLAC
(through the `plc` role) and CHAdeMO over CAN (through the `chademo` role). Used by the case tables in
tests/conformance/iec61851, iso15118_3 and chademo.

Timing is judged from the instruments' own clocks: CP reactions from the EV-side board's event timestamps (its
clock; the virtual lab's plant clock), SLAC latencies from the capture of our raw socket (a late host can only make
them longer: over the limit on a loaded host is inconclusive, see `_late_host`), CHAdeMO cycles from the bus
timestamps. Verdicts: what the charger did wrong is a Nonconformance naming the requirement; what the bench could
not do is a BenchError / Inconclusive.
"""
from __future__ import annotations

import os
import threading
import time

from v2g_bench.conformance.steps import step
from v2g_bench.errors import BenchError, Inconclusive, Nonconformance

HV_ON_V = 60.0
CP_STOP_NORMATIVE_S = 0.1          # IEC 61851-1:2017 Table A.6: de-energize within 100 ms of leaving C/D
TT_MATCH_RESPONSE_S = 0.2          # ISO 15118-3:2015 Table A.1
TT_EV_ATTEN_RESULTS_S = 1.2        # ISO 15118-3:2015 Table A.1
CHADEMO_PERIOD_S = 0.1             # IEEE 2030.1.1: CAN frames every 100 ms


def _late_host() -> str | None:
    """A reason to call a late answer inconclusive: this host was overloaded (load per core > 1)."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return None
    return f"this host is overloaded (load {load:.1f} per core)" if load > 1.0 else None


# ------------------------------------------------------------------------------------ control pilot ----
def cp_plug_in(state: str = "B"):
    def run(ctx):
        io = ctx.role("ev_io")
        io.unplug()
        io.events()
        pp = ctx.pixit("cable_pp_ohm", None)
        io.plug_in(pp_ohm=None if pp is None else float(pp), state=state)
        ctx.vars["cp_plugged_t"] = time.monotonic()
        ctx.attach("board after plug-in", io.measure().__dict__)
    return step(f"the EV plugs in (board: relay closed, CP {state})", run, kind="given")


def _hlc(ctx) -> bool:
    """An ISO 15118 / DIN charger: 5 % PWM, SLAC and a session before energy."""
    return any(str(p).upper().startswith(("ISO15118", "DIN")) for p in ctx.dut_profile.protocols)


def cp_pwm_started(req="IEC61851-1:A.3"):
    def run(ctx):
        io = ctx.role("ev_io")
        wait = float(ctx.pixit("cp_pwm_wait_s", 3.0))
        deadline = time.monotonic() + wait
        m = io.measure()
        while not (0 < m.duty_pct < 100) and time.monotonic() < deadline:
            time.sleep(0.05)
            m = io.measure()
        ctx.attach("CP with the EV in state B", m.__dict__)
        if not 0 < m.duty_pct < 100:
            raise Nonconformance(f"no PWM on the control pilot within {wait:g} s of state B "
                                 f"(CP {m.high_v:+.1f} V, state {m.cp})", req=req)
        if not 980.0 <= m.freq_hz <= 1020.0:
            raise Nonconformance(f"PWM frequency {m.freq_hz:.0f} Hz outside 1 kHz +- 2 %", req=req)
        if m.low_v > -11.0:
            raise Nonconformance(f"PWM low level {m.low_v:+.1f} V (about -12 V expected)", req=req)
        from v2g_bench.lab.plant.pilot import duty_to_current
        meaning = duty_to_current(m.duty_pct)
        ctx.save("cp_duty", {"duty_pct": m.duty_pct, "meaning": meaning})
        if _hlc(ctx) and meaning != "digital":
            raise Nonconformance(f"duty {m.duty_pct:.1f} %: an ISO 15118 charger signals digital communication "
                                 "(5 %, 3-7 %)", req=req)
        if meaning is None:
            raise Nonconformance(f"duty {m.duty_pct:.1f} % is not allowed (IEC 61851-1 Table A.8)", req=req)
    return step("the charger drives a 1 kHz PWM with an allowed duty cycle", run, req=req, kind="expect")


def cp_no_energy_in(state: str, for_s: float = 3.0, req="IEC61851-1:A.2"):
    def run(ctx):
        io = ctx.role("ev_io")
        end = time.monotonic() + for_s
        worst = 0.0
        while time.monotonic() < end:
            m = io.measure()
            worst = max(worst, m.hv_v)
            if m.hv_v > HV_ON_V:
                raise Nonconformance(f"{m.hv_v:.0f} V at the inlet with the EV in state {state}", req=req)
            time.sleep(0.05)
        ctx.attach(f"inlet voltage over {for_s:g} s in state {state}", {"max_v": worst})
    return step(f"no energy at the inlet in state {state} ({for_s:g} s)", run, req=req, kind="expect")


def cp_energized(req="IEC61851-1:A.2"):
    """State C; an HLC charger gets SLAC (plc role) and an ISO 15118 session (ev role, in a thread) first."""
    def run(ctx):
        io = ctx.role("ev_io")
        if _hlc(ctx):
            if ctx.has_role("plc"):
                r = ctx.role("plc").match()
                ctx.attach("SLAC", {"matched": r.matched, "evse_mac": r.evse_mac, "s": r.duration_s})
            _ = ctx.dc_link                 # the battery emulator holds the DC link (precharge needs its voltage)
            io.set_cp("C")
            ev = ctx.role("ev")
            from v2g_bench.ev.model import Phase
            box: dict = {}

            def session():
                try:
                    box["result"] = ev.run_session(plan=[Phase(3000, 60.0)], timeout=90)
                except BaseException as e:  # noqa: BLE001 - reported by the case's cleanup
                    box["error"] = e
            t = threading.Thread(target=session, name="cp-case-session", daemon=True)
            t.start()

            def join():
                t.join(20.0)
                if t.is_alive():
                    ev.safe_state()
                    t.join(10.0)
            ctx.on_close(join)
        else:
            io.set_cp("C")
        try:
            m = io.wait_for(lambda x: x.hv_v > HV_ON_V, timeout_s=float(ctx.pixit("cp_energize_wait_s", 60.0)),
                            what="the inlet energized in state C")
        except BenchError as e:
            raise Inconclusive(f"the charger never energized the inlet in state C, so its stop cannot be judged: {e}")
        ctx.attach("energized in state C", m.__dict__)
    return step("the EV is ready (state C) and the charger energizes the inlet", run, kind="given")


def cp_stop_on(to: str, req=("IEC61851-1:A.4",)):
    def run(ctx):
        io = ctx.role("ev_io")
        io.events()                         # drain: only this transition's events are judged
        io.set_cp(to)
        try:
            io.wait_for(lambda x: x.hv_v <= HV_ON_V, timeout_s=2.0, what=f"the inlet de-energized after state {to}")
        except BenchError:
            raise Nonconformance(f"the inlet is still energized 2 s after the EV went to state {to}", req=req) from None
        evs = io.events()
        ctx.attach("board events", [e.__dict__ for e in evs])
        t_cp = next((e.t_ms for e in evs if e.what == "CP" and e.value == to), None)
        if t_cp is not None and any(e.what == "HV" and e.value == "0" and e.t_ms < t_cp for e in evs):
            raise Inconclusive(f"the inlet went off before the EV went to state {to}: nothing to judge ({evs})")
        t_off = next((e.t_ms for e in evs if e.what == "HV" and e.value == "0" and t_cp is not None
                      and e.t_ms >= t_cp), None)
        if t_cp is None or t_off is None:
            raise BenchError(f"the board did not time-stamp the transition (events: {evs})",
                             fix="the EV-IO board must report CP and HV events (EVT?)")
        limit = ctx.timer("cp_stop_s", CP_STOP_NORMATIVE_S)
        dt = (t_off - t_cp) / 1000.0
        ctx.save(f"cp_stop_{to}", {"reaction_s": dt, "limit_s": limit})
        if dt > limit:
            raise Nonconformance(f"de-energized {dt * 1000:.0f} ms after state {to} (limit {limit * 1000:.0f} ms, "
                                 "board clock)", req=req)
    return step(f"the EV goes to state {to}: the charger de-energizes within 100 ms", run, req=req, kind="judge")


# ------------------------------------------------------------------------------------------- SLAC ----
def slac_matches(save_as="slac"):
    def run(ctx):
        from v2g_bench.ev.slac import SlacTimeout
        plc = ctx.role("plc")
        try:
            r = plc.match()
        except SlacTimeout as e:
            if e.step == "CM_SET_KEY.CNF":
                raise BenchError(f"the EV's own modem did not answer CM_SET_KEY: {e}",
                                 fix="check the EV-side GP modem") from None
            raise Nonconformance(f"the charger did not answer SLAC: {e}", req="V2GB-SLAC-01") from None
        ctx.save(save_as, r)
        ctx.attach("SLAC steps", [{"step": s.name, "latency_ms": None if s.latency_s is None else s.latency_s * 1000,
                                   "attempt": s.attempt} for s in r.steps])
    return step("the EV runs SLAC; the charger matches", run, req="V2GB-SLAC-01", kind="stimulus")


def slac_timers(save_as="slac"):
    def run(ctx):
        r = ctx.vars[save_as]
        limits = {"CM_SLAC_PARM.CNF": ctx.timer("TT_match_response", TT_MATCH_RESPONSE_S),
                  "CM_SLAC_MATCH.CNF": ctx.timer("TT_match_response", TT_MATCH_RESPONSE_S),
                  "CM_ATTEN_CHAR.IND": ctx.timer("TT_EV_atten_results", TT_EV_ATTEN_RESULTS_S)}
        late = [(s.name, s.latency_s, limits[s.name]) for s in r.steps
                if s.name in limits and s.latency_s is not None and s.latency_s > limits[s.name]]
        if late:
            msg = "; ".join(f"{n} after {lat * 1000:.0f} ms (limit {lim * 1000:.0f} ms)" for n, lat, lim in late)
            why = _late_host()
            if why:
                raise Inconclusive(f"{msg}, but {why}: the capture time includes this host's lateness")
            raise Nonconformance(msg, req="V2GB-SLAC-02")
    return step("the charger answers within TT_match_response / TT_EV_atten_results (capture times)", run,
                req="V2GB-SLAC-02", kind="judge")


def slac_key_consistent(save_as="slac"):
    def run(ctx):
        r = ctx.vars[save_as]
        if r.nid is None or len(r.nid) != 7 or r.nid[6] >> 6 != 0 or r.nmk is None or len(r.nmk) != 16:
            raise Nonconformance(f"CM_SLAC_MATCH.CNF carries an invalid NID/NMK (NID {r.nid!r}, NMK length "
                                 f"{None if r.nmk is None else len(r.nmk)})", req="V2GB-SLAC-03")
    return step("CM_SLAC_MATCH.CNF carries a 16-byte NMK and a 54-bit NID", run, req="V2GB-SLAC-03", kind="judge")


def slac_wrong_run_id_refused():
    def run(ctx):
        from v2g_bench.ev.slac import SlacTimeout, SlacTimers
        plc = ctx.role("plc")
        try:
            r = plc.match(misbehave="wrong_run_id", timers=SlacTimers(scale=plc.timers.scale, c_ev_match_retry=0))
        except SlacTimeout as e:
            if e.step != "CM_SLAC_MATCH.CNF":
                raise Inconclusive(f"SLAC did not reach CM_SLAC_MATCH ({e})") from None
            return
        raise Nonconformance(f"the charger matched a CM_SLAC_MATCH.REQ with a wrong RunID (NID {r.nid!r})",
                             req="V2G3-A09-98")
    return step("a CM_SLAC_MATCH.REQ with another RunID gets no CM_SLAC_MATCH.CNF", run, req="V2G3-A09-98",
                kind="judge")


def session_over_link():
    def run(ctx):
        from v2g_bench.ev.model import Phase
        _ = ctx.dc_link                     # the battery emulator holds the DC link (precharge needs its voltage)
        if ctx.has_role("ev_io"):
            ctx.role("ev_io").set_cp("C")
        res = ctx.role("ev").run_session(plan=[Phase(3000, 2.0), Phase(-3000, 2.0)], timeout=60)
        ctx.attach("session over the matched link", res.summary())
        if not res.passed:
            raise Nonconformance(f"the ISO 15118-20 session over the matched link failed at {res.step}: {res.reason}",
                                 req="V2GB-SLAC-04")
    return step("SDP and an ISO 15118-20 session run over the matched link", run, req="V2GB-SLAC-04", kind="judge")


# ----------------------------------------------------------------------------------------- CHAdeMO ----
def _charger_target(ctx, watts: float | None) -> None:
    dut = ctx.dut
    if hasattr(dut, "op"):
        dut.op("chademo.target", target_w=watts)
        return
    raise Inconclusive("the bench cannot command this charger's V2H discharge (no local interface for it)")


def chademo_reset():
    def run(ctx):
        if hasattr(ctx.dut, "op"):
            ctx.dut.op("chademo.reset")
    return step("the charger is idle", run, kind="given")


def chademo_charges(current_a: float = 20.0, req="V2GB-CHADEMO-01"):
    def run(ctx):
        ev = ctx.role("chademo")
        _ = ctx.dc_link                     # the battery emulator plays the EV battery on the DC link
        ev.start(current_a, max_discharge_a=15.0)
        try:
            s = ev.wait_charger(lambda s, d: s["ChargerStatus"] == 1, timeout_s=10.0, what="H'109.5.0 = 1")
        except BenchError as e:
            raise Nonconformance(f"the charger did not start: {e}", req=req) from None
        if s["ChargerStopControl"] != 0 or s["ConnectorLocked"] != 1:
            raise Nonconformance(f"charging with stop control {s['ChargerStopControl']}, lock {s['ConnectorLocked']}",
                                 req=req)
        p = _measured(ctx, lambda p: p > 0.9 * current_a * _dc_v(ctx), 10.0)
        ctx.attach("charging", {"measured_w": p, "request_a": current_a, "v": _dc_v(ctx)})
        if abs(p - current_a * _dc_v(ctx)) > 0.05 * current_a * _dc_v(ctx) + 200:
            if hasattr(ctx.dut, "state"):
                ctx.attach("lab state", {"plant": ctx.dut.state(), "chademo": ctx.dut.op("chademo.status")})
            raise Nonconformance(f"measured {p:.0f} W for a {current_a:g} A request at {_dc_v(ctx):.0f} V", req=req)
    return step(f"the EV requests {current_a:g} A: the charger charges at it (analyzer)", run, req=req, kind="judge")


def _dc_v(ctx) -> float:
    return ctx.analyzer.read()[1].voltage_v


def _measured(ctx, pred, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    p = ctx.analyzer.read()[1].power_w
    while not pred(p) and time.monotonic() < deadline:
        time.sleep(0.1)
        p = ctx.analyzer.read()[1].power_w
    return p


def chademo_discharges(watts: float = 3000.0, req="V2GB-CHADEMO-01"):
    def run(ctx):
        ev = ctx.role("chademo")
        _charger_target(ctx, -abs(watts))
        p = _measured(ctx, lambda p: p < -0.95 * abs(watts), 10.0)
        d = ev.charger(0x208)
        ctx.attach("discharging", {"measured_w": p, "0x208": None if d is None else d.signals})
        if abs(p + abs(watts)) > 0.05 * abs(watts) + 200:
            raise Nonconformance(f"measured {p:.0f} W for a {abs(watts):g} W V2H discharge", req=req)
        if d is None or d.signals["PresentDischargeCurrent"] < 0.5 * abs(watts) / _dc_v(ctx):
            raise Nonconformance(f"0x208 does not report the discharge current ({None if d is None else d.signals})",
                                 req=req)
    return step(f"V2H: the charger discharges {watts:g} W within the EV's limit (analyzer, 0x208)", run, req=req,
                kind="judge")


def chademo_stops(how: str = "stop", req="V2GB-CHADEMO-01"):
    def run(ctx):
        ev = ctx.role("chademo")
        if how == "fault":
            ev.set_fault("overvoltage")
        else:
            ev.request_stop()
        try:
            ev.wait_charger(lambda s, d: s["ChargerStatus"] == 0 and s["ChargerStopControl"] == 1, timeout_s=5.0,
                            what="H'109.5.0 = 0 and H'109.5.5 = 1")
        except BenchError as e:
            raise Nonconformance(f"the charger did not stop after the EV's {how}: {e}", req=req) from None
        p = _measured(ctx, lambda p: abs(p) < 100, 5.0)
        ctx.attach("stopped", {"measured_w": p})
        if abs(p) >= 100:
            raise Nonconformance(f"{p:.0f} W still flowing after the stop", req=req)
        if hasattr(ctx.dut, "op"):
            _charger_target(ctx, None)
    what = "sets a battery fault (H'102.4.0)" if how == "fault" else "clears charging enabled (H'102.5.0)"
    return step(f"the EV {what}: the charger stops (CAN flags, analyzer)", run, req=req, kind="judge")


def chademo_cycle(req="V2GB-CHADEMO-02"):
    def run(ctx):
        ev = ctx.role("chademo")
        time.sleep(2.0)
        st = {f"{fid:03X}": ev.cycle_stats(fid) for fid in (0x108, 0x109)}
        ctx.attach("cycle statistics (bus timestamps)", {"stats": st, "violations": ev.log.violations,
                                                         "timeouts": ev.log.timeouts})
        if ev.log.violations:
            raise Nonconformance(f"malformed charger frames: {ev.log.violations[:3]}", req=req)
        for fid, s in st.items():
            if s is None:
                raise Nonconformance(f"no 0x{fid} frames", req=req)
            if not 0.9 * CHADEMO_PERIOD_S * 1000 <= s["mean_ms"] <= 1.1 * CHADEMO_PERIOD_S * 1000:
                raise Nonconformance(f"0x{fid} every {s['mean_ms']:.0f} ms on average (100 ms +- 10 %)", req=req)
            if s["max_ms"] > 2.5 * CHADEMO_PERIOD_S * 1000:
                why = _late_host()
                msg = f"0x{fid}: a gap of {s['max_ms']:.0f} ms"
                if why:
                    raise Inconclusive(f"{msg}, but {why} (the lab's own scheduling)")
                raise Nonconformance(msg, req=req)
    return step("the charger's frames every 100 ms, well-formed (bus timestamps)", run, req=req, kind="judge")
