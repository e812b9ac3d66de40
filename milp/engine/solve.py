"""Planning with an engine: seeds, the time budget, the solver's facts.

:func:`plan_milp` runs, within ``time_limit_s`` of wall-clock time from its call:

1. **Seeds.** The greedy plans ``static``, ``wait-awhile`` and ``feasibility-aware`` are made
   in this order, cheapest first, and scored by the evaluator; the valid ones that meet every
   deadline are the seeds, the best the incumbent (the planners share the slot rules of
   :mod:`milp.physics`, so each is a point of every engine's model). Once the time limit has
   passed, the seeds not yet made are skipped (``seeds_skipped``; ``static`` is always made)
   and the engine does not run: the plan is the best seed made, status ``time_limit``.
2. **The engine** (``engine``; ``auto``: ``compact`` up to ``compact_max_triples`` (job,
   site, slot) triples, else ``decomposition``). ``compact``: the whole MILP of
   :mod:`milp.engine.compact`, warm-started from the incumbent, capped at its grid energy,
   solved by HiGHS; its bound is HiGHS's. ``decomposition``: column generation over job
   schedules, then a MIP over them (:mod:`milp.engine.decomposition`); its bound is the
   Lagrangian bound of column generation. Both stop at the gap (relative ``gap`` or absolute
   ``abs_gap`` kWh, whichever comes first) or when the time is up.

The answer is the best schedule found (never worse than the seed), its objective, the bound and
the gap between them.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import highspy
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

#: The greedy seeds in order of preference on a tie; they are made in the reverse order,
#: cheapest first (at the size policy's corners ``milp plan`` takes 11–15 s with ``static``,
#: 48–200 s with ``feasibility-aware``: README.md), so that a time limit cuts the dearest.
SEED_POLICIES = ("feasibility-aware", "wait-awhile", "static")


@dataclass
class SolveOptions:
    time_limit_s: float = 60.0    #: wall-clock seconds from the call (or from ``started``)
    gap: float = 0.01             #: stop at this relative gap between plan and bound
    abs_gap: float = 0.05         #: ... or at this absolute gap (kWh), whichever comes first
    threads: int | None = None
    elastic: bool = False         #: allow unfinished work (minimised first)
    max_sites: int | None = None  #: candidate sites per job (None: all)
    warm_start: bool = True
    seed_plans: tuple[Plan, ...] = ()   #: more plans to start from (e.g. a frontier's last)
    seed: int = 0                 #: random choices of the engine
    log_path: str | None = None   #: keep HiGHS's log here
    started: float | None = None  #: time.perf_counter() the time limit counts from
    objective: str = "grid-kwh"   #: grid-kwh or co2 (needs carbon.csv); the other breaks ties
    max_mean_jct_h: float | None = None   #: mean job completion time bound (hours)
    #: ... or the bound as a change (%) of the ``static`` plan's mean JCT (-18: 18 % lower)
    max_jct_increase_pct: float | None = None
    #: called with a dict on each step of the solve — ``phase`` (seeds, lp, mip, search, dive,
    #: compact, done), ``elapsed_s``, ``incumbent`` (objective of the best plan so far),
    #: ``bound``, ``gap`` (relative), and for column generation ``iteration`` and ``columns``
    progress: Callable[[dict], None] | None = None
    engine: str = "auto"          #: auto, compact or decomposition
    compact_max_triples: int = 1_000   #: auto: the compact model up to this many triples
    compact_limit_triples: int = 200_000   #: compact: not built beyond (the seed is kept)
    compact_s_per_triple: float = 1e-3     #: ... nor when building would take more than half
    #: the time left at this many seconds per (job, site, slot) triple (measured: 0.6–0.7 ms
    #: for the index, the Pyomo model and the hand-over to HiGHS)
    cg_share: float = 0.6         #: decomposition: share of the time for column generation
    mip_share: float = 0.5        #: ... of the rest for the MIP over the pooled columns
    smoothing: float = 0.0        #: ... dual smoothing weight (Wentges; 0 = none)
    cuts: bool = True             #: ... rounding cuts per (site, slot) at the root
    max_rounds: int | None = None #: ... column-generation rounds at the root (None: no limit)
    pricing_sites: int = 10       #: ... sites a job is priced over in a round, when it has more
    bound_every: int = 5          #: ... complete rounds (every site) every this many rounds
    node_limit: int | None = None #: branch-and-bound nodes of each MIP (None: no limit)
    max_dives: int = 50           #: ... dives in the integer phase
    search_moves: int = 30        #: ... ruin-and-recreate tries per search
    max_sweeps: int | None = None #: ... best-response sweeps in all (None: no limit)
    search_size: int = 6          #: ... most jobs re-planned together by one try
    dive_rounds: int = 5          #: ... pricing rounds between two fixings of a dive
    dive_fix_share: float = 0.1   #: ... jobs fixed at least per fixing (share of the free ones)


@dataclass
class SolverFacts:
    """What the solver did; ``summary.json`` holds it under ``solver``."""

    engine: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seed_s: float                 #: making and scoring the greedy seeds
    build_s: float                #: index, model, hand-over to the solver (setup)
    solve_s: float                #: solver time (every phase after setup)
    grid_energy_kwh: float | None
    variables: int
    binaries: int
    constraints: int
    seed_policy: str | None
    seed_grid_energy_kwh: float | None
    warm_start_accepted: bool | None
    improved: bool | None
    elastic: bool
    bound_source: str | None = None   #: "highs" (compact) or "lagrangian" (decomposition)
    converged: bool | None = None     #: decomposition: no schedule priced out at the end
    iterations: int | None = None     #: decomposition: column-generation rounds
    sweeps: int | None = None         #: decomposition: best-response sweeps of the search
    columns: int | None = None        #: decomposition: schedules in the pool
    phase_s: dict | None = None       #: decomposition: seconds per phase
    wall_s: float | None = None       #: from the call (or ``started``) to the answer
    #: greedy seeds not made because the time limit had passed (:func:`seeds_within`)
    seeds_skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoPlanFound(Exception):
    """The solver ended without any plan (infeasible, or no solution within the time limit)."""

    def __init__(self, facts: SolverFacts) -> None:
        self.facts = facts
        super().__init__(facts.status)


def seeds_of(inst: Instance, goal: physics.Goal | None = None,
             extra: tuple[Plan, ...] = ()) -> list[tuple[str, Plan, float]]:
    """The greedy plans (and ``extra`` plans) that are valid, meet every deadline and fit the
    goal's bound, best first by the goal's objective: (policy, plan, grid kWh)."""
    return seeds_within(inst, goal, extra)[0]


def seeds_within(inst: Instance, goal: physics.Goal | None = None,
                 extra: tuple[Plan, ...] = (), deadline: float | None = None
                 ) -> tuple[list[tuple[str, Plan, float]], list[str]]:
    """:func:`seeds_of`, making the greedy plans cheapest first and skipping those not yet made
    once :func:`time.perf_counter` has passed ``deadline`` (the first is always made): the
    seeds, and the names of the greedy plans skipped."""
    made: dict[str, Plan] = {}
    skipped = []
    for name in reversed(SEED_POLICIES):                  # cheapest first
        if made and deadline is not None and time.perf_counter() >= deadline:
            skipped.append(name)
        else:
            made[name] = POLICIES[name](inst, None)
    plans = [(n, made[n]) for n in SEED_POLICIES if n in made]     # ties: by preference
    return _valid_seeds(inst, goal or physics.Goal.of(inst),
                        [*plans, *((p.policy, p) for p in extra)]), skipped


def _valid_seeds(inst: Instance, goal: physics.Goal, plans: list[tuple[str, Plan]]
                 ) -> list[tuple[str, Plan, float]]:
    """Those of ``plans`` (name, plan) that are valid, meet every deadline and fit the goal's
    bound, best first by the goal's objective (a stable sort): (name, plan, grid kWh)."""
    out = []
    for name, plan in plans:
        e = evaluate(inst, plan)
        sol = physics.solution_from_plan(inst, plan)
        if e.valid and e.deadline_misses == 0 and e.migrations_outside_domain == 0 and \
                goal.allows(inst, sol):
            out.append((goal.cost(inst, sol)[0], name, plan, e.grid_energy_kwh))
    return [(name, plan, grid) for _, name, plan, grid in sorted(out, key=lambda s: s[0])]


def static_mean_jct_h(inst: Instance) -> float:
    """The mean JCT (hours) of the ``static`` plan of the instance, by the evaluator: the
    reference of ``--max-jct-increase``."""
    return evaluate(inst, POLICIES["static"](inst, None)).mean_jct_h


def jct_bound_h(inst: Instance, opt: SolveOptions) -> float | None:
    """The mean-JCT bound (hours) of the options: ``max_mean_jct_h``, or the static plan's
    mean JCT changed by ``max_jct_increase_pct``; None without either (both: ValueError)."""
    if opt.max_jct_increase_pct is None:
        return opt.max_mean_jct_h
    if opt.max_mean_jct_h is not None:
        raise ValueError("give max_mean_jct_h or max_jct_increase_pct, not both")
    return static_mean_jct_h(inst) * (1 + opt.max_jct_increase_pct / 100)


def best_seed(inst: Instance) -> tuple[str, Plan, float] | None:
    """The greedy plan with least grid energy that is valid and meets every deadline."""
    seeds = seeds_of(inst)
    return seeds[0] if seeds else None


def choose_engine(inst: Instance, opt: SolveOptions) -> str:
    """``opt.engine``, or for ``auto`` the compact model when it is small enough."""
    if opt.engine != "auto":
        return opt.engine
    size = len(build_index(inst, max_sites=opt.max_sites, with_moves=False).occ)
    return "compact" if size <= opt.compact_max_triples else "decomposition"


def plan_milp(inst: Instance, options: SolveOptions | None = None) -> tuple[Plan, SolverFacts]:
    """Plan with the MILP (see the module docstring); return the plan and the solver's facts.

    Raises :class:`NoPlanFound` when no plan exists or none was found in the time limit.
    """
    opt = options or SolveOptions()
    started = opt.started if opt.started is not None else time.perf_counter()
    deadline = started + opt.time_limit_s
    bound_h = jct_bound_h(inst, opt)
    if bound_h is not None and opt.elastic:
        raise ValueError("a mean-JCT bound needs every job to finish: not with elastic")
    goal = physics.Goal.of(inst, opt.objective, bound_h)
    t0 = time.perf_counter()
    seeds, skipped = seeds_within(inst, goal, opt.seed_plans, deadline) \
        if opt.warm_start else ([], [])
    seed = seeds[0] if seeds else None
    seed_s = time.perf_counter() - t0
    report = _reporter(opt, started)
    report("seeds", incumbent=goal.cost(inst, physics.solution_from_plan(
        inst, seed[1]))[0] if seed else None)
    incumbent = physics.solution_from_plan(inst, seed[1]) if seed else None
    engine, run = _run_engine(inst, opt, seeds, incumbent, deadline, report, goal)
    facts = SolverFacts(
        engine=engine, status=run.status, objective=None, bound=run.bound, gap=None,
        seed_s=seed_s, build_s=run.build_s, solve_s=run.solve_s, grid_energy_kwh=None,
        variables=run.variables, binaries=run.binaries, constraints=run.constraints,
        seed_policy=seed[0] if seed else None, seed_grid_energy_kwh=seed[2] if seed else None,
        warm_start_accepted=run.warm_start_accepted, improved=None, elastic=opt.elastic,
        bound_source=run.bound_source, converged=run.converged, iterations=run.iterations,
        sweeps=run.sweeps, columns=run.columns, phase_s=run.phase_s, seeds_skipped=skipped)
    unfinished = (run.unfinished or {}) if opt.elastic else {}
    if run.solution is not None and goal.allows(inst, run.solution) and (
            incumbent is None or opt.elastic
            or goal.cost(inst, run.solution)[0] <= goal.cost(inst, incumbent)[0] + 1e-9):
        incumbent = run.solution                # never worse than the seed
    else:
        unfinished = {}
    if incumbent is None:
        raise NoPlanFound(facts)
    if run.solution is None and facts.status not in ("time_limit", "stopped", "too_large"):
        facts.status = "seed_kept"    # the solver failed (e.g. numerics) beside a valid seed
    facts.objective, facts.grid_energy_kwh = goal.cost(inst, incumbent, unfinished)
    if run.bound is not None:
        facts.gap = gap_between(facts.objective, run.bound)
        if facts.status in ("time_limit", "stopped") and gap_reached(facts.objective,
                                                                     run.bound, opt):
            facts.status = "gap_reached"
    if seed is not None:
        facts.improved = facts.grid_energy_kwh < seed[2] - 1e-9
    info = {"solver": "highs", "engine": engine}
    if opt.elastic:
        info["unfinished_gpu_h"] = {inst.jobs[j]: round(v, 9) for j, v in unfinished.items()}
    plan = physics.plan_from_solution(inst, incumbent, "milp", info)
    facts.wall_s = time.perf_counter() - started
    report("done", incumbent=facts.objective, bound=facts.bound)
    return plan, facts


def _run_engine(inst: Instance, opt: SolveOptions, seeds: list[tuple[str, Plan, float]],
                incumbent: Solution | None, deadline: float, report: Callable[..., None],
                goal: physics.Goal) -> tuple[str, _Result]:
    """The engine's name and its result, from the seeds (best first; ``incumbent``: the first
    as a solution); engine ``none`` and status ``time_limit`` when the seeds have used the time
    up (``time_limit_no_plan`` without a seed)."""
    if time.perf_counter() >= deadline:
        return "none", _Result(status="time_limit" if seeds else "time_limit_no_plan")
    engine = choose_engine(inst, opt)
    if engine == "decomposition":
        return engine, _solve_decomposition(
            inst, opt, [physics.solution_from_plan(inst, s[1]) for s in seeds], deadline,
            report, goal)
    report("compact")
    return engine, _solve_compact(inst, opt, incumbent, deadline, goal)


def _reporter(opt: SolveOptions, started: float) -> Callable[..., None]:
    """``report(phase, **facts)``: one progress event to ``opt.progress`` (if any), with the
    elapsed time and the relative gap when both incumbent and bound are known."""
    def report(phase: str, incumbent: float | None = None, bound: float | None = None,
               **more) -> None:
        if opt.progress is None:
            return
        gap = gap_between(incumbent, bound) if incumbent is not None and bound is not None \
            else None
        opt.progress({"phase": phase, "elapsed_s": round(time.perf_counter() - started, 3),
                      "incumbent": incumbent, "bound": bound, "gap": gap, **more})
    return report


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
    bound_source: str | None = None
    converged: bool | None = None
    iterations: int | None = None
    sweeps: int | None = None
    columns: int | None = None
    phase_s: dict | None = None


def _solve_decomposition(inst: Instance, opt: SolveOptions, seeds: list[Solution],
                         deadline: float, report, goal: physics.Goal) -> _Result:
    from milp.engine import decomposition

    res = decomposition.solve(inst, opt, seeds, deadline, report, goal)
    f = res.facts
    out = _Result(solution=res.solution, bound=f.bound, build_s=f.setup_s,
                  solve_s=f.lp_s + f.pricing_s + f.mip_s + f.dive_s + f.search_s,
                  unfinished=res.unfinished, bound_source=f.bound_source,
                  converged=f.converged, iterations=f.iterations, sweeps=f.sweeps,
                  columns=f.columns,
                  phase_s={"setup": round(f.setup_s, 3), "lp": round(f.lp_s, 3),
                           "pricing": round(f.pricing_s, 3), "mip": round(f.mip_s, 3),
                           "search": round(f.search_s, 3), "dives": round(f.dive_s, 3)})
    if res.infeasible_jobs:
        out.status = "infeasible"
    elif res.solution is None:
        out.status = "time_limit_no_plan"
    else:
        out.status = "stopped" if time.perf_counter() < deadline - 0.5 else "time_limit"
    return out


def _solve_compact(inst: Instance, opt: SolveOptions, incumbent: Solution | None,
                   deadline: float, goal: physics.Goal | None = None) -> _Result:
    """Build the whole model, warm-start it from the incumbent, cap its grid energy at the
    incumbent's, and solve it until the deadline."""
    started = time.perf_counter()
    size = len(build_index(inst, max_sites=opt.max_sites, with_moves=False).occ)
    if size > opt.compact_limit_triples or \
            size * opt.compact_s_per_triple > 0.5 * (deadline - time.perf_counter()):
        return _Result(status="too_large")     # a reference for small instances only
    must = {j: {b for (jj, _, b, _) in incumbent.moves if jj == j}
            for j in range(inst.n_jobs)} if incumbent else {}
    goal = goal or physics.Goal.of(inst)
    index = build_index(inst, max_sites=opt.max_sites, must_include=must)
    model = build_model(index, elastic=opt.elastic, weights=goal.weights,
                        jct_budget_h=goal.jct_budget_h)
    if incumbent is not None:
        cap = goal.cost(inst, incumbent)[0]      # the objective never above the incumbent's
        model.incumbent_cap = pyo.Constraint(
            expr=model.objective.expr <= cap + 1e-7 * max(1.0, abs(cap)))
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
    out.bound_source = "highs" if out.bound is not None else None
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
    # one thread scheduler per process, sized by the first solve: start a fresh one
    highspy.Highs.resetGlobalScheduler(True)
    if opt.node_limit is not None:
        solver.highs_options["mip_max_nodes"] = int(opt.node_limit)
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
    if tc == TerminationCondition.maxIterations:      # HiGHS's node limit (``node_limit``)
        return "stopped" if has_solution else "stopped_no_plan"
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
