"""PNG plots (matplotlib, Agg backend): commanded vs measured power with the tolerance band, SOC, prices.

Each function returns PNG bytes; `attach(name, png)` hands them to the running test's evidence when there
is one (and writes `path` when given), so tests and the CLI share the same figures.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a bench PC / CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _step_xy(starts, values, end):
    x = np.append(np.asarray(starts, float), end)
    y = np.append(np.asarray(values, float), values[-1])
    return x, y


def plot_power_tracking(commanded, t_s, power_w, tolerance=None, *, title: str = "Power tracking") -> bytes:
    """Commanded step profile, its tolerance band and the measured power (kW over s)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    x, y = _step_xy(commanded.starts_s, commanded.power_w / 1000, commanded.end_s)
    if tolerance is not None:
        band = tolerance.band_at(commanded.power_w) / 1000
        _, b = _step_xy(commanded.starts_s, band, commanded.end_s)
        ax.fill_between(x, y - b, y + b, step="post", alpha=0.25, color="tab:green", label="tolerance band")
    ax.step(x, y, where="post", color="tab:green", label="commanded")
    ax.plot(np.asarray(t_s), np.asarray(power_w) / 1000, color="tab:blue", lw=1, label="measured")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("power [kW] (+ = into EV)")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_soc(t_h, soc_kwh, *, floor_kwh=None, reserve_kwh=None, target_kwh=None, departure_h=None,
             capacity_kwh=None, title="SOC trajectory") -> bytes:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(t_h, soc_kwh, color="tab:purple", label="SOC")
    for v, lab, st in ((floor_kwh, "floor", ":"), (reserve_kwh, "reserve", "--"), (capacity_kwh, "capacity", "-.")):
        if v:
            ax.axhline(v, ls=st, color="grey", label=lab)
    if target_kwh is not None and departure_h is not None:
        ax.plot([departure_h], [target_kwh], "rv", label="target at departure")
    ax.set_xlabel("time [h]")
    ax.set_ylabel("energy [kWh]")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_prices(t_h, import_price, export_price=None, *, title="Prices") -> bytes:
    fig, ax = plt.subplots(figsize=(10, 3))
    dt = t_h[1] - t_h[0] if len(t_h) > 1 else 1.0
    x = np.append(t_h, t_h[-1] + dt)
    ax.step(x, np.append(import_price, import_price[-1]), where="post", label="import")
    if export_price is not None:
        ax.step(x, np.append(export_price, export_price[-1]), where="post", label="export")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("time [h]")
    ax.set_ylabel("price per kWh")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_plan(plan, site, evs=None, *, title: str | None = None, max_evs: int = 8) -> bytes:
    """Prices, per-EV power and site import, SOC trajectories of a scheduler plan in one figure."""
    n = plan.n
    th = np.arange(n) * plan.dt_s / 3600
    x = np.append(th, th[-1] + plan.dt_s / 3600)
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    a1.step(x, np.append(site.import_price, site.import_price[-1]), where="post", label="import price")
    a1.step(x, np.append(site.export_price, site.export_price[-1]), where="post", label="export price")
    a1.set_ylabel("price / kWh")
    a1.legend(loc="best")
    for e in plan.evs[:max_evs]:
        a2.step(x, np.append(e.power_kw, e.power_kw[-1]), where="post", label=e.name)
        a3.plot(x, e.soc_kwh, label=e.name)
    if len(plan.evs) > 1 or site.needs_meter:
        a2.step(x, np.append(plan.grid_kw, plan.grid_kw[-1]), where="post", color="k", lw=1.5, label="site import")
    if site.import_limit_kw is not None:
        a2.axhline(site.import_limit_kw, color="r", ls="--", label="import limit")
    a2.axhline(0, color="grey", lw=0.5)
    a2.set_ylabel("power [kW]")
    a2.legend(loc="best", fontsize="small")
    a3.set_ylabel("SOC [kWh]")
    a3.set_xlabel("time from start [h]")
    if evs:
        for ev in evs[:max_evs]:
            if ev.min_kwh > 0:
                a3.axhline(ev.min_kwh, color="grey", ls=":", lw=0.8)
    for a in (a1, a2, a3):
        a.grid(alpha=0.3)
    a1.set_title(title or f"plan ({plan.method}), total cost {plan.cost.total:.2f}")
    return _png(fig)


def attach(name: str, png: bytes, path: str | Path | None = None) -> Path | None:
    """Write `png` to `path` (if given) and attach it to the running test's evidence (if any)."""
    out = None
    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
    try:
        from v2g_bench.harness.evidence import Evidence
    except ImportError:  # evidence layer not present (e.g. a stripped install)
        return out
    ev = Evidence.current()
    if ev is not None:
        return ev.attach_png(name, png)
    return out
