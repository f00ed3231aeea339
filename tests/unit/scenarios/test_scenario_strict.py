"""Scenario files with inconsistent data are refused with the line and the reason, before anything is planned
or energized (issue 15 "Bad input"; the scenario part of issue 16's strict-profile item)."""
import pytest

from v2g_bench.scheduler.scenario import ScenarioError, load_scenario

HEAD = """[scenario]
name = "strict"
kind = "arbitrage"
dt_s = 3600
start = "18:00"
hours = 12

[tariff]
import_price_by_hour = [0.3, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.3, 0.3]

[[ev]]
name = "ok-car"
capacity_kwh = 60
soc_pct = 50
target_pct = 80
arrival = "18:00"
departure = "06:00"
max_charge_kw = 11

[[ev]]
name = "bad-car"
capacity_kwh = 60
arrival = "18:00"
"""


def load(tmp_path, body):
    p = tmp_path / "s.toml"
    p.write_text(HEAD + body)
    with pytest.raises(ScenarioError) as ex:
        load_scenario(p)
    return ex.value


@pytest.mark.parametrize("body, line, words", [
    ('soc_pct = 30\ntarget_pct = 40\nfloor_pct = 50\ndeparture = "06:00"\nmax_charge_kw = 11\n', 26,
     "floor (30 kWh) is above the departure target (24 kWh)"),
    ('soc_pct = 10\ntarget_pct = 90\ndeparture = "20:00"\nmax_charge_kw = 11\n', 26,
     "unreachable - 48 kWh to add in 2 h at <= 11 kW"),
    ('soc_pct = 50\ntarget_pct = 80\ndeparture = "06:00"\nmax_charge_kw = 11000\n', 27,
     "max_charge_kw = 11000 kW is above the plausible"),
    ('soc_pct = 50\ntarget_pct = 0.8\ndeparture = "06:00"\nmax_charge_kw = 11\n', 25,
     "target_pct = 0.8: percent, not a fraction"),
    ('soc_pct = 50\ntarget_pct = 80\ndeparture = "06:00"\nmax_charge_kw = "11 kW"\n', 27,
     "max_charge_kw = '11 kW': a string"),
    ('soc_pct = 50\ntarget_pct = 80\ndeparture = "06:00"\nmax_charge_kw = 11\nmax_charge_w = 11000\n', 28,
     "max_charge_w: unknown key"),
    ('soc_pct = 50\ntarget_pct = 80\ndeparture = "06:00"\nmax_charge_kw = 11\neta_charge = 95\n', 28,
     "eta_charge = 95 fraction is above"),
])
def test_bad_ev_is_refused_with_its_line(tmp_path, body, line, words):
    err = load(tmp_path, body)
    text = str(err)
    assert words in text, text
    assert f"line {line}: ev[1]." in text, text
    assert "ok-car" not in text            # the good EV is not blamed


def test_every_problem_is_listed_at_once(tmp_path):
    err = load(tmp_path, 'soc_pct = 30\ntarget_pct = 40\nfloor_pct = 50\ndeparture = "06:00"\nmax_charge_kw = 11\n'
                         '\n[site]\nload_kw_by_hour = [1, 2]\n')
    assert len(err.errors) == 3      # the site's series, the floor above the target, the SOC below the floor
    assert any(e.startswith("line 31: site.load_kw_by_hour") for e in err.errors), err.errors


def test_tariff_update_and_grid_loss_are_checked(tmp_path):
    err = load(tmp_path, 'soc_pct = 50\ntarget_pct = 80\ndeparture = "06:00"\nmax_charge_kw = 11\n'
                         '\n[[tariff_update]]\nat = "03:00"\nimport_price_by_hour = [0.1]\n'
                         '\n[grid_loss]\nat = "20:00"\nduration_min = 0\ntransfer_time_max_s = 2\nev = "nobody"\n')
    text = "\n".join(err.errors)
    assert "line 31: tariff_update[0].import_price_by_hour: expected 12 hourly values" in text
    assert "line 35: grid_loss.duration_min = 0" in text
    assert "line 37: grid_loss.ev = 'nobody'" in text


def test_frequency_reserve_needs_room_to_absorb(tmp_path):
    err = load(tmp_path, 'soc_pct = 50\ntarget_pct = 99\ndeparture = "06:00"\nmax_charge_kw = 11\n'
                         'max_discharge_kw = 11\n\n[frequency_response]\nreserved_kw = 5.0\nendurance_min = 15\n')
    assert "leaves no room to absorb the frequency reserve" in str(err)


def test_the_shipped_scenarios_all_load():
    from v2g_bench.scheduler.scenario import list_scenarios
    for p in list_scenarios():
        assert load_scenario(p).evs, p
