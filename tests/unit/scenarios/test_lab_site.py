"""The lab's multi-EVSE site (v2g_bench.lab.site) on a manual clock: the site meter, the charger's frequency
droop and V2H islanding act on plant time, independent of any time compression."""
import pytest

from v2g_bench.errors import LabError
from v2g_bench.lab.plant import LabClock, Plant, PlantConfig
from v2g_bench.lab.site import Site, dc_for_ac


@pytest.fixture
def site():
    clock = LabClock(manual=True)
    plants = [Plant(PlantConfig(), clock, seed=i) for i in range(3)]
    for p in plants:
        p.set_contactor(True)
    s = Site(plants, nominal_v=230.0)
    for evse in (1, 2, 3):                   # the emulators power up off: the runner switches them on
        assert s.battery(evse, output_on=True)["output_on"] is True
    return s


def run(site, seconds):
    site.clock.advance(seconds)
    for p in site.plants:
        p.step(0.0)


def test_site_meter_sums_building_load_pv_and_every_charger(site):
    site.building([[0, 40_000.0, 5_000.0]])
    for i, p in enumerate(site.plants):
        p.set_power_setpoint(2000.0 * (i + 1))           # 2, 4, 6 kW
    run(site, 10.0)
    m = site.measure()
    ev_ac = sum(r["ac_w"] for r in m["evse"])
    assert ev_ac == pytest.approx(12_000 + 3 * 50 + 0.02 * 12_000 + 1e-6 * (4 + 16 + 36) * 1e6, rel=0.01)
    assert m["grid_w"] == pytest.approx(40_000 - 5_000 + ev_ac)
    assert not m["islanded"] and m["unserved_w"] == 0.0


def test_frequency_droop_answers_a_step_on_plant_time(site):
    p = site.plants[1]
    p.set_power_setpoint(3000.0)
    site.frequency_support(2, nominal_hz=50.0, droop_w_per_hz=25_000.0, deadband_hz=0.01, reserve_w=5000.0)
    run(site, 5.0)
    assert p.state().dc_power_w == pytest.approx(3000.0, abs=1.0)
    site.grid(points=[[0.0, 49.8, None]])
    run(site, 3.0)
    # -0.19 Hz beyond the deadband x 25 kW/Hz = -4.75 kW around the 3 kW setpoint
    assert p.state().dc_power_w == pytest.approx(3000.0 - 4750.0, abs=5.0)
    site.grid(freq_hz=49.0)                                # beyond the reserve: clipped to 5 kW
    run(site, 3.0)
    assert p.state().dc_power_w == pytest.approx(-2000.0, abs=5.0)
    assert site.plants[0].state().dc_power_w == 0.0       # EVSE 1 has no frequency support configured


def test_islanding_serves_the_home_load_after_the_transfer_time(site):
    p = site.plants[0]
    site.building([[0, 1500.0, 0.0]])
    p.set_power_setpoint(4000.0)
    site.backup_op(1, transfer_s=2.0)
    run(site, 5.0)
    assert p.state().dc_power_w == pytest.approx(4000.0, abs=1)
    site.grid(voltage_v=0.0)
    run(site, 1.0)
    assert site.measure()["islanded"] and p.state().dc_power_w == pytest.approx(0.0, abs=1)
    assert site.measure()["unserved_w"] == pytest.approx(1500.0 + sum(r["ac_w"] for r in site.measure()["evse"]))
    run(site, 3.0)
    m = site.measure()
    assert p.state().ac_power_w == pytest.approx(-1500.0, abs=2.0)     # the house is served
    # EVSE 1 serves the house; what is left unserved is only the idle consumption of the two other chargers
    assert m["grid_w"] == 0.0 and m["unserved_w"] == pytest.approx(sum(r["ac_w"] for r in m["evse"][1:]), abs=5.0)
    assert dc_for_ac(p, 1500.0) > 1500.0                                # losses come out of the battery
    site.grid(voltage_v=230.0)
    run(site, 3.0)
    assert p.state().dc_power_w == pytest.approx(4000.0, abs=1)


def test_bad_site_input_is_refused(site):
    with pytest.raises(LabError, match="evse 9"):
        site.battery(9, soc=0.5)
    with pytest.raises(LabError, match="output_on must be true or false"):
        site.battery(1, output_on="yes")
    with pytest.raises(LabError, match="load_w"):
        site.building([[0, -1.0, 0.0]])
    with pytest.raises(LabError, match="expected"):
        site.building([[0, 1.0]])


def test_analyzer_memory_keeps_every_row_across_a_stall(site):
    """The site's analyzer memory samples on plant time inside the integration: a long gap between readouts
    (a stalled bench) loses no row, and its energy counters integrate exactly."""
    site.record(period_s=2.0)
    site.plants[0].set_power_setpoint(6000.0)
    run(site, 1.0)
    run(site, 60.0)                      # nobody reads for 60 plant seconds
    r = site.samples(since=0)
    ts = r["t"]
    assert len(ts) >= 30 and max(b - a for a, b in zip(ts, ts[1:])) <= 2.0 + 1.0 + 1e-9
    rows = r["evse"][0]
    assert rows[-1][1] == pytest.approx(6000.0, rel=0.01)                  # DC power, with the lab's noise
    e_in = rows[-1][3] - rows[0][3]
    assert e_in == pytest.approx(6000.0 * (ts[-1] - ts[0]) / 3600.0, rel=0.02)
    again = site.samples(since=r["next"])
    assert again["t"] == [] or again["t"][0] > ts[-1]
    with pytest.raises(LabError, match="before site.record"):
        Site([Plant(PlantConfig(), site.clock)], nominal_v=230.0).samples()
