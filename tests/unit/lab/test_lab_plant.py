"""Plant model: energy conservation, ramps, limits, faults, determinism, the clock."""
from __future__ import annotations

import math
import time

import pytest

from v2g_bench.errors import LabError, ProfileError
from v2g_bench.lab.plant import (LabClock, Plant, PlantConfig, energy_balance_error_wh,
                                 seeded_gauss)


def make(seed: int = 1, **cfg) -> Plant:
    """A plant whose battery emulator the bench has switched on (it powers up off, as a real one)."""
    p = Plant(PlantConfig.from_dict(cfg), LabClock(manual=True), seed=seed)
    p.set_battery_output(True)
    return p


def test_battery_emulator_powers_up_with_its_output_off():
    """As a real RP7900: no voltage on the DC link until the bench programs limits and switches it on,
    in the plant's default and in the lab's own default configuration."""
    from v2g_bench.lab.server import load_config
    for cfg in (PlantConfig(), PlantConfig.from_dict(load_config(None).get("plant", {}))):
        p = Plant(cfg, LabClock(manual=True), seed=1)
        s = p.state()
        assert s.battery_output_on is False and s.dc_voltage_v == 0.0 and s.dc_current_a == 0.0
        p.set_contactor(True)
        p.set_power_setpoint(5000)
        p.step(5.0)
        assert p.state().dc_power_w == 0.0          # nothing flows with the emulator off
        p.set_battery_output(True)
        p.step(5.0)
        assert p.state().dc_voltage_v > 300 and p.state().dc_power_w > 4000


def test_energy_is_conserved_charge_and_discharge():
    p = make()
    s0 = p.state()
    p.set_contactor(True)
    p.set_power_setpoint(8000)
    for _ in range(600):
        p.step(1.0)
    p.set_power_setpoint(-7000)
    for _ in range(600):
        p.step(1.0)
    s1 = p.state()
    assert s1.ac_import_wh > 1000 and s1.ac_export_wh > 1000
    assert abs(energy_balance_error_wh(s0, s1)) < 1e-6
    # the battery gained less than the grid gave, and lost more than it gave back
    assert s1.stage_loss_wh > 0 and s1.battery_loss_wh > 0


def test_ac_power_follows_loss_model():
    p = make(stage={"charge": {"loss": [100.0, 0.01, 2e-6]}})
    p.set_contactor(True)
    p.set_power_setpoint(10_000)
    p.step(10.0)
    s = p.state()
    assert s.dc_power_w == pytest.approx(10_000, rel=1e-9)
    assert s.ac_power_w == pytest.approx(10_000 + 100 + 0.01 * 10_000 + 2e-6 * 1e8, rel=1e-9)
    assert s.dc_current_a == pytest.approx(s.dc_power_w / s.dc_voltage_v)
    assert s.dc_voltage_v > s.battery_ocv_v       # I*R drop while charging
    # one hour at constant power: AC energy = (P + loss) * 1 h
    e0 = s.ac_import_wh
    p.step(3600.0)
    assert p.state().ac_import_wh - e0 == pytest.approx(10_000 + 100 + 100 + 200, rel=1e-6)


def test_ramp_rate_and_clipping():
    p = make(stage={"ramp_w_per_s": 1000.0})
    p.set_contactor(True)
    p.set_power_setpoint(50_000)        # above the 11 kW stage rating
    p.step(2.0)
    assert p.state().dc_power_w == pytest.approx(2000, rel=1e-6)
    p.step(20.0)
    s = p.state()
    assert s.dc_power_w == pytest.approx(min(11_000, 30 * s.dc_voltage_v), rel=1e-3)
    p.set_power_limits(charge_w=3000, discharge_w=2000)
    p.step(0.01)
    assert p.state().dc_power_w == pytest.approx(3000, rel=1e-6)   # caps act at once
    p.set_power_setpoint(-9000)
    p.step(100)
    assert p.state().dc_power_w == pytest.approx(-2000, rel=1e-6)
    with pytest.raises(LabError):
        p.set_power_limits(-1, 0)


def test_contactor_open_means_no_power_but_standby_loss():
    p = make()
    p.set_power_setpoint(5000)
    p.step(10)
    s = p.state()
    assert s.dc_power_w == 0 and s.ac_power_w == pytest.approx(10.0)


def test_soc_limits_stop_charging():
    p = make(battery={"capacity_wh": 1000.0, "soc0": 0.9})
    p.set_contactor(True)
    p.set_power_setpoint(5000)
    for _ in range(120):
        p.step(1.0)
    s = p.state()
    assert s.soc == pytest.approx(0.95, abs=0.003)
    assert s.dc_power_w == 0.0 and s.charge_limit_w == 0.0


def test_faults_derate_lag_contactor_grid():
    p = make(stage={"ramp_w_per_s": 1e6})
    p.set_contactor(True)
    p.set_power_setpoint(10_000)
    p.step(1)
    p.inject_fault("derate", factor=0.5)
    p.step(0.1)
    assert p.state().dc_power_w == pytest.approx(5_500, rel=1e-6)
    p.clear_faults("derate")
    p.step(0.1)
    assert p.state().dc_power_w == pytest.approx(10_000, rel=1e-6)
    p.inject_fault("lag", tau_s=2.0)
    p.set_power_setpoint(0)
    p.step(2.0)
    assert p.state().dc_power_w == pytest.approx(10_000 * math.exp(-1), rel=0.02)
    p.clear_faults()
    p.inject_fault("contactor", stuck="open")
    p.set_power_setpoint(4000)
    p.step(1)
    assert p.state().dc_power_w == 0 and not p.state().contactor_closed
    p.clear_faults()
    p.inject_fault("grid_freq_step", df_hz=-0.2, duration_s=5)
    assert p.state().grid_freq_hz == pytest.approx(49.8)
    p.step(6)
    assert p.state().grid_freq_hz == pytest.approx(50.0)
    with pytest.raises(LabError):
        p.inject_fault("nonsense")
    with pytest.raises(LabError):
        p.inject_fault("derate", factor=2)


def test_protection_trip_latches_output_off():
    p = make()
    p.set_contactor(True)
    p.set_power_setpoint(5000)
    p.step(5)
    p.inject_fault("ovp_trip")
    s = p.state()
    assert not s.battery_output_on and s.dc_voltage_v == 0 and "OV" in p.protection
    p.set_battery_output(True)           # latched: stays off
    assert not p.state().battery_output_on
    p.clear_protection()
    p.set_battery_output(True)
    assert p.state().battery_output_on


def test_grid_profile_linear():
    p = make()
    p.set_grid_profile([(10, 49.8, None), (20, 50.0, 220.0)], mode="linear")
    p.step(5)
    assert p.state().grid_freq_hz == pytest.approx(49.9)
    p.step(15)
    s = p.state()
    assert s.grid_freq_hz == pytest.approx(50.0) and s.ac_voltage_v == pytest.approx(220.0)


def test_same_seed_same_samples_different_seed_differs():
    def run(seed):
        p = make(seed=seed)
        p.set_contactor(True)
        p.set_power_setpoint(7000)
        out = []
        for _ in range(50):
            p.step(0.05)
            m = p.measure("analyzer")
            out.append((m.dc_voltage_v, m.dc_current_a, m.ac_power_w))
        return out
    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a != c
    xs = [seeded_gauss(3, 1, k) for k in range(4000)]
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
    assert abs(mean) < 0.06 and 0.95 < sd < 1.05


def test_frozen_measurement():
    p = make()
    p.set_contactor(True)
    p.set_power_setpoint(5000)
    p.step(5)
    p.inject_fault("frozen", source="analyzer")
    m0 = p.measure("analyzer")
    p.set_power_setpoint(-5000)
    p.step(10)
    assert p.measure("analyzer") == m0
    assert p.measure("battery").dc_power_w < 0
    p.clear_faults()
    assert p.measure("analyzer").dc_power_w < 0


def test_clock_time_scale_and_monotonic():
    c = LabClock(time_scale=100)
    t0 = c.now()
    time.sleep(0.05)
    t1 = c.now()
    assert 4.0 < t1 - t0 < 30.0
    c.set_time_scale(1)
    assert c.now() >= t1
    with pytest.raises(LabError):
        LabClock(time_scale=0.5)


def test_fast_clock_integrates_hours_cheaply():
    clock = LabClock(time_scale=1000)
    p = Plant(PlantConfig(), clock, seed=0)
    p.set_battery_output(True)
    p.set_contactor(True)
    p.set_power_setpoint(10_000)
    time.sleep(0.5)                     # ~500 plant seconds
    t_cpu = time.process_time()
    s = p.state()
    assert time.process_time() - t_cpu < 0.2
    assert s.t > 400 and s.dc_import_wh > 400 * 10_000 / 3600 * 0.9


def test_config_errors_name_the_key():
    with pytest.raises(ProfileError) as e:
        PlantConfig.from_dict({"battery": {"capasity_wh": 5}, "stage": {"ramp_w_per_s": -1}})
    assert "capasity_wh" in str(e.value) and "ramp_w_per_s" in str(e.value)


def test_current_limited_hour_integrates_in_few_steps():
    # The emulator's current limit caps the stage; that cap drifts with the battery voltage.
    p = make()
    p.set_emulator(current_limit_neg_a=-10.0)
    s0 = p.state()
    p.set_contactor(True)
    p.set_power_setpoint(10_000)
    t0 = time.process_time()
    for _ in range(60):
        p.step(60.0)
    assert time.process_time() - t0 < 0.5
    s = p.state()
    assert s.dc_current_a == pytest.approx(10.0, rel=1e-3)
    assert abs(energy_balance_error_wh(s0, s)) < 1e-6 and s.dc_import_wh > 3000
