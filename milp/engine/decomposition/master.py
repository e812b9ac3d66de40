"""The master problem of the decomposition, on highspy: columns are whole job schedules.

Rows (Δ, h, notation of :mod:`milp.physics` and :mod:`milp.engine.compact`)
    conv[j]        Σ_{p ∈ P_j} λ_p = 1                          one schedule per job
    gpu[n,t]       Σ_p y_p[n,t]·λ_p ≤ GPUs_n                    GPUs held
    grid[n,t]      g[n,t] − Σ_p E_p[n,t]·λ_p ≥ idle_n·h − R_nt·h  grid energy (g ≥ 0, cost 1)
    link[a,b,t]    Σ_p (T_p/cap_bt)·λ_p + Σ_p busy_p·λ_p ≤ 1     queued and long moves (lazy)
    wan[n,t]       Σ_{links at n} r_ab·u[a,b,t] ≤ WAN_n          site WAN (lazy, capped sites)
    use[j,a,b,t]   u[a,b,t] − Σ_{p ∈ P_j} use_p(a,b,t)·λ_p ≥ 0    a link is in use (lazy)
    round[n,t]     g[n,t] − f_nt·Σ_p full_p[n,t]·λ_p ≥ −f_nt·q_nt  rounding cut (separated)
    jct            Σ_p JCT_p·λ_p ≤ J·H                              mean JCT bound (if any)
The rounding cut: the jobs that fill slot t at n are a whole number F, each drawing at least
c = min kW·h, so g ≥ max(0, c·F − r) with r = R·h − idle·h ≥ 0; for integer F its convex hull is
g ≥ f·(F − q), q = ⌊r/c⌋, f = c·(q+1) − r (the line through (q, 0) and (q+1, c·(q+1) − r)).
Columns: λ_p ∈ [0, 1] (binary in the integer phase), cost the job's own terms; g[n,t] ≥ 0 with
cost w_nt (the grid weights: 1 per kWh, or kg CO₂ per kWh); u ∈ [0, 1]; one artificial column
per job (conv only, cost :data:`ARTIFICIAL_KWH`) unless elastic.
Rows are the compact model's, so a schedule of chosen columns is a point of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from milp import physics
from milp.engine.decomposition.columns import Column
from milp.instance import Instance

INF = highspy.kHighsInf
#: Cost of the artificial column of a job (no schedule): far above any real schedule's.
ARTIFICIAL_KWH = 1e5


@dataclass
class Duals:
    """Row duals of the master (HiGHS's signs: ≤ rows ≤ 0, ≥ rows ≥ 0, minimisation)."""

    conv: np.ndarray            #: [j]
    gpu: np.ndarray             #: [n, t]
    grid: np.ndarray            #: [n, t] in [0, 1]
    link: np.ndarray            #: [a, b, t] (0 where no row)
    use: dict[int, dict[tuple[int, int, int], float]]   #: j -> (a, b, t) -> dual ≥ 0
    wan: dict[tuple[int, int], float]                    #: (n, t) -> dual ≤ 0
    full: np.ndarray | None = None                       #: [n, t] f × rounding-cut dual ≥ 0
    jct: float = 0.0                                     #: mean-JCT row dual ≤ 0

    def mix(self, other: "Duals", weight: float) -> "Duals":
        """weight × self + (1 − weight) × other (dual smoothing)."""
        w = weight

        def both(x: dict, y: dict) -> dict:
            return {k: w * x.get(k, 0.0) + (1 - w) * y.get(k, 0.0) for k in set(x) | set(y)}
        return Duals(w * self.conv + (1 - w) * other.conv, w * self.gpu + (1 - w) * other.gpu,
                     w * self.grid + (1 - w) * other.grid, w * self.link + (1 - w) * other.link,
                     {j: both(self.use.get(j, {}), other.use.get(j, {}))
                      for j in set(self.use) | set(other.use)}, both(self.wan, other.wan),
                     w * self.full + (1 - w) * other.full, w * self.jct + (1 - w) * other.jct)


class Master:
    """The restricted master LP/MIP over the columns added so far."""

    def __init__(self, inst: Instance, *, elastic: bool, threads: int | None = None,
                 seed: int = 0, weights: np.ndarray | None = None,
                 jct_budget_h: float | None = None) -> None:
        self.inst = inst
        self.elastic = elastic
        self.weights = np.ones((inst.n_sites, inst.n_slots)) if weights is None else weights
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("random_seed", int(seed))
        if threads:
            h.setOptionValue("threads", int(threads))
        # HiGHS keeps one thread scheduler per process, sized by the first solve: start a fresh
        # one so that this model's thread count holds (else its solves refuse to run)
        highspy.Highs.resetGlobalScheduler(True)
        self.h = h
        J, N, T = inst.n_jobs, inst.n_sites, inst.n_slots
        self.NT = N * T
        self.cap = physics.queue_cap_s(inst)
        self.rate = physics.link_rate_gbps(inst)
        # rows: conv[j], gpu[n,t], grid[n,t]
        idle = np.repeat(inst.idle_kw[:, None] * inst.slot_h, T, axis=1)
        grid_lo = (idle - inst.renewable_kw * inst.slot_h).ravel()
        lower = np.concatenate([np.ones(J), np.full(self.NT, -INF), grid_lo])
        upper = np.concatenate([np.ones(J), np.repeat(inst.gpus.astype(float), T), np.full(
            self.NT, INF)])
        h.addRows(len(lower), lower, upper, 0, np.zeros(0, np.int32), np.zeros(0, np.int32),
                  np.zeros(0))
        self.n_rows = len(lower)
        # columns: g[n,t] (cost 1) in grid rows; artificial columns per job
        grid_rows = J + self.NT + np.arange(self.NT)
        h.addCols(self.NT, self.weights.ravel().astype(float), np.zeros(self.NT),
                  np.full(self.NT, INF), self.NT, np.arange(self.NT, dtype=np.int32),
                  grid_rows.astype(np.int32), np.ones(self.NT))
        self.n_cols = self.NT
        self.artificial: list[int] = []
        if not elastic:
            h.addCols(J, np.full(J, ARTIFICIAL_KWH), np.zeros(J), np.ones(J), J,
                      np.arange(J, dtype=np.int32), np.arange(J, dtype=np.int32), np.ones(J))
            self.artificial = list(range(self.n_cols, self.n_cols + J))
            self.n_cols += J
        self.jct_row = None if jct_budget_h is None else self._row(-INF, float(jct_budget_h))
        self.jct_budget_h = jct_budget_h
        self.link_row: dict[tuple[int, int, int], int] = {}
        self.wan_row: dict[tuple[int, int], int] = {}
        self.use_row: dict[tuple[int, int, int, int], int] = {}
        self.u_col: dict[tuple[int, int, int], int] = {}
        self.cut_row: dict[tuple[int, int], int] = {}
        self.full_cols: dict[tuple[int, int], list[int]] = {}   #: (n, t) -> columns filling it
        kw_min = inst.compute_kw.min(axis=0) if inst.n_jobs else np.ones(N)
        self.c_min = kw_min[:, None] * inst.slot_h * np.ones((1, T))          # [n, t] kWh
        self.room = inst.renewable_kw * inst.slot_h - idle                    # [n, t] kWh
        q = np.floor(np.maximum(self.room, 0.0) / self.c_min + 1e-12)
        self.cut_q = q
        self.cut_f = self.c_min * (q + 1) - self.room
        self.columns: list[Column] = []
        self.col_of: list[int] = []             #: HiGHS column of each Column
        self.of_job: dict[int, list[int]] = {j: [] for j in range(J)}   #: indices into columns
        self.keys: set[tuple] = set()
        self.fixed: dict[int, int] = {}         #: job -> the column it is fixed to
        self.forbidden: set[int] = set()         #: columns kept out during a dive
        self.binding_sites = self._binding_sites()

    # ---- rows and helper columns created on first use -------------------------------------
    def _binding_sites(self) -> set[int]:
        """Capped sites whose links could together exceed their WAN."""
        inst = self.inst
        out = set()
        for n in np.flatnonzero(np.isfinite(inst.wan_gbps)).tolist():
            if self.rate[n].sum() + self.rate[:, n].sum() > inst.wan_gbps[n] + 1e-9:
                out.add(n)
        return out

    def _row(self, lower: float, upper: float) -> int:
        self.h.addRow(lower, upper, 0, np.zeros(0, np.int32), np.zeros(0))
        self.n_rows += 1
        return self.n_rows - 1

    def _link(self, key: tuple[int, int, int]) -> int:
        if key not in self.link_row:
            self.link_row[key] = self._row(-INF, 1.0)
        return self.link_row[key]

    def _u(self, key: tuple[int, int, int]) -> int:
        """u[a,b,t] (link in use), with its rate in the WAN rows of its capped ends."""
        if key not in self.u_col:
            a, b, t = key
            rows, vals = [], []
            for n in (a, b):
                if n in self.binding_sites:
                    if (n, t) not in self.wan_row:
                        self.wan_row[n, t] = self._row(-INF, float(self.inst.wan_gbps[n]))
                    rows.append(self.wan_row[n, t])
                    vals.append(float(self.rate[a, b]))
            self.h.addCol(0.0, 0.0, 1.0, len(rows), np.array(rows, np.int32), np.array(vals))
            self.u_col[key] = self.n_cols
            self.n_cols += 1
        return self.u_col[key]

    def _use(self, j: int, key: tuple[int, int, int]) -> int:
        if (j, *key) not in self.use_row:
            row = self._row(0.0, INF)
            self.h.changeCoeff(row, self._u(key), 1.0)
            self.use_row[j, *key] = row
        return self.use_row[j, *key]

    # ---- columns --------------------------------------------------------------------------
    def add(self, columns) -> int:
        """Add the columns not already there; return how many were added."""
        inst, T, J = self.inst, self.inst.n_slots, self.inst.n_jobs
        added = 0
        for col in columns:
            if col.key in self.keys:
                continue
            coef: dict[int, float] = {col.job: 1.0}
            for (n, t) in col.gpu:
                coef[J + n * T + t] = coef.get(J + n * T + t, 0.0) + 1.0
            for (n, t), e in col.energy.items():
                coef[J + self.NT + n * T + t] = coef.get(J + self.NT + n * T + t, 0.0) - e
            for (a, b, t), sec in col.link_s.items():
                row = self._link((a, b, t))
                coef[row] = coef.get(row, 0.0) + (sec / self.cap[b, t] if self.cap[b, t] > 0
                                                  else 0.0)
            for key in col.link_busy:
                if key[2] < T:
                    row = self._link(key)
                    coef[row] = coef.get(row, 0.0) + 1.0
            for key in col.links_in_use():
                if key[2] < T and (key[0] in self.binding_sites or key[1] in self.binding_sites):
                    row = self._use(col.job, key)
                    coef[row] = coef.get(row, 0.0) - 1.0
            if self.jct_row is not None:
                coef[self.jct_row] = col.jct_h
            for cell in col.full:
                self.full_cols.setdefault(cell, []).append(len(self.columns))
                if cell in self.cut_row:
                    coef[self.cut_row[cell]] = -float(self.cut_f[cell])
            rows = np.fromiter(coef, dtype=np.int32)
            vals = np.fromiter(coef.values(), dtype=float)
            lo, hi = (0.0, 0.0) if col.job in self.fixed else (0.0, 1.0)
            self.h.addCol(col.cost, lo, hi, len(rows), rows, vals)
            self.col_of.append(self.n_cols)
            self.n_cols += 1
            self.of_job[col.job].append(len(self.columns))
            self.columns.append(col)
            self.keys.add(col.key)
            added += 1
        return added

    def index_of(self, col: Column) -> int | None:
        """The pool index of a column with the same schedule, if pooled."""
        for k in self.of_job[col.job]:
            if self.columns[k].key == col.key:
                return k
        return None

    # ---- rounding cuts ---------------------------------------------------------------------
    def separate(self, tol: float = 1e-6) -> int:
        """Add the rounding cuts the current LP solution violates; return how many."""
        inst = self.inst
        values = np.asarray(self.h.getSolution().col_value)
        lam = values[self.col_of] if self.col_of else np.zeros(0)
        g = values[:self.NT].reshape(inst.n_sites, inst.n_slots)
        added = 0
        for cell, ks in self.full_cols.items():
            if cell in self.cut_row or self.room[cell] < 0:
                continue
            F = float(lam[ks].sum())
            if self.cut_f[cell] * (F - self.cut_q[cell]) - g[cell] > tol:
                n, t = cell
                f = float(self.cut_f[cell])
                idx = np.array([n * inst.n_slots + t] + [self.col_of[k] for k in ks], np.int32)
                vals = np.array([1.0] + [-f] * len(ks))
                self.h.addRow(-f * float(self.cut_q[cell]), INF, len(idx), idx, vals)
                self.cut_row[cell] = self.n_rows
                self.n_rows += 1
                added += 1
        return added

    # ---- fixing jobs to a column (diving) ------------------------------------------------
    def fix(self, fixes: dict[int, int]) -> None:
        """Fix each job j to its pooled column ``fixes[j]`` (the others of j at 0)."""
        for j, k in fixes.items():
            cols = self.of_job[j]
            idx = [self.col_of[c] for c in cols] + ([self.artificial[j]] if self.artificial else [])
            val = np.array([1.0 if c == k else 0.0 for c in cols]
                           + ([0.0] if self.artificial else []))
            self.h.changeColsBounds(len(idx), np.array(idx, np.int32), val, val)
            self.fixed[j] = k

    def unfix(self, jobs=None) -> None:
        """Free the given jobs (all, and every forbidden column, when None)."""
        if jobs is None:
            jobs = list(self.fixed)
            self.forbidden = set()
        jobs = [j for j in jobs if j in self.fixed]
        idx = [self.col_of[c] for j in jobs for c in self.of_job[j] if c not in self.forbidden]
        idx += [self.artificial[j] for j in jobs] if self.artificial else []
        if idx:
            self.h.changeColsBounds(len(idx), np.array(idx, np.int32), np.zeros(len(idx)),
                                    np.ones(len(idx)))
        for j in jobs:
            del self.fixed[j]
        if not self.fixed and self.forbidden == set():
            self._free_all()

    def _free_all(self) -> None:
        cols = [self.col_of[c] for c in range(len(self.columns))]
        if cols:
            self.h.changeColsBounds(len(cols), np.array(cols, np.int32), np.zeros(len(cols)),
                                    np.ones(len(cols)))

    def forbid(self, k: int) -> None:
        """Keep pooled column k out (until every job is freed)."""
        self.h.changeColBounds(self.col_of[k], 0.0, 0.0)
        self.forbidden.add(k)

    # ---- solving --------------------------------------------------------------------------
    def solve_lp(self, time_limit_s: float) -> tuple[str, float | None]:
        """Solve the LP relaxation (warm from the last basis); (status, objective)."""
        self.h.setOptionValue("time_limit", max(0.01, float(time_limit_s)))
        self.h.run()
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            return self.h.modelStatusToString(status), None
        return "optimal", float(self.h.getInfo().objective_function_value)

    def duals(self) -> Duals:
        inst = self.inst
        J, N, T = inst.n_jobs, inst.n_sites, inst.n_slots
        y = np.asarray(self.h.getSolution().row_dual)
        link = np.zeros((N, N, T))
        for (a, b, t), row in self.link_row.items():
            link[a, b, t] = y[row]
        use: dict[int, dict] = {}
        for (j, a, b, t), row in self.use_row.items():
            use.setdefault(j, {})[a, b, t] = float(y[row])
        full = np.zeros((N, T))
        for cell, row in self.cut_row.items():
            full[cell] = max(0.0, float(y[row])) * self.cut_f[cell]
        return Duals(conv=y[:J].copy(), gpu=y[J:J + self.NT].reshape(N, T).copy(),
                     grid=np.clip(y[J + self.NT:J + 2 * self.NT].reshape(N, T), 0.0,
                                  self.weights),
                     link=link, use=use,
                     wan={key: float(y[row]) for key, row in self.wan_row.items()}, full=full,
                     jct=min(0.0, float(y[self.jct_row])) if self.jct_row is not None else 0.0)

    def reduced_cost(self, col: Column, d: Duals) -> float:
        """The column's reduced cost at duals ``d``, from its coefficients in the rows (as
        :meth:`add` writes them): what pricing must reproduce."""
        inst = self.inst
        rc = col.cost - d.conv[col.job]
        rc -= sum(d.gpu[cell] for cell in col.gpu)
        rc += sum(d.grid[cell] * e for cell, e in col.energy.items())
        for (a, b, t), sec in col.link_s.items():
            rc -= d.link[a, b, t] * (sec / self.cap[b, t] if self.cap[b, t] > 0 else 0.0)
        rc -= sum(d.link[key] for key in col.link_busy if key[2] < inst.n_slots)
        use = d.use.get(col.job, {})
        rc += sum(use.get(key, 0.0) for key in col.links_in_use())
        rc += sum(d.full[cell] for cell in col.full) if d.full is not None else 0.0
        rc -= d.jct * col.jct_h if self.jct_row is not None else 0.0
        return float(rc)

    def rhs_value(self, d: Duals) -> float:
        """Σ over the shared rows of right-hand side × dual, plus the best the helper columns
        (g, u) can add: the part of the Lagrangian bound that does not depend on schedules."""
        inst = self.inst
        idle = np.repeat(inst.idle_kw[:, None] * inst.slot_h, inst.n_slots, axis=1)
        value = float((inst.gpus[:, None] * d.gpu).sum())
        value += float(((idle - inst.renewable_kw * inst.slot_h) * d.grid).sum())
        value += float(sum(d.link[key] for key in self.link_row))
        value += float(sum(inst.wan_gbps[n] * v for (n, _), v in d.wan.items()))
        value -= float(sum(d.full[cell] * self.cut_q[cell] for cell in self.cut_row))
        if self.jct_row is not None:
            value += self.jct_budget_h * d.jct
        for (a, b, t) in self.u_col:                      # u ∈ [0, 1], cost 0
            reduced = -sum(self.rate[a, b] * d.wan.get((n, t), 0.0) for n in {a, b}
                           if n in self.binding_sites)
            reduced -= sum(d.use.get(j, {}).get((a, b, t), 0.0) for j in range(inst.n_jobs)
                           if (j, a, b, t) in self.use_row)
            value += min(0.0, reduced)
        return value

    def lambdas(self) -> np.ndarray:
        values = np.asarray(self.h.getSolution().col_value)
        return values[self.col_of] if self.col_of else np.zeros(0)

    def artificial_in_use(self) -> float:
        values = np.asarray(self.h.getSolution().col_value)
        return float(values[self.artificial].sum()) if self.artificial else 0.0

    def solve_mip(self, time_limit_s: float, start: dict[int, int] | None, gap: float,
                  abs_gap: float, node_limit: int | None = None
                  ) -> tuple[str, dict[int, Column] | None, float | None, float | None]:
        """λ binary: the best choice of one pooled column per job (from ``start``: job ->
        index into :attr:`columns`); (status, chosen columns, objective, MIP bound)."""
        h = self.h
        cols = np.array(self.col_of, dtype=np.int32)
        h.changeColsIntegrality(len(cols), cols,
                                np.full(len(cols), highspy.HighsVarType.kInteger))
        if self.artificial:
            art = np.array(self.artificial, dtype=np.int32)
            h.changeColsIntegrality(len(art), art, np.full(len(art), highspy.HighsVarType.kInteger))
        h.setOptionValue("time_limit", max(0.01, float(time_limit_s)))
        h.setOptionValue("mip_rel_gap", float(gap))
        h.setOptionValue("mip_abs_gap", float(abs_gap))
        h.setOptionValue("mip_max_nodes", int(node_limit) if node_limit is not None
                         else highspy.kHighsIInf)
        if start:
            idx = np.array([self.col_of[k] for k in start.values()], dtype=np.int32)
            h.setSolution(len(idx), idx, np.ones(len(idx)))
        h.run()
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus())
        chosen = None
        objective = bound = None
        if info.primal_solution_status == 2:      # a feasible solution
            values = np.asarray(h.getSolution().col_value)
            if not self.artificial or values[self.artificial].max() < 0.5:
                chosen = {}
                for k, c in enumerate(self.col_of):
                    if values[c] > 0.5:
                        chosen[self.columns[k].job] = self.columns[k]
                objective = float(info.objective_function_value)
            bound = float(info.mip_dual_bound)
        all_cols = np.concatenate([cols, np.array(self.artificial, dtype=np.int32)])
        h.changeColsIntegrality(len(all_cols), all_cols,
                                np.full(len(all_cols), highspy.HighsVarType.kContinuous))
        return status, chosen, objective, bound

    @property
    def size(self) -> tuple[int, int]:
        """(rows, columns) of the master."""
        return self.n_rows, self.n_cols
