"""Part-load efficiency (segments with falling efficiency) — hand optima, the ordering repair, and the DP."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2g_bench.scheduler import (EVRequest, InfeasibleSchedule, ScheduleInputError, Scheduler, Site,
                                 plan_fleet_independent)
from v2g_bench.scheduler.model import part_load_curve
from v2g_bench.scheduler.reference import reference_cost


def car(**kw):
    base = dict(name="car", capacity_kwh=60, soc_kwh=20, target_kwh=29.8, departure_s=7200, max_charge_kw=10,
                max_discharge_kw=0, charge_curve=((5, 0.98), (5, 0.90)))
    base.update(kw)
    return EVRequest(**base)


def test_spreading_the_charge_keeps_it_in_the_efficient_segment():
    # 9.8 kWh into the cells: 5 kW in each hour (all at 98 %) costs 10 kWh; 10 kW in one hour would give
    # only 5*0.98 + 5*0.90 = 9.4 kWh. Flat price: the spread plan is the unique optimum.
    plan = Scheduler().plan(Site(import_price=[0.2, 0.2], dt_s=3600), car())
    np.testing.assert_allclose(plan.evs[0].power_kw, [5, 5], atol=1e-9)
    assert plan.cost.total == pytest.approx(2.0)
    assert plan.evs[0].soc_kwh[-1] == pytest.approx(29.8)
    assert plan.method == "lp"


def test_cheap_hour_uses_the_lossy_segment_when_it_pays():
    # hour 1 costs 0.10, hour 2 0.30: the 2nd segment in hour 1 costs 0.10/0.90 = 0.111 per cell kWh,
    # cheaper than 0.30/0.98 = 0.306 in hour 2 -> charge 10 kW in hour 1 (9.4 kWh), the rest 0.4/0.98 in hour 2
    plan = Scheduler().plan(Site(import_price=[0.10, 0.30], dt_s=3600), car())
    np.testing.assert_allclose(plan.evs[0].power_kw, [10, 0.4 / 0.98], atol=1e-9)
    assert plan.cost.total == pytest.approx(1.0 + 0.3 * 0.4 / 0.98)


def test_wasting_through_the_bad_segment_is_repaired():
    # paid 1 per kWh to import, 5 kWh of room: the LP would fill the 50 % segment first (7.5 kW for 5 kWh);
    # physically the 100 % segment fills first -> 5 kW, revenue 5
    ev = car(soc_kwh=55, target_kwh=55, departure_s=3600, charge_curve=((5, 1.0), (5, 0.5)))
    site = Site(import_price=[-1.0], dt_s=3600)
    assert reference_cost(site, ev) == pytest.approx(-7.5)          # the relaxation
    plan = Scheduler().plan(site, ev)
    assert plan.method.startswith("milp")
    assert plan.cost.total == pytest.approx(-5.0)
    assert plan.evs[0].soc_kwh[-1] == pytest.approx(60.0)
    assert any("part-load segment" in n for n in plan.notes)


def test_curve_from_the_loss_model():
    curve = part_load_curve(11.0, (50.0, 0.02, 1e-6), segments=4)
    assert sum(w for w, _ in curve) == pytest.approx(11.0)
    assert curve[0][1] == pytest.approx(1 - (0.02 + 1e-6 * 2750))     # marginal: b + c (p0 + p1)
    assert all(a[1] > b[1] for a, b in zip(curve, curve[1:]))
    dis = part_load_curve(10.0, (60.0, 0.025, 1.2e-6), direction="discharge")
    assert dis[0][1] == pytest.approx(1 / (1 + 0.025 + 1.2e-6 * 2500))


@pytest.mark.parametrize("curve, message", [
    (((5, 0.90), (5, 0.95)), "efficiency 0.95 is above the previous"),
    (((5, 0.98), (4, 0.90)), "widths sum to 9 kW, not the max power 10 kW"),
    (((5, 1.2), (5, 0.9)), "eta in (0, 1]"),
    ((), "charge_curve is empty"),
])
def test_bad_curves_are_refused(curve, message):
    with pytest.raises(ScheduleInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        car(charge_curve=curve)


def test_independent_fleet_routes_curved_evs_through_the_segment_model():
    site = Site(import_price=[0.2, 0.2], dt_s=3600)
    fleet = plan_fleet_independent(site, [car(name="a"), car(name="b", charge_curve=None, eta_charge=0.98)],
                                   workers=1)
    np.testing.assert_allclose(fleet.power_kw[0], [5, 5], atol=1e-9)
    assert fleet.soc_kwh[0, -1] == pytest.approx(29.8)


@st.composite
def curved(draw):
    T = draw(st.integers(2, 12))
    p = np.array(draw(st.lists(st.floats(-0.2, 0.6), min_size=T, max_size=T)))
    etas = sorted(draw(st.lists(st.floats(0.8, 1.0), min_size=1, max_size=3)), reverse=True)
    detas = sorted(draw(st.lists(st.floats(0.8, 1.0), min_size=1, max_size=3)), reverse=True)
    pc, pd = 11.0, draw(st.sampled_from([0.0, 7.0]))
    cc = tuple((pc / len(etas), e) for e in etas)
    dc = tuple((pd / len(detas), e) for e in detas) if pd else None
    cap = 60.0
    soc = draw(st.floats(5, 55))
    ev = EVRequest("ev", cap, soc, draw(st.floats(5, 55)), T * 3600.0, pc, pd, floor_kwh=5.0,
                   charge_curve=cc, discharge_curve=dc, degradation_per_kwh=draw(st.sampled_from([0.0, 0.02])))
    return Site(import_price=p, export_price=p - 0.01, dt_s=3600.0), ev


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(curved())
def test_segment_lp_matches_the_exact_dp(case):
    site, ev = case
    ref = reference_cost(site, ev)
    try:
        plan = Scheduler().plan(site, ev)
    except InfeasibleSchedule:
        assert ref is None
        return
    if plan.method == "lp":
        assert plan.cost.total == pytest.approx(ref, abs=1e-6)
    else:
        assert plan.cost.total >= ref - 1e-6
