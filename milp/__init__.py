"""Day-ahead planner that moves single-GPU AI jobs between renewable-powered micro-datacenters.

Data flows one way: instance files (or frames) -> validated :class:`Instance` -> policy
(greedy or MILP) -> :class:`Plan` -> :func:`evaluate` -> reports. The API (README.md,
"Python API")::

    import milp

    inst = milp.load_instance("instances/tiny-3site")      # or milp.Instance.from_frames(...)
    outcome = milp.plan(inst, "milp", time_limit_s=20)      # Outcome(plan, evaluation, facts)
    outcome.evaluation.grid_energy_kwh
    outcome.plan.to_frame()

Names are loaded when first used, so ``import milp`` stays light (no solver until a plan is
made).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The submodules milp.plan and milp.evaluate are loaded first: the functions plan() and
# evaluate() below then take their names on the package (``from milp.plan import Plan``
# keeps working: it reads sys.modules).
from milp import evaluate as _evaluate_module, plan as _plan_module  # noqa: F401

if TYPE_CHECKING:
    from milp.engine.solve import SolveOptions, SolverFacts
    from milp.errors import InputError
    from milp.evaluate import METRICS, Evaluation
    from milp.instance import Instance, describe, load_instance
    from milp.plan import JobPlan, Migration, Plan, Run
    from milp.policies import POLICIES
    from milp.run import (DEFAULT_POLICY, DEFAULTS, ENGINES, NoPlan, Outcome, provenance,
                          versions)
    from milp.timeseries import timeseries_frame

__version__ = "0.2.0"

#: Public name -> module that defines it (loaded on first use).
_LAZY = {
    "Instance": "milp.instance", "load_instance": "milp.instance", "describe": "milp.instance",
    "Plan": "milp.plan", "JobPlan": "milp.plan", "Run": "milp.plan",
    "Migration": "milp.plan", "Evaluation": "milp.evaluate",
    "METRICS": "milp.evaluate", "POLICIES": "milp.policies", "InputError": "milp.errors",
    "Outcome": "milp.run", "NoPlan": "milp.run", "DEFAULTS": "milp.run",
    "DEFAULT_POLICY": "milp.run", "ENGINES": "milp.run", "provenance": "milp.run",
    "versions": "milp.run", "SolveOptions": "milp.engine.solve",
    "SolverFacts": "milp.engine.solve", "timeseries_frame": "milp.timeseries",
}

__all__ = ["plan", "evaluate", *_LAZY]


def plan(inst: "Instance", policy: str | None = None, **options: Any) -> "Outcome":
    """Plan ``inst`` with ``policy`` (``milp``, the default, or a greedy one), score the plan with the
    evaluator and record how it was made: ``Outcome(plan, evaluation, facts)``.

    ``options``: the MILP's (``time_limit_s``, ``gap``, ``abs_gap``, ``engine``, ``threads``,
    ``elastic``, ``max_sites``, ``seed``; defaults :data:`milp.run.DEFAULTS`), ``progress``
    (a callable receiving progress dicts), ``solver_log``, ``started``. See
    :func:`milp.run.plan`; raises :class:`milp.run.NoPlan` when the MILP finds no plan."""
    from milp.run import DEFAULT_POLICY, plan as run_plan

    return run_plan(inst, policy if policy is not None else DEFAULT_POLICY, **options)


def evaluate(inst: "Instance", plan: "Plan", source: str = "plan") -> "Evaluation":
    """Score ``plan`` on ``inst`` with the one evaluator (:func:`milp.evaluate.evaluate`),
    after checking that the plan is for this instance (name, start, slot length; an
    :class:`InputError` naming ``source`` otherwise)."""
    from milp.run import evaluate as run_evaluate

    return run_evaluate(inst, plan, source)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'milp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
