"""Fleets: many EVs, independent or sharing a site limit.

* `plan_fleet_independent`: every EV against the tariff on its own (per-EV billing). One HiGHS model per
  worker process, re-loaded per EV by swapping costs/bounds (warm basis); EVs whose LP optimum charges and
  discharges at once are re-planned with the exact MILP repair of `Scheduler`.
* `plan_fleet_shared` (exact, one LP): `Scheduler.plan(site, evs)` with the site limit coupling the EVs.
* `plan_fleet_decomposed` (Dantzig-Wolfe): a small master LP over convex combinations of each EV's plans,
  priced by per-EV LPs with the master's duals added to the tariff. The pricing step is a map over
  *shards* (`LocalShard` in this process, `ProcessShard` in a worker process); a shard only needs the
  price signal (row duals, convexity duals) and returns columns, so a shard on another machine would speak
  the same two messages. Exact at convergence (the duality gap is reported).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from v2g_bench.scheduler.lp import INF, SIMULTANEOUS_TOL_KW, Scheduler, _build, _CachedModel, _layout, new_highs
from v2g_bench.scheduler.model import EVRequest, InfeasibleSchedule, ScheduleInputError, Site, interval_window


class FastEVSolver:
    """One EV at a time on one kept HiGHS model (per-EV billing, no site coupling).

    Costs/bounds are computed with numpy straight into the model (no model rebuild): ~0.3 ms per EV-day
    at 96 intervals on a warm basis.
    """

    def __init__(self, site: Site):
        self.site = site
        T = site.n
        self.T, self.h = T, site.h
        dummy = EVRequest("_", 1.0, 0.0, 0.0, site.n * site.dt_s, 0.0)
        built = _build(_layout(site, 1, "ev", elastic=False), Site(import_price=site.import_price,
                                                                     dt_s=site.dt_s), [dummy])
        self.model = _CachedModel(built)
        # the per-EV LP is small and well scaled (coefficients 0.2..1): presolve and scaling only add
        # fixed cost to every warm re-solve (~20 % of it, measured)
        self.model.highs.setOptionValue("presolve", "off")
        self.model.highs.setOptionValue("simplex_scale_strategy", 0)
        self.eta = (dummy.eta_charge, dummy.eta_discharge)
        self.cols = np.arange(3 * T, dtype=np.int32)
        self.rows = np.arange(T, dtype=np.int32)
        self.tt = np.arange(T)
        self.cost = np.zeros(3 * T)
        self.lo = np.zeros(3 * T)
        self.hi = np.zeros(3 * T)
        self.rhs = np.zeros(T)

    def solve(self, ev: EVRequest, extra_kw_cost: np.ndarray | None = None):
        """Return (charge_kw, discharge_kw, tariff_cost) or None if infeasible.

        `extra_kw_cost[t]` is added per kW of net charging in interval t (a coordination price).
        """
        T, h, site = self.T, self.h, self.site
        hs = self.model.highs
        if (ev.eta_charge, ev.eta_discharge) != self.eta:
            for t in range(T):
                hs.changeCoeff(t, t, -ev.eta_charge * h)
                hs.changeCoeff(t, T + t, h / ev.eta_discharge)
            self.eta = (ev.eta_charge, ev.eta_discharge)
        a, b = interval_window(site, ev)
        on = (self.tt >= a) & (self.tt < b)
        k = ev.degradation_per_kwh
        cc = h * (site.import_price + k * ev.eta_charge)
        cd = h * (-site.export_price + k / ev.eta_discharge)
        if extra_kw_cost is not None:
            cc = cc + extra_kw_cost
            cd = cd - extra_kw_cost
        cost, lo, hi = self.cost, self.lo, self.hi
        cost[:T], cost[T:2 * T] = cc, cd
        hi[:T] = np.where(on, ev.max_charge_kw, 0.0)
        hi[T:2 * T] = np.where(on, ev.max_discharge_kw, 0.0)
        lo[2 * T:] = ev.min_kwh
        if b >= 1:
            lo[2 * T + b - 1:] = max(ev.min_kwh, ev.target_kwh)
        hi[2 * T:] = ev.capacity_kwh
        self.rhs[0] = ev.soc_kwh
        hs.changeColsCost(3 * T, self.cols, cost)
        hs.changeColsBounds(3 * T, self.cols, lo, hi)
        hs.changeRowsBounds(T, self.rows, self.rhs, self.rhs)
        hs.run()
        if hs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            # a warm basis can stall on badly scaled coordination prices: retry once from scratch
            hs.clearSolver()
            hs.run()
            if hs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
        x = np.asarray(hs.getSolution().col_value)
        c = np.clip(x[:T], 0, None)
        d = np.clip(x[T:2 * T], 0, None)
        tariff = float(h * (np.dot(site.import_price, c) - np.dot(site.export_price, d))
                       + h * k * np.sum(ev.eta_charge * c + d / ev.eta_discharge))
        return c, d, tariff


@dataclass
class FleetResult:
    names: list[str]
    power_kw: np.ndarray        # (N, T) signed grid-side power, + = into the EV
    soc_kwh: np.ndarray         # (N, T+1)
    cost: np.ndarray            # (N,) import - export + degradation, per EV
    dt_s: float
    method: str
    solve_time_s: float
    notes: list[str] = field(default_factory=list)
    gap: float = 0.0            # decomposition: upper - lower bound on the total cost
    iterations: int = 0

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())

    def site_kw(self, site: Site) -> np.ndarray:
        return site.base_kw() + self.power_kw.sum(axis=0)


def _mp_context():
    """forkserver: HiGHS runs threads, and fork() of a threaded process may deadlock; the server is forked
    from a clean process with the scheduler preloaded, so workers still start fast."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["v2g_bench.scheduler.fleet"])
    return ctx


def _soc(ev: EVRequest, c, d, h):
    from v2g_bench.scheduler.lp import battery_side_kw
    b_in, b_out = battery_side_kw(ev, c, d)
    return ev.soc_kwh + np.concatenate([[0.0], np.cumsum(h * (b_in - b_out))])


def _independent_chunk(site: Site, evs: list[EVRequest]):
    solver = FastEVSolver(site)
    T = site.n
    P = np.zeros((len(evs), T))
    S = np.zeros((len(evs), T + 1))
    C = np.zeros(len(evs))
    milp = []
    infeasible = []
    # similar EVs back to back: the previous EV's basis is then a better warm start
    order = sorted(range(len(evs)), key=lambda j: (evs[j].arrival_s, evs[j].departure_s))
    for j in order:
        ev = evs[j]
        # part-load curves need the segment model: those EVs go through the full Scheduler
        r = None if (ev.charge_curve or ev.discharge_curve) else solver.solve(ev)
        if r is None and (ev.charge_curve or ev.discharge_curve):
            try:
                plan = Scheduler().plan(Site(import_price=site.import_price, export_price=site.export_price,
                                             dt_s=site.dt_s), ev, metering="ev")
            except InfeasibleSchedule:
                infeasible.append(j)
                continue
            e = plan.evs[0]
            P[j], S[j], C[j] = e.power_kw, e.soc_kwh, plan.cost.total
            continue
        if r is None:
            infeasible.append(j)
            continue
        c, d, cost = r
        if np.any((c > SIMULTANEOUS_TOL_KW) & (d > SIMULTANEOUS_TOL_KW)):
            plan = Scheduler().plan(Site(import_price=site.import_price, export_price=site.export_price,
                                         dt_s=site.dt_s), ev, metering="ev")
            e = plan.evs[0]
            c, d, cost = e.charge_kw, e.discharge_kw, plan.cost.total
            milp.append(j)
        P[j] = c - d
        S[j] = _soc(ev, c, d, site.h)
        C[j] = cost
    return P, S, C, milp, infeasible


def _check_fleet(evs):
    names = [e.name for e in evs]
    if len(set(names)) != len(names):
        raise ScheduleInputError("EV names are not unique", where="evs", fix="give every EV its own name")


def plan_fleet_independent(site: Site, evs: list[EVRequest], *, workers: int | None = None) -> FleetResult:
    """Each EV on its own against the tariff (site limits, load and PV are ignored: use the shared paths)."""
    t0 = time.perf_counter()
    _check_fleet(evs)
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(evs) < 200:
        parts = [_independent_chunk(site, evs)]
        offsets = [0]
    else:
        bounds = np.linspace(0, len(evs), workers + 1).astype(int)
        ctx = _mp_context()
        with ctx.Pool(workers) as pool:
            parts = pool.starmap(_independent_chunk, [(site, evs[bounds[i]:bounds[i + 1]]) for i in range(workers)])
        offsets = list(bounds[:-1])
    P = np.concatenate([p[0] for p in parts])
    S = np.concatenate([p[1] for p in parts])
    C = np.concatenate([p[2] for p in parts])
    milp = [o + j for o, p in zip(offsets, parts) for j in p[3]]
    bad = [o + j for o, p in zip(offsets, parts) for j in p[4]]
    if bad:
        from v2g_bench.scheduler.explain import precheck
        precheck(site, [evs[j] for j in bad])  # names the constraint and the kWh
        raise InfeasibleSchedule([f"EV {evs[j].name!r} has no feasible plan" for j in bad[:10]], where="fleet")
    notes = [f"{len(milp)} EV(s) re-planned with the MILP repair (simultaneous charge/discharge)"] if milp else []
    return FleetResult([e.name for e in evs], P, S, C, site.dt_s, f"independent LP x{len(evs)} ({workers} worker(s))",
                       time.perf_counter() - t0, notes)


def plan_fleet_shared(site: Site, evs: list[EVRequest], *, metering: str = "ev") -> FleetResult:
    """Exact: one LP over all EVs coupled by the site limits (HiGHS dual simplex)."""
    t0 = time.perf_counter()
    plan = Scheduler().plan(site, evs, metering=metering)
    h = site.h
    C = np.array([
        h * (np.dot(site.import_price, e.charge_kw) - np.dot(site.export_price, e.discharge_kw)) + e.degradation
        for e in plan.evs])
    return FleetResult([e.name for e in plan.evs], np.array([e.power_kw for e in plan.evs]),
                       np.array([e.soc_kwh for e in plan.evs]), C, site.dt_s, "shared LP " + plan.method,
                       time.perf_counter() - t0, plan.notes)


# ---- Dantzig-Wolfe ---------------------------------------------------------------------------------------

class LocalShard:
    """Prices a subset of the fleet in this process. Message in: (duals per interval, convexity duals);
    message out: new columns (ev index, tariff cost, charge, discharge) and the sum of negative reduced costs."""

    def __init__(self, site: Site, evs: list[EVRequest], index: list[int]):
        # similar EVs back to back: the previous EV's basis is then a better warm start
        order = sorted(range(len(evs)), key=lambda k: (evs[k].arrival_s, evs[k].departure_s))
        self.site, self.evs, self.index = site, [evs[k] for k in order], [index[k] for k in order]
        self.solver = FastEVSolver(site)
        self.bases: dict[int, object] = {}

    def price(self, y: np.ndarray, sigma: np.ndarray, tol: float):
        cols, rc_sum = [], 0.0
        hs = self.solver.model.highs
        for j, ev in zip(self.index, self.evs):
            # each EV restarts from its own last basis: between iterations only its prices moved a little
            if j in self.bases:
                hs.setBasis(self.bases[j])
            r = self.solver.solve(ev, extra_kw_cost=-y)
            self.bases[j] = hs.getBasis()
            if r is None:
                return None, j
            c, d, cost = r
            rc = cost - float(np.dot(y, c - d)) - sigma[j]
            if rc < -tol:
                cols.append((j, cost, c, d))
                rc_sum += rc
        return cols, rc_sum

    def close(self):
        pass


def _shard_main(conn, site, evs, index):
    shard = LocalShard(site, evs, index)
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                break
            conn.send(shard.price(*msg[1:]))
    finally:
        conn.close()


class ProcessShard:
    """The same shard in a worker process (one persistent HiGHS model per worker)."""

    def __init__(self, site, evs, index):
        ctx = _mp_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_shard_main, args=(child, site, evs, index), daemon=True)
        self.proc.start()
        child.close()

    def send(self, y, sigma, tol):
        self.conn.send(("price", y, sigma, tol))

    def recv(self, timeout_s: float = 600.0):
        if not self.conn.poll(timeout_s):
            raise InfeasibleSchedule([f"pricing worker gave no answer within {timeout_s} s"], where="fleet shard")
        return self.conn.recv()

    def close(self):
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def _sample_prices(site: Site, evs: list[EVRequest], n: int) -> np.ndarray | None:
    """Coordination prices from the exact LP of a random sample with the site scaled to it.

    With many similar EVs the sample's duals are close to the fleet's, so the first columns priced with them
    are already near-optimal and the exact Dantzig-Wolfe iterations that follow are fewer. Only a warm start:
    exactness comes from the DW loop."""
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(evs), n, replace=False))
    k = n / len(evs)
    sub = Site(import_price=site.import_price, export_price=site.export_price, dt_s=site.dt_s,
               load_kw=None if site.load_kw is None else site.load_kw * k,
               import_limit_kw=None if site.import_limit_kw is None else site.import_limit_kw * k,
               export_limit_kw=None if site.export_limit_kw is None else site.export_limit_kw * k)
    sched = Scheduler()
    try:
        sched.plan(sub, [evs[j] for j in pick], metering="ev")
    except (InfeasibleSchedule, ScheduleInputError):
        return None
    rows = sched.last_row_dual
    return rows[n * site.n:n * site.n + site.n].copy() if rows.size >= (n + 1) * site.n else None


def plan_fleet_decomposed(site: Site, evs: list[EVRequest], *, workers: int = 1, max_iter: int = 300,
                          rel_gap: float = 1e-7, seed_sample: int = 300) -> FleetResult:
    """Dantzig-Wolfe price coordination for EVs (per-EV billing) sharing the site import/export limit.

    `seed_sample`: for fleets larger than twice this, the first columns are also priced with the duals of an
    exact LP over a random sample of this many EVs (0 = off)."""
    t0 = time.perf_counter()
    _check_fleet(evs)
    if site.pv_kw is not None or site.demand_charge_per_kw > 0:
        raise ScheduleInputError("the decomposition bills each EV on its own: no PV curtailment or demand charge",
                                 where="plan_fleet_decomposed", fix="use plan_fleet_shared(metering='site')")
    curved = [e.name for e in evs if e.charge_curve or e.discharge_curve]
    if curved:
        raise ScheduleInputError(f"part-load curves are not supported by the decomposition ({curved[0]!r}...)",
                                 where="plan_fleet_decomposed", fix="use plan_fleet_shared for EVs with curves")
    from v2g_bench.scheduler.explain import precheck
    precheck(site, evs)
    T, N, h = site.n, len(evs), site.h
    base = site.base_kw()
    imp = site.import_limit_kw if site.import_limit_kw is not None else INF
    exp = site.export_limit_kw if site.export_limit_kw is not None else INF
    # master: rows 0..T-1 coupling (range), T..T+N-1 convexity (= 1); artificial columns for feasibility
    master = new_highs()
    # added columns keep the last basis primal feasible: primal simplex re-solves it warm
    master.setOptionValue("simplex_strategy", 4)
    master.setOptionValue("presolve", "off")
    # per kW and interval: dearer than any tariff gain from 1 kW in one interval, small enough to stay well scaled
    big = 10.0 * h * T * (float(np.abs(site.import_price).max()) + max(e.degradation_per_kwh for e in evs) + 0.01)
    lo_c = np.where(np.isfinite(-exp - base), -exp - base, -INF)
    hi_c = np.where(np.isfinite(imp - base), imp - base, INF)
    master.addRows(T, lo_c, hi_c, 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0))
    master.addRows(N, np.ones(N), np.ones(N), 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0))
    np.arange(T, dtype=np.int32)
    for sign in (1.0, -1.0):  # artificial over/under-shoot of the limit
        for t in range(T):
            master.addCol(big, 0.0, INF, 1, np.array([t], np.int32), np.array([-sign]))
    n_art = 2 * T
    columns: list[tuple[int, float, np.ndarray, np.ndarray]] = []

    def add_columns(cols):
        for j, cost, c, d in cols:
            net = c - d
            nz = np.flatnonzero(np.abs(net) > 1e-12)
            idx = np.concatenate([nz, [T + j]]).astype(np.int32)
            val = np.concatenate([net[nz], [1.0]])
            master.addCol(cost, 0.0, INF, len(idx), idx, val)
            columns.append((j, cost, c, d))

    # shards
    order = np.arange(N)
    splits = np.array_split(order, max(1, workers))
    if workers > 1:
        shards = [ProcessShard(site, [evs[i] for i in s], list(s)) for s in splits]
    else:
        shards = [LocalShard(site, evs, list(order))]

    def price_all(y, sigma, tol):
        if workers > 1:
            for s in shards:
                s.send(y, sigma, tol)
            answers = [s.recv() for s in shards]
        else:
            answers = [s.price(y, sigma, tol) for s in shards]
        cols, rc = [], 0.0
        for a, r in answers:
            if a is None:
                raise InfeasibleSchedule([f"EV {evs[r].name!r} has no feasible plan on its own"], where="fleet")
            cols += a
            rc += r
        return cols, rc

    try:
        # initial columns: every EV's own optimum (zero coordination price)
        cols, _ = price_all(np.zeros(T), np.full(N, INF), -INF)
        add_columns(cols)
        seeded = seed_sample and N > 2 * seed_sample and (site.import_limit_kw is not None
                                                          or site.export_limit_kw is not None)
        y_seed = _sample_prices(site, evs, seed_sample) if seeded else None
        if y_seed is not None and np.any(y_seed != 0):
            cols, _ = price_all(y_seed, np.full(N, INF), -INF)
            add_columns(cols)
        it, lb, ub = 0, -INF, INF
        t_master = t_price = 0.0
        for it in range(1, max_iter + 1):
            tm = time.perf_counter()
            master.run()
            t_master += time.perf_counter() - tm
            sol = master.getSolution()
            ub = master.getInfo().objective_function_value
            y = np.asarray(sol.row_dual[:T])
            sigma = np.asarray(sol.row_dual[T:])
            tol = 1e-9 * max(1.0, abs(ub))
            tm = time.perf_counter()
            cols, rc = price_all(y, sigma, tol)
            t_price += time.perf_counter() - tm
            lb = max(lb, ub + rc)
            if not cols or ub - lb <= rel_gap * max(1.0, abs(ub)):
                break
            add_columns(cols)
        x = np.asarray(master.getSolution().col_value)
        art = x[:n_art]
        if art.max(initial=0.0) > 1e-6:
            from v2g_bench.scheduler.explain import explain_infeasible
            raise explain_infeasible(Scheduler(), site, evs, "ev")
        C = np.zeros((N, T))
        D = np.zeros((N, T))
        cost = np.zeros(N)
        for w, (j, cst, c, d) in zip(x[n_art:], columns):
            if w > 1e-12:
                C[j] += w * c
                D[j] += w * d
                cost[j] += w * cst
        notes = [f"master {t_master:.2f} s, pricing {t_price:.2f} s over {it} iterations"]
        both = np.flatnonzero(((C > SIMULTANEOUS_TOL_KW) & (D > SIMULTANEOUS_TOL_KW)).any(axis=1))
        unresolved = 0
        for j in both:
            # a convex combination of plans can mix charging and discharging: net it; the net power (and so
            # the coupling) is unchanged and fewer losses only raise the SOC, so only the capacity can break
            net = C[j] - D[j]
            c2, d2 = np.clip(net, 0, None), np.clip(-net, 0, None)
            soc = _soc(evs[j], c2, d2, h)
            if soc.max() <= evs[j].capacity_kwh + 1e-9:
                ev = evs[j]
                cost[j] = float(h * (np.dot(site.import_price, c2) - np.dot(site.export_price, d2))
                                + h * ev.degradation_per_kwh * np.sum(ev.eta_charge * c2 + d2 / ev.eta_discharge))
                C[j], D[j] = c2, d2
            else:
                unresolved += 1
        if both.size:
            notes.append(f"{both.size} EV(s) mixed charge/discharge columns; netted {both.size - unresolved}, "
                         f"{unresolved} unresolved")
        S = np.array([_soc(evs[j], C[j], D[j], h) for j in range(N)])
        return FleetResult([e.name for e in evs], C - D, S, cost, site.dt_s,
                           f"dantzig-wolfe ({workers} shard(s))", time.perf_counter() - t0, notes,
                           gap=float(ub - lb), iterations=it)
    finally:
        for s in shards:
            s.close()
