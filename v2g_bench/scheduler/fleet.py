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

import functools
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from v2g_bench.errors import BenchError
from v2g_bench.scheduler.lp import (INF, SIMULTANEOUS_TOL_KW, Scheduler, _build, _CachedModel, _highs_from, _layout,
                                    new_highs)
from v2g_bench.scheduler.model import EVRequest, InfeasibleSchedule, ScheduleInputError, Site, interval_window
from v2g_bench.scheduler.vector import VectorShard


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
    master_s: float = 0.0       # decomposition: time in the master LP
    pricing_s: float = 0.0      # decomposition: time in the per-EV pricing

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

class PlanWorkerLost(BenchError):
    """A pricing worker (process or cluster node) died or stopped answering mid-plan: no partial plan is
    returned."""


@dataclass(frozen=True)
class FeederLimit:
    """A limit on a subset of the fleet (a feeder, a transformer, a building), below the site's.

    `members`: EV names; nested feeders name their `parent` (None = directly under the site). Limits in kW
    apply to `load_kw` (that feeder's other load, optional) plus the members' net power."""

    name: str
    members: tuple[str, ...]
    import_limit_kw: float | None = None
    export_limit_kw: float | None = None
    load_kw: np.ndarray | None = None
    parent: str | None = None


def _limit_tree(site: Site, evs: list[EVRequest], feeders):
    """-> (lo (nodes, T), hi (nodes, T), path per leaf node (tuple of node ids, root 0 first), leaf of each EV).

    Node 0 is the site. Feeders must nest (a child's members inside its parent's)."""
    T = site.n
    base = site.base_kw()
    imp = site.import_limit_kw if site.import_limit_kw is not None else INF
    exp = site.export_limit_kw if site.export_limit_kw is not None else INF
    lo = [np.where(np.isfinite(-exp - base), -exp - base, -INF)]
    hi = [np.where(np.isfinite(imp - base), imp - base, INF)]
    names = {e.name: j for j, e in enumerate(evs)}
    node_of = {None: 0}
    members = {0: set(range(len(evs)))}
    parents = [None]
    for f in feeders or ():
        if f.name in node_of:
            raise ScheduleInputError(f"feeder {f.name!r} is defined twice", where="feeders")
        if f.parent not in node_of:
            raise ScheduleInputError(f"feeder {f.name!r}: parent {f.parent!r} is not defined before it",
                                     where="feeders", fix="list parents before their children")
        unknown = [m for m in f.members if m not in names]
        if unknown:
            raise ScheduleInputError(f"feeder {f.name!r}: unknown EV(s) {unknown[:3]}", where="feeders")
        mine = {names[m] for m in f.members}
        p = node_of[f.parent]
        if not mine <= members[p]:
            raise ScheduleInputError(f"feeder {f.name!r} has EVs outside its parent {f.parent or 'site'!r}",
                                     where="feeders", fix="feeders must nest: a child's EVs inside its parent's")
        for other, m in members.items():   # siblings must not overlap
            if other != p and parents[other] == p and m & mine:
                raise ScheduleInputError(f"feeder {f.name!r} overlaps a sibling feeder", where="feeders")
        fl = np.zeros(T) if f.load_kw is None else np.asarray(f.load_kw, float)
        if fl.shape != (T,) or not np.all(np.isfinite(fl)):
            raise ScheduleInputError(f"feeder {f.name!r}: load_kw must be {T} finite values", where="feeders")
        fi = INF if f.import_limit_kw is None else float(f.import_limit_kw)
        fe = INF if f.export_limit_kw is None else float(f.export_limit_kw)
        if not fi >= 0 or not fe >= 0:
            raise ScheduleInputError(f"feeder {f.name!r}: limits must be >= 0 kW", where="feeders")
        lo.append(np.where(np.isfinite(fe), -fe - fl, -INF))
        hi.append(np.where(np.isfinite(fi), fi - fl, INF))
        node_of[f.name] = len(parents)
        members[len(parents)] = mine
        parents.append(p)
    leaf = np.zeros(len(evs), np.int32)
    depth = {0: 0}
    for n in range(1, len(parents)):
        depth[n] = depth[parents[n]] + 1
    for n in sorted(members, key=lambda n: depth[n]):   # deepest feeder wins
        leaf[list(members[n])] = n
    paths = {}
    for n in range(len(parents)):
        path, m = [], n
        while m is not None:
            path.append(m)
            m = parents[m]
        paths[n] = tuple(reversed(path))
    return np.array(lo), np.array(hi), paths, leaf


class LocalShard:
    """Prices a subset of the fleet in this process and keeps every distinct plan of its EVs.

    The master only sees *block* sums (a block = a group of EVs with one convexity row): message in
    (column id, prices per limit-tree leaf, convexity duals per block), message out (per block: tariff cost,
    net power, reduced cost). At the end `recover(weights)` mixes each EV's own plans with its block's weights.
    """

    def __init__(self, site: Site, evs: list[EVRequest], index: list[int], groups=None, leaf_of_group=None):
        # similar EVs back to back: the previous EV's basis is then a better warm start
        order = sorted(range(len(evs)), key=lambda k: (evs[k].arrival_s, evs[k].departure_s))
        self.site, self.evs = site, [evs[k] for k in order]
        self.index = np.array([index[k] for k in order], dtype=np.int64)
        g = np.asarray(groups if groups is not None else index, dtype=np.int64)[order]
        self.group_ids, self.gpos = np.unique(g, return_inverse=True)
        self.leaf = (np.zeros(len(self.group_ids), np.int64) if leaf_of_group is None
                     else np.asarray(leaf_of_group)[self.group_ids])
        self.solver = FastEVSolver(site)
        self.bases: dict[int, object] = {}
        self.plans: list[list[tuple]] = [[] for _ in self.evs]   # distinct (charge, discharge, cost) per EV
        self.choice: dict[int, np.ndarray] = {}                  # column id -> index into plans, per EV

    def price(self, k: int, leaf_prices: np.ndarray, sigma: np.ndarray, tol: float = 0.0):
        T = self.site.n
        leaf_prices = np.atleast_2d(np.asarray(leaf_prices, float))
        G = len(self.group_ids)
        cost, net = np.zeros(G), np.zeros((G, T))
        choice = np.empty(len(self.evs), np.int32)
        hs = self.solver.model.highs
        for pos, ev in enumerate(self.evs):
            gp = self.gpos[pos]
            y = leaf_prices[self.leaf[gp]]
            # each EV restarts from its own last basis: between iterations only its prices moved a little
            if pos in self.bases:
                hs.setBasis(self.bases[pos])
            r = self.solver.solve(ev, extra_kw_cost=-y if y.any() else None)
            self.bases[pos] = hs.getBasis()
            if r is None:
                return None, int(self.index[pos])
            c, d, cst = r
            plans = self.plans[pos]
            for q in range(len(plans) - 1, -1, -1):   # an EV's answer often repeats: keep one copy
                c0, d0, _ = plans[q]
                if np.max(np.abs(c0 - c)) <= 1e-10 and np.max(np.abs(d0 - d)) <= 1e-10:
                    break
            else:
                q = len(plans)
                plans.append((c.copy(), d.copy(), cst))
            choice[pos] = q
            c0, d0, cst0 = plans[q]
            net[gp] += c0 - d0
            cost[gp] += cst0
        self.choice[k] = choice
        rc = cost - np.einsum("gt,gt->g", net, leaf_prices[self.leaf]) - np.asarray(sigma)[self.group_ids]
        return self.group_ids, cost, net, rc

    def recover(self, weights: dict[int, np.ndarray]):
        """weights: column id -> weight per block (all blocks). -> (EV indices, charge, discharge, cost)."""
        T = self.site.n
        n = len(self.evs)
        C, D, cost = np.zeros((n, T)), np.zeros((n, T)), np.zeros(n)
        for k, w in weights.items():
            wk = np.asarray(w)[self.group_ids][self.gpos]
            ch = self.choice[k]
            for pos in np.flatnonzero(wk > 1e-12):
                c, d, cst = self.plans[pos][ch[pos]]
                C[pos] += wk[pos] * c
                D[pos] += wk[pos] * d
                cost[pos] += wk[pos] * cst
        return self.index, C, D, cost

    def close(self):
        pass


def _shard_main(conn, site, evs, index, groups, leaf_of_group, shard_cls=None):
    shard = (shard_cls or LocalShard)(site, evs, index, groups, leaf_of_group)
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                break
            conn.send(getattr(shard, msg[0])(*msg[1:]))
    finally:
        conn.close()


class ProcessShard:
    """The same shard in a worker process (one persistent HiGHS model per worker)."""

    def __init__(self, site, evs, index, groups=None, leaf_of_group=None, shard_cls=None):
        ctx = _mp_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_shard_main, args=(child, site, evs, index, groups, leaf_of_group, shard_cls),
                                daemon=True)
        self.proc.start()
        child.close()

    def send(self, *msg):
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError) as e:
            raise PlanWorkerLost(f"pricing worker pid {self.proc.pid} is gone ({e})", where="fleet shard",
                                 fix="re-run the plan; see the worker's log for why it died") from e

    def recv(self, timeout_s: float = 600.0):
        try:
            if self.conn.poll(timeout_s):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            raise PlanWorkerLost(f"pricing worker pid {self.proc.pid} gave no answer within {timeout_s} s",
                                 where="fleet shard")
        raise PlanWorkerLost(f"pricing worker pid {self.proc.pid} died mid-plan (exit code {self.proc.exitcode})",
                             where="fleet shard", fix="re-run the plan; see the worker's log for why it died")

    def close(self):
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class ShardSet:
    """The pricing step as a map over shards: in this process (workers <= 1) or one process per shard.

    Another engine (see `distributed.py`) implements the same three calls: price, recover, close."""

    def __init__(self, site, evs, groups, leaf_of_group, workers: int, shard_cls=None):
        G = int(groups.max()) + 1
        blocks = np.array_split(np.arange(G), max(1, min(workers, G)))
        self.parts = []
        for b in blocks:
            idx = np.flatnonzero((groups >= b[0]) & (groups <= b[-1])) if b.size else np.zeros(0, int)
            self.parts.append(([evs[i] for i in idx], list(idx), groups[idx]))
        shard_cls = shard_cls or LocalShard
        if workers > 1:
            self.shards = [ProcessShard(site, e, i, g, leaf_of_group, shard_cls) for e, i, g in self.parts]
        else:
            self.shards = [shard_cls(site, e, i, g, leaf_of_group) for e, i, g in self.parts]
        self.remote = workers > 1

    def _map(self, *msg):
        if self.remote:
            for s in self.shards:
                s.send(*msg)
            return [s.recv() for s in self.shards]
        return [getattr(s, msg[0])(*msg[1:]) for s in self.shards]

    def price(self, k, leaf_prices, sigma):
        return self._map("price", k, leaf_prices, sigma)

    def recover(self, weights):
        return self._map("recover", weights)

    def cpu_s(self) -> list[float]:
        """CPU seconds each shard has used so far (what the pricing would take on an idle machine)."""
        if not self.remote:
            return [time.process_time()]
        out = []
        for s in self.shards:
            try:
                f = open(f"/proc/{s.proc.pid}/stat").read().rsplit(")", 1)[1].split()
                out.append((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))
            except (OSError, IndexError, ValueError):
                out.append(float("nan"))
        return out

    def close(self):
        for s in self.shards:
            s.close()


def _tree_lp(site: Site, evs: list[EVRequest], pick: np.ndarray, in_node: np.ndarray, lo_rows: np.ndarray,
             hi_rows: np.ndarray, share: np.ndarray):
    """The exact LP of EVs `pick` under every tree node's row (node m's headroom x share[m]), per-EV billing.
    -> (HiGHS after run, layout, number of EV rows before the tree's rows)."""
    T = site.n
    sub = Site(import_price=site.import_price, export_price=site.export_price, dt_s=site.dt_s)
    sample = [evs[j] for j in pick]
    L = _layout(sub, len(sample), "ev", elastic=False)
    cost, lo, hi, A, rlo, rhi, _, _ = _build(L, sub, sample)
    # one row per (node, interval): the members' net power within the node's headroom
    rows, cols, vals = [], [], []
    tt = np.arange(T)
    for m in range(lo_rows.shape[0]):
        for i in np.flatnonzero(in_node[m, pick]):
            rows += [m * T + tt, m * T + tt]
            cols += [L.c(int(i)) + tt, L.d(int(i)) + tt]
            vals += [np.ones(T), -np.ones(T)]
        rlo = np.concatenate([rlo, lo_rows[m] * share[m]])
        rhi = np.concatenate([rhi, hi_rows[m] * share[m]])
    B = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(lo_rows.shape[0] * T, A.shape[1]))
    AB = sp.vstack([A, B], format="csc")
    AB.sort_indices()
    h = _highs_from(cost, lo, hi, AB, rlo, rhi, None)
    h.run()
    return h, L, A.shape[0]


def _members(leaf: np.ndarray, paths: dict, n_nodes: int) -> np.ndarray:
    """(nodes, EVs) bool: EV j is below node m."""
    in_node = np.zeros((n_nodes, leaf.size), bool)
    for node in np.unique(leaf):
        in_node[np.ix_(list(paths[int(node)]), np.flatnonzero(leaf == node))] = True
    return in_node


def _sample_prices(site: Site, evs: list[EVRequest], n: int, lo_rows: np.ndarray, hi_rows: np.ndarray,
                   paths: dict, leaf: np.ndarray) -> np.ndarray | None:
    """Coordination prices (one per limit-tree row) from the exact LP of a sample with every limit scaled to it.

    With many similar EVs the sample's duals are close to the fleet's, so the first columns priced with them
    are already near-optimal and the exact Dantzig-Wolfe iterations that follow are fewer (1,000 EVs under 10
    feeders: 47 -> 38 rounds, 45 -> 23 s; docs/scheduler.md). The sample is drawn per leaf in proportion to
    its EVs, and each node's headroom (its limit minus its other load) is scaled by the share of its EVs
    sampled. Only a warm start: exactness comes from the DW loop; None when the scaled sample is infeasible."""
    rng = np.random.default_rng(0)
    N = len(evs)
    nodes = np.unique(leaf)
    if len(nodes) == 1:
        pick = np.sort(rng.choice(N, n, replace=False))
    else:
        parts = []
        for node in nodes:
            idx = np.flatnonzero(leaf == node)
            parts.append(rng.choice(idx, max(1, round(n * idx.size / N)), replace=False))
        pick = np.sort(np.concatenate(parts))
    in_node = _members(leaf, paths, lo_rows.shape[0])
    share = in_node[:, pick].sum(axis=1) / np.maximum(1, in_node.sum(axis=1))
    h, _, n_ev_rows = _tree_lp(site, evs, pick, in_node, lo_rows, hi_rows, share)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().row_dual)[n_ev_rows:].copy()


def plan_fleet_tree_lp(site: Site, evs: list[EVRequest], feeders: list[FeederLimit] | None = None) -> FleetResult:
    """Exact: one LP over all EVs under the site limit and a feeder tree (per-EV billing), the reference the
    decomposition is measured against (`benchmarks.scheduler_scale exact --feeders`). Its optimum may charge
    and discharge one EV at once where prices make losses pay; the cost is the LP's, as the decomposition's."""
    t0 = time.perf_counter()
    _check_fleet(evs)
    lo_rows, hi_rows, paths, leaf = _limit_tree(site, evs, feeders)
    in_node = _members(leaf, paths, lo_rows.shape[0])
    h, L, _ = _tree_lp(site, evs, np.arange(len(evs)), in_node, lo_rows, hi_rows, np.ones(lo_rows.shape[0]))
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise InfeasibleSchedule([f"the tree LP ended {h.modelStatusToString(h.getModelStatus())}"],
                                 where="plan_fleet_tree_lp")
    x = np.asarray(h.getSolution().col_value)
    T, hh = site.n, site.h
    C = np.array([np.clip(x[L.c(i):L.c(i) + T], 0, None) for i in range(len(evs))])
    D = np.array([np.clip(x[L.d(i):L.d(i) + T], 0, None) for i in range(len(evs))])
    cost = np.array([hh * (site.import_price @ C[i] - site.export_price @ D[i])
                     + hh * e.degradation_per_kwh * np.sum(e.eta_charge * C[i] + D[i] / e.eta_discharge)
                     for i, e in enumerate(evs)])
    S = np.array([_soc(evs[i], C[i], D[i], hh) for i in range(len(evs))])
    return FleetResult([e.name for e in evs], C - D, S, cost, site.dt_s, "tree LP (one HiGHS model)",
                       time.perf_counter() - t0)


def _purge_columns(master, columns: list, dual: np.ndarray, n_art: int, k: int, tol: float) -> int:
    """Delete the master's non-basic columns that price out positive (`dual`: the reduced costs of the first
    len(dual) columns at the last solve) and were added before round k - 2."""
    n = len(dual)
    basic = np.asarray([s == highspy.HighsBasisStatus.kBasic for s in master.getBasis().col_status[n_art:n_art + n]])
    born = np.fromiter((kk for _, kk in columns[:n]), np.int64, n)
    drop = np.flatnonzero(~basic & (dual > tol) & (born < k - 2))
    if drop.size:
        master.deleteCols(int(drop.size), (drop + n_art).astype(np.int32))
        keep = np.ones(len(columns), bool)
        keep[drop] = False
        columns[:] = [c for c, kp in zip(columns, keep) if kp]
    return int(drop.size)


def default_block_size(n_evs: int) -> int:
    """EVs per master block. One block per EV (classic Dantzig-Wolfe) converges in the fewest rounds, but
    the master then has one convexity row per EV and each simplex pivot prices every column, so its cost
    grows ~N^2; blocks of similar EVs keep the master at ~500 rows for a few more rounds (docs/scheduler.md)."""
    return max(1, n_evs // 500)


def _blocks(evs: list[EVRequest], leaf: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Block id per EV (blocks never span two limit-tree leaves) and the leaf of each block."""
    groups = np.empty(len(evs), np.int64)
    leaf_of_group = []
    for node in np.unique(leaf):
        idx = np.flatnonzero(leaf == node)
        # similar plug-in windows share a block: their plans move together with the prices
        idx = idx[np.argsort([evs[i].arrival_s * 1e6 + evs[i].departure_s for i in idx], kind="stable")]
        for chunk in np.array_split(idx, max(1, -(-len(idx) // block_size))):
            groups[chunk] = len(leaf_of_group)
            leaf_of_group.append(node)
    return groups, np.array(leaf_of_group, np.int64)


def plan_fleet_decomposed(site: Site, evs: list[EVRequest], *, workers: int = 1, max_iter: int = 300,
                          rel_gap: float = 1e-7, seed_sample: int = 300, block_size: int | None = None,
                          feeders: list[FeederLimit] | None = None, pricing=None,
                          smoothing: float | None = None, pricing_engine: str = "dp",
                          purge: float = 8.0) -> FleetResult:
    """Dantzig-Wolfe price coordination for EVs (per-EV billing) sharing the site import/export limit and,
    optionally, a tree of feeder limits below it.

    `block_size`: EVs per master block (default `default_block_size`; 1 = one convexity row per EV).
    `seed_sample`: for fleets larger than twice this, the first columns are also priced with the duals of an
    exact LP over a random sample of this many EVs (0 = off). `pricing(site, evs, groups, leaf_of_group)`
    returns the shard set to price on (default: `ShardSet` with `workers` processes; `distributed.py` gives a
    cluster's). `smoothing` (Wentges): price at smoothing * (the best dual point so far) + (1 - smoothing) *
    (the master's duals), which damps the duals' zig-zag (fewer rounds); 0 = classic, None = 0.5 with feeders,
    else 0. The result is exact to `rel_gap` (`FleetResult.gap` is the certified upper - lower bound).
    `pricing_engine`: "dp" prices all EVs
    of a shard at once with the exact vectorised DP of `vector.py` (numba), "highs" one HiGHS LP per EV
    (`FastEVSolver`, the reference); both give optimal columns, so the plan is exact either way. `purge`: when
    the master holds more than `purge` x (T + blocks) columns, columns out of the basis with a positive reduced
    cost that are older than two rounds are deleted (each primal simplex pivot prices every column; 0 = keep
    all). T + blocks, not the master's rows: a feeder tree adds T rows per feeder but few of them bind, and
    keeping 8 x 1,556 columns at 10,000 EVs + 10 feeders cost 2.2x the master time of keeping 8 x 596
    (docs/scheduler.md). A purged column can come back by pricing; the bound and the final gap do not depend
    on it."""
    if pricing_engine not in ("dp", "highs"):
        raise ScheduleInputError(f"pricing_engine must be 'dp' or 'highs', got {pricing_engine!r}",
                                 where="plan_fleet_decomposed")
    if smoothing is None:
        # measured at 10,000 EVs + 10 feeders: 0 -> 67 s (86 rounds), 0.3 -> 54 s, 0.5 -> 46.5 s (68 rounds); under
        # the site limit alone the duals zig-zag less and smoothing was no gain (docs/scheduler.md)
        smoothing = 0.5 if feeders else 0.0
    if not 0.0 <= smoothing < 1.0:
        raise ScheduleInputError(f"smoothing must be in [0, 1), got {smoothing}", where="plan_fleet_decomposed")
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
    lo_rows, hi_rows, paths, leaf = _limit_tree(site, evs, feeders)
    n_nodes = lo_rows.shape[0]
    groups, leaf_of_group = _blocks(evs, leaf, block_size or default_block_size(N))
    G = len(leaf_of_group)
    # master: rows node*T + t coupling (ranges), n_nodes*T + g convexity (= 1); artificial columns for feasibility
    master = new_highs()
    # added columns keep the last basis primal feasible: primal simplex re-solves it warm
    master.setOptionValue("simplex_strategy", 4)
    master.setOptionValue("presolve", "off")
    # per kW and interval: dearer than any tariff gain from 1 kW in one interval, small enough to stay well scaled
    big = 10.0 * h * T * (float(np.abs(site.import_price).max()) + max(e.degradation_per_kwh for e in evs) + 0.01)
    R = n_nodes * T
    # A feeder's limit is a bound on a flow column F (node, t) = what its blocks and child feeders draw, not a row
    # range on every block below it: row (node, t) is sum(its own blocks' columns) + sum(children's F) - F = 0,
    # the site's row keeps its range. A block's column then has entries on its own leaf's rows only (96 instead
    # of 192 per column under 10 feeders), and the dual of its leaf's row is the whole price it sees.
    parent = [paths[m][-2] if len(paths[m]) > 1 else -1 for m in range(n_nodes)]
    row_lo, row_hi = lo_rows.copy(), hi_rows.copy()
    row_lo[1:], row_hi[1:] = 0.0, 0.0
    master.addRows(R, row_lo.ravel(), row_hi.ravel(), 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0))
    master.addRows(G, np.ones(G), np.ones(G), 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0))
    n_art = 2 * R
    art_rows = np.concatenate([np.arange(R), np.arange(R)]).astype(np.int32)
    master.addCols(n_art, np.full(n_art, big), np.zeros(n_art), np.full(n_art, INF), n_art,
                   np.arange(n_art, dtype=np.int32), art_rows, np.concatenate([-np.ones(R), np.ones(R)]))
    n_flow = R - T
    if n_flow:
        tt = np.arange(T)
        f_rows = np.concatenate([np.stack([m * T + tt, parent[m] * T + tt], axis=1).ravel() for m in range(1, n_nodes)])
        master.addCols(n_flow, np.zeros(n_flow), lo_rows[1:].ravel(), hi_rows[1:].ravel(), 2 * n_flow,
                       np.arange(0, 2 * n_flow, 2, dtype=np.int32), f_rows.astype(np.int32),
                       np.tile([-1.0, 1.0], n_flow))
    n_fix = n_art + n_flow                # the blocks' columns start here
    columns: list[tuple[int, int]] = []   # master column -> (block, column id)

    def add_columns(k, answers, tol):
        costs, starts, idx, val = [], [], [], []
        nnz = 0
        for a in answers:
            gids, cost, net, rc = a
            for q in np.flatnonzero(rc < -tol) if tol is not None else range(len(gids)):
                g = int(gids[q])
                nz = np.flatnonzero(np.abs(net[q]) > 1e-12)
                r = np.concatenate([int(leaf_of_group[g]) * T + nz, [R + g]]).astype(np.int32)
                v = np.concatenate([net[q][nz], [1.0]])
                starts.append(nnz)
                nnz += r.size
                idx.append(r)
                val.append(v)
                costs.append(cost[q])
                columns.append((g, k))
        if costs:
            m = len(costs)
            master.addCols(m, np.array(costs), np.zeros(m), np.full(m, INF), nnz, np.array(starts, np.int32),
                           np.concatenate(idx), np.concatenate(val))
        return len(costs)

    def leaf_prices(y_rows):
        y = y_rows.reshape(n_nodes, T)
        return np.array([y[list(paths[n])].sum(axis=0) for n in range(n_nodes)])

    lo_flat, hi_flat = lo_rows.ravel(), hi_rows.ravel()

    def node_duals(pi_rows):
        """The flow rows' duals are the prices a node's blocks see (pi); the original rows' duals y, whose sums
        along a path are those prices: y(node) = pi(node) - pi(parent)."""
        pi = pi_rows.reshape(n_nodes, T)
        y = pi.copy()
        for m in range(1, n_nodes):
            y[m] = pi[m] - pi[parent[m]]
        return y.ravel()

    def valid_sign(y_rows):
        # a dual may only push against a finite bound: the Lagrangian bound is then valid for any such y
        y_rows = np.where(np.isfinite(lo_flat) | (y_rows <= 0), y_rows, 0.0)
        return np.where(np.isfinite(hi_flat) | (y_rows >= 0), y_rows, 0.0)

    def lagrangian(y_rows, answers, sigma):
        """L(y) = sum over blocks of min(cost - y.net) + y.(the bound each dual pushes on): a lower bound."""
        val = sum(float((a[3] + sigma[a[0]]).sum()) for a in answers)
        bound = np.where(y_rows < 0, hi_flat, lo_flat)
        return val + float(np.sum(np.where(y_rows != 0, y_rows * np.where(np.isfinite(bound), bound, 0.0), 0.0)))

    def reduced_costs(answers, y_rows, sigma):
        """The answers' blocks priced against the master's own duals (they were priced at smoothed ones)."""
        Y = leaf_prices(y_rows)
        return [(g, c, net, c - np.einsum("gt,gt->g", net, Y[leaf_of_group[g]]) - sigma[g]) for g, c, net, _ in answers]

    def price(k, y_rows, sigma):
        answers = shards.price(k, leaf_prices(y_rows), sigma)
        for a in answers:
            if a[0] is None:
                raise InfeasibleSchedule([f"EV {evs[a[1]].name!r} has no feasible plan on its own"], where="fleet")
        return answers

    if pricing is None and pricing_engine == "dp":
        # the compiled DP releases the GIL: one in-process shard on `workers` threads (nothing to pickle per round)
        def pricing(*a):
            return ShardSet(*a, workers=1, shard_cls=functools.partial(VectorShard, threads=workers))
    t_setup = time.perf_counter()
    shards = (pricing or (lambda *a: ShardSet(*a, workers=workers, shard_cls=LocalShard)))(site, evs, groups,
                                                                                          leaf_of_group)
    t_setup = time.perf_counter() - t_setup
    try:
        t_start = time.perf_counter()
        # initial columns: every EV's own optimum (zero coordination price)
        k = 0
        add_columns(k, price(k, np.zeros(R), np.zeros(G)), None)
        coupled = bool(np.isfinite(lo_rows).any() or np.isfinite(hi_rows).any())
        seeded = seed_sample and N > 2 * seed_sample and coupled
        t_seed = time.perf_counter()
        y_seed = _sample_prices(site, evs, seed_sample, lo_rows, hi_rows, paths, leaf) if seeded else None
        t_seed = time.perf_counter() - t_seed
        if y_seed is not None and np.any(y_seed != 0):
            k += 1
            add_columns(k, price(k, y_seed, np.zeros(G)), None)
        t_start = time.perf_counter() - t_start - t_seed
        it, lb, ub, purged = 0, -INF, INF, 0
        y_center, mispriced = None, False
        t_master = t_price = cpu_master = 0.0
        cpu0 = shards.cpu_s() if hasattr(shards, "cpu_s") else None
        for it in range(1, max_iter + 1):
            tm, cm = time.perf_counter(), time.process_time()
            master.run()
            t_master += time.perf_counter() - tm
            cpu_master += time.process_time() - cm
            if master.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                raise InfeasibleSchedule([f"the master LP ended {master.modelStatusToString(master.getModelStatus())}"],
                                         where="plan_fleet_decomposed")
            sol = master.getSolution()
            ub = master.getInfo().objective_function_value
            y = valid_sign(node_duals(np.asarray(sol.row_dual[:R])))
            sigma = np.asarray(sol.row_dual[R:])
            tol = 1e-9 * max(1.0, abs(ub))
            smoothed = smoothing > 0 and y_center is not None and not mispriced
            y_p = smoothing * y_center + (1 - smoothing) * y if smoothed else y
            tm = time.perf_counter()
            k += 1
            answers = price(k, y_p, sigma)
            t_price += time.perf_counter() - tm
            bound = lagrangian(y_p, answers, sigma)
            if bound > lb or y_center is None:
                lb, y_center = max(lb, bound), y_p
            if ub - lb <= rel_gap * max(1.0, abs(ub)):
                break
            n_old = len(columns)
            added = add_columns(k, reduced_costs(answers, y, sigma) if smoothed else answers, tol)
            if not added and not smoothed:
                break            # nothing prices out at the master's own duals: the master is optimal
            if purge and n_old > purge * (T + G):
                # only when the loop goes on: the solution read after it must match the column list
                purged += _purge_columns(master, columns, np.asarray(sol.col_dual)[n_fix:n_fix + n_old], n_fix, k, tol)
            mispriced = not added   # a smoothed point found nothing new: price at the master's duals next
        x = np.asarray(master.getSolution().col_value)
        if x[:n_art].max(initial=0.0) > 1e-6:
            from v2g_bench.scheduler.explain import explain_infeasible
            if feeders:
                raise InfeasibleSchedule(["the feeder limits cannot be met with every EV reaching its target"],
                                         where="plan_fleet_decomposed")
            raise explain_infeasible(Scheduler(), site, evs, "ev")
        weights: dict[int, np.ndarray] = {}
        for w, (g, kk) in zip(x[n_fix:], columns):
            if w > 1e-12:
                weights.setdefault(kk, np.zeros(G))[g] += w
        C, D, cost = np.zeros((N, T)), np.zeros((N, T)), np.zeros(N)
        t_recover = time.perf_counter()
        for index, c, d, cst in shards.recover(weights):
            C[index], D[index], cost[index] = c, d, cst
        t_recover = time.perf_counter() - t_recover
        cpu1 = shards.cpu_s() if cpu0 is not None else None
    finally:
        shards.close()
    notes = [f"master {t_master:.2f} s, pricing {t_price:.2f} s over {it} iterations, {G} block(s) of "
             f"~{N // G} EV(s), {len(columns)} columns",
             f"shard set-up {t_setup:.2f} s, first columns {t_start:.2f} s, seed sample LP {t_seed:.2f} s, "
             f"recovery {t_recover:.2f} s" + (f", {purged} master columns purged" if purged else "")]
    if cpu1 is not None and workers > 1:
        # on a shared machine wall time measures the other jobs too: CPU time is what the method costs
        notes.append(f"CPU: master {cpu_master:.1f} s, pricing shards "
                     + " + ".join(f"{b - a:.1f}" for a, b in zip(cpu0, cpu1)) + " s")
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
                       f"dantzig-wolfe ({getattr(shards, 'label', f'{workers} shard(s)')}, {G} blocks)",
                       time.perf_counter() - t0, notes, gap=float(ub - lb), iterations=it,
                       master_s=t_master, pricing_s=t_price)
