"""Exact per-EV pricing for a whole fleet at once, vectorised over the EVs with numpy.

The Dantzig-Wolfe pricing problem of one EV (per-EV billing, a coordination price per kW and interval added to
the tariff) is the same LP `FastEVSolver` gives HiGHS: charge c and discharge d in [0, max] inside the plug-in
window, cell energy e_t = e_{t-1} + eta_c*h*c_t - h*d_t/eta_d between max(floor, reserve) and the capacity,
and at least the target from the departure on. It is solved here exactly, like `reference.py`, by backward
dynamic programming over the cell energy with convex piecewise-linear value functions (no SOC grid): a step is
the infimal convolution of the next value function with the interval's two-piece move cost (merge two slopes
into the sorted slope list), then a clip to the SOC bounds. The arrays hold every EV's slope list as one row
(EVs x segments, zero-length segments compacted away), so one numpy operation advances all EVs by one
interval: 96 interval steps per round instead of 10,000 LP solves.

Primal plan without storing the value functions: when a move piece is merged into the slope list, where it lands
(the cell energy at which the piece starts being used) is all the forward pass needs; from the start SOC it
then reads how much of each piece the optimum takes, interval by interval. Ties between equal slopes are
alternative optima, so the plan may differ from HiGHS's on degenerate prices but the cost does not
(tests/unit/scheduler/test_scheduler_vector.py checks both against HiGHS with hypothesis).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from v2g_bench.scheduler.model import EVRequest, Site, interval_window

_TOL = 1e-9


class FleetArrays:
    """The per-EV numbers the pricing needs, as arrays (one entry per EV, in the order given)."""

    def __init__(self, site: Site, evs: list[EVRequest]):
        n, T = len(evs), site.n
        self.site, self.n, self.T, self.h = site, n, T, site.h
        self.eta_c = np.array([e.eta_charge for e in evs], float)
        self.eta_d = np.array([e.eta_discharge for e in evs], float)
        self.k = np.array([e.degradation_per_kwh for e in evs], float)
        self.c_max = np.array([e.max_charge_kw for e in evs], float)
        self.d_max = np.array([e.max_discharge_kw for e in evs], float)
        self.cap = np.array([e.capacity_kwh for e in evs], float)
        self.soc = np.array([e.soc_kwh for e in evs], float)
        self.lo = np.array([e.min_kwh for e in evs], float)
        self.lo_dep = np.array([max(e.min_kwh, e.target_kwh) for e in evs], float)
        win = np.array([interval_window(site, e) for e in evs], np.int64).reshape(n, 2)
        self.a, self.b = win[:, 0], win[:, 1]
        tt = np.arange(T)
        self.on = (tt[None, :] >= self.a[:, None]) & (tt[None, :] < self.b[:, None])       # (n, T)
        # cell kWh one interval can move in and out
        self.Lx = np.where(self.on, (self.eta_c * site.h * self.c_max)[:, None], 0.0)
        self.Ly = np.where(self.on, (site.h * self.d_max / self.eta_d)[:, None], 0.0)

    def subset(self, idx: np.ndarray) -> "FleetArrays":
        out = object.__new__(FleetArrays)
        out.site, out.n, out.T, out.h = self.site, len(idx), self.T, self.h
        for name in ("eta_c", "eta_d", "k", "c_max", "d_max", "cap", "soc", "lo", "lo_dep", "a", "b", "on", "Lx", "Ly"):
            setattr(out, name, getattr(self, name)[idx])
        return out


def solve_fleet(fa: FleetArrays, extra_kw_cost: np.ndarray | None = None, *, engine: str = "auto",
                threads: int = 1):
    """Every EV's optimal plan against the tariff plus `extra_kw_cost[i, t]` per kW of net charging.

    `engine`: "numba" (compiled per-EV loop), "numpy" (all EVs per numpy operation), "auto" (numba when it is
    installed); `threads` > 1 splits the EVs over that many threads (the compiled loop releases the GIL).
    -> (charge_kw (n, T), discharge_kw (n, T), tariff cost (n,) without the extra price,
    feasible (n,) bool).
    """
    site, n, T, h = fa.site, fa.n, fa.T, fa.h
    extra = np.zeros((n, T)) if extra_kw_cost is None else np.broadcast_to(np.asarray(extra_kw_cost, float), (n, T))
    p_imp = site.import_price[None, :] + extra / h       # per grid kWh
    p_exp = site.export_price[None, :] + extra / h
    # cost per cell kWh: charging a (in), discharging b (out); the move cost as a function of the energy taken
    # out of the cells u has the pieces "charge less" (slope -a, length Lx) and "discharge" (slope b, length Ly)
    s_u = -(p_imp / fa.eta_c[:, None] + fa.k[:, None])
    s_d = fa.k[:, None] - p_exp * fa.eta_d[:, None]
    if engine == "auto":
        engine = "numba" if _numba_kernel() is not None else "numpy"
    if engine == "numba":
        kernel = _numba_kernel()
        if kernel is None:
            raise ImportError("engine='numba' needs numba installed (pip install numba)")
        X, Y = np.zeros((n, T)), np.zeros((n, T))
        feasible = np.ones(n, np.bool_)
        args = (np.ascontiguousarray(s_u), np.ascontiguousarray(s_d), np.ascontiguousarray(fa.Lx),
                np.ascontiguousarray(fa.Ly), np.ascontiguousarray(fa.on), fa.b, fa.lo, fa.lo_dep, fa.cap, fa.soc,
                X, Y, feasible)
        parts = max(1, min(int(threads), n // 256))
        if parts == 1:
            kernel(*args)
        else:
            cuts = np.linspace(0, n, parts + 1).astype(int)
            with ThreadPoolExecutor(parts) as pool:
                for f in [pool.submit(kernel, *(a[lo:hi] for a in args)) for lo, hi in zip(cuts[:-1], cuts[1:])]:
                    f.result()
    elif engine == "numpy":
        X, Y, feasible = _dp_numpy(fa, s_u, s_d)
    else:
        raise ValueError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}")
    C = np.where(fa.on, np.minimum(X / (fa.eta_c[:, None] * h), fa.c_max[:, None]), 0.0)
    D = np.where(fa.on, np.minimum(Y * fa.eta_d[:, None] / h, fa.d_max[:, None]), 0.0)
    tariff = h * (C @ site.import_price - D @ site.export_price
                  + fa.k * (fa.eta_c * C.sum(axis=1) + D.sum(axis=1) / fa.eta_d))
    return C, D, tariff, feasible


def _dp_numpy(fa: FleetArrays, s_u: np.ndarray, s_d: np.ndarray):
    """The DP with all EVs advanced by one numpy operation per interval (slope lists as rows)."""
    n, T = fa.n, fa.T
    rows = np.arange(n)
    # V_T: 0 on [lo at index T, cap]
    x0 = np.where(fa.b <= T, fa.lo_dep, fa.lo).astype(float)
    S = np.zeros((n, 1))
    L = (fa.cap - x0)[:, None].copy()
    feasible = L[:, 0] >= -_TOL
    L = np.clip(L, 0.0, None)
    P_u, P_d = np.zeros((n, T)), np.zeros((n, T))
    for t in range(T - 1, -1, -1):
        act = fa.on[:, t]
        if act.any():
            su, sd, lx, ly = s_u[:, t], s_d[:, t], fa.Lx[:, t], fa.Ly[:, t]
            first_u = su <= sd
            s1, s2 = np.where(first_u, su, sd), np.where(first_u, sd, su)
            l1, l2 = np.where(first_u, lx, ly), np.where(first_u, ly, lx)
            below1, below2 = S < s1[:, None], S < s2[:, None]
            base = x0 - lx
            p1 = base + (L * below1).sum(axis=1)
            p2 = base + (L * below2).sum(axis=1) + l1
            P_u[:, t], P_d[:, t] = np.where(first_u, p1, p2), np.where(first_u, p2, p1)
            c1 = below1.sum(axis=1)
            c2 = below2.sum(axis=1) + 1
            K = S.shape[1]
            dest = np.arange(K)[None, :] + (~below1) + (~below2)
            S2, L2 = np.empty((n, K + 2)), np.empty((n, K + 2))
            np.put_along_axis(S2, dest, S, axis=1)
            np.put_along_axis(L2, dest, L, axis=1)
            S2[rows, c1], L2[rows, c1] = s1, l1
            S2[rows, c2], L2[rows, c2] = s2, l2
            S, L, x0 = S2, L2, base
        if t == 0:
            break
        # clip to the SOC bounds after interval t-1 (SOC index t)
        lo = np.where(t >= fa.b, fa.lo_dep, fa.lo)
        total = L.sum(axis=1)
        feasible &= (x0 <= fa.cap + _TOL) & (x0 + total >= lo - _TOL)
        cut = np.clip(lo - x0, 0.0, None)
        cum = np.cumsum(L, axis=1)
        L = np.clip(np.minimum(L, cum - cut[:, None]), 0.0, None)
        x0 = np.maximum(x0, lo)
        room = np.clip(fa.cap - x0, 0.0, None)
        cum = np.cumsum(L, axis=1)
        L = np.clip(np.minimum(L, room[:, None] - (cum - L)), 0.0, None)
        # compact: zero-length segments out (slope +inf keeps the rows sorted), width = the longest row
        nz = L > 0.0
        nnz = nz.sum(axis=1)
        width = max(1, int(nnz.max()))
        if width < S.shape[1] or not nz.all():
            pos = np.where(nz, np.cumsum(nz, axis=1) - 1, nnz[:, None] + np.cumsum(~nz, axis=1) - 1)
            S3, L3 = np.empty_like(S), np.empty_like(L)
            np.put_along_axis(S3, pos, np.where(nz, S, np.inf), axis=1)
            np.put_along_axis(L3, pos, L, axis=1)
            S, L = S3[:, :width], L3[:, :width]
    feasible &= (fa.soc >= x0 - 1e-6) & (fa.soc <= x0 + L.sum(axis=1) + 1e-6)
    # forward: from the start SOC, how much of each piece the optimum takes
    X, Y = np.zeros((n, T)), np.zeros((n, T))
    e = fa.soc.copy()
    for t in range(T):
        if not fa.on[:, t].any():
            continue
        lx, ly = fa.Lx[:, t], fa.Ly[:, t]
        x = lx - np.clip(e - P_u[:, t], 0.0, lx)       # charge given up from the full lx
        y = np.clip(e - P_d[:, t], 0.0, ly)            # discharged
        e = e + x - y
        X[:, t], Y[:, t] = x, y
    return X, Y, feasible


_KERNEL: list = []


def _numba_kernel():
    """The same DP compiled per EV with numba (None when numba is not installed); compiled once, cached on disk."""
    if not _KERNEL:
        try:
            import numba
        except ImportError:
            _KERNEL.append(None)
        else:
            _KERNEL.append(numba.njit(cache=True, nogil=True)(_dp_loop))
    return _KERNEL[0]


def _dp_loop(s_u, s_d, Lx, Ly, on, b, lo_min, lo_dep, cap, soc, X, Y, feasible):  # pragma: no cover - numba
    n, T = s_u.shape
    S = np.empty(2 * T + 2)
    L = np.empty(2 * T + 2)
    P_u = np.empty(T)
    P_d = np.empty(T)
    for i in range(n):
        x0 = lo_dep[i] if b[i] <= T else lo_min[i]
        S[0] = 0.0
        L[0] = cap[i] - x0
        m = 1
        if L[0] < -1e-9:
            feasible[i] = False
            continue
        if L[0] < 0.0:
            L[0] = 0.0
        ok = True
        for t in range(T - 1, -1, -1):
            if on[i, t]:
                lx = Lx[i, t]
                ly = Ly[i, t]
                x0 -= lx
                q1 = 0
                first_u = True
                for piece in range(2):
                    # "charge less" goes first on a tie (any order is optimal; this one is fixed)
                    if piece == 0:
                        first_u = s_u[i, t] <= s_d[i, t]
                        s = s_u[i, t] if first_u else s_d[i, t]
                        ln = lx if first_u else ly
                    else:
                        s = s_d[i, t] if first_u else s_u[i, t]
                        ln = ly if first_u else lx
                    q = 0
                    acc = x0
                    while q < m and (S[q] < s or (piece == 1 and q < m and S[q] == s and q <= q1)):
                        acc += L[q]
                        q += 1
                    if piece == 0:
                        q1 = q
                    if (piece == 0) == first_u:
                        P_u[t] = acc
                    else:
                        P_d[t] = acc
                    if ln > 0.0:
                        for j in range(m, q, -1):
                            S[j] = S[j - 1]
                            L[j] = L[j - 1]
                        S[q] = s
                        L[q] = ln
                        m += 1
            if t == 0:
                break
            lo = lo_dep[i] if t >= b[i] else lo_min[i]
            total = 0.0
            for j in range(m):
                total += L[j]
            if x0 > cap[i] + 1e-9 or x0 + total < lo - 1e-9:
                ok = False
                break
            if x0 < lo:                      # cut the cheapest end up to the lower bound
                cut = lo - x0
                j = 0
                while j < m and L[j] <= cut:
                    cut -= L[j]
                    j += 1
                if j < m:
                    L[j] -= cut
                k = 0
                for jj in range(j, m):
                    if L[jj] > 0.0:
                        S[k] = S[jj]
                        L[k] = L[jj]
                        k += 1
                m = k
                x0 = lo
            room = cap[i] - x0
            acc = 0.0
            for j in range(m):               # cut the dearest end down to the capacity
                if acc + L[j] >= room:
                    L[j] = room - acc
                    m = j + 1 if L[j] > 0.0 else j
                    break
                acc += L[j]
        if not ok:
            feasible[i] = False
            continue
        total = 0.0
        for j in range(m):
            total += L[j]
        if soc[i] < x0 - 1e-6 or soc[i] > x0 + total + 1e-6:
            feasible[i] = False
            continue
        e = soc[i]
        for t in range(T):
            if on[i, t]:
                lx = Lx[i, t]
                ly = Ly[i, t]
                ru = min(max(e - P_u[t], 0.0), lx)
                y = min(max(e - P_d[t], 0.0), ly)
                x = lx - ru
                e += x - y
                X[i, t] = x
                Y[i, t] = y


class VectorShard:
    """A Dantzig-Wolfe pricing shard (same calls as `fleet.LocalShard`) that prices all its EVs in one
    `solve_fleet` call instead of one HiGHS solve per EV.

    It keeps no plans: the DP is deterministic, so `recover` re-solves the rounds the master put weight on with
    the prices it kept (a few kB per round) for just the EVs concerned; 10,000 EVs x 40 rounds of plans would
    be ~600 MB."""

    def __init__(self, site: Site, evs: list[EVRequest], index: list[int], groups=None, leaf_of_group=None,
                 engine: str = "auto", threads: int = 1):
        g = np.asarray(groups if groups is not None else index, dtype=np.int64)
        order = np.argsort(g, kind="stable")          # blocks contiguous: sums per block by reduceat
        self.site, self.engine, self.threads = site, engine, threads
        self.index = np.asarray(index, dtype=np.int64)[order]
        self.group_ids, self.gpos = np.unique(g[order], return_inverse=True)
        self.starts = np.flatnonzero(np.r_[True, np.diff(self.gpos) != 0])
        self.leaf = (np.zeros(len(self.group_ids), np.int64) if leaf_of_group is None
                     else np.asarray(leaf_of_group)[self.group_ids])
        self.fa = FleetArrays(site, [evs[k] for k in order])
        self.prices: dict[int, np.ndarray] = {}

    def _extra(self, leaf_prices: np.ndarray, rows=None) -> np.ndarray | None:
        if not leaf_prices.any():
            return None
        lp = leaf_prices[self.leaf[self.gpos]]
        return -(lp if rows is None else lp[rows])

    def price(self, k: int, leaf_prices: np.ndarray, sigma: np.ndarray, tol: float = 0.0):
        leaf_prices = np.atleast_2d(np.asarray(leaf_prices, float))
        self.prices[k] = leaf_prices.copy()
        C, D, tariff, ok = solve_fleet(self.fa, self._extra(leaf_prices), engine=self.engine, threads=self.threads)
        if not ok.all():
            return None, int(self.index[np.flatnonzero(~ok)[0]])
        net = np.add.reduceat(C - D, self.starts, axis=0)
        cost = np.add.reduceat(tariff, self.starts)
        rc = cost - np.einsum("gt,gt->g", net, leaf_prices[self.leaf]) - np.asarray(sigma)[self.group_ids]
        return self.group_ids, cost, net, rc

    def recover(self, weights: dict[int, np.ndarray]):
        """weights: column id -> weight per block (all blocks). -> (EV indices, charge, discharge, cost)."""
        n, T = self.fa.n, self.fa.T
        C, D, cost = np.zeros((n, T)), np.zeros((n, T)), np.zeros(n)
        for k, w in weights.items():
            wk = np.asarray(w)[self.group_ids][self.gpos]
            rows = np.flatnonzero(wk > 1e-12)
            if rows.size == 0:
                continue
            c, d, tariff, ok = solve_fleet(self.fa.subset(rows), self._extra(self.prices[k], rows), engine=self.engine,
                                           threads=self.threads)
            C[rows] += wk[rows, None] * c
            D[rows] += wk[rows, None] * d
            cost[rows] += wk[rows] * tariff
        return self.index, C, D, cost

    def close(self):
        pass
