"""Planning with an engine: seeds, the time budget, the solver's facts.

:func:`plan_milp` runs, within ``time_limit_s`` of wall-clock time from its call:

1. **Seeds.** The greedy plans ``feasibility-aware`` and ``wait-awhile`` are scored by the
   evaluator; the best valid one that meets every deadline is the incumbent (the planners share
   the slot rules of :mod:`milp.physics`, so it is a point of every engine's model).
2. **The engine.** ``compact``: the whole MILP of :mod:`milp.engine.compact`, warm-started
   from the incumbent, capped at its grid energy, solved by HiGHS until the time is up or the
   gap (relative ``gap`` or absolute ``abs_gap`` kWh) is reached; it gives the bound.

The answer is the best schedule found (never worse than the seed), its objective, the bound and
the gap between them.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyomo.environ as pyo
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from milp import physics
from milp.engine.compact import build_model, solution_from_model, warm_start
from milp.engine.index import build_index
from milp.evaluate import evaluate
from milp.instance import Instance
from milp.physics import Solution
from milp.plan import Migration, Plan
from milp.policies import POLICIES

SEED_POLICIES = ("feasibility-aware", "wait-awhile")


@dataclass
class SolveOptions:
    time_limit_s: float = 60.0    #: wall-clock seconds from the call (or from ``started``)
    gap: float = 1e-3             #: stop at this relative gap between plan and bound
    abs_gap: float = 0.0          #: ... or at this absolute gap (kWh), whichever comes first
    threads: int | None = None
    elastic: bool = False         #: allow unfinished work (minimised first)
    max_sites: int | None = None  #: candidate sites per job (None: all)
    warm_start: bool = True
    seed: int = 0                 #: random choices of the engine
    log_path: str | None = None   #: keep HiGHS's log here
    started: float | None = None  #: time.perf_counter() the time limit counts from


@dataclass
class SolverFacts:
    """What the solver did; ``summary.json`` holds it under ``solver``."""

    engine: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seed_s: float                 #: making and scoring the greedy seeds
    build_s: float                #: index, model, hand-over to the solver
    solve_s: float                #: solver time
    grid_energy_kwh: float | None
    variables: int
    binaries: int
    constraints: int
    seed_policy: str | None
    seed_grid_energy_kwh: float | None
    warm_start_accepted: bool | None
    improved: bool | None
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


def plan_milp(inst: Instance, options: SolveOptions | None = None) -> tuple[Plan, SolverFacts]:
    """Plan with the MILP (see the module docstring); return the plan and the solver's facts.

    Raises :class:`NoPlanFound` when no plan exists or none was found in the time limit.
    """
    opt = options or SolveOptions()
    started = opt.started if opt.started is not None else time.perf_counter()
    deadline = started + opt.time_limit_s
    t0 = time.perf_counter()
    seed = best_seed(inst) if opt.warm_start else None
    seed_s = time.perf_counter() - t0
    incumbent = physics.solution_from_plan(inst, seed[1]) if seed else None
    full = _solve_compact(inst, opt, incumbent, deadline)
    facts = SolverFacts(
        engine="compact", status=full.status, objective=None, bound=full.bound, gap=None,
        seed_s=seed_s, build_s=full.build_s, solve_s=full.solve_s, grid_energy_kwh=None,
        variables=full.variables, binaries=full.binaries, constraints=full.constraints,
        seed_policy=seed[0] if seed else None, seed_grid_energy_kwh=seed[2] if seed else None,
        warm_start_accepted=full.warm_start_accepted, improved=None, elastic=opt.elastic)
    if full.solution is not None and (incumbent is None or opt.elastic or physics.objective(
            inst, full.solution)[0] <= physics.objective(inst, incumbent)[0] + 1e-9):
        incumbent = full.solution                # never worse than the seed
    elif full.solution is not None:
        full.unfinished = None
    if incumbent is None:
        raise NoPlanFound(facts)
    unfinished = (full.unfinished or {}) if opt.elastic else {}
    facts.objective, facts.grid_energy_kwh = physics.objective(inst, incumbent, unfinished)
    if full.bound is not None:
        facts.gap = gap_between(facts.objective, full.bound)
        if facts.status == "time_limit" and gap_reached(facts.objective, full.bound, opt):
            facts.status = "gap_reached"
    if seed is not None:
        facts.improved = facts.grid_energy_kwh < seed[2] - 1e-9
    info = {"solver": "highs (appsi)", "engine": "compact"}
    if opt.elastic:
        info["unfinished_gpu_h"] = {inst.jobs[j]: round(v, 9) for j, v in unfinished.items()}
    return physics.plan_from_solution(inst, incumbent, "milp", info), facts


def gap_between(objective: float, bound: float) -> float:
    """Relative gap between a plan's objective and a bound."""
    return abs(objective - bound) / max(abs(objective), 1e-9)


def gap_reached(objective: float, bound: float, opt: SolveOptions) -> bool:
    """Whether the plan is within the relative or the absolute gap of the bound."""
    return gap_between(objective, bound) <= opt.gap or objective - bound <= opt.abs_gap + 1e-12


# ---- the compact model ------------------------------------------------------------------

@dataclass
class _Result:
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


def _solve_compact(inst: Instance, opt: SolveOptions, incumbent: Solution | None,
                   deadline: float) -> _Result:
    """Build the whole model, warm-start it from the incumbent, cap its grid energy at the
    incumbent's, and solve it until the deadline."""
    started = time.perf_counter()
    must = {j: {b for (jj, _, b, _) in incumbent.moves if jj == j}
            for j in range(inst.n_jobs)} if incumbent else {}
    index = build_index(inst, max_sites=opt.max_sites, must_include=must)
    model = build_model(index, elastic=opt.elastic)
    if incumbent is not None:
        cap = physics.objective(inst, incumbent)[1]
        model.incumbent_cap = pyo.Constraint(expr=model.grid_energy <= cap + 1e-7)
        warm_start(model, index, incumbent)
    solver = highs(opt)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(opt.log_path or Path(tmp) / "highs.log")
        solver.config.logfile = str(log)
        solver.config.warmstart = incumbent is not None
        solver.set_instance(model)
        out = _Result(build_s=time.perf_counter() - started)
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
    out.binaries = sum(1 for v in model.component_data_objects(pyo.Var)
                       if v.is_binary() and not v.fixed)
    out.constraints = sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True))
    out.warm_start_accepted = _warm_start_accepted(log_text) if incumbent else None
    if has_solution:
        solver.load_vars()
        out.solution = solution_from_model(model, index)
        if opt.elastic:
            out.unfinished = {j: float(model.s[j].value) for j in range(inst.n_jobs)
                              if (model.s[j].value or 0) > 1e-7}
    return out


def highs(opt: SolveOptions) -> Highs:
    """HiGHS through appsi with the options' gaps and threads, tight feasibility tolerances."""
    solver = Highs()
    solver.config.mip_gap = float(opt.gap)
    solver.config.load_solution = False
    solver.highs_options = {"primal_feasibility_tolerance": 1e-9,
                            "mip_feasibility_tolerance": 1e-9,
                            "mip_abs_gap": float(opt.abs_gap), "random_seed": int(opt.seed)}
    if opt.threads:
        solver.highs_options["threads"] = int(opt.threads)
    return solver


# ---- helpers ------------------------------------------------------------------------------

def visited_sites(inst: Instance, plan: Plan) -> dict[int, set[int]]:
    """Per job, the sites a plan moves it to."""
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
