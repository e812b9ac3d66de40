"""The Python API: plan an instance with a policy, score the plan, say how it was made.

What the ``milp`` command does, for a script::

    import milp

    inst = milp.load_instance("instances/tiny-3site")
    outcome = milp.plan(inst, "milp", time_limit_s=20, seed=1)
    outcome.evaluation.grid_energy_kwh        # kWh, from the evaluator
    outcome.plan.to_frame()                   # one row per step
    outcome.summary()                         # what summary.json holds

:func:`plan` runs a policy (a greedy one, or the MILP with options passed through to
:class:`milp.engine.solve.SolveOptions`), scores the plan with the one evaluator
(:func:`milp.evaluate.evaluate`) and records the facts: the options, the solver's facts, the
versions and the machine (:func:`provenance`). When the MILP finds no plan it raises
:class:`NoPlan`, with the jobs that cannot meet their deadlines and why
(:func:`milp.explain.explain_unfinished`). The command line is a thin layer over this module
(parse, call, format), so both share :data:`DEFAULTS`.

This module imports the solver only when it is used: the command line reads its defaults from
here without loading Pyomo or HiGHS.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from importlib import metadata
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import pandas as pd

    from milp.engine.solve import SolveOptions
    from milp.evaluate import Evaluation
    from milp.instance import Instance
    from milp.plan import Plan
    from milp.replay import Faults, Replay
    from milp.state import Remainder, State

#: The policy every command and :func:`plan` use when none is named.
DEFAULT_POLICY = "milp"
#: The MILP's options and their defaults: the same for ``plan``, ``bench``, ``replan``,
#: ``replay --replan milp`` and :func:`plan` (a test checks they are
#: :class:`~milp.engine.solve.SolveOptions`'s). ``time_limit_s``: wall-clock seconds from the
#: command's (or call's) start to the plan; ``gap``: relative gap to the bound at which it
#: stops; ``abs_gap``: ... or this many kWh, whichever comes first; ``engine``: auto, compact or
#: decomposition; ``threads``: solver threads (None: HiGHS decides); ``elastic``: allow
#: unfinished work, minimised first; ``max_sites``: candidate sites per job (None: all);
#: ``seed``: the solver's random choices.
DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "time_limit_s": 60.0, "gap": 0.01, "abs_gap": 0.05, "engine": "auto", "threads": None,
    "elastic": False, "max_sites": None, "seed": 0, "objective": "grid-kwh",
    "max_mean_jct_h": None, "max_jct_increase_pct": None})
#: The MILP's engines (:mod:`milp.engine.solve`).
ENGINES = ("auto", "compact", "decomposition")

ProgressFn = Callable[[dict], None]


def policy_names() -> tuple[str, ...]:
    """Every policy :func:`plan` knows: ``milp`` and the greedy ones."""
    from milp.policies import POLICIES

    return ("milp", *POLICIES)


@dataclass(frozen=True)
class Outcome:
    """What :func:`plan` returns: the plan, its evaluation, and the facts of how it was made.

    ``facts``: ``instance``, ``policy``, ``wall_s`` (seconds the policy took), ``options``
    (the MILP's, as used; empty for a greedy policy), ``solver`` (the MILP's
    :class:`~milp.engine.solve.SolverFacts` as a dict; absent for a greedy policy) and
    ``provenance`` (:func:`provenance`).
    """

    plan: Plan
    evaluation: Evaluation
    facts: Mapping[str, Any]

    def summary(self) -> dict[str, Any]:
        """``summary.json``: instance, policy, wall_s, every evaluator metric, then solver
        facts (MILP), options and provenance."""
        head = {k: self.facts[k] for k in ("instance", "policy", "wall_s")}
        tail = {k: self.facts[k] for k in ("solver", "options", "provenance") if k in self.facts}
        return {**head, **self.evaluation.metrics(), **tail}


class NoPlan(Exception):
    """The MILP found no plan.

    ``status``: ``infeasible`` (no plan meets every deadline) or the solver's status when it
    ran out of time before finding one. ``reasons``: for an infeasible instance, one line per
    job that cannot meet its deadline and why (empty when the elastic plan that says so could
    not be found either: ``explained`` is then False).
    """

    def __init__(self, status: str, reasons: list[str], explained: bool) -> None:
        self.status = status
        self.reasons = reasons
        self.explained = explained
        super().__init__(self.message())

    def message(self) -> str:
        if self.status != "infeasible":
            return f"the solver found no plan ({self.status})"
        if not self.explained:
            return "no plan meets every deadline, and the elastic plan that would say which " \
                   "jobs could not be found either"
        return f"no plan meets every deadline: {len(self.reasons)} job(s) cannot"


def solve_options(options: Mapping[str, Any] | None = None, *,
                  progress: ProgressFn | None = None,
                  started: float | None = None) -> SolveOptions:
    """:data:`DEFAULTS` overridden by ``options`` (any field of
    :class:`~milp.engine.solve.SolveOptions`, the tuning knobs included) as SolveOptions.
    A name SolveOptions does not have is a TypeError; an unknown engine a ValueError."""
    from milp.engine.solve import SolveOptions

    known = {f.name for f in fields(SolveOptions)} - {"progress", "started"}
    given = dict(options or {})
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(f"unknown MILP option(s) {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(known))})")
    merged = {**DEFAULTS, **given}
    if merged["engine"] not in ENGINES:
        raise ValueError(f"unknown engine {merged['engine']!r} (known: {', '.join(ENGINES)})")
    return SolveOptions(**merged, progress=progress, started=started)


def plan(inst: Instance, policy: str = DEFAULT_POLICY, *, progress: ProgressFn | None = None,
         solver_log: bool = False, started: float | None = None, **options: Any) -> Outcome:
    """Plan ``inst`` with ``policy``, score the plan with the evaluator, record the facts.

    ``options`` go to the MILP (:data:`DEFAULTS`, and :class:`~milp.engine.solve.SolveOptions`'s
    tuning knobs); a greedy policy takes none. ``progress`` hears of every step (dicts, see
    :mod:`milp.progress`; default: throttled log lines of the logger ``milp.progress``).
    ``solver_log``: also pass HiGHS's log lines (compact engine) to the logger ``milp.highs``
    at DEBUG — give that logger a handler that does not write to file descriptors 1 or 2,
    which Pyomo captures while HiGHS solves. ``started``: the :func:`time.perf_counter` value
    the MILP's time limit counts from (default: now). Raises :class:`NoPlan` when the MILP
    finds none, ValueError for an unknown policy or engine, TypeError for an unknown option.
    """
    from milp.evaluate import evaluate as run_evaluator
    from milp.policies import POLICIES
    from milp.progress import LogProgress

    started = time.perf_counter() if started is None else started
    wall_started = time.time() - (time.perf_counter() - started)
    if policy not in policy_names():
        raise ValueError(f"unknown policy {policy!r} (known: {', '.join(policy_names())})")
    if policy != "milp" and options:
        raise TypeError(f"policy {policy!r} takes no options (given: "
                        f"{', '.join(sorted(options))})")
    report = progress if progress is not None else LogProgress()
    t0 = time.perf_counter()
    facts: dict[str, Any] = {"instance": inst.name, "policy": policy}
    if policy == "milp":
        opt = solve_options(options, progress=report, started=started)
        result, solver = _solve(inst, opt, report, solver_log)
        facts["solver"] = solver.to_dict()
        facts["options"] = solve_options_dict(options)
    else:
        def step(done: int, total: int) -> None:
            report({"phase": policy, "elapsed_s": round(time.perf_counter() - started, 3),
                    "done": done, "total": total})
        result = POLICIES[policy](inst, step)
        report({"phase": "done", "elapsed_s": round(time.perf_counter() - started, 3)})
        facts["options"] = {}
    facts["wall_s"] = time.perf_counter() - t0
    evaluation = run_evaluator(inst, result)
    facts["provenance"] = provenance(started, wall_started)
    return Outcome(plan=result, evaluation=evaluation, facts=MappingProxyType(facts))


def _solve(inst: Instance, opt: SolveOptions, report: ProgressFn, solver_log: bool):
    """The MILP, with HiGHS's log as progress; :class:`NoPlan` (explained) when none."""
    from milp.engine.solve import NoPlanFound, plan_milp
    from milp.explain import explain_unfinished
    from milp.progress import highs_log

    started = opt.started if opt.started is not None else time.perf_counter()
    try:
        with highs_log(report, started, echo=solver_log):
            return plan_milp(inst, opt)
    except NoPlanFound as e:
        if e.facts.status != "infeasible":
            raise NoPlan(e.facts.status, [], explained=False) from None
    try:                                 # which jobs cannot make it: the elastic plan says
        with highs_log(report, started, echo=solver_log):
            relaxed, _ = plan_milp(inst, replace(opt, gap=max(opt.gap, 1e-2), elastic=True))
    except NoPlanFound:
        raise NoPlan("infeasible", [], explained=False) from None
    reasons = explain_unfinished(inst, relaxed.info.get("unfinished_gpu_h", {}))
    raise NoPlan("infeasible", reasons, explained=True)


def evaluate(inst: Instance, plan: Plan, source: str = "plan") -> Evaluation:
    """Score ``plan`` on ``inst`` with the evaluator, after checking that the plan is for this
    instance (name, start, slot length: :func:`milp.plan.check_matches`, an
    :class:`~milp.errors.InputError` naming ``source`` otherwise)."""
    from milp.evaluate import evaluate as run_evaluator
    from milp.plan import check_matches

    check_matches(plan, inst, source)
    return run_evaluator(inst, plan)


# ---- the rest of a day: replan, replay ----------------------------------------------------

@dataclass(frozen=True)
class Replanned:
    """What :func:`replan` returns: the plan on the instance's clock (``plan``), the remaining
    problem (``rest``), the plan on its clock (``local``) and the evaluator's verdict on it
    there (``evaluation``), and the facts (``ready_after_last_slot``, ``options``,
    ``provenance``)."""

    plan: Plan
    rest: Remainder
    local: Plan
    evaluation: Evaluation
    facts: Mapping[str, Any]

    def summary(self) -> dict[str, Any]:
        """``summary.json`` of ``milp replan``."""
        f = self.facts
        return {**{k: f[k] for k in ("instance", "policy", "from", "jobs_left",
                                     "ready_after_last_slot")},
                **self.evaluation.metrics(), "options": f["options"],
                "provenance": dict(f["provenance"])}


def replan(inst: Instance, state: State, policy: str = DEFAULT_POLICY, *,
           progress: ProgressFn | None = None, started: float | None = None,
           **options: Any) -> Replanned:
    """Plan the rest of the day from ``state`` (:mod:`milp.state`) with ``policy``; the MILP
    (``options`` as :func:`plan`'s) re-plans elastic. Scored by the evaluator on the remaining
    problem."""
    from milp.evaluate import evaluate as run_evaluator
    from milp.state import replan as replan_state

    started = time.perf_counter() if started is None else started
    if policy not in policy_names():
        raise ValueError(f"unknown policy {policy!r} (known: {', '.join(policy_names())})")
    used = {**dict(solve_options_dict(options)), "elastic": True} if policy == "milp" else {}
    full, rest, local = replan_state(inst, state, policy, used, progress)
    late = [{"job": inst.jobs[j], "site": inst.sites[s.site],
             "work_left_h": round(s.work_left_h, 9),
             "ready": inst.time_of(s.ready_s).isoformat(timespec="milliseconds")}
            for j, s in sorted(rest.late.items())]
    evaluation = run_evaluator(rest.inst, local)
    facts = {"instance": inst.name, "policy": policy, "from": rest.inst.start.isoformat(),
             "jobs_left": rest.inst.n_jobs, "ready_after_last_slot": late, "options": used,
             "provenance": provenance(started)}
    return Replanned(full, rest, local, evaluation, MappingProxyType(facts))


@dataclass(frozen=True)
class Replayed:
    """What :func:`replay` returns: the replay (:class:`milp.replay.Replay`: executed plan,
    the evaluator on the plan and on what happened, events, the first fault's state), the
    per-job table (:func:`milp.replay.job_table`) and the facts."""

    result: Replay
    jobs: pd.DataFrame
    facts: Mapping[str, Any]

    def summary(self) -> dict[str, Any]:
        """``summary.json`` of ``milp replay``: instance, plan, policy, faults, replan, events,
        the evaluator's metrics planned and actual, options, provenance."""
        f = self.facts
        return {**{k: f[k] for k in ("instance", "plan", "policy", "faults", "replan",
                                     "events")},
                "planned": self.result.planned.metrics(), "actual": self.result.actual.metrics(),
                "options": f["options"], "provenance": dict(f["provenance"])}


def replay(inst: Instance, plan: Plan, faults: Faults, replan: str | None = None,
           replan_every_s: float | None = None, *, source: str = "plan",
           progress: ProgressFn | None = None, started: float | None = None,
           **options: Any) -> Replayed:
    """Execute ``plan`` against the reality ``faults`` describe (:mod:`milp.replay`),
    re-planning with ``replan`` at each fault (``options``: the MILP's, per re-plan). The plan
    must be a valid plan of ``inst`` (an :class:`~milp.errors.InputError` naming ``source``
    otherwise)."""
    from milp.errors import InputError
    from milp.replay import job_table, replay as run_replay

    started = time.perf_counter() if started is None else started
    if replan is not None and replan not in policy_names():
        raise ValueError(f"unknown policy {replan!r} (known: {', '.join(policy_names())})")
    planned = evaluate(inst, plan, source)
    if not planned.valid:
        raise InputError(source, f"is not a valid plan of {inst.name} "
                         f"({len(planned.violations)} violations, first: "
                         f"{planned.violations[0]}); check it with milp evaluate")
    used = dict(solve_options_dict(options)) if replan == "milp" else {}
    result = run_replay(inst, plan, faults, replan, replan_every_s, used, planned, progress)
    facts = {"instance": inst.name, "plan": source, "policy": plan.policy,
             "faults": {"bandwidth_factor": faults.bandwidth_factor,
                        "renewable_noise": faults.renewable_noise, "seed": faults.seed,
                        "outages": [f"{inst.sites[n]}@{inst.time_of(t).isoformat()}"
                                    for n, t in faults.outages],
                        "checkpoint_minutes": faults.checkpoint_every_s / 60.0},
             "replan": replan,
             "events": [{"time": inst.time_of(e["time_s"]).isoformat(), "event": e["event"]}
                        for e in result.events],
             "options": used, "provenance": provenance(started)}
    return Replayed(result, job_table(inst, result), MappingProxyType(facts))


def solve_options_dict(options: Mapping[str, Any]) -> dict[str, Any]:
    """:data:`DEFAULTS` overridden by ``options`` (checked as :func:`solve_options` does), as a
    plain dict: what a summary records under ``options``."""
    opt = solve_options(options)
    return {k: getattr(opt, k) for k in DEFAULTS} | {k: v for k, v in options.items()
                                                      if k not in DEFAULTS}


# ---- provenance --------------------------------------------------------------------------

def versions() -> dict[str, str]:
    """Versions of milp, HiGHS (highspy, which bundles the HiGHS of its version), Pyomo,
    numpy, pandas and Python."""
    out = {"milp": _version("milp-green-planner")}
    for name, dist in (("highs", "highspy"), ("pyomo", "pyomo"), ("numpy", "numpy"),
                       ("pandas", "pandas")):
        out[name] = _version(dist)
    out["python"] = platform.python_version()
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        if dist == "milp-green-planner":
            from milp import __version__
            return __version__
        return "not installed"


def cores() -> dict[str, int | None]:
    """CPU cores of the machine and those this process may run on (its affinity)."""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"cores": os.cpu_count(), "cores_usable": usable}


def provenance(started: float, wall_started: float | None = None,
               command: str | None = None) -> dict[str, Any]:
    """How a result was made: versions (:func:`versions`), machine (platform, cores), when it
    started (UTC, ISO 8601) and its wall time in seconds from ``started`` (a
    :func:`time.perf_counter` value), and the command line when there is one."""
    now = time.perf_counter()
    if wall_started is None:
        wall_started = time.time() - (now - started)
    out: dict[str, Any] = {
        **versions(), "platform": platform.platform(), "machine": platform.machine(),
        **cores(),
        "started": datetime.fromtimestamp(wall_started, timezone.utc).isoformat(
            timespec="seconds"),
        "wall_s": round(now - started, 3)}
    if command is not None:
        out["command"] = command
    return out


def command_line() -> str:
    """The command line of this process as typed (``milp plan ...``)."""
    import shlex

    return " ".join(["milp", *map(shlex.quote, sys.argv[1:])])
