"""One-page summary of a scenario run: commanded vs measured power, SOC (from measured energy) with floor / reserve /
target, site power with its limits and the building load, prices - and the verdict with the time compression."""
from __future__ import annotations

import numpy as np

from v2g_bench.scenarios.judges import ScenarioVerdict, expected_profile
from v2g_bench.scenarios.runner import RunRecord, measured_soc


def plot_summary(rec: RunRecord, verdict: ScenarioVerdict, *, max_evs: int = 6) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v2g_bench.verification.plots import _png

    sc, arr = rec.scenario, rec.trace.arrays()
    first = max(int(np.searchsorted(arr["t"], rec.window[0])) - 1, 0)
    arr = {k: v[first:] for k, v in arr.items()}
    t = arr["t"]
    th = sc.start_clock_h + t / 3600.0
    fig, ax = plt.subplots(4, 1, figsize=(11, 13), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 1.3]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = rec.evs[:max_evs]
    for i, ev in enumerate(shown):
        c = colours[i % len(colours)]
        cmd = expected_profile(rec, i)
        xs = np.repeat(np.append(cmd.starts_s, cmd.end_s), 2)[1:-1]
        ys = np.repeat(cmd.power_w, 2)
        ax[0].plot(sc.start_clock_h + xs / 3600.0, ys / 1000.0, "--", color=c, lw=1.2, label=f"{ev.name} commanded")
        ax[0].plot(th, arr["dc_w"][:, i] / 1000.0, color=c, lw=0.8, alpha=0.8, label=f"{ev.name} measured")
        soc = measured_soc(arr, i, ev, rec.plans[0][1].ev(ev.name).soc_kwh[int(round(rec.window[0] / sc.site.dt_s))])
        ax[1].plot(th, soc, color=c, lw=1.0, label=ev.name)
        ax[1].axhline(max(ev.floor_kwh, ev.reserve_kwh), color=c, ls=":", lw=0.8)
        if rec.window[0] <= ev.departure_s <= rec.window[1] + 1e-6:
            ax[1].plot([sc.start_clock_h + ev.departure_s / 3600.0], [ev.target_kwh], marker="v", color=c, ms=8)
    if len(rec.evs) > max_evs:
        ax[0].set_title(f"first {max_evs} of {len(rec.evs)} EVSEs shown", fontsize=9)
    ax[0].set_ylabel("DC power, kW (+ into the EV)")
    ax[0].legend(fontsize=7, ncol=2, loc="upper right")
    ax[1].set_ylabel("SOC from measured energy, kWh")
    ax[1].legend(fontsize=7, loc="upper right")
    ax[2].plot(th, arr["grid_w"] / 1000.0, color="k", lw=1.0, label="site grid (measured)")
    ax[2].plot(th, (arr["load_w"] - arr["pv_w"]) / 1000.0, color="grey", lw=0.8, label="building load - PV")
    if sc.site.import_limit_kw is not None:
        ax[2].axhline(sc.site.import_limit_kw, color="r", ls="--", lw=1, label="import limit")
    if sc.site.export_limit_kw is not None:
        ax[2].axhline(-sc.site.export_limit_kw, color="m", ls="--", lw=1, label="export limit")
    if np.any(arr["unserved_w"] > 0):
        ax[2].plot(th, arr["unserved_w"] / 1000.0, color="orange", lw=1, label="unserved (islanded)")
    ax[2].set_ylabel("site power, kW")
    ax[2].legend(fontsize=7, loc="upper right")
    k = np.clip(((t - 0.0) // sc.site.dt_s).astype(int), 0, sc.site.n - 1)
    imp, exp = rec.prices
    ax[3].step(th, imp[k], where="post", label="import price (in effect)")
    ax[3].step(th, exp[k], where="post", label="export price")
    if sc.frequency_response:
        ax3b = ax[3].twinx()
        ax3b.plot(th, arr["freq_hz"], color="tab:purple", lw=0.8)
        ax3b.set_ylabel("grid Hz", color="tab:purple")
    ax[3].set_ylabel("price / kWh")
    ax[3].set_xlabel("clock time, h (plan time; played compressed)")
    ax[3].legend(fontsize=7, loc="upper left")
    for a in ax:
        a.grid(alpha=0.3)
    f = verdict.figures
    fig.suptitle(f"{sc.name}: {verdict.verdict.upper()}  |  x{rec.time_scale:g} time compression "
                 f"({f.get('speedup_vs_real_time', 0):.0f}x incl. set-up), {len(rec.evs)} EVSE(s), OCPP {rec.ocpp_version}"
                 f"\ncost measured {f.get('energy_cost_measured', float('nan')):.2f} vs plan "
                 f"{f.get('energy_cost_plan', float('nan')):.2f}", fontsize=11)
    fig.tight_layout()
    return _png(fig)
