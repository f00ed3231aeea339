"""The LP (and its MILP repair) on HiGHS, kept alive between solves for warm re-solves.

Per EV i and interval t (grid side, kW): charge c >= 0, discharge d >= 0, battery energy e (kWh)
    e_t = e_{t-1} + eta_c*h*c_t - h*d_t/eta_d,   min_kwh <= e_t <= capacity,   e_t >= target for t >= departure
Two ways to bill (``metering``):
    "site": one meter for the whole site: g+ - g- - curtail - sum_i(c - d) = load - pv, cost p_imp*g+ - p_exp*g-,
            g+ <= import limit, g- <= export limit, optional demand charge on max g+.
    "ev":   each EV billed on its own (p_imp*c - p_exp*d); site limits only couple the EVs' sum. Separable,
            which is what the decomposition (fleet.py) needs.
Degradation: k_deg per kWh of battery throughput (eta_c*c + d/eta_d)*h.

Simultaneous charge and discharge is a real LP optimum when wasting energy pays (negative prices,
p < -2*k*eta_c/(1-eta_c*eta_d)) or PV must be absorbed. It is detected in the LP solution and removed
by adding a binary (charge XOR discharge) for exactly the offending (EV, interval) pairs and re-solving
(lazy constraint generation: the final MILP solution satisfies all the dropped XORs, so it is optimal for
the full MILP).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from v2g_bench.scheduler.model import (CostBreakdown, EVPlan, EVRequest, InfeasibleSchedule, Plan, ScheduleInputError, Site,
                    interval_window)

INF = highspy.kHighsInf
SIMULTANEOUS_TOL_KW = 1e-6


@dataclass(frozen=True)
class _Layout:
    T: int
    N: int
    metering: str          # "site" | "ev"
    pv: bool
    demand: bool
    coupling: bool         # "ev" metering with site limits
    elastic: bool
    binaries: tuple        # ((i, t), ...): charge XOR discharge
    curves: tuple = ()     # per EV (charge segments, discharge segments); () or zeros = constant efficiency
    order_bins: tuple = () # ((i, t, direction), ...): part-load segments filled in order (direction 0/1)

    def c(self, i):
        return 3 * self.T * i

    def d(self, i):
        return 3 * self.T * i + self.T

    def e(self, i):
        return 3 * self.T * i + 2 * self.T

    @property
    def site0(self):
        return 3 * self.T * self.N

    # meter columns (metering == "site")
    @property
    def gp(self):
        return self.site0

    @property
    def gm(self):
        return self.site0 + self.T

    @property
    def curt(self):
        return self.site0 + 2 * self.T

    @property
    def peak(self):
        return self.site0 + (3 if self.pv else 2) * self.T

    @property
    def n_site_cols(self):
        if self.metering != "site":
            return 0
        return (3 if self.pv else 2) * self.T + (1 if self.demand else 0)

    @property
    def slack0(self):  # elastic: N target slacks, then T import overflow, T export overflow
        return self.site0 + self.n_site_cols

    @property
    def curve0(self):  # part-load segment columns, per EV: charge segments x T, then discharge segments x T
        return self.slack0 + ((self.N + 2 * self.T) if self.elastic else 0)

    def seg(self, i: int, direction: int, s: int) -> int:
        off = self.curve0 + self.T * sum(a + b for a, b in self.curves[:i])
        sc = self.curves[i][0]
        return off + self.T * (s if direction == 0 else sc + s)

    @property
    def bin0(self):
        return self.curve0 + self.T * sum(a + b for a, b in self.curves)

    @property
    def obin0(self):
        return self.bin0 + len(self.binaries)

    @property
    def ncol(self):
        return self.obin0 + sum(self.curves[i][d] - 1 for i, _, d in self.order_bins)


def _layout(site: Site, n_ev: int, metering: str, elastic: bool, binaries=(), evs=None,
            order_bins=()) -> _Layout:
    coupling = metering == "ev" and (site.import_limit_kw is not None or site.export_limit_kw is not None)
    curves = ()
    if evs is not None and any(e.charge_curve or e.discharge_curve for e in evs):
        curves = tuple((len(e.charge_curve or ()), len(e.discharge_curve or ())) for e in evs)
    return _Layout(T=site.n, N=n_ev, metering=metering, pv=metering == "site" and site.pv_kw is not None,
                   demand=metering == "site" and site.demand_charge_per_kw > 0, coupling=coupling,
                   elastic=elastic, binaries=tuple(binaries), curves=curves, order_bins=tuple(order_bins))


def _penalty(site: Site, evs) -> float:
    scale = float(np.max(np.abs(site.import_price))) + site.demand_charge_per_kw
    scale += max((ev.degradation_per_kwh for ev in evs), default=0.0)
    return 1e4 * (scale + 1.0)


def _build(L: _Layout, site: Site, evs: list[EVRequest]):
    """Return (cost, lo, hi, A (csc), row_lo, row_hi, integrality) for the layout."""
    T, h = L.T, site.h
    nc = L.ncol
    cost, lo, hi = np.zeros(nc), np.zeros(nc), np.zeros(nc)
    rows, cols, vals = [], [], []
    rlo, rhi = [], []
    tt = np.arange(T)
    M = _penalty(site, evs) if L.elastic else 0.0

    def add_rows(r_index, c_index, v, lo_, hi_):
        rows.append(np.asarray(r_index)), cols.append(np.asarray(c_index)), vals.append(np.asarray(v, float))

    nrow = 0
    windows = []
    for i, ev in enumerate(evs):
        a, b = interval_window(site, ev)
        windows.append((a, b))
        on = (tt >= a) & (tt < b)
        c0, d0, e0 = L.c(i), L.d(i), L.e(i)
        k = ev.degradation_per_kwh
        sc, sd = L.curves[i] if L.curves else (0, 0)
        # with a part-load curve the battery-side terms (degradation, SOC) sit on the segment columns
        deg_c = 0.0 if sc else k * ev.eta_charge
        deg_d = 0.0 if sd else k / ev.eta_discharge
        if L.metering == "ev":
            cost[c0:c0 + T] = h * (site.import_price + deg_c)
            cost[d0:d0 + T] = h * (-site.export_price + deg_d)
        else:
            cost[c0:c0 + T] = h * deg_c
            cost[d0:d0 + T] = h * deg_d
        hi[c0:c0 + T] = np.where(on, ev.max_charge_kw, 0.0)
        hi[d0:d0 + T] = np.where(on, ev.max_discharge_kw, 0.0)
        lo[e0:e0 + T] = ev.min_kwh
        hi[e0:e0 + T] = ev.capacity_kwh
        if not L.elastic and b >= 1:
            lo[e0 + b - 1:e0 + T] = max(ev.min_kwh, ev.target_kwh)
        # dynamics rows: e_t - e_{t-1} - eta_c*h*c_t + h/eta_d*d_t = (e_init if t == 0 else 0)
        r = nrow + tt
        add_rows(r, e0 + tt, np.ones(T), 0, 0)
        add_rows(r[1:], e0 + tt[:-1], -np.ones(T - 1), 0, 0)
        if not sc:
            add_rows(r, c0 + tt, np.full(T, -ev.eta_charge * h), 0, 0)
        if not sd:
            add_rows(r, d0 + tt, np.full(T, h / ev.eta_discharge), 0, 0)
        rhs = np.zeros(T)
        rhs[0] = ev.soc_kwh
        rlo.append(rhs), rhi.append(rhs.copy())
        dyn = nrow
        nrow += T
        for direction, curve, total in ((0, ev.charge_curve, c0), (1, ev.discharge_curve, d0)):
            if not curve or not (sc if direction == 0 else sd):
                continue
            # link row: total power = sum of its segments; each segment has its own efficiency
            r = nrow + tt
            add_rows(r, total + tt, np.ones(T), 0, 0)
            for si, (width, eta) in enumerate(curve):
                col = L.seg(i, direction, si) + tt
                add_rows(r, col, -np.ones(T), 0, 0)
                hi[col] = np.where(on, width, 0.0)
                if direction == 0:
                    add_rows(dyn + tt, col, np.full(T, -eta * h), 0, 0)
                    cost[col] = h * k * eta
                else:
                    add_rows(dyn + tt, col, np.full(T, h / eta), 0, 0)
                    cost[col] = h * k / eta
            rlo.append(np.zeros(T)), rhi.append(np.zeros(T))
            nrow += T
    base = site.base_kw()
    imp = site.import_limit_kw if site.import_limit_kw is not None else INF
    exp = site.export_limit_kw if site.export_limit_kw is not None else INF
    if L.metering == "site":
        # balance: g+ - g- - curt - sum(c - d) = load - pv
        r = nrow + tt
        add_rows(r, L.gp + tt, np.ones(T), 0, 0)
        add_rows(r, L.gm + tt, -np.ones(T), 0, 0)
        if L.pv:
            add_rows(r, L.curt + tt, -np.ones(T), 0, 0)
            hi[L.curt:L.curt + T] = site.pv_kw
        for i in range(L.N):
            add_rows(r, L.c(i) + tt, -np.ones(T), 0, 0)
            add_rows(r, L.d(i) + tt, np.ones(T), 0, 0)
        rlo.append(base.copy()), rhi.append(base.copy())
        nrow += T
        cost[L.gp:L.gp + T] = h * site.import_price
        cost[L.gm:L.gm + T] = -h * site.export_price
        hi[L.gp:L.gp + T] = imp
        hi[L.gm:L.gm + T] = exp
        if L.demand:
            r = nrow + tt
            add_rows(r, L.gp + tt, np.ones(T), 0, 0)
            add_rows(r, np.full(T, L.peak), -np.ones(T), 0, 0)
            rlo.append(np.full(T, -INF)), rhi.append(np.zeros(T))
            nrow += T
            cost[L.peak] = site.demand_charge_per_kw
            hi[L.peak] = INF
        if L.elastic:  # overflow beyond the limits, heavily penalised
            s = L.slack0 + L.N
            add_rows(nrow - T - (T if L.demand else 0) + tt, s + tt, np.ones(T), 0, 0)
            add_rows(nrow - T - (T if L.demand else 0) + tt, s + T + tt, -np.ones(T), 0, 0)
    elif L.coupling:
        # sum_i (c - d) in [-(export limit) - base, import limit - base]
        r = nrow + tt
        for i in range(L.N):
            add_rows(r, L.c(i) + tt, np.ones(T), 0, 0)
            add_rows(r, L.d(i) + tt, -np.ones(T), 0, 0)
        if L.elastic:
            s = L.slack0 + L.N
            add_rows(r, s + tt, -np.ones(T), 0, 0)
            add_rows(r, s + T + tt, np.ones(T), 0, 0)
        rlo.append(-exp - base), rhi.append(imp - base)
        nrow += T
    if L.elastic:
        s = L.slack0
        cost[s:s + L.N] = M
        hi[s:s + L.N] = INF
        cost[s + L.N:s + L.N + 2 * T] = 100 * M   # the site limit is physical: targets give way first
        hi[s + L.N:s + L.N + 2 * T] = INF
        if L.metering == "site":
            hi[L.gp:L.gp + T] = imp  # overflow column carries the excess
        # target rows: e_{b-1} + slack >= target
        for i, ev in enumerate(evs):
            a, b = windows[i]
            if b >= 1 and ev.target_kwh > ev.min_kwh:
                add_rows([nrow], [L.e(i) + b - 1], [1.0], 0, 0)
                add_rows([nrow], [s + i], [1.0], 0, 0)
                rlo.append([ev.target_kwh]), rhi.append([INF])
                nrow += 1
    integrality = None
    if L.binaries:
        integrality = np.zeros(nc, dtype=np.int32)
        for j, (i, t) in enumerate(L.binaries):
            u = L.bin0 + j
            integrality[u] = 1
            hi[u] = 1.0
            ev = evs[i]
            add_rows([nrow, nrow], [L.c(i) + t, u], [1.0, -ev.max_charge_kw], 0, 0)
            add_rows([nrow + 1, nrow + 1], [L.d(i) + t, u], [1.0, ev.max_discharge_kw], 0, 0)
            rlo.append([-INF, -INF]), rhi.append([0.0, ev.max_discharge_kw])
            nrow += 2
    if L.order_bins:
        if integrality is None:
            integrality = np.zeros(nc, dtype=np.int32)
        z = L.obin0
        for i, t, direction in L.order_bins:
            curve = evs[i].charge_curve if direction == 0 else evs[i].discharge_curve
            for si in range(len(curve) - 1):
                # z = 1 allows segment si+1 only when segment si is full (incremental formulation)
                integrality[z] = 1
                hi[z] = 1.0
                a, b = L.seg(i, direction, si) + t, L.seg(i, direction, si + 1) + t
                add_rows([nrow, nrow], [a, z], [1.0, -curve[si][0]], 0, 0)
                add_rows([nrow + 1, nrow + 1], [b, z], [1.0, -curve[si + 1][0]], 0, 0)
                rlo.append([0.0, -INF]), rhi.append([INF, 0.0])
                nrow += 2
                z += 1
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, nc))
    A.sort_indices()
    return cost, lo, hi, A, np.concatenate([np.asarray(x, float) for x in rlo]), \
        np.concatenate([np.asarray(x, float) for x in rhi]), integrality, windows


_BANNER_SILENCED = False


def new_highs() -> highspy.Highs:
    """A silent HiGHS instance. The C++ library prints a copyright banner to fd 1 on its first instance in a
    process, before any option can be set: that would corrupt `v2g-bench schedule --json` output."""
    global _BANNER_SILENCED
    if _BANNER_SILENCED:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _BANNER_SILENCED = True
    h.setOptionValue("output_flag", False)
    return h


def _highs_from(cost, lo, hi, A, rlo, rhi, integrality) -> highspy.Highs:
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lo, hi
    lp.row_lower_, lp.row_upper_ = rlo, rhi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    if integrality is not None:
        lp.integrality_ = [highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous
                           for v in integrality]
    h = new_highs()
    h.setOptionValue("random_seed", 0)
    if integrality is not None:
        h.setOptionValue("mip_rel_gap", 1e-9)
        h.setOptionValue("mip_abs_gap", 1e-9)
    h.passModel(lp)
    return h


def _through_curve(p: np.ndarray, curve, charge: bool) -> np.ndarray:
    """Battery-side power for grid-side power p through a part-load curve, segments filled in order."""
    out = np.zeros_like(p)
    left = p.copy()
    for width, eta in curve:
        take = np.minimum(left, width)
        out += take * eta if charge else take / eta
        left -= take
    return out


def battery_side_kw(ev: EVRequest, c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(power into the cells, power out of the cells) for grid-side charge c and discharge d."""
    b_in = _through_curve(c, ev.charge_curve, True) if ev.charge_curve else ev.eta_charge * c
    b_out = _through_curve(d, ev.discharge_curve, False) if ev.discharge_curve else d / ev.eta_discharge
    return b_in, b_out


class _CachedModel:
    """A HiGHS model for one layout; later loads swap costs/bounds (and coefficients if the efficiencies
    changed) and keep the basis, so a re-solve starts warm."""

    def __init__(self, built):
        cost, lo, hi, A, rlo, rhi, integ, _ = built
        self.highs = _highs_from(cost, lo, hi, A, rlo, rhi, integ)
        self.A = A
        self.cols = np.arange(A.shape[1], dtype=np.int32)
        self.rows = np.arange(A.shape[0], dtype=np.int32)

    def load(self, built):
        cost, lo, hi, A, rlo, rhi, _, _ = built
        hs = self.highs
        if A.nnz != self.A.nnz or not np.array_equal(A.indices, self.A.indices):
            raise AssertionError("layout changed under a cached model")
        diff = np.flatnonzero(A.data != self.A.data)
        if diff.size:
            coo_cols = np.repeat(np.arange(A.shape[1]), np.diff(A.indptr))
            for k in diff:
                hs.changeCoeff(int(A.indices[k]), int(coo_cols[k]), float(A.data[k]))
            self.A = A
        hs.changeColsCost(len(self.cols), self.cols, cost)
        hs.changeColsBounds(len(self.cols), self.cols, lo, hi)
        hs.changeRowsBounds(len(self.rows), self.rows, rlo, rhi)


class Scheduler:
    """Cost-optimal charge/discharge plans on HiGHS. Keep one instance to reuse its models (warm)."""

    def __init__(self, *, cache_size: int = 8):
        self._cache: dict[_Layout, _CachedModel] = {}
        self._cache_size = cache_size
        self.last_iterations = 0
        self.last_row_dual = np.zeros(0)

    # -- public -----------------------------------------------------------------------------------
    def plan(self, site: Site, evs: EVRequest | list[EVRequest], *, metering: str | None = None) -> Plan:
        """Plan one EV or a fleet behind one site. Raises InfeasibleSchedule with plain reasons."""
        t0 = time.perf_counter()
        evs = [evs] if isinstance(evs, EVRequest) else list(evs)
        if not evs:
            raise ScheduleInputError("no EVs to plan", where="evs")
        names = [e.name for e in evs]
        if len(set(names)) != len(names):
            raise ScheduleInputError("EV names are not unique", where="evs", fix="give every EV its own name")
        if metering is None:
            metering = "site" if site.needs_meter else "ev"
        if metering not in ("site", "ev"):
            raise ScheduleInputError(f"metering = {metering!r}", where="metering", fix='use "site" or "ev"')
        if metering == "ev" and (site.pv_kw is not None or site.demand_charge_per_kw > 0):
            raise ScheduleInputError("per-EV metering cannot bill PV or a demand charge", where="metering",
                                     fix='use metering="site"')
        from v2g_bench.scheduler.explain import precheck
        precheck(site, evs)
        binaries: list = []
        order_bins: list = []
        notes: list[str] = []
        for _round in range(50):
            L = _layout(site, len(evs), metering, elastic=False, binaries=binaries, evs=evs, order_bins=order_bins)
            x = self._solve(L, site, evs)
            if x is None:
                from v2g_bench.scheduler.explain import explain_infeasible
                raise explain_infeasible(self, site, evs, metering)
            sim = self._simultaneous(L, x)
            disorder = self._out_of_order(L, evs, x)
            if not sim and not disorder:
                break
            if sim:
                binaries = sorted(set(binaries) | set(sim))
                notes.append(f"LP optimum charged and discharged at once in {len(sim)} (EV, interval) pairs "
                             f"(negative prices / surplus); added XOR binaries and re-solved")
            if disorder:
                order_bins = sorted(set(order_bins) | set(disorder))
                notes.append(f"LP optimum used a less efficient part-load segment before a better one in "
                             f"{len(disorder)} (EV, interval, direction) cases (wasting energy paid); added "
                             f"ordering binaries and re-solved")
        else:  # pragma: no cover - each round adds at least one binary, bounded by N*T
            raise InfeasibleSchedule(["could not remove simultaneous charge and discharge"], where="scheduler")
        nb = len(binaries) + sum(L.curves[i][d] - 1 for i, _, d in order_bins)
        method = "lp" if not nb else f"milp({nb} binaries)"
        return self._extract(L, site, evs, x, method, time.perf_counter() - t0, notes)

    # -- internals --------------------------------------------------------------------------------
    def _solve(self, L: _Layout, site: Site, evs) -> np.ndarray | None:
        built = _build(L, site, evs)
        if L.binaries or L.order_bins or L.elastic:
            hs = _highs_from(*built[:7])  # one-off models are not worth caching
        else:
            m = self._cache.get(L)
            if m is None:
                if len(self._cache) >= self._cache_size:
                    self._cache.pop(next(iter(self._cache)))
                m = self._cache[L] = _CachedModel(built)
            else:
                m.load(built)
            hs = m.highs
        hs.run()
        st = hs.getModelStatus()
        self.last_iterations = hs.getInfo().simplex_iteration_count
        if st == highspy.HighsModelStatus.kOptimal:
            sol = hs.getSolution()
            self.last_row_dual = np.asarray(sol.row_dual)   # coordination prices for the decomposition
            return np.asarray(sol.col_value)
        if st in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            return None
        raise InfeasibleSchedule([f"HiGHS stopped with {hs.modelStatusToString(st)}"], where="scheduler")

    @staticmethod
    def _out_of_order(L: _Layout, evs, x: np.ndarray) -> list:
        """(EV, interval, direction) where a segment carries power while an earlier (better) one is not full."""
        out = []
        if not L.curves:
            return out
        for i, ev in enumerate(evs):
            for direction, curve in ((0, ev.charge_curve), (1, ev.discharge_curve)):
                if not curve:
                    continue
                segs = np.array([x[L.seg(i, direction, s):L.seg(i, direction, s) + L.T] for s in range(len(curve))])
                widths = np.array([w for w, _ in curve])[:, None]
                later_used = np.flip(np.maximum.accumulate(np.flip(segs > 1e-7, 0), 0), 0)  # any later seg used
                bad = (segs[:-1] < widths[:-1] - 1e-7) & later_used[1:]
                for t in np.flatnonzero(bad.any(axis=0)):
                    out.append((i, int(t), direction))
        return out

    @staticmethod
    def _simultaneous(L: _Layout, x: np.ndarray) -> list:
        out = []
        for i in range(L.N):
            c = x[L.c(i):L.c(i) + L.T]
            d = x[L.d(i):L.d(i) + L.T]
            for t in np.flatnonzero((c > SIMULTANEOUS_TOL_KW) & (d > SIMULTANEOUS_TOL_KW)):
                out.append((i, int(t)))
        return out

    @staticmethod
    def _extract(L: _Layout, site: Site, evs, x, method, dt, notes) -> Plan:
        T, h = L.T, site.h
        plans = []
        total_c = np.zeros(T)
        total_d = np.zeros(T)
        deg = 0.0
        imp_cost = exp_rev = 0.0
        for i, ev in enumerate(evs):
            c = np.clip(x[L.c(i):L.c(i) + T], 0, None)
            d = np.clip(x[L.d(i):L.d(i) + T], 0, None)
            c[c < 1e-9] = 0.0
            d[d < 1e-9] = 0.0
            # SOC recomputed from the plan (not read from the LP) so it is exactly what the plan implies
            b_in, b_out = battery_side_kw(ev, c, d)
            soc = ev.soc_kwh + np.concatenate([[0.0], np.cumsum(h * (b_in - b_out))])
            dg = float(ev.degradation_per_kwh * h * np.sum(b_in + b_out))
            deg += dg
            plans.append(EVPlan(ev.name, c, d, soc, dg))
            total_c += c
            total_d += d
            if L.metering == "ev":
                imp_cost += float(h * np.dot(site.import_price, c))
                exp_rev += float(h * np.dot(site.export_price, d))
        curt = np.zeros(T)
        if L.metering == "site" and L.pv:
            curt = np.clip(x[L.curt:L.curt + T], 0, None)
            curt[curt < 1e-9] = 0.0
        grid = site.base_kw() + curt + total_c - total_d
        if L.metering == "site":
            imp_cost = float(h * np.dot(site.import_price, np.clip(grid, 0, None)))
            exp_rev = float(h * np.dot(site.export_price, np.clip(-grid, 0, None)))
        demand = site.demand_charge_per_kw * float(max(0.0, grid.max())) if L.demand else 0.0
        cost = CostBreakdown(imp_cost, exp_rev, deg, demand)
        return Plan(site.dt_s, site.start_s, plans, grid, curt, cost, method, dt, notes)
