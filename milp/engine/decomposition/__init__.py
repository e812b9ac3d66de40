"""Column generation over job schedules (Dantzig–Wolfe), price-and-branch.

:func:`solve` runs, until ``deadline`` (``time.perf_counter()``):

1. **Pool.** The greedy seeds' schedules are the first columns (one per job and seed that
   meets the job's deadline; in elastic mode also "do nothing").
2. **Column generation.** Solve the master LP (:mod:`.master`); price every job at its duals
   (:mod:`.pricing`, an exact DP of the slot rules) — optionally at duals smoothed towards the
   best bound's (Wentges) — and add the schedules with negative reduced cost. Every complete
   round gives a **Lagrangian bound** ``Σ_j DP_j(π) + Σ_rows rhs·π``, valid for the whole
   problem. It stops when no schedule prices out (the bound has converged), when the gap to
   the best plan is reached, or when its share of the time is spent.
3. **Integer phase.** A MIP over the pooled columns (λ binary), warm-started from the best
   seed; then, while time is left and the gap is not reached, **best-response sweeps** from the
   best plan (:mod:`.search`: each job re-planned exactly with the others fixed) whose new
   schedules join the pool for another pool MIP; when they stop improving, **dives**: fix the
   jobs whose LP weight is on one column (or the heaviest few), re-price the others, repeat
   until every job is fixed — a plan.

It returns the best schedule (never worse than the best seed), the best bound and its facts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from milp import physics
from milp.engine.decomposition.columns import (Column, column_of, columns_of_solution,
                                               job_space, restricted)
from milp.engine.decomposition.master import Master
from milp.engine.decomposition.pricing import candidate_sites, price
from milp.engine.decomposition.search import Load, ruin_and_recreate, sweep
from milp.instance import Instance
from milp.physics import Solution

#: Reduced cost below which a schedule enters the pool.
RC_EPS = 1e-7


@dataclass
class Facts:
    """What the decomposition did (times in seconds)."""

    iterations: int = 0
    sweeps: int = 0                         #: best-response sweeps of the search
    columns: int = 0
    cuts: int = 0
    converged: bool = False
    bound: float | None = None
    bound_source: str | None = None
    lp_objective: float | None = None
    setup_s: float = 0.0
    lp_s: float = 0.0
    pricing_s: float = 0.0
    mip_s: float = 0.0
    dive_s: float = 0.0
    search_s: float = 0.0
    dives: int = 0
    mip_status: str | None = None
    history: list[dict] = field(default_factory=list)   #: per iteration: time, lp, bound


@dataclass
class Result:
    solution: Solution | None
    unfinished: dict[int, float]
    facts: Facts
    infeasible_jobs: list[int] = field(default_factory=list)


def solve(inst: Instance, opt, seeds: list[Solution], deadline: float, report=None,
          goal: physics.Goal | None = None) -> Result:
    """Plan ``inst`` by column generation until ``deadline`` (see the module docstring).
    ``opt`` is a :class:`~milp.engine.solve.SolveOptions`; ``report(phase, **facts)`` hears of
    every step (progress)."""
    facts = Facts()
    t0 = time.perf_counter()
    goal = goal or physics.Goal.of(inst)
    spaces = [job_space(inst, j) for j in range(inst.n_jobs)]
    master = Master(inst, elastic=opt.elastic, threads=opt.threads, seed=opt.seed,
                    weights=goal.weights, jct_budget_h=goal.jct_budget_h)
    start = _seed_pool(inst, master, seeds, opt.elastic)
    facts.setup_s = time.perf_counter() - t0
    run = _Run(inst, opt, master, spaces, facts, t0, report, goal)
    run.best = _best_of_seeds(inst, seeds, goal)

    # ---- column generation at the root: the bound -------------------------------------------
    root_until = t0 + opt.cg_share * max(0.0, deadline - t0)
    facts.converged = run.generate(range(inst.n_jobs), root_until, bound=True)
    while facts.converged and opt.cuts and not run.done() and time.perf_counter() < root_until:
        if master.separate() == 0:
            break
        facts.cuts = len(master.cut_row)
        facts.converged = run.generate(range(inst.n_jobs), root_until, bound=True)
    facts.columns = len(master.columns)
    if run.infeasible:
        return Result(None, {}, facts, run.infeasible)

    # ---- integer phase: pool MIP, best-response search, pool MIP again, dives ----------------
    run.pool_mip(min(deadline, time.perf_counter() + opt.mip_share * (deadline - t0)), start)
    dives = 0
    while not run.done() and deadline - time.perf_counter() > 0.5:
        if run.search(deadline) and not run.done():
            run.pool_mip(min(deadline, time.perf_counter() + opt.mip_share
                             * (deadline - time.perf_counter())), None)
            continue
        if dives >= opt.max_dives:
            break
        dives += 1
        run.dive(deadline)
    facts.columns = len(master.columns)
    facts.dives = dives
    if run.best is None:
        return Result(None, {}, facts)
    return Result(run.best[0], run.best[2], facts)


class _Run:
    """One solve's state: the master, the pool, the best plan and the facts."""

    def __init__(self, inst: Instance, opt, master: Master, spaces, facts: Facts, t0: float,
                 report=None, goal: physics.Goal | None = None):
        self.inst, self.opt, self.master, self.spaces = inst, opt, master, spaces
        self.facts, self.t0 = facts, t0
        self.goal = goal or physics.Goal.of(inst)
        self.report = report or (lambda phase, **kw: None)
        self.best = None
        self.infeasible: list[int] = []
        self.rng = np.random.default_rng(opt.seed)

    def note(self, **kw) -> None:
        """Record a step in the facts' history and report it as progress."""
        self.facts.history.append({"t": round(time.perf_counter() - self.t0, 3), **kw})
        phase = "lp" if "lp" in kw else next(iter(kw), "step")
        self.report(phase, incumbent=self.best[1] if self.best else None,
                    bound=self.facts.bound, iteration=self.facts.iterations,
                    columns=len(self.master.columns))

    def done(self) -> bool:
        return self.best is not None and _gap_reached(self.best[1], self.facts.bound, self.opt)

    def offer(self, chosen: dict[int, Column] | None, source: str) -> bool:
        """Take a choice of one column per job as the best plan if it is better."""
        if chosen is None or len(chosen) < self.inst.n_jobs:
            return False
        sol, unfinished = _solution_of(chosen)
        if not self.goal.allows(self.inst, sol):
            return False
        obj = self.goal.cost(self.inst, sol, unfinished)[0]
        self.note(**{source: obj})
        if self.best is None or obj < self.best[1] - 1e-9:
            self.best = (sol, obj, unfinished)
            return True
        return False

    def generate(self, jobs, until: float, *, bound: bool, max_rounds: int | None = None
                 ) -> bool:
        """Column generation over ``jobs`` (the others fixed) until nothing prices out (True),
        the gap is reached, ``max_rounds`` or ``until``. With ``bound`` (no job fixed) complete
        rounds update the Lagrangian bound.

        On instances where a job reaches more than ``pricing_sites`` sites, each round prices
        exactly over a few candidate sites per job (:func:`.pricing.candidate_sites`), and a
        *complete* round — every site, the relaxed DP for all, the exact DP for the jobs the
        relaxation does not clear — runs when that stalls and every ``bound_every`` rounds."""
        inst, opt, master, facts = self.inst, self.opt, self.master, self.facts
        jobs = list(jobs)
        smooth, centre, centre_bound = opt.smoothing if bound else 0.0, None, -math.inf
        rounds = 0
        if bound and opt.max_rounds is not None:
            max_rounds = max(0, opt.max_rounds - facts.iterations)
        while time.perf_counter() < until and (max_rounds is None or rounds < max_rounds):
            tic = time.perf_counter()
            status, lp_obj = master.solve_lp(until - tic)
            facts.lp_s += time.perf_counter() - tic
            if lp_obj is None:
                return False
            rounds += 1
            if bound:
                facts.iterations += 1
                facts.lp_objective = lp_obj
            duals = master.duals()
            if self.many_sites:
                done = self._restricted_round(jobs, duals, until, bound, lp_obj, rounds)
                if done is None:
                    return False
                if done:
                    return True
                continue
            at = duals if centre is None or smooth <= 0 else centre.mix(duals, smooth)
            tic = time.perf_counter()
            paths = self.price(jobs, at, until)
            facts.pricing_s += time.perf_counter() - tic
            if paths is None or self.infeasible:
                return False                          # time ran out mid-round / infeasible
            new = [column_of(inst, j, p.x, p.moves, p.unfinished * inst.slot_h)
                   for j, p in paths.items() if p.exact and p.cost - duals.conv[j] < -RC_EPS]
            if bound:
                value = float(sum(p.cost for p in paths.values())) + master.rhs_value(at)
                if value > centre_bound:
                    centre, centre_bound = at, value
                self._bound(value)
            added = master.add(new)
            self.note(lp=lp_obj, bound=facts.bound if bound else None, added=added)
            if added == 0:
                if at is duals:
                    return True                       # nothing prices out at the LP duals
                centre = None                         # mispricing: price at the LP duals
                continue
            if bound and self.done():
                return False
        return False

    def price(self, jobs, duals, until: float) -> dict | None:
        """Each job's cheapest schedule at ``duals`` over all its sites; None when time runs
        out first."""
        out = {}
        for j in jobs:
            if time.perf_counter() > until:
                return None
            path = price(self.inst, self.spaces[j], duals, self.opt.elastic)
            if path is None:
                self.infeasible.append(j)
                return out
            out[j] = path
        return out

    @property
    def many_sites(self) -> bool:
        return max(len(sp.sites) for sp in self.spaces) > self.opt.pricing_sites

    def _bound(self, value: float) -> None:
        if self.facts.bound is None or value > self.facts.bound:
            self.facts.bound, self.facts.bound_source = value, "lagrangian"

    def _restricted_round(self, jobs, duals, until, bound, lp_obj, rounds) -> bool | None:
        """One round over candidate sites, then a complete round when it added nothing (or
        every ``bound_every`` rounds, for the bound only). True: converged; None: time out."""
        inst, opt, master, facts = self.inst, self.opt, self.master, self.facts
        lam = master.lambdas()
        used: dict[int, set[int]] = {j: set() for j in jobs}
        for k, col in enumerate(master.columns):
            if col.job in used and lam[k] > 1e-9:
                used[col.job].update(n for (n, _) in col.x)
                used[col.job].update(b for (_, b, _) in col.moves)
        tic = time.perf_counter()
        new = []
        for j in jobs:
            if time.perf_counter() > until:
                facts.pricing_s += time.perf_counter() - tic
                return None
            sp = self.spaces[j]
            keep = candidate_sites(inst, sp, duals, used[j], opt.pricing_sites)
            path = price(inst, restricted(sp, keep), duals, opt.elastic)
            if path is None:
                continue                              # the complete round tells
            if path.exact and path.cost - duals.conv[j] < -RC_EPS:
                new.append(column_of(inst, j, path.x, path.moves, path.unfinished * inst.slot_h))
        facts.pricing_s += time.perf_counter() - tic
        added = master.add(new)
        complete = added == 0
        if complete or (bound and opt.bound_every and rounds % opt.bound_every == 0):
            result = self._complete_round(jobs, duals, until, bound, check=complete)
            if result is None:
                return None
            more, clear = result
            added += more
            if complete and clear:
                self.note(lp=lp_obj, bound=facts.bound if bound else None, added=added)
                return True
        self.note(lp=lp_obj, bound=facts.bound if bound else None, added=added)
        if self.infeasible or (bound and self.done()):
            return None
        return False

    def _complete_round(self, jobs, duals, until, bound, check: bool):
        """Every site: the relaxed DP for every job (a lower bound on its reduced cost); with
        ``check``, the exact DP for the jobs the relaxation does not clear, adding the columns
        it finds. Returns (columns added, every job cleared) or None when time runs out."""
        inst, master, facts = self.inst, self.master, self.facts
        tic = time.perf_counter()
        values, new = [], []
        for j in jobs:
            if time.perf_counter() > until:
                facts.pricing_s += time.perf_counter() - tic
                return None
            sp = self.spaces[j]
            low = price(inst, sp, duals, self.opt.elastic, relaxed=True)
            if low is None:
                self.infeasible.append(j)
                facts.pricing_s += time.perf_counter() - tic
                return None
            value = low.cost
            if check and low.cost - duals.conv[j] < -RC_EPS:
                path = price(inst, sp, duals, self.opt.elastic)
                value = path.cost
                if path.exact and path.cost - duals.conv[j] < -RC_EPS:
                    new.append(column_of(inst, j, path.x, path.moves,
                                         path.unfinished * inst.slot_h))
            values.append(value)
        clear = all(v - duals.conv[j] >= -RC_EPS for v, j in zip(values, jobs))
        facts.pricing_s += time.perf_counter() - tic
        if bound:
            self._bound(float(sum(values)) + master.rhs_value(duals))
        return master.add(new), clear

    def pool_mip(self, until: float, start: dict[int, int] | None) -> None:
        """The best choice of one pooled column per job (warm-started from the best plan)."""
        tic = time.perf_counter()
        if start is None and self.best is not None:
            start = {}
            for j, col in columns_of_solution(self.inst, self.best[0], self.best[2]).items():
                k = self.master.index_of(col)
                if k is None:
                    start = None
                    break
                start[j] = k
        status, chosen, _, _ = self.master.solve_mip(max(0.2, until - tic), start,
                                                     self.opt.gap, self.opt.abs_gap,
                                                     self.opt.node_limit)
        self.facts.mip_s += time.perf_counter() - tic
        self.facts.mip_status = status
        self.offer(chosen, "mip")

    def dive(self, deadline: float) -> bool:
        """Fix jobs to the columns the LP uses most, re-price the others, until every job is
        fixed; offer the result. A batch of fixings that makes the LP infeasible is undone and
        the heaviest one tried alone; a column infeasible alone is kept out of this dive."""
        inst, master = self.inst, self.master
        tic = time.perf_counter()
        master.unfix()
        ok = False
        while time.perf_counter() < deadline:
            free = [j for j in range(inst.n_jobs) if j not in master.fixed]
            if not free:
                ok = True
                break
            self.generate(free, deadline, bound=False, max_rounds=self.opt.dive_rounds)
            if self.infeasible or not self._feasible(deadline):
                break
            lam = master.lambdas()
            ranked = sorted(((lam[k], j, k) for j in free for k in [max(
                (c for c in master.of_job[j] if c not in master.forbidden),
                key=lambda c: lam[c], default=-1)] if k >= 0), reverse=True)
            if not ranked:
                break
            batch = max(1, math.ceil(self.opt.dive_fix_share * len(free)),
                        sum(1 for v, _, _ in ranked if v >= 0.999))
            fixes = {j: k for _, j, k in ranked[:batch]}
            master.fix(fixes)
            if self._feasible(deadline):
                continue
            master.unfix(list(fixes))
            _, j, k = ranked[0]
            master.fix({j: k})
            if not self._feasible(deadline):
                master.unfix([j])
                master.forbid(k)
        chosen = {j: master.columns[k] for j, k in master.fixed.items()} if ok else None
        master.unfix()
        self.facts.dive_s += time.perf_counter() - tic
        return self.offer(chosen, "dive") or ok

    def search(self, until: float) -> bool:
        """From the best plan: best-response sweeps until none improves it, then ruin and
        recreate (a few related jobs re-planned together) for ``search_moves`` tries, sweeping
        again after each success; the schedules found join the pool. True when it improved."""
        if self.best is None:
            return False
        tic = time.perf_counter()
        inst, opt = self.inst, self.opt
        load = Load(inst, columns_of_solution(inst, self.best[0], self.best[2]), self.goal)
        found = []
        tries = 0
        while time.perf_counter() < until and (opt.max_sweeps is None
                                               or self.facts.sweeps < opt.max_sweeps):
            self.facts.sweeps += 1
            changed = sweep(inst, self.spaces, load, opt.elastic, until,
                            max_sites=opt.pricing_sites)
            found += changed
            if changed:
                continue
            if tries >= opt.search_moves:
                break
            tries += 1
            found += ruin_and_recreate(inst, self.spaces, load, opt.elastic,
                                       int(self.rng.integers(2, opt.search_size + 1)), self.rng,
                                       opt.pricing_sites)
        self.master.add(found)
        self.facts.search_s += time.perf_counter() - tic
        return bool(found) and self.offer(load.columns, "search")

    def _feasible(self, deadline: float) -> bool:
        """The master LP solves without an artificial column."""
        status, lp_obj = self.master.solve_lp(max(0.01, deadline - time.perf_counter()))
        return lp_obj is not None and self.master.artificial_in_use() <= 1e-6


def _seed_pool(inst: Instance, master: Master, seeds: list[Solution], elastic: bool
               ) -> dict[int, int]:
    """Add the seeds' schedules that meet their jobs' deadlines (and, elastic, the empty
    schedule of each job); return the best seed's column per job (a MIP start)."""
    start: dict[int, int] = {}
    for s, sol in enumerate(seeds):
        for j, col in columns_of_solution(inst, sol).items():
            if _meets_deadline(inst, col):
                before = len(master.columns)
                master.add([col])
                if s == 0:
                    start[j] = before if len(master.columns) > before else \
                        next(k for k, c in enumerate(master.columns) if c.key == col.key)
    if elastic:
        master.add([column_of(inst, j, {}, (), float(inst.work_h[j]))
                    for j in range(inst.n_jobs)])
    return start if len(start) == inst.n_jobs else {}


def _meets_deadline(inst: Instance, col: Column) -> bool:
    done = sum(col.x.values()) * inst.slot_h
    last = max((t for (_, t) in col.x), default=-1)
    return abs(done - inst.work_h[col.job]) <= 1e-6 * max(1.0, inst.work_h[col.job]) and \
        last < inst.deadline_slot[col.job]


def _best_of_seeds(inst: Instance, seeds: list[Solution], goal: physics.Goal):
    """(solution, objective, unfinished) of the best seed that meets every job's deadline and
    the goal's bound."""
    best = None
    for sol in seeds:
        cols = columns_of_solution(inst, sol)
        if all(_meets_deadline(inst, c) for c in cols.values()) and goal.allows(inst, sol):
            obj = goal.cost(inst, sol)[0]
            if best is None or obj < best[1]:
                best = (sol, obj, {})
    return best


def _gap_reached(objective: float, bound: float | None, opt) -> bool:
    if bound is None:
        return False
    return objective - bound <= max(opt.abs_gap, opt.gap * max(abs(objective), 1e-9)) + 1e-12


def _solution_of(chosen: dict[int, Column]) -> tuple[Solution, dict[int, float]]:
    sol = Solution()
    unfinished = {}
    for j, col in chosen.items():
        s = col.solution()
        sol.x.update(s.x)
        sol.moves |= s.moves
        if col.unfinished_h > 1e-9:
            unfinished[j] = col.unfinished_h
    return sol, unfinished
