"""The trade-off between grid energy and mean job completion time (JCT): a Pareto frontier.

The frontier is traced by ε-constraints: minimise the objective (grid kWh or CO₂) subject to
``mean JCT ≤ H`` (hours, :class:`milp.physics.Goal`), for bounds H from the ``static`` plan's
mean JCT (``H_0``) up to the mean JCT of the unconstrained MILP plan (``H_K-1``), evenly spaced,
and at the mean JCT of each greedy policy in that range (so that no greedy plan lies below it).
Bounds are solved in ascending order and each solve starts from every plan found so far, so a
looser bound can only do better. The frontier itself is then read off the plans, all scored
by the evaluator:

    point(H) = the plan of least objective among all plans found with mean JCT ≤ H,

which makes the objective non-increasing in H by construction; plans that another plan
dominates (no more JCT and no more objective, one strictly less) are dropped.

Every number reported here is the evaluator's (``milp.evaluate``), never the solver's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import pandas as pd

from milp.engine.solve import NoPlanFound, SolveOptions, SolverFacts, plan_milp
from milp.evaluate import Evaluation, evaluate
from milp.instance import Instance
from milp.plan import Plan
from milp.policies import POLICIES

#: relative tolerance on a JCT bound (the evaluator's JCT of a plan made under bound H may
#: exceed H by rounding of exact step times)
JCT_TOL = 1e-6


@dataclass
class Solved:
    """One solve of the sweep: the bound it had (None = unconstrained) and what came out."""

    bound_h: float | None
    plan: Plan | None
    evaluation: Evaluation | None
    facts: SolverFacts | None
    status: str

    @property
    def jct_h(self) -> float:
        return self.evaluation.mean_jct_h

    def cost(self, objective: str) -> float:
        e = self.evaluation
        return e.grid_co2_kg if objective == "co2" else e.grid_energy_kwh


@dataclass
class Frontier:
    """The sweep's solves, the greedy policies' evaluations and the frontier read off them."""

    objective: str
    static_jct_h: float
    bounds_h: list[float]               #: the ε bounds solved (ascending), hours
    solved: list[Solved]                #: every solve, in order (the unconstrained one first)
    greedy: dict[str, Evaluation]       #: every greedy policy's plan, scored

    def best_within(self, bound_h: float) -> Solved | None:
        """The solved plan of least objective with mean JCT ≤ ``bound_h`` (ties: less JCT)."""
        ok = [s for s in self.solved if s.evaluation is not None and s.evaluation.valid
              and s.jct_h <= bound_h * (1 + JCT_TOL) + 1e-9]
        return min(ok, key=lambda s: (s.cost(self.objective), s.jct_h), default=None)

    def points(self) -> list[tuple[float, Solved | None]]:
        """(bound H, the frontier's plan at H) for every bound, ascending."""
        return [(h, self.best_within(h)) for h in self.bounds_h]

    def nondominated(self) -> list[Solved]:
        """The distinct frontier plans, none dominated by another, by ascending JCT."""
        plans = {id(s): s for _, s in self.points() if s is not None}.values()
        keep = [s for s in plans if not any(_dominates(o, s, self.objective) for o in plans)]
        return sorted(keep, key=lambda s: (s.jct_h, s.cost(self.objective)))


def _dominates(a: Solved, b: Solved, objective: str) -> bool:
    ja, jb, ca, cb = a.jct_h, b.jct_h, a.cost(objective), b.cost(objective)
    return a is not b and ja <= jb and ca <= cb and (ja < jb or ca < cb)


def ascending_bounds(static_jct_h: float, free_jct_h: float, points: int) -> list[float]:
    """``points`` evenly spaced mean-JCT bounds (hours) from the static plan's to the
    unconstrained plan's; just the static one for one point or when the unconstrained plan is
    already no slower."""
    if points < 1:
        raise ValueError("points must be >= 1")
    if free_jct_h <= static_jct_h or points == 1:
        return [static_jct_h]
    step = (free_jct_h - static_jct_h) / (points - 1)
    return [static_jct_h + k * step for k in range(points - 1)] + [free_jct_h]


def trace(inst: Instance, points: int, options: SolveOptions,
          on_point: Callable[[Solved], None] | None = None) -> Frontier:
    """Solve the unconstrained MILP, then ``points`` ε-constrained ones (ascending bounds, each
    seeded with every plan so far), scoring every plan with the evaluator."""
    static_jct = evaluate(inst, POLICIES["static"](inst, None)).mean_jct_h
    greedy = {name: evaluate(inst, policy(inst, None)) for name, policy in POLICIES.items()}
    solved = [_solve(inst, None, options, ())]
    if on_point:
        on_point(solved[0])
    if solved[0].plan is None:
        raise NoPlanFound(solved[0].facts)
    free = solved[0].jct_h
    bounds = sorted(set(ascending_bounds(static_jct, free, points)) | {
        e.mean_jct_h for e in greedy.values()
        if e.valid and e.unfinished_jobs == 0 and static_jct < e.mean_jct_h < free})
    for h in bounds:
        if h >= solved[0].jct_h * (1 - JCT_TOL):
            continue                     # the unconstrained plan already meets this bound
        seeds = tuple(s.plan for s in solved if s.plan is not None)
        solved.append(_solve(inst, h, options, seeds))
        if on_point:
            on_point(solved[-1])
    return Frontier(options.objective, static_jct, bounds, solved, greedy)


def _solve(inst: Instance, bound_h: float | None, options: SolveOptions,
           seeds: tuple[Plan, ...]) -> Solved:
    opt = replace(options, max_mean_jct_h=bound_h, max_jct_increase_pct=None, seed_plans=seeds,
                  started=None)
    try:
        plan, facts = plan_milp(inst, opt)
    except NoPlanFound as e:
        return Solved(bound_h, None, None, e.facts, e.facts.status)
    return Solved(bound_h, plan, evaluate(inst, plan), facts, facts.status)


# ============================================================================ outputs ======

def tables(frontier: Frontier, plan_files: dict[int, str]) -> pd.DataFrame:
    """pareto.csv: one row per frontier plan (policy ``milp``: the least bound at which it is
    the frontier's plan, its metrics) and one per greedy policy; changes against ``static``."""
    static = frontier.greedy["static"]
    rows = []
    first_bound = {}
    for h, s in frontier.points():
        if s is not None:
            first_bound.setdefault(id(s), h)
    for s in frontier.nondominated():
        rows.append(_row("milp", s.evaluation, static, first_bound.get(id(s)),
                         s.status, s.facts.gap if s.facts else None, plan_files.get(id(s))))
    for name, e in frontier.greedy.items():
        rows.append(_row(name, e, static, None, None, None, None))
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = ["policy", "bound_mean_jct_h", "mean_jct_h", "grid_energy_kwh", "grid_co2_kg",
           "jct_vs_static_pct", "grid_vs_static_pct", "unfinished_jobs", "valid", "status",
           "gap", "plan"]


def _row(policy: str, e: Evaluation, static: Evaluation, bound: float | None,
         status: str | None, gap: float | None, plan: str | None) -> list:
    def pct(a: float, b: float) -> float | None:
        return None if b == 0 else 100.0 * (a - b) / b
    return [policy, bound, e.mean_jct_h, e.grid_energy_kwh, e.grid_co2_kg,
            pct(e.mean_jct_h, static.mean_jct_h), pct(e.grid_energy_kwh, static.grid_energy_kwh),
            e.unfinished_jobs, e.valid, status, gap, plan]


def summary(inst: Instance, frontier: Frontier, points: int, options: dict,
            provenance: dict) -> dict:
    """summary.json: the options, the static plan's mean JCT, the bounds, every solve and the
    provenance (:func:`milp.run.provenance`, the command line included), as every command's
    summary has."""
    return {"instance": inst.name, "objective": frontier.objective, "points": points,
            "options": dict(options),
            "static_mean_jct_h": frontier.static_jct_h, "bounds_h": frontier.bounds_h,
            "solves": [{"bound_mean_jct_h": s.bound_h, "status": s.status,
                        "mean_jct_h": s.evaluation.mean_jct_h if s.evaluation else None,
                        "grid_energy_kwh": s.evaluation.grid_energy_kwh if s.evaluation
                        else None,
                        "grid_co2_kg": s.evaluation.grid_co2_kg if s.evaluation else None,
                        "solver": s.facts.to_dict() if s.facts else None}
                       for s in frontier.solved],
            "provenance": dict(provenance)}


def figure(frontier: Frontier, table: pd.DataFrame, title: str, path) -> None:
    """pareto.png from :func:`tables`' rows (:func:`milp.figures.pareto_png`)."""
    from milp.figures import pareto_png

    key = "grid_co2_kg" if frontier.objective == "co2" else "grid_energy_kwh"
    label = "grid CO₂ (kg)" if frontier.objective == "co2" else "grid energy (kWh)"
    t = table.assign(cost=table[key])
    pareto_png(t[t["policy"] == "milp"], t[t["policy"] != "milp"], frontier.static_jct_h,
               label, f"{title}: {label.split(' (')[0]} against mean JCT", path)
