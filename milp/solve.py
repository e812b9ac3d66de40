"""Solving the MILP with HiGHS through Pyomo's ``appsi_highs`` interface.

The only Pyomo HiGHS interface that takes a warm start in pyomo 6.10 is ``appsi_highs``
(``config.warmstart`` → ``highspy.Highs.setSolution``); HiGHS's log says whether the given
solution was accepted, and we read it back from the log file.

Sequence (:func:`plan_milp`): the greedy seeds (``feasibility-aware``, ``wait-awhile``) are made
and scored by the evaluator; the best valid one that meets every deadline warm-starts the
solver, and the model's grid energy is capped at the seed's, so the MILP is never worse than it.
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

from milp.evaluate import evaluate
from milp.instance import Instance
from milp.model import Index, build_index, build_model, extract_plan, warm_start
from milp.plan import Migration, Plan
from milp.policies import POLICIES

SEED_POLICIES = ("feasibility-aware", "wait-awhile")


@dataclass
class SolveOptions:
    time_limit_s: float = 60.0
    gap: float = 1e-3             #: relative MIP gap at which HiGHS stops
    threads: int | None = None
    elastic: bool = False         #: allow unfinished work (minimised first)
    max_sites: int | None = None  #: candidate sites per job (None: all)
    warm_start: bool = True
    log_path: str | None = None   #: keep HiGHS's log here


@dataclass
class SolverFacts:
    """What the solver did; ``summary.json`` holds it under ``solver``."""

    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seed_s: float                 #: making and scoring the greedy seeds
    build_s: float                #: index, Pyomo model, hand-over to HiGHS
    solve_s: float
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

    def __init__(self, facts: SolverFacts, unfinished: dict[str, float] | None = None) -> None:
        self.facts = facts
        self.unfinished = unfinished or {}
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
    """Build and solve the MILP; return the best plan found and the solver's facts.

    Raises :class:`NoPlanFound` when no plan exists or none was found in the time limit.
    """
    options = options or SolveOptions()
    t0 = time.perf_counter()
    seed = best_seed(inst) if options.warm_start else None
    seed_s = time.perf_counter() - t0
    started = time.perf_counter()
    must = _visited_sites(inst, seed[1]) if seed else {}
    index = build_index(inst, max_sites=options.max_sites, must_include=must)
    model = build_model(index, elastic=options.elastic)
    if seed is not None:
        model.seed_cap = pyo.Constraint(expr=model.grid_energy <= seed[2] + 1e-9)
        warm_start(model, index, seed[1])
    solver = Highs()
    solver.config.time_limit = float(options.time_limit_s)
    solver.config.mip_gap = float(options.gap)
    solver.config.load_solution = False
    solver.config.warmstart = seed is not None
    solver.highs_options = {"primal_feasibility_tolerance": 1e-9,
                            "mip_feasibility_tolerance": 1e-9}
    if options.threads:
        solver.highs_options["threads"] = int(options.threads)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(options.log_path or Path(tmp) / "highs.log")
        solver.config.logfile = str(log)
        solver.set_instance(model)  # hand the model to highspy: part of building
        build_s = time.perf_counter() - started
        t0 = time.perf_counter()
        results = solver.solve(model)
        solve_s = time.perf_counter() - t0
        log_text = log.read_text(errors="replace") if log.exists() else ""

    has_solution = results.best_feasible_objective is not None
    objective = results.best_feasible_objective
    bound = results.best_objective_bound
    if has_solution:
        solver.load_vars()
    facts = SolverFacts(
        status=_status(results.termination_condition, has_solution), objective=objective,
        bound=bound if bound is not None and abs(bound) != float("inf") else None,
        gap=_gap(objective, bound), seed_s=seed_s, build_s=build_s, solve_s=solve_s,
        grid_energy_kwh=pyo.value(model.grid_energy) if has_solution else None,
        variables=sum(1 for _ in model.component_data_objects(pyo.Var)),
        binaries=sum(1 for v in model.o.values() if not v.fixed),
        constraints=sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True)),
        seed_policy=seed[0] if seed else None, seed_grid_energy_kwh=seed[2] if seed else None,
        warm_start_accepted=_warm_start_accepted(log_text) if seed else None,
        improved=None, elastic=options.elastic)
    if not has_solution:
        raise NoPlanFound(facts)
    plan = extract_plan(model, index, "milp", {"solver": "highs (appsi)"})
    if seed is not None:
        facts.improved = facts.grid_energy_kwh < seed[2] - 1e-9
    if options.elastic:
        plan = Plan(plan.instance, plan.start, plan.slot_minutes, plan.policy, plan.jobs,
                    {**plan.info, "unfinished_gpu_h": {
                        inst.jobs[j]: round(float(model.s[j].value), 9)
                        for j in range(inst.n_jobs) if (model.s[j].value or 0) > 1e-7}})
    return plan, facts


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


def _gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap |objective − bound| / max(|objective|, 1e-9) (HiGHS's own definition)."""
    if objective is None or bound is None or abs(bound) == float("inf"):
        return None
    return abs(objective - bound) / max(abs(objective), 1e-9)


def _warm_start_accepted(log: str) -> bool | None:
    """Read HiGHS's verdict on the given solution from its log."""
    start = re.findall(r"MIP start solution is (feasible|infeasible)", log)
    if start:
        return start[-1] == "feasible"
    found = re.findall(r"Assessing feasibility of MIP solution[^\n]*:\s*(\w+)", log)
    return found[-1].lower() == "feasible" if found else None
