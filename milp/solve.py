"""Solving the MILP with HiGHS through Pyomo's ``appsi_highs`` interface.

The only Pyomo HiGHS interface that takes a warm start in pyomo 6.10 is ``appsi_highs``
(``config.warmstart`` → ``highspy.Highs.setSolution``); HiGHS's log says whether the given
solution was accepted, and we read it back from the log file.

:func:`plan_milp` runs, within ``time_limit_s`` of solver time:

1. **Seeds.** The greedy plans ``feasibility-aware`` and ``wait-awhile`` are scored by the
   evaluator; the best valid one that meets every deadline is the incumbent (the planners share
   slot semantics, so it is a solution of the model).
2. **Neighbourhood search** for ``search_share`` of the time (all of it when the whole model is
   too big; skipped below ``search_min_vars`` triples and with ``elastic``): free one job — or
   a few sharing busy hours — keep the others as they are (their load, GPUs and link use become
   the background), and solve that small MILP (``search_sites`` candidate sites per job, at most
   ``step_time_s``) from the incumbent; keep it when it is better, so the incumbent never gets
   worse.
3. **Whole model.** If it has at most ``full_model_max_vars`` (job, site, slot) triples — or
   there is no incumbent to fall back on — the whole MILP is built, warm-started from the
   incumbent, capped at its grid energy, and solved for the time left. This gives the bound
   (and may improve the plan further).

The answer is the best solution found, its objective, the whole model's bound (if it was built)
and the relative gap between them.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from milp.evaluate import evaluate
from milp.instance import Instance
from milp.model import (ELASTIC_KWH_PER_GPU_H, Solution, background_of, build_index,
                        build_model, plan_from_solution, solution_from_model,
                        solution_from_plan, warm_start)
from milp.plan import Migration, Plan
from milp.policies import POLICIES

SEED_POLICIES = ("feasibility-aware", "wait-awhile")


@dataclass
class SolveOptions:
    time_limit_s: float = 60.0
    gap: float = 1e-3             #: relative MIP gap at which the whole model's solve stops
    threads: int | None = None
    elastic: bool = False         #: allow unfinished work (minimised first)
    max_sites: int | None = None  #: candidate sites per job (None: all)
    warm_start: bool = True
    neighbourhood: bool = True    #: improve by neighbourhood search before the whole model
    search_share: float = 0.35    #: share of the time for the search, which runs before the
    #: whole model (all of the time when the whole model is too big)
    full_model_max_vars: int = 30_000   #: build the whole model up to this many triples
    neighbourhood_jobs: int = 8   #: jobs freed per neighbourhood step (adapted as it runs)
    step_time_s: float = 3.0      #: time limit of one neighbourhood step
    patience: int = 30            #: group steps without improvement before the search stops
    search_sites: int | None = 6  #: candidate sites per job in a search step (origin, current
    #: sites, then the greenest); None: all
    search_min_vars: int = 5_000  #: smaller whole models go straight to HiGHS
    seed: int = 0                 #: random choices of the neighbourhood search
    log_path: str | None = None   #: keep HiGHS's log of the whole model here


@dataclass
class SolverFacts:
    """What the solver did; ``summary.json`` holds it under ``solver``."""

    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seed_s: float                 #: making and scoring the greedy seeds
    build_s: float                #: index, Pyomo model, hand-over to HiGHS (whole model)
    solve_s: float                #: solver time, whole model and neighbourhood steps
    grid_energy_kwh: float | None
    variables: int
    binaries: int
    constraints: int
    seed_policy: str | None
    seed_grid_energy_kwh: float | None
    warm_start_accepted: bool | None
    improved: bool | None
    neighbourhood_steps: int
    neighbourhood_improvements: int
    elastic: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoPlanFound(Exception):
    """The solver ended without any plan (infeasible, or no solution within the time limit)."""

    def __init__(self, facts: SolverFacts) -> None:
        self.facts = facts
        super().__init__(facts.status)


def best_seed(inst: Instance) -> tuple[str, Plan, float] | None:
    """The greedy plan with least grid energy that is valid and meets every deadline."""
    best = None
    for name in SEED_POLICIES:
        plan = POLICIES[name](inst, None)
        e = evaluate(inst, plan)
        if e.valid and e.deadline_misses == 0 and (best is None or e.grid_energy_kwh < best[2]):
            best = (name, plan, e.grid_energy_kwh)
    return best


def objective_of(inst: Instance, sol: Solution, unfinished_h: float = 0.0) -> tuple[float, float]:
    """(objective, grid energy kWh) of a slot-level solution, by the model's accounting."""
    bg = background_of(inst, sol)
    grid = float(np.maximum(0.0, bg.load_kwh - inst.renewable_kw * inst.slot_h).sum())
    h = inst.slot_h
    late = sum(v * h * ((t + 1) - inst.release_slot[j]) * h for (j, _, t), v in sol.x.items())
    w = inst.objective
    return (grid + w.migration_kwh * len(sol.moves) + w.completion_kwh * late
            + ELASTIC_KWH_PER_GPU_H * unfinished_h, grid)


def plan_milp(inst: Instance, options: SolveOptions | None = None) -> tuple[Plan, SolverFacts]:
    """Plan with the MILP (see the module docstring); return the plan and the solver's facts.

    Raises :class:`NoPlanFound` when no plan exists or none was found in the time limit.
    """
    opt = options or SolveOptions()
    t0 = time.perf_counter()
    seed = best_seed(inst) if opt.warm_start else None
    seed_s = time.perf_counter() - t0
    incumbent = solution_from_plan(inst, seed[1]) if seed else None
    started = time.perf_counter()
    deadline = started + opt.time_limit_s
    steps = improvements = 0
    size = _model_size(inst, opt, seed)
    if opt.neighbourhood and incumbent is not None and not opt.elastic and \
            size >= opt.search_min_vars:
        share = 1.0 if size > opt.full_model_max_vars else opt.search_share
        incumbent, steps, improvements = _neighbourhood_search(
            inst, opt, incumbent, started + share * opt.time_limit_s)
    search_s = time.perf_counter() - started
    full = _solve_whole(inst, opt, incumbent, deadline, size)
    if full.solution is not None:
        incumbent = full.solution
    solve_s = full.solve_s + search_s
    facts = SolverFacts(
        status=full.status, objective=None, bound=full.bound, gap=None, seed_s=seed_s,
        build_s=full.build_s, solve_s=solve_s, grid_energy_kwh=None, variables=full.variables,
        binaries=full.binaries, constraints=full.constraints,
        seed_policy=seed[0] if seed else None, seed_grid_energy_kwh=seed[2] if seed else None,
        warm_start_accepted=full.warm_start_accepted, improved=None,
        neighbourhood_steps=steps, neighbourhood_improvements=improvements,
        elastic=opt.elastic)
    if incumbent is None:
        raise NoPlanFound(facts)
    unfinished = (full.unfinished or {}) if opt.elastic else {}
    facts.objective, facts.grid_energy_kwh = objective_of(inst, incumbent,
                                                          sum(unfinished.values()))
    if full.bound is not None:
        facts.gap = abs(facts.objective - full.bound) / max(abs(facts.objective), 1e-9)
        if facts.status == "time_limit" and facts.gap <= opt.gap:
            facts.status = "gap_reached"
    if seed is not None:
        facts.improved = facts.grid_energy_kwh < seed[2] - 1e-9
    info = {"solver": "highs (appsi)"}
    if opt.elastic:
        info["unfinished_gpu_h"] = {inst.jobs[j]: round(v, 9) for j, v in unfinished.items()}
    return plan_from_solution(inst, incumbent, "milp", info), facts


# ---- the whole model ----------------------------------------------------------------------

@dataclass
class _Whole:
    status: str = "not_built"
    solution: Solution | None = None
    bound: float | None = None
    build_s: float = 0.0
    solve_s: float = 0.0
    variables: int = 0
    binaries: int = 0
    constraints: int = 0
    warm_start_accepted: bool | None = None
    unfinished: dict[int, float] | None = None


def _model_size(inst: Instance, opt: SolveOptions, seed) -> int:
    """(job, site, slot) triples of the whole model."""
    must = _visited_sites(inst, seed[1]) if seed else {}
    return len(build_index(inst, max_sites=opt.max_sites, must_include=must,
                           with_moves=False).occ)


def _solve_whole(inst, opt: SolveOptions, incumbent: Solution | None, deadline: float,
                 size: int) -> _Whole:
    """Build the whole model, warm-start it from the incumbent, cap its grid energy at the
    incumbent's, and solve it until the deadline; skipped when larger than
    ``full_model_max_vars`` triples (``size``) and there is an incumbent (no bound then)."""
    started = time.perf_counter()
    if incumbent is not None and size > opt.full_model_max_vars:
        return _Whole(status="neighbourhood_only")
    must = {j: {b for (jj, _, b, _) in incumbent.moves if jj == j}
            for j in range(inst.n_jobs)} if incumbent else {}
    index = build_index(inst, max_sites=opt.max_sites, must_include=must)
    model = build_model(index, elastic=opt.elastic)
    if incumbent is not None:
        cap = objective_of(inst, incumbent)[1]
        model.incumbent_cap = pyo.Constraint(expr=model.grid_energy <= cap + 1e-7)
        warm_start(model, index, incumbent)
    solver = _highs(opt)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(opt.log_path or Path(tmp) / "highs.log")
        solver.config.logfile = str(log)
        solver.config.warmstart = incumbent is not None
        solver.set_instance(model)
        out = _Whole(build_s=time.perf_counter() - started)
        solver.config.time_limit = max(1.0, deadline - time.perf_counter())
        t0 = time.perf_counter()
        results = solver.solve(model)
        out.solve_s = time.perf_counter() - t0
        log_text = log.read_text(errors="replace") if log.exists() else ""
    has_solution = results.best_feasible_objective is not None
    out.status = _status(results.termination_condition, has_solution)
    bound = results.best_objective_bound
    out.bound = bound if bound is not None and abs(bound) != float("inf") else None
    out.variables = sum(1 for _ in model.component_data_objects(pyo.Var))
    out.binaries = sum(1 for v in model.o.values() if not v.fixed)
    out.constraints = sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True))
    out.warm_start_accepted = _warm_start_accepted(log_text) if incumbent else None
    if has_solution:
        solver.load_vars()
        out.solution = solution_from_model(model, index)
        if opt.elastic:
            out.unfinished = {j: float(model.s[j].value) for j in index.jobs
                              if (model.s[j].value or 0) > 1e-7}
    return out


def _highs(opt: SolveOptions) -> Highs:
    solver = Highs()
    solver.config.mip_gap = float(opt.gap)
    solver.config.load_solution = False
    solver.highs_options = {"primal_feasibility_tolerance": 1e-9,
                            "mip_feasibility_tolerance": 1e-9}
    if opt.threads:
        solver.highs_options["threads"] = int(opt.threads)
    return solver


# ---- neighbourhood search -----------------------------------------------------------------

def _neighbourhood_search(inst: Instance, opt: SolveOptions, sol: Solution, until: float
                          ) -> tuple[Solution, int, int]:
    """Improve ``sol`` until ``until`` by exact re-solves of a few jobs at a time.

    Sweeps give each job in turn (most grid-exposed first) its best trajectory with every other
    job fixed; when a sweep finds nothing, groups of jobs sharing busy hours are freed together
    (their size adapts: larger while easy, smaller when a step times out), and any improvement
    brings the sweeps back."""
    rng = np.random.default_rng(opt.seed)
    k = max(2, min(opt.neighbourhood_jobs, inst.n_jobs))
    steps = improvements = 0
    queue: list[list[int]] = []
    sweeping = True
    found_in_sweep = False
    idle_groups = 0  # group steps in a row without improvement
    while until - time.perf_counter() > 0.5 and inst.n_jobs > 0:
        if not queue:
            if sweeping and not found_in_sweep and steps:
                if inst.n_jobs < 3:
                    break                    # one sweep says it all
                sweeping = False
            elif not sweeping and found_in_sweep:
                sweeping = True
            if not sweeping and idle_groups >= opt.patience:
                break                        # converged: leave the time to the whole model
            found_in_sweep = False
            queue = ([[int(j)] for j in np.argsort(-_exposure(inst, sol), kind="stable")]
                     if sweeping else [_pick_jobs(inst, sol, k, rng) for _ in range(5)])
        jobs = queue.pop(0)
        better, optimal, took = _improve(inst, opt, sol, jobs, until)
        steps += 1
        if better is not None:
            sol = better
            improvements += 1
            found_in_sweep = True
            idle_groups = 0
        elif not sweeping:
            idle_groups += 1
        if not sweeping and optimal and took < opt.step_time_s / 3:
            k = min(inst.n_jobs, k + 2)      # easy: free more jobs at once
        elif not sweeping and not optimal and better is None:
            k = max(2, k - 2)                # too hard to improve in time: fewer jobs
    return sol, steps, improvements


def _improve(inst: Instance, opt: SolveOptions, sol: Solution, jobs: list[int], until: float
             ) -> tuple[Solution | None, bool, float]:
    """Re-solve ``jobs`` exactly with the others fixed; (better solution or None, optimal?,
    seconds)."""
    others = [j for j in range(inst.n_jobs) if j not in set(jobs)]
    must = {j: {b for (jj, _, b, _) in sol.moves if jj == j} for j in jobs}
    sites = min(x for x in (opt.max_sites, opt.search_sites) if x) if opt.search_sites else \
        opt.max_sites
    index = build_index(inst, jobs=jobs, background=background_of(inst, sol.only(others)),
                        max_sites=sites, must_include=must)
    model = build_model(index)
    if warm_start(model, index, sol.only(jobs)) < len(jobs):
        return None, False, 0.0
    current = pyo.value(model.objective)
    model.cap = pyo.Constraint(expr=model.objective.expr <= current + 1e-9)
    solver = _highs(opt)
    solver.highs_options["presolve"] = "off"  # presolve costs more than it saves on these
    solver.config.warmstart = True
    solver.config.mip_gap = 1e-4
    solver.config.time_limit = max(0.2, min(opt.step_time_s, until - time.perf_counter()))
    t0 = time.perf_counter()
    results = solver.solve(model)
    took = time.perf_counter() - t0
    optimal = results.termination_condition == TerminationCondition.optimal
    if results.best_feasible_objective is None or \
            results.best_feasible_objective >= current - 1e-7:
        return None, optimal, took
    solver.load_vars()
    return sol.replace(jobs, solution_from_model(model, index)), optimal, took


def _exposure(inst: Instance, sol: Solution) -> np.ndarray:
    """[j] GPU-slots of each job weighted by the share of grid power where they run."""
    bg = background_of(inst, sol)
    grid_share = np.maximum(0.0, bg.load_kwh - inst.renewable_kw * inst.slot_h) / \
        np.maximum(bg.load_kwh, 1e-9)
    exposure = np.zeros(inst.n_jobs)
    for (j, n, t), v in sol.x.items():
        exposure[j] += v * grid_share[n, t]
    return exposure


def _pick_jobs(inst: Instance, sol: Solution, k: int, rng: np.random.Generator) -> list[int]:
    """k jobs: one drawn by the grid energy it draws, then those sharing its busiest hours."""
    exposure = _exposure(inst, sol) + 1e-3
    span = {}
    for (j, n, t) in sol.x:
        lo, hi = span.get(j, (t, t))
        span[j] = (min(lo, t), max(hi, t))
    first = int(rng.choice(inst.n_jobs, p=exposure / exposure.sum()))
    lo, hi = span.get(first, (int(inst.release_slot[first]), int(inst.deadline_slot[first]) - 1))
    overlap = np.array([max(0, min(hi, span.get(j, (0, -1))[1]) - max(lo, span.get(j, (0, -1))[0]))
                        for j in range(inst.n_jobs)], dtype=float)
    weight = (overlap + 0.1) * exposure
    weight[first] = 0.0
    if inst.n_jobs < 2 or weight.sum() <= 0:
        return [first]
    others = rng.choice(inst.n_jobs, size=min(k - 1, inst.n_jobs - 1), replace=False,
                        p=weight / weight.sum())
    return sorted({first, *others.tolist()})


# ---- helpers ------------------------------------------------------------------------------

def _visited_sites(inst: Instance, plan: Plan) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for jp in plan.jobs:
        j = inst.job_index_map[jp.job]
        out[j] = {inst.site_index_map[s.dst] for s in jp.steps if isinstance(s, Migration)}
    return out


def _status(tc: TerminationCondition, has_solution: bool) -> str:
    if tc == TerminationCondition.optimal:
        return "optimal"
    if tc == TerminationCondition.maxTimeLimit:
        return "time_limit" if has_solution else "time_limit_no_plan"
    if tc == TerminationCondition.infeasible:
        return "infeasible"
    return str(tc.name) if has_solution else f"{tc.name}_no_plan"


def _warm_start_accepted(log: str) -> bool | None:
    """Read HiGHS's verdict on the given solution from its log."""
    start = re.findall(r"MIP start solution is (feasible|infeasible)", log)
    if start:
        return start[-1] == "feasible"
    found = re.findall(r"Assessing feasibility of MIP solution[^\n]*:\s*(\w+)", log)
    return found[-1].lower() == "feasible" if found else None
