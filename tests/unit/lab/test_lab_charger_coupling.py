"""The simulated charger that couples the lab's SECC and OCPP station (v2g_bench.lab.charger.coupling), against
the real Plant on a manual clock: no network, no stacks. What the SECC grants is min(EV, profile);
the stage never exceeds the profile; the station turns the EV's events into its transaction and
NotifyEVChargingNeeds (payload checked against the OCPP schemas)."""
from __future__ import annotations

import math

import pytest

from v2g_bench.lab.charger.coupling import (EVNeeds, SimulatedCharger, Window, charger_for, grant,
                                   windows_to_entries)
from v2g_bench.lab.plant import LabClock, Plant, PlantConfig


def make_plant() -> Plant:
    p = Plant(PlantConfig.from_dict({}), LabClock(manual=True), seed=1)
    p.set_battery_output(True)            # the bench switched the battery emulator on
    p.set_contactor(True)
    return p


class Profile:
    """A stand-in for the station's profile stack: a settable window (bench sign)."""

    def __init__(self, lo=-math.inf, hi=math.inf, sp=None):
        self.w = Window(lo, hi, sp)

    def __call__(self):
        return self.w


def started(plant, profile=None) -> tuple[SimulatedCharger, list]:
    c = SimulatedCharger(plant)
    events: list = []
    c.add_listener(lambda e, i: events.append((e, i)))
    if profile is not None:
        c.set_limits_provider(profile)
    c.ev_connected("WMIV1234567890ABCDEX", "ISO15118-20")
    c.ev_authorized("EIM")
    c.ev_power_delivery(True)
    return c, events


# -- grant: min(EV, profile) in each direction -------------------------------------------------------
@pytest.mark.parametrize("request_w, ev, window, expected", [
    (8000, (0, 8000), Window(-4000, 3000), 3000),            # charge cut by the profile's charge limit
    (-8000, (-8000, 0), Window(-4000, 3000), -4000),         # discharge cut by the discharge limit
    (-2500, (-2500, 0), Window(-4000, 3000), -2500),         # the EV asks less: it gets what it asks
    (0, (-8000, 0), Window(-5000, -5000, -5000), -5000),     # 2.0.1 negative limit: a discharge order
    (-3000, (-3000, 0), Window(-4000, -4000, -4000), -3000), # ... an EV that accepts less gets that
    (6000, (0, 6000), Window(-5000, -5000, -5000), 0.0),     # ... that an EV which only charges refuses
    (-6000, (-6000, 0), Window(0, 5000), 0.0),               # ChargingOnly: no discharge
    (-8000, (-8000, 0), Window(-7000, 0, -3000), -3000),     # 2.1 CentralSetpoint within the EV's range
    (-8000, (-2000, 0), Window(-7000, 0, -3000), -2000),     # ... bounded by what the EV accepts
    (5000, (0, 5000), Window(0, 0, 0), 0.0),                 # Idle
])
def test_grant_is_min_of_ev_and_profile(request_w, ev, window, expected):
    assert grant(request_w, *ev, window) == pytest.approx(expected)


def test_window_capped_by_ratings_of_both_sides():
    c = SimulatedCharger(make_plant())
    c.set_rating("secc", 11000, 10000)
    c.set_rating("station", 9000, None)
    c.set_limits_provider(Profile(-12000, 20000))
    w = c.window()
    assert (w.lo_w, w.hi_w) == (-10000, 9000)
    c.set_limits_provider(Profile(-15000, -15000, -15000))   # an order beyond the rating -> the rating
    w = c.window()
    assert (w.lo_w, w.hi_w, w.setpoint_w) == (-10000, -10000, -10000)


def test_one_charger_per_plant():
    p1, p2 = make_plant(), make_plant()
    assert charger_for(p1) is charger_for(p1)
    assert charger_for(p1) is not charger_for(p2)


# -- the power stage follows the grant and never exceeds the profile ----------------------------------
def test_stage_follows_grant_and_never_exceeds_profile():
    plant = make_plant()
    prof = Profile(-4000, 3000)
    c, _ = started(plant, prof)
    g = c.ev_request(-8000, -8000, 0)
    assert g == -4000
    plant.step(5.0)
    s = plant.state()
    assert s.setpoint_w == -4000 and s.dc_power_w == pytest.approx(-4000, rel=1e-6)
    assert s.discharge_limit_w <= 4000 + 1e-6
    # even a setpoint written straight to the stage (a bug elsewhere) is held by the caps
    plant.set_power_setpoint(-9000)
    plant.step(5.0)
    assert plant.state().dc_power_w >= -4000 - 1e-6
    # the profile tightens: re-applied at once, and a falling cap acts without the ramp
    prof.w = Window(-1000, 3000)
    assert c.limits_changed() == -1000
    plant.step(0.01)
    assert plant.state().dc_power_w >= -1000 - 1e-6


def test_charge_then_discharge_requests_follow_profile_in_time():
    plant = make_plant()
    prof = Profile(-4000, 3000)
    c, _ = started(plant, prof)
    trace = []
    for request, ev in ((6000, (0, 6000)), (-8000, (-8000, 0))):
        for _ in range(10):
            c.ev_request(request, *ev)
            plant.step(0.5)
            trace.append(plant.state().dc_power_w)
    assert max(trace) == pytest.approx(3000, rel=1e-6)
    assert min(trace) == pytest.approx(-4000, rel=1e-6)
    assert all(-4000 - 1e-6 <= p <= 3000 + 1e-6 for p in trace)


def test_charging_state_transitions_are_reported():
    plant = make_plant()
    prof = Profile(-4000, 3000)
    c, events = started(plant, prof)
    c.ev_request(5000, 0, 5000)
    prof.w = Window(0, 0, 0)                     # Idle: the EV would take power, the charger gives none
    c.limits_changed()
    c.ev_power_delivery(False)
    states = [i["state"] for e, i in events if e == "charging_state"]
    assert states == ["Charging", "SuspendedEVSE", "EVConnected"]


@pytest.mark.parametrize("state, reason, kind", [
    ("SessionStop", "Communication session terminated. EV Info: ", "StoppedByEV"),
    ("DCChargeLoop", "TCP peer closed connection", "EVDisconnected"),
    ("DCChargeLoop", "TimeoutError occurred. Waited for 4.0 s after sending last message", "Timeout"),
])
def test_session_end_goes_safe_and_is_classified(state, reason, kind):
    plant = make_plant()
    c, events = started(plant, Profile(-4000, 3000))
    c.ev_request(3000, 0, 3000)
    plant.step(2.0)
    c.ev_session_ended(state, reason)
    s = plant.state()
    assert s.setpoint_w == 0 and not s.contactor_closed and s.dc_power_w == 0
    assert math.isinf(plant._ext_charge_w) and math.isinf(plant._ext_discharge_w)
    ends = [i for e, i in events if e == "ev_session_ended"]
    assert len(ends) == 1 and ends[0]["kind"] == kind
    assert c.session is None and c.sessions_done == 1
    c.ev_session_ended(state, reason)            # a second end is a no-op
    assert len([e for e, _ in events if e == "ev_session_ended"]) == 1


def test_event_order_of_a_session():
    plant = make_plant()
    c, events = started(plant)
    c.ev_needs(EVNeeds(max_charge_power_w=7000), final=False)     # CPD: not forwarded yet
    c.ev_needs(EVNeeds(max_charge_power_w=7000, departure_s=3600), final=True)
    c.ev_request(2000, 0, 2000)
    c.ev_session_ended("SessionStop", "Communication session terminated.")
    names = [e for e, _ in events if e != "granted"]
    assert names == ["ev_connected", "ev_authorized", "ev_needs", "charging_state", "ev_session_ended"]
    assert [i for e, i in events if e == "ev_needs"][0]["needs"].departure_s == 3600


def test_broken_listener_or_provider_does_not_break_the_session():
    plant = make_plant()
    c, _ = started(plant)
    c.add_listener(lambda e, i: 1 / 0)

    def broken():
        raise RuntimeError("profile stack exploded")
    c.set_limits_provider(broken)
    assert c.ev_request(5000, 0, 5000) == 0.0          # no window known: nothing flows
    assert any(e == "error" for _, e, _ in c.events)


def test_charger_side_stop_cuts_power_and_is_reported():
    plant = make_plant()
    c, events = started(plant, Profile(-4000, 3000))
    assert c.ev_request(3000, 0, 3000) == 3000
    assert c.request_stop("Remote") is True
    assert plant.state().setpoint_w == 0 and c.session.stop_requested == "Remote"
    assert c.ev_request(3000, 0, 3000) == 0.0          # the EV keeps asking until it terminates: nothing
    assert [i["reason"] for e, i in events if e == "stop_requested"] == ["Remote"]
    assert [i["state"] for e, i in events if e == "charging_state"] == ["Charging", "SuspendedEVSE"]
    c.ev_session_ended("SessionStop", "Communication session terminated.")
    assert c.request_stop("Remote") is False           # no session: nothing to stop


def test_status_is_strict_json():
    import json
    c, _ = started(make_plant())             # no ratings, no profile: unbounded window
    c.ev_request(4000, 0, 4000)
    st = c.status()
    json.dumps(st, allow_nan=False)          # inf would not be valid JSON on the control port
    assert st["session"]["granted_w"] == 4000 and st["window"] == [None, None, None]


def test_schedule_entries_cover_the_horizon_with_ratings_applied():
    c = SimulatedCharger(make_plant())
    c.set_rating("secc", 11000, 10000)
    c.set_limits_provider(Profile(), lambda d: [(0, Window()), (600, Window(-4000, 3000)), (1200, Window(0, 0, 0))])
    entries = windows_to_entries(c.schedule(3600), 3600)
    assert [d for d, _ in entries] == [600, 600, 2400]
    assert [(w.lo_w, w.hi_w) for _, w in entries] == [(-10000, 11000), (-4000, 3000), (0, 0)]


# -- the station side: the EV's needs as NotifyEVChargingNeeds (schema-valid, OCPP signs) --------------
@pytest.mark.parametrize("version", ["2.1", "2.0.1"])
def test_station_forwards_ev_needs_with_ocpp_signs(version):
    from v2g_bench.lab.charger.station import StationConfig, StationService
    from v2g_bench.csms.payloads import check_request

    plant = make_plant()
    st = StationService(plant, StationConfig.from_dict({"ocpp_version": version}))
    st.charger.set_rating("secc", 11000, 10000)
    needs = EVNeeds(service="DC_BPT", control_mode="dynamic", max_charge_power_w=7300, min_charge_power_w=0,
                    max_charge_current_a=21, min_charge_current_a=0, max_voltage_v=441, min_voltage_v=262,
                    max_discharge_power_w=-12000, min_discharge_power_w=-100, max_discharge_current_a=-17,
                    min_discharge_current_a=0, target_soc=0.77, departure_s=5400, target_energy_wh=16200,
                    max_energy_wh=30000, min_energy_wh=-18000, max_v2x_energy_wh=30000, min_v2x_energy_wh=-18000)
    payload = st.ev_charging_needs(needs)
    assert check_request(version, "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": payload}) == []
    if version == "2.1":
        v = payload["v2xChargingParameters"]
        assert payload["requestedEnergyTransfer"] == "DC_BPT" and payload["controlMode"] == "DynamicControl"
        assert v["maxChargePower"] == 7300 and v["maxChargeCurrent"] == 21
        assert v["maxDischargePower"] == 10000          # min(EV 12 kW, EVSE 10 kW), a magnitude
        assert v["minDischargePower"] == 100 and v["maxDischargeCurrent"] == 17
        assert (v["maxVoltage"], v["minVoltage"]) == (441, 262) and v["targetSoC"] == 77
        assert v["evTargetEnergyRequest"] == 16200 and v["evMinEnergyRequest"] == -18000
    else:
        d = payload["dcChargingParameters"]
        assert payload["requestedEnergyTransfer"] == "DC"
        assert (d["evMaxCurrent"], d["evMaxVoltage"], d["evMaxPower"], d["energyAmount"]) == (21, 441, 7300, 16200)
        assert all(type(v) is int for v in d.values())      # 2.0.1: integers (the library validates Draft 4)
    assert "departureTime" in payload
    st.charger.remove_listener(st._on_charger_event)
