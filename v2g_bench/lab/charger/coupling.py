"""The simulated charger: what couples the lab's SECC (ISO 15118, towards the EV) and its OCPP
station (towards the CSMS), as the controller of a real bidirectional charger does.

    SECC (v2g_bench.lab.charger.secc) ──events──►  SimulatedCharger  ──events──►  station (v2g_bench.lab.charger.station)
         ◄── grant(EV request) ──              (one per Plant)     ◄── limits provider (profile stack) ──
                                                     │
                                                     ▼  setpoint + caps
                                                   Plant (power stage)

- EV events (session start, authorization, the EV's needs, energy flow, session end) go from the
  SECC to every listener: the station starts/ends its transaction on them and forwards the needs in
  NotifyEVChargingNeeds.
- Power: while an EV session runs, ONLY the charger drives the stage. What the SECC grants is
  `grant(EV request, EV envelope, window)` where the window is the CSMS profile stack (given by the
  station as a limits provider) intersected with the charger's ratings. The window is also set as the
  stage's external caps (`Plant.set_power_limits`), so the stage never exceeds the profile, even
  between two charge loops; a profile change re-applies at once (`limits_changed`).

Why one object per Plant, found through `charger_for(plant)`: the two services are started by the
lab separately (`start_service(plant, cfg, ctx)`), in either order, and either may be disabled; the
Plant is the one thing both always share, and it IS the charger's power stage. A registry keyed by
the plant (weakly, so a test's plant and its charger go together) needs no change to the lab's
service contract, works the same in the lab process and in unit tests with a bare `Plant`, and two
labs in one process (tests, FakeCharger) never see each other's charger.

Sign convention (bench): + = into the EV battery, everywhere here. Protocol sign rules (ISO 15118-20
discharge magnitudes, OCPP 2.1 discharge fields >= 0) are converted in the SECC and the station.
"""
from __future__ import annotations

import logging
import math
import time
import weakref
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Protocol

log = logging.getLogger("v2g_bench.lab.charger.coupling")

INF = math.inf


class WindowLike(Protocol):
    lo_w: float          # most negative power allowed (discharge bound), bench sign
    hi_w: float          # charge bound
    setpoint_w: float | None


@dataclass(frozen=True)
class Window:
    """A power window in bench sign: lo_w <= P <= hi_w, optionally an ordered setpoint."""
    lo_w: float = -INF
    hi_w: float = INF
    setpoint_w: float | None = None

    @classmethod
    def of(cls, w: WindowLike | None) -> "Window":
        if w is None:
            return cls()
        return cls(float(w.lo_w), float(w.hi_w), None if w.setpoint_w is None else float(w.setpoint_w))

    def capped(self, charge_w: float, discharge_w: float) -> "Window":
        """Intersected with ratings (magnitudes >= 0). A setpoint outside is clipped, a window outside
        collapses to the nearest rating (a 12 kW order on an 11 kW charger is 11 kW)."""
        lo, hi = max(self.lo_w, -discharge_w), min(self.hi_w, charge_w)
        if lo > hi:
            lo = hi = (-discharge_w if self.hi_w < -discharge_w else charge_w)
        sp = None if self.setpoint_w is None else min(max(self.setpoint_w, lo), hi)
        return Window(lo, hi, sp)

    @property
    def charge_cap_w(self) -> float:
        return max(self.hi_w, 0.0)

    @property
    def discharge_cap_w(self) -> float:
        return max(-self.lo_w, 0.0)


def grant(request_w: float, ev_lo_w: float, ev_hi_w: float, window: WindowLike) -> float:
    """What the charger gives the EV: min(EV, profile) in each direction (bench sign).

    `request_w` is the EV's preferred point (scheduled: EVTargetCurrent x V; dynamic: the power it
    offers), `[ev_lo_w, ev_hi_w]` what the EV accepts right now. The profile's window bounds each
    direction (a charger may always give less, so its bounds are widened to include 0: a 2.0.1
    "limit = -4000" order [-4000, -4000] lets an EV that accepts 3 kW discharge 3 kW). A profile
    setpoint (2.1 CentralSetpoint, 2.0.1 negative limit) replaces the request as the point to aim
    for, still within what the EV accepts. When the EV's and the profile's directions differ (the
    profile orders discharge, the EV only charges) nothing flows: 0 W.
    """
    lo = max(min(window.lo_w, 0.0), ev_lo_w)
    hi = min(max(window.hi_w, 0.0), ev_hi_w)
    if lo > hi:
        return 0.0
    want = window.setpoint_w if window.setpoint_w is not None else request_w
    return float(min(max(want, lo), hi))


@dataclass(frozen=True)
class EVNeeds:
    """What the EV told the SECC in ChargeParameterDiscovery (+ ScheduleExchange), bench sign.

    Discharge quantities are NEGATIVE (max_discharge_power_w = -11000: "may discharge up to 11 kW");
    a non-BPT EV has them None. SOCs are fractions 0..1, energies in Wh (+ = into the battery),
    departure in seconds from now as the EV sent it.
    """
    protocol: str = "ISO15118-20"
    service: str = "DC_BPT"                     # DC | DC_BPT | AC | AC_BPT
    control_mode: str | None = None             # scheduled | dynamic
    evcc_id: str | None = None
    max_charge_power_w: float | None = None
    min_charge_power_w: float | None = None
    max_charge_current_a: float | None = None
    min_charge_current_a: float | None = None
    max_voltage_v: float | None = None
    min_voltage_v: float | None = None
    max_discharge_power_w: float | None = None  # <= 0
    min_discharge_power_w: float | None = None  # <= 0
    max_discharge_current_a: float | None = None  # <= 0
    min_discharge_current_a: float | None = None  # <= 0
    target_soc: float | None = None
    min_soc: float | None = None
    present_soc: float | None = None
    departure_s: float | None = None
    target_energy_wh: float | None = None
    max_energy_wh: float | None = None
    min_energy_wh: float | None = None
    max_v2x_energy_wh: float | None = None
    min_v2x_energy_wh: float | None = None
    capacity_wh: float | None = None
    received_t: float = field(default_factory=time.monotonic)

    @property
    def bidirectional(self) -> bool:
        return self.service.endswith("BPT")

    def merged(self, **changes: Any) -> "EVNeeds":
        """A copy with the non-None `changes` applied (ScheduleExchange adds to the CPD's values)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class EVSession:
    evcc_id: str | None
    protocol: str
    started_t: float
    authorized: bool = False
    needs: EVNeeds | None = None
    energized: bool = False                  # PowerDelivery Start seen (the loop may draw power)
    request_w: float = 0.0                   # the EV's last request (bench sign)
    ev_lo_w: float = 0.0                     # what the EV accepts now
    ev_hi_w: float = 0.0
    granted_w: float = 0.0
    limited: bool = False                    # the grant was cut by the window (EVSEPowerLimitAchieved)
    charging_state: str = "EVConnected"      # OCPP ChargingStateEnum as the station reports it
    stop_requested: str | None = None        # the charger ends the session (e.g. CSMS RequestStop): why
    ended: tuple[str, str] | None = None     # (stop kind, reason)


Listener = Callable[[str, dict], None]
LimitsProvider = Callable[[], WindowLike]
ScheduleProvider = Callable[[int], list[tuple[int, WindowLike]]]


class SimulatedCharger:
    """The charger's controller; sync methods, called from the lab's asyncio loop (the plant locks)."""

    def __init__(self, plant):
        self.plant = plant
        self.session: EVSession | None = None
        self.sessions_done = 0
        self.last_needs: EVNeeds | None = None
        self._listeners: list[Listener] = []
        self._limits: LimitsProvider | None = None
        self._schedule: ScheduleProvider | None = None
        self._caps: dict[str, tuple[float, float]] = {}     # who -> (charge_w, discharge_w) ratings
        self.events: list[tuple[float, str, dict]] = []      # last events, for status/debugging

    # -- wiring ------------------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        if fn not in self._listeners:
            self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def set_limits_provider(self, limits: LimitsProvider | None, schedule: ScheduleProvider | None = None) -> None:
        """The CSMS side: `limits()` = the profile window now; `schedule(duration_s)` = the composite
        schedule [(offset_s, window)] (for the ISO 15118-20 ScheduleExchangeRes)."""
        self._limits, self._schedule = limits, schedule

    def set_rating(self, who: str, charge_w: float | None, discharge_w: float | None) -> None:
        """A rating cap (magnitudes, W; None = none) from one side, e.g. the SECC's max_charge_w."""
        self._caps[who] = (INF if charge_w is None else float(charge_w),
                           INF if discharge_w is None else float(discharge_w))

    def rating(self) -> tuple[float, float]:
        ch = min([c for c, _ in self._caps.values()] or [INF])
        dis = min([d for _, d in self._caps.values()] or [INF])
        return ch, dis

    # -- the window the CSMS and the ratings allow -----------------------------------------------------
    def window(self) -> Window:
        w = Window()
        if self._limits is not None:
            try:
                w = Window.of(self._limits())
            except Exception as e:   # a broken provider must not stop the charge loop: charge nothing
                log.exception("limits provider failed")
                self._emit("error", what=f"limits provider: {e!r}")
                w = Window(0.0, 0.0, 0.0)
        return w.capped(*self.rating())

    def schedule(self, duration_s: int) -> list[tuple[int, Window]]:
        """[(offset_s, window)] for the next `duration_s` seconds (ratings applied)."""
        ch, dis = self.rating()
        if self._schedule is None:
            return [(0, self.window())]
        out = [(int(off), Window.of(w).capped(ch, dis)) for off, w in self._schedule(int(duration_s))]
        return out or [(0, self.window())]

    # -- EV side (called by the SECC) -------------------------------------------------------------------
    @property
    def session_active(self) -> bool:
        return self.session is not None

    def ev_connected(self, evcc_id: str | None = None, protocol: str = "ISO15118-20") -> None:
        """SessionSetup: an EV talks to the charger (cable plugged in, HLC up)."""
        if self.session is not None:
            self._end("EVDisconnected", "a new SessionSetup replaced the previous session")
        self.session = EVSession(evcc_id=evcc_id, protocol=protocol, started_t=time.monotonic())
        self._emit("ev_connected", evcc_id=evcc_id, protocol=protocol)

    def ev_authorized(self, method: str = "EIM") -> None:
        s = self._need_session("ev_authorized")
        if s.authorized:
            return
        s.authorized = True
        self._emit("ev_authorized", method=method, evcc_id=s.evcc_id)

    def ev_needs(self, needs: EVNeeds, *, final: bool = True) -> None:
        """The EV's needs: from ChargeParameterDiscovery (final=False: more may come in
        ScheduleExchange) and complete after ScheduleExchangeReq (final=True, forwarded)."""
        s = self._need_session("ev_needs")
        s.needs = needs
        self.last_needs = needs
        if final:
            self._emit("ev_needs", needs=needs)

    def ev_power_delivery(self, start: bool) -> None:
        """PowerDelivery Start (the power path closes; the charging state changes with the first
        charge loop) / Stop (no power, back to EVConnected). Ignored without a session."""
        s = self.session
        if s is None:
            return
        s.energized = bool(start)
        if not start:
            s.request_w, s.ev_lo_w, s.ev_hi_w = 0.0, 0.0, 0.0
            self._apply(s)
            self._update_charging_state(s)

    def ev_request(self, request_w: float, ev_lo_w: float, ev_hi_w: float) -> float:
        """One charge loop: the EV's request and what it accepts (bench sign). Drives the stage;
        returns the granted power."""
        s = self._need_session("ev_request")
        if not all(math.isfinite(x) for x in (request_w, ev_lo_w, ev_hi_w)):
            raise ValueError(f"EV request not finite: {request_w}, [{ev_lo_w}, {ev_hi_w}]")
        s.energized = True
        s.request_w, s.ev_lo_w, s.ev_hi_w = float(request_w), min(ev_lo_w, 0.0), max(ev_hi_w, 0.0)
        g = self._apply(s)
        self._update_charging_state(s)
        return g

    def request_stop(self, reason: str = "Remote") -> bool:
        """The charger side ends the EV's session (CSMS RequestStopTransaction, reset, ...): power
        goes to 0 at once and the SECC tells the EV to terminate (EVSENotification Terminate).
        False without a session."""
        s = self.session
        if s is None:
            return False
        if s.stop_requested is None:
            s.stop_requested = reason
            self._apply(s)
            self._update_charging_state(s)
            self._emit("stop_requested", reason=reason)
        return True

    def limits_changed(self) -> float | None:
        """The profile stack changed (or a period boundary passed): re-apply at once."""
        s = self.session
        if s is None:
            return None
        g = self._apply(s)
        self._update_charging_state(s)
        return g

    def ev_session_ended(self, state: str = "", reason: str = "") -> None:
        """Any end of the EV session (SessionStop, timeout, closed TCP, garbage)."""
        if self.session is None:
            return
        # the stack's reason after a SessionStopReq: "Communication session terminated. EV Info: ..."
        clean = "SessionStop" in state or reason.startswith("Communication session")
        self._end("StoppedByEV" if clean else ("Timeout" if "imeout" in reason else "EVDisconnected"),
                  f"{state}: {reason}".strip(": "))

    # -- internals ----------------------------------------------------------------------------------------
    def _need_session(self, what: str) -> EVSession:
        if self.session is None:
            # the SECC's first hook of a session is SessionSetup; a later hook without it (a lab
            # restarted mid-session) opens one rather than losing the EV
            self.ev_connected(None)
        return self.session  # type: ignore[return-value]

    def _apply(self, s: EVSession) -> float:
        w = self.window()
        g = grant(s.request_w, s.ev_lo_w, s.ev_hi_w, w) if s.energized and s.stop_requested is None else 0.0
        # caps first (a falling cap acts at once in the plant), then the setpoint
        self.plant.set_power_limits(w.charge_cap_w, w.discharge_cap_w)
        self.plant.set_power_setpoint(g)
        s.limited = (abs(g) + 1e-6 < abs(s.request_w) if w.setpoint_w is None else False) and s.stop_requested is None
        if abs(g - s.granted_w) > 1e-6:
            s.granted_w = g
            self._emit("granted", granted_w=g, request_w=s.request_w, window=[w.lo_w, w.hi_w, w.setpoint_w])
        return g

    def _update_charging_state(self, s: EVSession) -> None:
        if not s.energized:
            state = "EVConnected"
        elif abs(s.granted_w) >= 1.0:
            state = "Charging"
        elif abs(s.request_w) >= 1.0 or s.ev_hi_w - s.ev_lo_w >= 1.0:
            state = "SuspendedEVSE"          # the EV would take power, the charger (profile) gives none
        else:
            state = "SuspendedEV"
        if state != s.charging_state:
            s.charging_state = state
            self._emit("charging_state", state=state)

    def _end(self, kind: str, reason: str) -> None:
        s = self.session
        if s is None:
            return
        s.ended = (kind, reason)
        self.session = None
        self.sessions_done += 1
        try:
            self.plant.set_power_setpoint(0.0)
            self.plant.set_contactor(False)
            self.plant.set_power_limits(INF, INF)
        finally:
            self._emit("ev_session_ended", kind=kind, reason=reason, evcc_id=s.evcc_id)

    def _emit(self, event: str, **info: Any) -> None:
        self.events.append((time.monotonic(), event, {k: _finite(v) for k, v in info.items() if k != "needs"}))
        del self.events[:-50]
        for fn in list(self._listeners):
            try:
                fn(event, info)
            except Exception:       # one broken listener must not break the EV's session
                log.exception("charger listener failed on %s", event)

    def status(self) -> dict:
        s = self.session
        w = self.window()
        return {"session": None if s is None else {
                    "evcc_id": s.evcc_id, "protocol": s.protocol, "authorized": s.authorized,
                    "energized": s.energized, "request_w": s.request_w, "ev_window": [s.ev_lo_w, s.ev_hi_w],
                    "granted_w": s.granted_w, "limited": s.limited, "charging_state": s.charging_state,
                    "stop_requested": s.stop_requested},
                "needs": None if self.last_needs is None else self.last_needs.as_dict(),
                "window": [w.lo_w if math.isfinite(w.lo_w) else None, w.hi_w if math.isfinite(w.hi_w) else None,
                           w.setpoint_w],
                "sessions_done": self.sessions_done, "listeners": len(self._listeners),
                "events": [[round(t, 3), e, i] for t, e, i in self.events[-10:]]}


def _finite(v: Any) -> Any:
    """JSON-safe copy for status/events: infinite bounds become None ("no limit")."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


_chargers: "weakref.WeakKeyDictionary[Any, SimulatedCharger]" = weakref.WeakKeyDictionary()


def charger_for(plant) -> SimulatedCharger:
    """THE charger of `plant` (made on first use; both lab services share it)."""
    c = _chargers.get(plant)
    if c is None:
        c = SimulatedCharger(plant)
        _chargers[plant] = c
        if hasattr(plant, "pilot"):       # the charger follows the control pilot (IEC 61851-1)
            from v2g_bench.lab.charger.pilot_reaction import attach
            attach(plant, c)
    return c


def windows_to_entries(windows: Iterable[tuple[int, Window]], horizon_s: int) -> list[tuple[int, Window]]:
    """[(offset, window)] -> [(duration_s, window)] covering [0, horizon_s] (the last one to the end)."""
    ws = sorted(((max(0, int(o)), w) for o, w in windows), key=lambda x: x[0])
    out: list[tuple[int, Window]] = []
    for i, (off, w) in enumerate(ws):
        if off >= horizon_s:
            break
        end = ws[i + 1][0] if i + 1 < len(ws) else horizon_s
        end = min(end, horizon_s)
        if end > off:
            out.append((end - off, w))
    return out or [(horizon_s, Window())]
