"""The ``milp`` command line. Each command is a thin layer over the package's functions
(planning: :mod:`milp.run`): parse, call, format.

A user mistake (:class:`~milp.errors.InputError`) prints one line and exits with code 2.
Progress and log lines go to stderr (:func:`_console`); results to stdout, as text or, with
``--json``, as JSON.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import numpy as np
import typer

try:                                       # typer >= 0.20 carries its own copy of click
    from typer import _click as click
except ImportError:                        # pragma: no cover - older typer
    import click
#: Raised for a command given no arguments where it shows its help (click 8.2 and later).
_NO_ARGS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())

from milp import feasibility as fz
from milp.errors import InputError
from milp.limits import HUGE, MAX_BANDWIDTH_FACTOR, MAX_RENEWABLE_NOISE, MAX_SITES
from milp.export import (DEFAULT_COMMAND, DEFAULT_IMAGE, DEFAULT_LABEL, DEFAULT_MARGIN_S,
                         DEFAULT_SIGNAL, DEFAULT_TRANSFER, DEFAULT_TTL_S, DEFAULT_WAIT_IMAGE)
from milp.run import DEFAULT_POLICY, DEFAULTS, ENGINES

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Day-ahead planner moving single-GPU AI jobs to surplus renewable energy.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
LOG = logging.getLogger("milp")

#: Lines of violations (or other lists) a command prints before "... and N more".
MAX_LINES = 20
#: Largest seed (HiGHS takes a 32-bit random_seed; the same bound for replay's noise).
MAX_SEED = 2**31 - 1
#: The line (after ``error: ``) when the machine runs out of memory: exit 1.
OUT_OF_MEMORY = ("out of memory: this machine cannot hold what the command needs for this "
                 "input (README.md, 'Size policy'); free memory, or use a smaller instance "
                 "or a machine with more memory")


def _number(low: float = 0.0, high: float = HUGE, *, above: bool = False):
    """A typer callback: the option's value (or each of its values) must be a finite number
    from ``low`` (excluded when ``above``) to ``high``; otherwise one ``error:`` line, exit 2.
    The message says the range as it is, so 0 is never called allowed when it is refused."""
    def check(param: typer.CallbackParam, value):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None:
                continue
            if not (math.isfinite(v) and (v > low if above else v >= low) and v <= high):
                where = f"> {low:g} and <= {high:g}" if above else f"from {low:g} to {high:g}"
                raise InputError(_option_name(param), f"{v!r} is not a number {where}")
        return value
    return check


def _whole(low: int, high: int):
    """A typer callback: a whole number from ``low`` to ``high``."""
    def check(param: typer.CallbackParam, value):
        if value is not None and not low <= value <= high:
            raise InputError(_option_name(param), f"{value} is not a whole number from {low} to "
                             f"{high}")
        return value
    return check


def _option_name(param) -> str:
    """How the command line names an option (``--out``) or an argument (``DIRECTORY``)."""
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    if opts:
        return opts[0]
    return (getattr(param, "name", None) or "argument").upper()


def _echo_capped(lines: list[str], prefix: str, *, err: bool = False,
                 limit: int = MAX_LINES, more: str = "") -> None:
    """Print at most ``limit`` of ``lines`` (each after ``prefix``), then "... and N more"."""
    for line in lines[:limit]:
        typer.echo(f"{prefix}{line}", err=err)
    if len(lines) > limit:
        typer.echo(f"{prefix}... and {len(lines) - limit} more{more}", err=err)


def _emit_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default, allow_nan=False))


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.6g}" if math.isfinite(x) else str(x)
    return str(x)


def _version(value: bool) -> None:
    if value:
        from milp.run import versions

        v = versions()
        typer.echo(f"milp {v['milp']} (HiGHS {v['highs']}, Pyomo {v['pyomo']}, Python "
                   f"{v['python']})")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", help="Print the versions of milp, HiGHS, Pyomo and Python, and exit.",
        callback=_version, is_eager=True)] = False) -> None:
    """Day-ahead planner moving single-GPU AI jobs to surplus renewable energy."""


# ---- progress and log lines -----------------------------------------------------------------

VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", help="Log every step (a line per second of solver progress, and HiGHS's own "
    "log), with times.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", help="No progress, no log lines and no summary table (warnings and errors "
    "only).")]


class _LineHandler(logging.StreamHandler):
    """Log records on the console, after erasing the progress line (if one is shown)."""

    def __init__(self, stream, line) -> None:
        super().__init__(stream)
        self.line = line

    def emit(self, record: logging.LogRecord) -> None:
        self.line.clear()
        super().emit(record)


@contextmanager
def _console(verbose: bool = False, quiet: bool = False, label: str = "") -> Iterator[Any]:
    """Where a command's progress goes while the block runs; yields the progress consumer
    (a :class:`milp.progress.ProgressLine`, or ``None`` with ``--quiet``).

    stderr — a duplicate of its file descriptor, since Pyomo reads descriptors 1 and 2 while
    HiGHS solves: on a terminal one progress line updated in place, elsewhere log lines;
    the logger ``milp`` at INFO (DEBUG with ``--verbose``, WARNING with ``--quiet``)."""
    from milp.progress import ProgressLine

    try:
        stream = open(os.dup(sys.stderr.fileno()), "w", buffering=1, errors="replace",
                      encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
        own = True
    except (AttributeError, OSError, ValueError):   # no descriptor (a test's StringIO)
        stream, own = sys.stderr, False
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    line = ProgressLine(stream, terminal=terminal, verbose=verbose, label=label)
    handler = _LineHandler(stream, line)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s" if terminal and not verbose
                                           else "%(asctime)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    level, propagate = LOG.level, LOG.propagate
    LOG.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    LOG.propagate = False
    LOG.addHandler(handler)
    try:
        with _solver_chatter(stream if verbose else None):
            yield None if quiet else line
    finally:
        line.close()
        LOG.removeHandler(handler)
        LOG.setLevel(level)
        LOG.propagate = propagate
        if own:
            stream.close()


@contextmanager
def _solver_chatter(stream) -> Iterator[None]:
    """stdout is for results: while the block runs, what the solvers print on file descriptor
    1 (HiGHS's banner when highspy makes a model) goes to ``stream`` (``--verbose``) or
    nowhere. Only when descriptor 1 is this process's stdout (not in a test's StringIO)."""
    try:
        sys.stdout.flush()
        if sys.stdout.fileno() != 1:
            raise ValueError("stdout is not descriptor 1")
        target = stream.fileno() if stream is not None else os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError):
        yield
        return
    saved = os.dup(1)
    try:
        os.dup2(target, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        if stream is None:
            os.close(target)


# ---- the MILP's options: one set, one set of defaults (milp.run.DEFAULTS) -------------------

TimeLimitOpt = Annotated[float, typer.Option(
    "--time-limit", help="milp: seconds of wall-clock time from the command's start (reading "
    "the instance included) to the plan; per re-plan for replay.", callback=_number())]
GapOpt = Annotated[float, typer.Option(
    help="milp: stop when the plan is within this relative gap of the bound.",
    callback=_number(0, 1))]
AbsGapOpt = Annotated[float, typer.Option(
    help="milp: ... or within this many kWh of it, whichever comes first.",
    callback=_number())]
EngineOpt = Annotated[str, typer.Option(
    help="milp: auto (compact for small instances, else decomposition), compact (the whole "
         "MILP) or decomposition (column generation over job schedules).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    help="milp: solver threads (default: HiGHS decides).", callback=_whole(1, 1024))]
ElasticOpt = Annotated[bool, typer.Option(
    help="milp: allow unfinished work, minimised first, then grid energy.")]
MaxSitesOpt = Annotated[Optional[int], typer.Option(
    help="milp: candidate sites per job (origin, warm-start sites, then greenest).",
    callback=_whole(1, MAX_SITES))]
SolverSeedOpt = Annotated[int, typer.Option(
    "--seed", help="milp: seed of the solver's random choices.", callback=_whole(0, MAX_SEED))]
ObjectiveOpt = Annotated[str, typer.Option(
    help="milp: what to minimise: grid-kwh (grid energy) or co2 (its CO2, needs carbon.csv); "
         "the other breaks ties.")]
MaxMeanJctOpt = Annotated[Optional[float], typer.Option(
    "--max-mean-jct-h", help="milp: the jobs' mean completion time (hours from release) may "
    "not exceed this.", callback=_number())]
MaxJctIncreaseOpt = Annotated[Optional[float], typer.Option(
    "--max-jct-increase", help="milp: the mean completion time may exceed the static plan's "
    "by at most this many percent (negative: must be that much lower).",
    callback=_number(-100, 1e6))]


def _milp_options(time_limit: float, gap: float, abs_gap: float, engine: str,
                  threads: int | None, seed: int, elastic: bool = False,
                  max_sites: int | None = None, objective: str = DEFAULTS["objective"],
                  max_mean_jct_h: float | None = None,
                  max_jct_increase: float | None = None) -> dict[str, Any]:
    """The MILP options of a command line, checked, under :data:`milp.run.DEFAULTS`' names."""
    from milp.physics import OBJECTIVES

    if engine not in ENGINES:
        raise InputError("--engine", f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if objective not in OBJECTIVES:
        raise InputError("--objective", f"unknown objective {objective!r} (known: "
                         f"{', '.join(OBJECTIVES)})")
    if max_mean_jct_h is not None and max_jct_increase is not None:
        raise InputError("--max-jct-increase", "give --max-mean-jct-h or --max-jct-increase, "
                         "not both")
    if elastic and (max_mean_jct_h is not None or max_jct_increase is not None):
        raise InputError("--elastic", "a mean-JCT bound needs every job to finish: not with "
                         "--elastic")
    return {"time_limit_s": time_limit, "gap": gap, "abs_gap": abs_gap, "engine": engine,
            "threads": threads, "elastic": elastic, "max_sites": max_sites, "seed": seed,
            "objective": objective, "max_mean_jct_h": max_mean_jct_h,
            "max_jct_increase_pct": max_jct_increase}


def _check_goal(inst, options: dict[str, Any]) -> None:
    """What the options ask of the instance: carbon.csv for ``--objective co2``."""
    if options.get("objective") == "co2" and inst.carbon_g_per_kwh is None:
        raise InputError("--objective", f"co2 needs the instance's carbon.csv, and {inst.name} "
                         f"has none")


def _summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, allow_nan=False, default=_json_default) + "\n"


# ---- check ----------------------------------------------------------------------------------

@app.command()
def check(directory: Annotated[Path, typer.Argument(help="Instance folder.")],
          as_json: JsonFlag = False) -> None:
    """Validate an instance folder and print a short summary."""
    from milp.instance import describe, load_instance

    facts = describe(load_instance(directory))
    if as_json:
        _emit_json(facts)
        return
    c = facts["jobs_per_class"]
    lines = [
        f"instance   {facts['name']}: valid",
        f"horizon    {facts['slots']} slots of {facts['slot_minutes']:g} min from "
        f"{facts['start']}",
        f"sites      {facts['sites']} with {facts['gpus']} GPUs",
        f"jobs       {facts['jobs']} (class A {c['A']}, B {c['B']}, C {c['C']}), "
        f"{facts['work_h']:.6g} GPU-h of work",
        f"energy     renewable {facts['renewable_energy_kwh']:.6g} kWh, "
        f"job demand {facts['demand_energy_kwh']:.6g} kWh, idle {facts['idle_energy_kwh']:.6g}"
        f" kWh",
        f"links      {facts['links']} directed, Gbps min/median/max "
        f"{_fmt(facts['link_gbps_min'])}/{_fmt(facts['link_gbps_median'])}/"
        f"{_fmt(facts['link_gbps_max'])}; site WAN Gbps "
        + ", ".join(f"{s} {_fmt(w) if w is not None else 'unlimited'}"
                    for s, w in facts["wan_gbps"].items()),
        f"execution  at most {_restarts(facts['max_restarts'])} restarts per job, no run shorter "
        f"than {facts['min_run_minutes']:g} min but a job's last",
        f"windows    {facts['windows']} renewable windows, hours mean/median/min/max "
        f"{_fmt(facts['window_h_mean'])}/{_fmt(facts['window_h_median'])}/"
        f"{_fmt(facts['window_h_min'])}/{_fmt(facts['window_h_max'])} "
        f"(study: 2.5-9.5 h)",
    ]
    typer.echo("\n".join(lines))


def _restarts(cap: int | None) -> str:
    return "any number of" if cap is None else str(cap)


# ---- feasibility ----------------------------------------------------------------------------

@app.command()
def feasibility(
    checkpoint_gb: Annotated[float, typer.Option(help="Checkpoint size (GB).",
                                                 callback=_number())],
    bandwidth_gbps: Annotated[float, typer.Option(help="WAN bandwidth (Gbps).",
                                                  callback=_number())],
    window_h: Annotated[float, typer.Option(help="Renewable window left at the destination "
                                            "(hours).", callback=_number())]
    = fz.STUDY_WINDOWS_H[0],
    alpha: Annotated[float, typer.Option(help="Share of the window a move may take.",
                                         callback=_number(0, 1))] = fz.ALPHA,
    load_time_s: Annotated[float, typer.Option(help="Checkpoint load time (s).",
                                               callback=_number())] = fz.LOAD_TIME_S,
    downtime_s: Annotated[float, typer.Option(help="Stop-and-copy downtime (s).",
                                              callback=_number())] = fz.DOWNTIME_S,
    transfer_kw: Annotated[float, typer.Option(help="Power while transferring (kW).",
                                               callback=_number())] = fz.TRANSFER_KW,
    compute_kw: Annotated[float, typer.Option(help="Power while computing (kW).",
                                              callback=_number(above=True))] = fz.COMPUTE_KW,
    as_json: JsonFlag = False,
) -> None:
    """Transfer, disruption and breakeven of one migration, its class, and whether it fits."""
    r = fz.assess(checkpoint_gb, bandwidth_gbps, window_h, alpha=alpha, load_time_s=load_time_s,
                  downtime_s=downtime_s, transfer_kw=transfer_kw, compute_kw=compute_kw)
    facts = {"transfer_s": r.transfer_s, "disruption_s": r.disruption_s,
             "breakeven_s": r.breakeven_s, "class": r.workload_class, "feasible": r.feasible,
             "budget_s": r.budget_s, "window_h": r.window_h, "alpha": r.alpha,
             "max_checkpoint_gb": r.max_checkpoint_gb}
    if as_json:
        _emit_json({k: v if not isinstance(v, float) or math.isfinite(v) else None
                    for k, v in facts.items()})
        return
    verdict = "feasible" if r.feasible else "NOT feasible"
    typer.echo("\n".join([
        f"checkpoint {checkpoint_gb:g} GB (class {r.workload_class}) over {bandwidth_gbps:g} Gbps",
        f"transfer_s        {r.transfer_s:.6g}",
        f"disruption_s      {r.disruption_s:.6g}  (transfer + load {load_time_s:g} s + downtime "
        f"{downtime_s:g} s)",
        f"breakeven_s       {r.breakeven_s:.6g}  ({r.breakeven_s / 60:.3g} min)",
        f"class             {r.workload_class}",
        f"feasible          {r.feasible}  ({verdict}: budget {alpha:g} x {window_h:g} h = "
        f"{r.budget_s:.6g} s)",
        f"max_checkpoint_gb {r.max_checkpoint_gb:.6g}  (largest feasible at this bandwidth)",
    ]))


@app.command("phase-diagram")
def phase_diagram(
    out: Annotated[Path, typer.Option(help="PNG file to write; the grid goes beside it as CSV.")],
    window_h: Annotated[Optional[list[float]], typer.Option(
        help="Window length(s) in hours; repeat for a range (feasible for the shortest, "
             "marginal for the longest).", callback=_number(above=True))] = None,
    alpha: Annotated[float, typer.Option(callback=_number(0, 1))] = fz.ALPHA,
    load_time_s: Annotated[float, typer.Option(callback=_number())] = fz.LOAD_TIME_S,
    downtime_s: Annotated[float, typer.Option(callback=_number())] = fz.DOWNTIME_S,
    min_gb: Annotated[float, typer.Option(help="Smallest checkpoint (GB).",
                                          callback=_number(0.001))] = 1.0,
    max_gb: Annotated[float, typer.Option(help="Largest checkpoint (GB).",
                                          callback=_number(0.001))] = 1000.0,
    min_gbps: Annotated[float, typer.Option(help="Slowest link (Gbps).",
                                            callback=_number(0.001))] = 0.1,
    max_gbps: Annotated[float, typer.Option(help="Fastest link (Gbps).",
                                            callback=_number(0.001))] = 100.0,
    points: Annotated[int, typer.Option(help="Grid points per axis.",
                                        callback=_whole(2, 2000))] = 120,
    as_json: JsonFlag = False,
) -> None:
    """Write the phase diagram (checkpoint size × bandwidth) as PNG and its grid as CSV."""
    from milp.figures import phase_diagram_png
    from milp.files import staged_files

    windows = tuple(window_h) if window_h else fz.STUDY_WINDOWS_H
    if max_gb <= min_gb or max_gbps <= min_gbps:
        raise InputError("--max-gb/--max-gbps", "each maximum must exceed its minimum")
    csv_path = out.with_suffix(".csv")
    if out == csv_path:
        raise InputError(str(out), "--out is the PNG; the grid goes beside it as .csv, so --out "
                         "cannot end in .csv")
    for path in (out, csv_path):
        _check_out_file(path)
    grid = fz.phase_diagram(np.geomspace(min_gb, max_gb, points),
                            np.geomspace(min_gbps, max_gbps, points), windows, alpha=alpha,
                            load_time_s=load_time_s, downtime_s=downtime_s)
    with staged_files(out, csv_path) as (png_tmp, csv_tmp):     # both files, or neither
        csv_tmp.write_text(grid.to_csv(index=False), encoding="utf-8")
        phase_diagram_png(grid, windows, png_tmp, alpha=alpha, load_time_s=load_time_s,
                          downtime_s=downtime_s)
    counts = grid["region"].value_counts()
    if as_json:
        _emit_json({"wrote": [str(out), str(csv_path)], **{
            r: int(counts.get(r, 0)) for r in ("feasible", "marginal", "infeasible")}})
        return
    typer.echo(f"wrote {out} and {csv_path}: " + ", ".join(
        f"{counts.get(r, 0)} {r}" for r in ("feasible", "marginal", "infeasible")))


# ---- evaluate -------------------------------------------------------------------------------

@app.command()
def evaluate(directory: Annotated[Path, typer.Argument(help="Instance folder.")],
             plan: Annotated[Path, typer.Argument(help="plan.json to score.")],
             as_json: JsonFlag = False) -> None:
    """Check a plan's physics and print every metric. Exit 0 when valid, 1 when not; 2 when
    the plan is for another instance (name, start or slot length)."""
    from milp.instance import load_instance
    from milp.plan import Plan
    from milp.run import evaluate as score

    inst = load_instance(directory)
    result = score(inst, Plan.load(plan), str(plan))
    if as_json:
        _emit_json(result.metrics())
    else:
        _print_metrics(result.metrics())
    raise typer.Exit(0 if result.valid else 1)


def _print_metrics(metrics: dict, head: dict | None = None) -> None:
    """One screen: optional header facts, every metric, then the violations one per line (at
    most :data:`MAX_LINES`; ``--json`` lists them all)."""
    rows = {**(head or {}), **{k: v for k, v in metrics.items() if k != "violations"}}
    width = max(map(len, rows))
    for key, value in rows.items():
        typer.echo(f"{key:<{width}}  {_fmt(value)}")
    _echo_capped(metrics["violations"], "violation: ", more=" (--json lists them all)")


# ---- plan -----------------------------------------------------------------------------------

@app.command("plan")
def plan_cmd(
    directory: Annotated[Path, typer.Argument(help="Instance folder.")],
    out: Annotated[Path, typer.Option(help="Folder for plan.json, schedule.csv, summary.json, "
                                      "timeseries.csv and timeseries.parquet.")],
    policy: Annotated[str, typer.Option(help="milp, static, wait-awhile, energy-only or "
                                        "feasibility-aware.")] = DEFAULT_POLICY,
    time_limit: TimeLimitOpt = DEFAULTS["time_limit_s"],
    gap: GapOpt = DEFAULTS["gap"],
    abs_gap: AbsGapOpt = DEFAULTS["abs_gap"],
    engine: EngineOpt = DEFAULTS["engine"],
    threads: ThreadsOpt = DEFAULTS["threads"],
    elastic: ElasticOpt = DEFAULTS["elastic"],
    max_sites: MaxSitesOpt = DEFAULTS["max_sites"],
    seed: SolverSeedOpt = DEFAULTS["seed"],
    objective: ObjectiveOpt = DEFAULTS["objective"],
    max_mean_jct_h: MaxMeanJctOpt = DEFAULTS["max_mean_jct_h"],
    max_jct_increase: MaxJctIncreaseOpt = DEFAULTS["max_jct_increase_pct"],
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a day-ahead plan with one policy, score it with the evaluator, write its files.

    Exit 0 with a valid plan, 1 if the plan breaks physics (a bug), 2 on bad input, 3 when the
    MILP finds no plan (the jobs that cannot meet their deadlines are listed)."""
    from milp.files import staged_dir, write_atomic
    from milp.instance import load_instance
    from milp.plan import save_schedule
    from milp.run import NoPlan, command_line, plan as make_plan
    from milp.timeseries import timeseries_frame, write_timeseries

    command_started = time.perf_counter()
    _check_policy(policy, "--policy")
    options = _milp_options(time_limit, gap, abs_gap, engine, threads, seed, elastic,
                            max_sites, objective, max_mean_jct_h, max_jct_increase)
    _check_out_dir(out, files=("plan.json", "schedule.csv", "summary.json", "timeseries.csv",
                               "timeseries.parquet"))
    inst = load_instance(directory)
    _check_goal(inst, options)
    with _console(verbose, quiet) as progress:
        if policy == "milp":
            LOG.info("solving the MILP for %s (time limit %g s, gap %g, abs gap %g kWh, engine "
                     "%s, seed %d)...", inst.name, time_limit, gap, abs_gap, engine, seed)
        else:
            LOG.info("planning %s with %s...", inst.name, policy)
        try:
            outcome = make_plan(inst, policy, progress=progress or (lambda event: None),
                                solver_log=verbose, started=command_started,
                                **(options if policy == "milp" else {}))
        except NoPlan as e:
            _no_plan(e)
        LOG.info("%s: %s in %.1f s", inst.name, "valid plan" if outcome.evaluation.valid
                 else "plan with violations", outcome.facts["wall_s"])
    summary = outcome.summary()
    summary["provenance"]["command"] = command_line()
    with staged_dir(out, kept=_warn_kept) as stage:   # every file, or none
        outcome.plan.save(stage / "plan.json")
        save_schedule(outcome.plan, inst, stage / "schedule.csv")
        write_timeseries(timeseries_frame(inst, outcome.plan, outcome.evaluation), stage)
        write_atomic(stage / "summary.json", _summary_json(summary))
    if as_json:
        _emit_json(summary)
    elif not quiet:
        head = {"instance": inst.name, "policy": policy, "wall_s": round(summary["wall_s"], 3)}
        solver = summary.get("solver")
        if solver is not None:
            head.update({f"solver.{k}": solver[k] for k in (
                "engine", "status", "objective", "bound", "bound_source", "gap", "converged",
                "iterations", "columns", "build_s", "solve_s", "seed_policy",
                "seed_grid_energy_kwh", "improved")})
        _print_metrics(outcome.evaluation.metrics(), head)
        typer.echo(f"wrote {out / 'plan.json'}, schedule.csv, summary.json, timeseries.csv, "
                   f"timeseries.parquet")
    raise typer.Exit(0 if outcome.evaluation.valid else 1)


def _no_plan(e) -> None:
    """No plan (:class:`milp.run.NoPlan`): what to do, on stderr, and exit 3."""
    if e.status != "infeasible":
        typer.echo(f"error: the solver found no plan ({e.status}); raise --time-limit or try "
                   f"--elastic", err=True)
    elif not e.explained:
        typer.echo("error: no plan meets every deadline, and the elastic plan that would say "
                   "which jobs could not be found either; raise --time-limit", err=True)
    else:
        typer.echo("error: no plan meets every deadline:", err=True)
        for line in e.reasons[:15]:
            typer.echo(f"  {line}", err=True)
        if len(e.reasons) > 15:
            typer.echo(f"  ... and {len(e.reasons) - 15} more jobs", err=True)
        typer.echo("Rerun with --elastic to plan anyway (unfinished work minimised first).",
                   err=True)
    raise typer.Exit(3)


@app.command("pareto")
def pareto_cmd(
    directory: Annotated[Path, typer.Argument(help="Instance folder.")],
    out: Annotated[Path, typer.Option(help="Folder for pareto.csv, pareto.png, summary.json "
                                      "and plans/.")],
    points: Annotated[int, typer.Option(help="Mean-JCT bounds, evenly spaced from static's "
                                        "to the unconstrained plan's.",
                                        callback=_whole(1, 100))] = 5,
    time_limit: TimeLimitOpt = DEFAULTS["time_limit_s"],
    gap: GapOpt = DEFAULTS["gap"],
    abs_gap: AbsGapOpt = DEFAULTS["abs_gap"],
    engine: EngineOpt = DEFAULTS["engine"],
    threads: ThreadsOpt = DEFAULTS["threads"],
    max_sites: MaxSitesOpt = DEFAULTS["max_sites"],
    seed: SolverSeedOpt = DEFAULTS["seed"],
    objective: ObjectiveOpt = DEFAULTS["objective"],
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Trace the trade-off of grid energy (or CO2) against mean completion time: the MILP
    unconstrained, then under mean-JCT bounds from the static plan's up (--time-limit is per
    solve); every plan scored by the evaluator. Writes pareto.csv, pareto.png, summary.json
    and each frontier plan in plans/.

    Exit 0, 2 on bad input, 3 when not even the unconstrained MILP finds a plan."""
    from milp import pareto
    from milp.files import staged_dir, write_atomic
    from milp.instance import load_instance
    from milp.engine.solve import NoPlanFound
    from milp.run import command_line, provenance, solve_options

    command_started = time.perf_counter()
    options = _milp_options(time_limit, gap, abs_gap, engine, threads, seed, False, max_sites,
                            objective)
    _check_out_dir(out, files=("pareto.csv", "pareto.png", "summary.json"), folders=("plans",))
    inst = load_instance(directory)
    _check_goal(inst, options)

    def tell(s: "pareto.Solved") -> None:
        what = "unconstrained" if s.bound_h is None else f"mean JCT <= {s.bound_h:.3f} h"
        got = (f"grid {s.evaluation.grid_energy_kwh:.3f} kWh, mean JCT {s.jct_h:.3f} h"
               if s.evaluation else "no plan")
        LOG.info("%s: %s: %s (%s)", inst.name, what, got, s.status)

    with _console(verbose, quiet) as progress:
        LOG.info("tracing the frontier of %s (%d points, %g s per solve)...", inst.name, points,
                 time_limit)
        try:
            front = pareto.trace(inst, points, solve_options(
                options, progress=progress or None), tell)
        except NoPlanFound as e:
            typer.echo(f"error: the unconstrained MILP found no plan ({e.facts.status}); "
                       f"check the instance with milp plan, or raise --time-limit", err=True)
            raise typer.Exit(3) from None
    chosen = front.nondominated()
    files = {id(s): f"plans/point-{k + 1}.json" for k, s in enumerate(chosen)}
    table = pareto.tables(front, files)
    summary = pareto.summary(inst, front, points, options,
                             provenance(command_started, command=command_line()))
    with staged_dir(out, kept=_warn_kept) as stage:     # every file, or none
        (stage / "plans").mkdir()
        for s in chosen:
            s.plan.save(stage / files[id(s)])
        write_atomic(stage / "pareto.csv", table.to_csv(index=False, float_format="%.6g"))
        pareto.figure(front, table, inst.name, stage / "pareto.png")
        write_atomic(stage / "summary.json", _summary_json(summary))
    if as_json:
        _emit_json(summary)
    elif not quiet:
        typer.echo(table.drop(columns=["plan"]).to_string(index=False, float_format="%.3f"))
        typer.echo(f"wrote {out / 'pareto.csv'}, pareto.png, summary.json, plans/")


def _check_out_dir(out: Path, files: tuple[str, ...] = (), folders: tuple[str, ...] = ()
                   ) -> None:
    """``--out`` must be a folder (or not exist yet) under a folder, and none of the outputs
    named may be in the way of something else there (a folder where a file goes, ...):
    checked before the work, so that nothing is computed in vain."""
    from milp.files import check_out_entries

    if out.exists() and not out.is_dir():
        raise InputError(str(out), "--out must be a folder, and this is a file")
    _check_parents(out)
    check_out_entries(out, files, folders)


def _check_parents(out: Path) -> None:
    """The nearest existing folder above ``out`` must be a folder we may write into."""
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(str(out), f"--out is under {parent}, which is a file")
            return


# ---- where a sweep runs (milp.sweep) ----------------------------------------------------------

from milp.sweep import HELP as _SWEEP_HELP  # noqa: E402  (light: no Dask until a sweep runs)

WorkersOpt = Annotated[Optional[int], typer.Option(help=_SWEEP_HELP["workers"])]
SchedulerOpt = Annotated[Optional[str], typer.Option(help=_SWEEP_HELP["scheduler"])]
SlurmOpt = Annotated[bool, typer.Option("--slurm", help=_SWEEP_HELP["slurm"])]
SlurmJobsOpt = Annotated[Optional[int], typer.Option(help=_SWEEP_HELP["slurm_jobs"] +
                                                     " [default: 1]")]
SlurmPartitionOpt = Annotated[Optional[str], typer.Option(help=_SWEEP_HELP["slurm_partition"])]
SlurmAccountOpt = Annotated[Optional[str], typer.Option(help=_SWEEP_HELP["slurm_account"])]
SlurmWalltimeOpt = Annotated[Optional[str], typer.Option(help=_SWEEP_HELP["slurm_walltime"] +
                                                         " [default: 01:00:00]")]
SlurmCoresOpt = Annotated[Optional[int], typer.Option(help=_SWEEP_HELP["slurm_cores"] +
                                                      " [default: 1]")]
SlurmMemoryOpt = Annotated[Optional[str], typer.Option(help=_SWEEP_HELP["slurm_memory"] +
                                                       " [default: 4GB]")]
SlurmInterfaceOpt = Annotated[Optional[str], typer.Option(help=_SWEEP_HELP["slurm_interface"])]


# ---- bench ----------------------------------------------------------------------------------

@app.command()
def bench(
    instances: Annotated[list[Path], typer.Argument(help="Instance folders.")],
    out: Annotated[Path, typer.Option(help="Results folder (cells are kept: reruns resume).")],
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")]
    = ",".join(("static", "wait-awhile", "energy-only", "feasibility-aware", "milp")),
    time_limit: TimeLimitOpt = DEFAULTS["time_limit_s"],
    gap: GapOpt = DEFAULTS["gap"],
    abs_gap: AbsGapOpt = DEFAULTS["abs_gap"],
    engine: EngineOpt = DEFAULTS["engine"],
    threads: ThreadsOpt = DEFAULTS["threads"],
    seed: SolverSeedOpt = DEFAULTS["seed"],
    objective: ObjectiveOpt = DEFAULTS["objective"],
    max_mean_jct_h: MaxMeanJctOpt = DEFAULTS["max_mean_jct_h"],
    max_jct_increase: MaxJctIncreaseOpt = DEFAULTS["max_jct_increase_pct"],
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    slurm: SlurmOpt = False,
    slurm_jobs: SlurmJobsOpt = None,
    slurm_partition: SlurmPartitionOpt = None,
    slurm_account: SlurmAccountOpt = None,
    slurm_walltime: SlurmWalltimeOpt = None,
    slurm_cores: SlurmCoresOpt = None,
    slurm_memory: SlurmMemoryOpt = None,
    slurm_interface: SlurmInterfaceOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Run every policy on every instance, score with the evaluator, write results.csv,
    results.md and figures (grid energy, JCT, one instance's per-site timeline). Each cell is
    written as it finishes; a rerun keeps the cells made with the same options. The MILP's
    time limit is per cell, from its start; a MILP cell uses one thread unless --threads.
    Cells run in this process, or on Dask: --workers N, --scheduler ADDRESS or --slurm.

    Exit 0, 1 when cells failed (the others are kept), 2 on bad input."""
    from milp.bench import run_bench
    from milp.run import command_line
    from milp.sweep import SweepFailed, where

    options = _milp_options(time_limit, gap, abs_gap, engine, threads, seed, False, None,
                            objective, max_mean_jct_h, max_jct_increase)
    runs_on = where(workers, scheduler, slurm, slurm_jobs, slurm_partition, slurm_account,
                    slurm_walltime, slurm_cores, slurm_memory, slurm_interface,
                    out / "slurm-logs")
    _check_out_dir(out)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise InputError("--policies", "name at least one policy")
    for name in names:
        _check_policy(name, "--policies")
    if len(set(names)) < len(names):
        raise InputError("--policies", f"a policy is named twice: {policies}")
    with _console(verbose, quiet) as progress:
        try:
            table = run_bench(instances, names, out, options, progress,
                              command=command_line(), where=runs_on)
        except SweepFailed as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
    cols = ["instance", "policy", "grid_energy_kwh", "mean_jct_h", "migrations",
            "migrations_outside_domain", "deadline_misses", "valid"]
    if as_json:
        _emit_json(json.loads(table.to_json(orient="records")))
        return
    typer.echo(table[cols].round(3).to_string(index=False))
    typer.echo(f"wrote {out / 'results.csv'}, {out / 'results.md'} and figures")


# ---- report ---------------------------------------------------------------------------------

@app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="Instance folder.")],
    plan: Annotated[Path, typer.Argument(help="plan.json to show.")],
    out: Annotated[Path, typer.Option(help="Folder for the PNGs, CSVs, timeseries and "
                                      "report.html.")],
    compare: Annotated[Optional[list[Path]], typer.Option(
        help="Other plan.json to compare (repeat); a static plan among them is the "
             "reference of the % changes.")] = None,
    pareto: Annotated[Optional[Path], typer.Option(
        help="The --out folder of milp pareto for this instance: its frontier goes in the "
             "report.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Figures, tables, a run sheet per site, time series and one self-contained report.html
    for a plan (headline and changes against static, site timeline, job Gantt, phase diagram,
    every evaluator metric; side by side with --compare)."""
    from milp.files import staged_dir
    from milp.instance import load_instance
    from milp.plan import Plan, check_matches, check_names
    from milp.report import REPORT_FILES, build_report, write_report

    _check_out_dir(out, files=REPORT_FILES)
    inst = load_instance(directory)
    paths = [plan, *(compare or [])]
    plans = [Plan.load(p) for p in paths]
    for p, path in zip(plans, paths):
        check_matches(p, inst, str(path))
        check_names(p, inst, str(path))
    labels = [p.policy for p in plans]
    if len(set(labels)) < len(labels):
        labels = [f"{p.policy} ({path.parent.name or path.name})"
                  for p, path in zip(plans, paths)]
    built = build_report(inst, list(zip(labels, plans)), pareto)
    with staged_dir(out, kept=_warn_kept) as stage:     # every figure and table, or none
        page = write_report(built, stage)
    if as_json:
        _emit_json({"report": str(out / page.name), "headlines": built.headlines,
                    "reference": built.reference_note})
        return
    for line in built.headlines:
        typer.echo(line)
    typer.echo(f"wrote {out / page.name} (and runsheet.csv, site_totals.csv, timeseries.csv, "
               f"timeseries.parquet, figures)")


# ---- build-instance ---------------------------------------------------------------------

@app.command("build-instance")
def build_instance_cmd(
    all_presets: Annotated[bool, typer.Option("--all", help="Rebuild every preset of "
                                              "instances/presets.toml.")] = False,
    preset: Annotated[Optional[list[str]], typer.Option(help="Rebuild this preset (repeat).")]
    = None,
    instances_dir: Annotated[Path, typer.Option(help="Where presets are built.")]
    = Path("instances"),
    out: Annotated[Optional[Path], typer.Option(help="Build one instance from the parameters "
                                                "below into this folder.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Instance name (default: --out's name).")]
    = None,
    day: Annotated[Optional[str], typer.Option(help="First local day (CAISO), YYYY-MM-DD "
                                               "[default: 2019-04-21].")] = None,
    days: Annotated[str, typer.Option(help="N: consecutive days in the instance. FROM..TO "
                                      "(YYYY-MM-DD..YYYY-MM-DD): one instance per day into "
                                      "--out/<day>/, named <name>-<day>, the i-th with seed "
                                      "+ i (days that cannot be built are left out, saying why).")]
    = "1",
    every: Annotated[int, typer.Option(help="With --days FROM..TO: every N-th day from FROM "
                                       "(7: one day per week).")] = 1,
    sites: Annotated[int, typer.Option(help="Sites.")] = 5,
    gpus_per_site: Annotated[int, typer.Option(help="GPUs per site.")] = 8,
    jobs: Annotated[int, typer.Option(help="Jobs.")] = 100,
    class_mix: Annotated[str, typer.Option(help="Shares of classes A,B,C.")] = "0.5,0.35,0.15",
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 1,
    slot_minutes: Annotated[int, typer.Option(help="Slot length (min).")] = 15,
    slack: Annotated[float, typer.Option(help="0: every deadline is the horizon's end; S >= 1: "
                                         "deadline = release + S x work.")] = 0.0,
    origin_sites: Annotated[int, typer.Option(help="0: jobs originate at every site; N: at the "
                                              "first N sites only.")] = 0,
    origin_load: Annotated[float, typer.Option(help="0: exactly --jobs jobs; L > 0: sample jobs "
                                               "(at most --jobs) until their work is L x the "
                                               "origin sites' GPU-hours.")] = 0.0,
    last_release_h: Annotated[float, typer.Option(help="Jobs submitted at this hour of the day "
                                                  "or later are not sampled.")] = 24.0,
    as_json: JsonFlag = False,
) -> None:
    """Build instances from the real data in instances/sources (see instances/README.md)."""
    from milp import build

    if all_presets:
        built = build.build_all(instances_dir)
    elif preset:
        built = [p for name_ in preset for p in build.build_preset(name_, instances_dir)]
    elif out is not None:
        try:
            mix = tuple(float(x) for x in class_mix.split(","))
        except ValueError:
            raise InputError("--class-mix", f"{class_mix!r} is not three numbers A,B,C") from None
        _check_out_dir(out)
        span, left_out = _build_span(days, every, day)
        params = build.BuildParams(name=name or out.name, day=day or "2019-04-21",
                                   days=span if isinstance(span, int) else 1, sites=sites,
                                   gpus_per_site=gpus_per_site, jobs=jobs, class_mix=mix,
                                   seed=seed, slot_minutes=slot_minutes, slack=slack,
                                   origin_sites=origin_sites, origin_load=origin_load,
                                   last_release_h=last_release_h)
        for d, why in left_out:
            typer.echo(f"left out {d.isoformat()}: {why}", err=True)
        built = ([build.build_instance(params, out)] if isinstance(span, int)
                 else build.build_days(params, span, out))
    else:
        raise InputError("build-instance", "say --all, --preset NAME or --out DIR")
    if as_json:
        _emit_json({"built": [str(p) for p in built]})
        return
    for path in built:
        typer.echo(f"built {path}")


def _build_span(days: str, every: int, day: str | None) -> tuple[int | list, list]:
    """``--days``: a number of consecutive days (one instance), or ``FROM..TO`` (one instance
    per day: the days, and those left out with why)."""
    from milp import build

    if days.strip().isdigit():
        if every != 1:
            raise InputError("--every", "needs --days FROM..TO")
        return int(days), []
    if day is not None:
        raise InputError("--day", "give the days as --days FROM..TO, without --day")
    chosen, left_out = build.buildable(build.parse_day_range(days, every))
    if not chosen:
        raise InputError("--days", f"{days!r} holds no day an instance can be built on "
                         f"({left_out[0][0]}: {left_out[0][1]})")
    return chosen, left_out


# ---- replay / replan ----------------------------------------------------------------------

ReplanOpt = Annotated[Optional[str], typer.Option(
    help="Re-plan with this policy (milp or a greedy one) at each fault; default: follow the "
         "plan as made.")]


@app.command()
def replay(
    directory: Annotated[Path, typer.Argument(help="Instance folder (the forecast).")],
    plan: Annotated[Path, typer.Argument(help="plan.json to execute.")],
    out: Annotated[Path, typer.Option(help="Folder for the executed plan.json, jobs.csv, "
                                      "summary.json and state.json.")],
    bandwidth_factor: Annotated[float, typer.Option(
        help="Links carry this share of their Gbps.",
        callback=_number(0, MAX_BANDWIDTH_FACTOR, above=True))] = 1.0,
    renewable_noise: Annotated[float, typer.Option(
        help="Std-dev of the relative error of the renewable forecast.",
        callback=_number(0, MAX_RENEWABLE_NOISE))] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the forecast error.",
                                      callback=_whole(0, MAX_SEED))] = 0,
    outage: Annotated[Optional[list[str]], typer.Option(
        help="SITE@TIME: the site goes dark from TIME (ISO 8601 with offset, or hours from "
             "the start like 13.5h) to the end of the day. Repeat for several.")] = None,
    checkpoint_minutes: Annotated[float, typer.Option(
        help="A running job checkpoints every this many minutes.",
        callback=_number(0.001))] = 30.0,
    replan: ReplanOpt = None,
    replan_every: Annotated[Optional[float], typer.Option(
        help="With --replan: also re-plan every this many hours.",
        callback=_number(0.01))] = None,
    time_limit: TimeLimitOpt = DEFAULTS["time_limit_s"],
    gap: GapOpt = DEFAULTS["gap"],
    abs_gap: AbsGapOpt = DEFAULTS["abs_gap"],
    engine: EngineOpt = DEFAULTS["engine"],
    threads: ThreadsOpt = DEFAULTS["threads"],
    solver_seed: Annotated[int, typer.Option(
        help="milp: seed of the solver's random choices (--seed is the forecast error's).",
        callback=_whole(0, MAX_SEED))] = DEFAULTS["seed"],
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Execute a plan against perturbed reality (slower links, forecast error, outages) and
    score what it actually achieved; with --replan, re-plan from the state at each fault
    (the MILP's options apply to each re-plan). Exit 2 when the plan is for another instance
    or not valid on it."""
    import pandas as pd

    from milp.files import staged_dir, write_atomic
    from milp.instance import load_instance
    from milp.plan import Plan
    from milp.replay import Faults
    from milp.run import command_line, replay as run_replay

    started = time.perf_counter()
    _check_out_dir(out, files=("plan.json", "jobs.csv", "summary.json", "state.json"))
    options = _milp_options(time_limit, gap, abs_gap, engine, threads, solver_seed)
    inst = load_instance(directory)
    p = Plan.load(plan)
    _check_policy(replan, "--replan")
    if replan_every is not None and replan is None:
        raise InputError("--replan-every", "needs --replan POLICY (which policy re-plans)")
    outages = tuple(_outage(inst, text) for text in outage or ())
    faults = Faults(bandwidth_factor, renewable_noise, seed, outages, checkpoint_minutes * 60)
    with _console(verbose, quiet) as progress:
        replayed = run_replay(inst, p, faults, replan,
                              replan_every * 3600 if replan_every else None, source=str(plan),
                              progress=progress, started=started,
                              **(options if replan == "milp" else {}))
    result, jobs = replayed.result, replayed.jobs
    summary = replayed.summary()
    summary["provenance"]["command"] = command_line()
    with staged_dir(out, replaces=("state.json",), kept=_warn_kept) as stage:
        result.executed.save(stage / "plan.json")
        write_atomic(stage / "jobs.csv", jobs.to_csv(index=False))
        write_atomic(stage / "summary.json", _summary_json(summary))
        if result.first_state is not None:
            result.first_state.save(inst, stage / "state.json")
    if as_json:
        _emit_json(summary)
        raise typer.Exit(0 if result.actual.valid else 1)
    rows = ["grid_energy_kwh", "mean_jct_h", "migrations", "migrations_outside_domain",
            "deadline_misses", "unfinished_jobs", "unfinished_work_h", "lost_work_h", "valid"]
    table = pd.DataFrame({"planned": [summary["planned"][k] for k in rows],
                          "actual": [summary["actual"][k] for k in rows]}, index=rows)
    typer.echo(table.to_string())
    for e in summary["events"]:
        typer.echo(f"{e['time']}  {e['event']}")
    left = jobs[~jobs["finished"]]
    for _, row in left.head(10).iterrows():
        typer.echo(f"unfinished: job {row['job']} at {row['site']}, {row['work_left_h']:.3g} of "
                   f"{row['work_h']:.3g} GPU-h left ({row['lost_h']:.3g} h lost)")
    if len(left) > 10:
        typer.echo(f"... and {len(left) - 10} more unfinished jobs (jobs.csv)")
    _echo_capped(result.actual.violations, "violation: ", more=" (summary.json lists them all)")
    typer.echo(f"wrote {out / 'plan.json'}, jobs.csv, summary.json"
               + (", state.json" if result.first_state is not None else ""))
    raise typer.Exit(0 if result.actual.valid else 1)


def _outage(inst, text: str) -> tuple[int, float]:
    from milp.state import parse_time

    site, sep, when = text.rpartition("@")
    if not sep or site not in inst.site_index_map:
        raise InputError("--outage", f"{text!r} is not SITE@TIME with a site of the instance "
                         f"({', '.join(inst.sites)})")
    t = parse_time(inst, when, "--outage", "TIME")
    if not 0 <= t < inst.horizon_s:
        raise InputError("--outage", f"{when} is outside the horizon")
    return inst.site_index_map[site], t


def _check_policy(policy: str | None, option: str) -> None:
    from milp.policies import POLICIES

    if policy is not None and policy not in POLICIES and policy != "milp":
        raise InputError(option, f"unknown policy {policy!r} (known: milp, "
                         f"{', '.join(POLICIES)})")


@app.command("replan")
def replan_cmd(
    directory: Annotated[Path, typer.Argument(help="Instance folder.")],
    state: Annotated[Path, typer.Option(help="STATE.json: where each job is, its work left, "
                                        "checkpoints in flight, dark sites.")],
    out: Annotated[Path, typer.Option(help="Folder for plan.json and summary.json.")],
    at: Annotated[Optional[str], typer.Option(help="Re-plan from this time (ISO 8601 with "
                                              "offset, or hours like 13h); default: the "
                                              "state's.")] = None,
    policy: Annotated[str, typer.Option(help="milp or a greedy policy.")] = DEFAULT_POLICY,
    time_limit: TimeLimitOpt = DEFAULTS["time_limit_s"],
    gap: GapOpt = DEFAULTS["gap"],
    abs_gap: AbsGapOpt = DEFAULTS["abs_gap"],
    engine: EngineOpt = DEFAULTS["engine"],
    threads: ThreadsOpt = DEFAULTS["threads"],
    seed: SolverSeedOpt = DEFAULTS["seed"],
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Plan the rest of the horizon from a state, with the same policies as milp plan (the
    MILP re-plans elastic: unfinished work minimised first).

    plan.json is on the instance's clock (steps from the next slot boundary after --at on);
    summary.json scores it, with the evaluator, on the remaining problem."""
    from milp.files import staged_dir, write_atomic
    from milp.instance import load_instance
    from milp.run import command_line, replan as run_replan
    from milp.state import load_state

    started = time.perf_counter()
    _check_out_dir(out, files=("plan.json", "summary.json"))
    _check_policy(policy, "--policy")
    options = _milp_options(time_limit, gap, abs_gap, engine, threads, seed)
    inst = load_instance(directory)
    st = load_state(inst, state, at)
    with _console(verbose, quiet) as progress:
        replanned = run_replan(inst, st, policy, progress=progress, started=started,
                               **(options if policy == "milp" else {}))
    result, rest = replanned.evaluation, replanned.rest
    summary = replanned.summary()
    summary["provenance"]["command"] = command_line()
    late = summary["ready_after_last_slot"]
    with staged_dir(out, kept=_warn_kept) as stage:
        replanned.plan.save(stage / "plan.json")
        write_atomic(stage / "summary.json", _summary_json(summary))
    if as_json:
        _emit_json(summary)
        raise typer.Exit(0 if result.valid else 1)
    _print_metrics(result.metrics(), {"instance": inst.name, "policy": policy,
                                      "from": summary["from"], "jobs_left": rest.inst.n_jobs})
    _echo_capped([f"job {x['job']} at {x['site']}, {x['work_left_h']:.3g} GPU-h left: its "
                  f"checkpoint is ready at {x['ready']}, after the last slot starts, so it "
                  f"cannot run again before the end" for x in late], "unfinished: ",
                 more=" (summary.json lists them all)")
    typer.echo(f"wrote {out / 'plan.json'}, {out / 'summary.json'}")
    raise typer.Exit(0 if result.valid else 1)


# ---- export ---------------------------------------------------------------------------

export_app = typer.Typer(no_args_is_help=True, help="Write a plan for other tools: json, csv, "
                         "steps (JSON), slurm, kubernetes, argo.")
app.add_typer(export_app, name="export")

PlanArg = Annotated[Path, typer.Argument(help="plan.json to export.")]
ShiftTo = Annotated[Optional[str], typer.Option(
    help="Run the plan from this ISO 8601 time (with offset) instead of its own start, e.g. "
         "tomorrow's date for a plan made from another day's data.")]
PlanIdOpt = Annotated[Optional[str], typer.Option(
    help="Id naming the plan's jobs in the scheduler (lowercase letters, digits, '-', at most "
         "40); default: <instance>-<hash of the plan's steps and start>.")]
SiteMapOpt = Annotated[Optional[Path], typer.Option(
    help="TOML mapping sites to partitions/clusters/hosts/node labels (README, 'Exports').")]
CommandOpt = Annotated[str, typer.Option(
    help="Command of a run step; placeholders {job} {step} {site} {checkpoint} {begin} {end} "
         "{seconds} are replaced (shell-quoted).")]
TransferOpt = Annotated[str, typer.Option(
    help="Command of a transfer step; placeholders as --command plus {src} {dst} "
         "(checkpoint locations host:path from the site map).")]
MarginOpt = Annotated[float, typer.Option(
    help="Seconds a step may run past its planned length before the scheduler ends it "
         "(Slurm --time, Kubernetes activeDeadlineSeconds).")]
NodeLabelOpt = Annotated[str, typer.Option(help="Node label whose value selects a site.")]
ImageOpt = Annotated[str, typer.Option(help="Container image of every step; it must hold the "
                                       "run and transfer commands' programs.")]
TransferImageOpt = Annotated[Optional[str], typer.Option(
    help="Container image of transfer steps (default: --image).")]
NamespaceOpt = Annotated[Optional[str], typer.Option(help="Namespace of every object.")]
ClaimOpt = Annotated[Optional[str], typer.Option(
    help="PersistentVolumeClaim holding the checkpoints, mounted on the checkpoint folder's "
         "parent (/checkpoints) in run and transfer pods; a site's 'claim' in the site map "
         "overrides it.")]
TolerationOpt = Annotated[Optional[list[str]], typer.Option(
    help="Taint that run and transfer pods tolerate: KEY[=VALUE][:EFFECT], e.g. "
         "nvidia.com/gpu:NoSchedule; repeatable.")]
NodeSelectorOpt = Annotated[Optional[list[str]], typer.Option(
    help="Node label KEY=VALUE that run steps' nodes must also have (GPU nodes), e.g. "
         "nvidia.com/gpu.present=true; repeatable.")]
TtlOpt = Annotated[int, typer.Option(
    help="Seconds Kubernetes keeps a finished Job (Workflow) before deleting it.")]


def _plan_to_export(path: Path):
    """Read a plan to export and refuse one that no instance can make valid (steps out of
    order, a run ending before it starts, a move from a site the job is not at, ...:
    :func:`milp.plan.check_chains`): an export is run by a scheduler as written."""
    from milp.plan import Plan, check_chains

    p = Plan.load(path)
    check_chains(p, str(path))
    return p


def _schedule(plan: Path, shift_to: str | None, plan_id: str | None):
    """The plan's steps from its start or --shift-to, with its id (:mod:`milp.export.steps`)."""
    from milp.export.steps import schedule

    return schedule(_plan_to_export(plan), shift_to, plan_id)


def _warn_kept(paths: list[Path]) -> None:
    """An output folder held files milp did not write where it writes: they are kept; say so
    (a stale script beside the new ones would be confusing)."""
    shown = ", ".join(str(p) for p in paths[:5]) + (f" and {len(paths) - 5} more"
                                                    if len(paths) > 5 else "")
    typer.echo(f"warning: kept {len(paths)} file(s) milp did not write in the output: {shown}",
               err=True)


@export_app.command("json")
def export_json(plan: PlanArg,
                out: Annotated[Path, typer.Option(help="plan.json to write.")],
                as_json: JsonFlag = False) -> None:
    """Check a plan against its schema and write it in the current schema version."""
    _check_out_file(out)
    p = _plan_to_export(plan)
    p.save(out)
    if as_json:
        _emit_json({"wrote": str(out), "jobs": len(p.jobs), "version": p.to_dict()["version"]})
        return
    typer.echo(f"wrote {out}: {len(p.jobs)} jobs, schema version {p.to_dict()['version']}")


@export_app.command("csv")
def export_csv(plan: PlanArg,
               out: Annotated[Path, typer.Option(help="steps.csv to write.")],
               shift_to: ShiftTo = None, as_json: JsonFlag = False) -> None:
    """One row per step (run or transfer) with absolute times, seconds and checkpoint bytes."""
    from milp.export.steps import plan_steps, steps_frame, totals
    from milp.files import write_atomic

    _check_out_file(out)
    steps = plan_steps(_plan_to_export(plan), shift_to)
    write_atomic(out, steps_frame(steps).to_csv(index=False))
    _echo_totals(out, totals(steps), as_json=as_json)


@export_app.command("steps")
def export_steps(plan: PlanArg,
                 out: Annotated[Path, typer.Option(help="steps.json to write.")],
                 shift_to: ShiftTo = None, plan_id: PlanIdOpt = None,
                 as_json: JsonFlag = False) -> None:
    """steps.json: the plan id and one object per step, the fields of steps.csv
    (milp/schemas/steps-v1.schema.json)."""
    from milp.export.steps import steps_json, totals
    from milp.files import write_atomic

    _check_out_file(out)
    sched = _schedule(plan, shift_to, plan_id)
    write_atomic(out, steps_json(sched))
    _echo_totals(out, totals(sched.steps), sched.plan_id, as_json)


@export_app.command("slurm")
def export_slurm_cmd(
    plan: PlanArg,
    out: Annotated[Path, typer.Option(help="Folder for submit.sh, cancel.sh and jobs/.")],
    site_map: SiteMapOpt = None,
    command: CommandOpt = DEFAULT_COMMAND,
    transfer: TransferOpt = DEFAULT_TRANSFER,
    shift_to: ShiftTo = None,
    plan_id: PlanIdOpt = None,
    margin: MarginOpt = DEFAULT_MARGIN_S,
    signal: Annotated[str, typer.Option(
        help="Signal a run step gets --margin seconds before its time limit, passed on to its "
             "command so that it can checkpoint (e.g. USR1, TERM; none for no signal).")]
    = DEFAULT_SIGNAL,
    as_json: JsonFlag = False,
) -> None:
    """One sbatch script per step, submit.sh (sbatch --parsable, --begin, --time,
    --dependency=afterok, --kill-on-invalid-dep=yes, partition per site) and cancel.sh.
    ./submit.sh --hold submits everything held."""
    from milp.export.slurm import check_slurm_options, export_slurm
    from milp.export.steps import totals
    from milp.export.targets import SiteMap
    from milp.files import staged_dir

    _check_out_dir(out, files=("submit.sh", "cancel.sh", "steps.csv", "steps.json"),
                   folders=("jobs",))
    if (out / "submitted.csv").exists():
        raise InputError(str(out / "submitted.csv"), "the export in this folder was submitted "
                         "and these are its job ids: run its ./cancel.sh (if it should stop) "
                         "and delete submitted.csv, or export to another folder")
    sched = _schedule(plan, shift_to, plan_id)
    sites = SiteMap.load(site_map)
    check_slurm_options(margin, signal)
    _warn_unused_sites(sites, sched.steps)
    with staged_dir(out, kept=_warn_kept) as stage:
        export_slurm(sched, stage, sites, command, transfer, margin, signal)
    _echo_totals(out / "submit.sh", totals(sched.steps), sched.plan_id, as_json)


def _pod_options(node_label: str, image: str, transfer_image: str | None, command: str,
                 transfer: str, namespace: str | None, checkpoint_claim: str | None,
                 toleration: list[str] | None, node_selector: list[str] | None,
                 margin: float, ttl: int):
    """The Kubernetes options of a command line, checked."""
    from milp.export.kubernetes import PodOptions

    opts = PodOptions(node_label=node_label, image=image, transfer_image=transfer_image,
                      command=command, transfer=transfer, namespace=namespace,
                      checkpoint_claim=checkpoint_claim, tolerations=tuple(toleration or ()),
                      node_selector=tuple(node_selector or ()), margin=margin, ttl=ttl)
    opts.check()
    return opts


@export_app.command("kubernetes")
def export_kubernetes_cmd(
    plan: PlanArg,
    out: Annotated[Path, typer.Option(help="Folder for jobs/*.yaml and kustomization.yaml.")],
    site_map: SiteMapOpt = None,
    node_label: NodeLabelOpt = DEFAULT_LABEL,
    image: ImageOpt = DEFAULT_IMAGE,
    transfer_image: TransferImageOpt = None,
    command: CommandOpt = DEFAULT_COMMAND,
    transfer: TransferOpt = DEFAULT_TRANSFER,
    namespace: NamespaceOpt = None,
    shift_to: ShiftTo = None,
    plan_id: PlanIdOpt = None,
    checkpoint_claim: ClaimOpt = None,
    toleration: TolerationOpt = None,
    node_selector: NodeSelectorOpt = None,
    margin: MarginOpt = DEFAULT_MARGIN_S,
    ttl: TtlOpt = DEFAULT_TTL_S,
    as_json: JsonFlag = False,
) -> None:
    """One suspended batch/v1 Job per step (site as nodeSelector, plan in annotations) and a
    kustomization.yaml: kubectl apply -k OUT creates them all; they start when something
    resumes them (milp export argo writes a Workflow that starts every step by itself)."""
    from milp.export.kubernetes import export_kubernetes
    from milp.export.steps import totals
    from milp.export.targets import SiteMap
    from milp.files import staged_dir

    _check_out_dir(out, files=("kustomization.yaml", "steps.csv", "steps.json"),
                   folders=("jobs",))
    sched = _schedule(plan, shift_to, plan_id)
    sites = SiteMap.load(site_map)
    opts = _pod_options(node_label, image, transfer_image, command, transfer, namespace,
                        checkpoint_claim, toleration, node_selector, margin, ttl)
    _warn_unused_sites(sites, sched.steps)
    with staged_dir(out, kept=_warn_kept) as stage:
        export_kubernetes(sched, stage, sites, opts)
    _echo_totals(out / "kustomization.yaml", totals(sched.steps), sched.plan_id, as_json)


@export_app.command("argo")
def export_argo_cmd(
    plan: PlanArg,
    out: Annotated[Path, typer.Option(help="Folder for workflow.yaml.")],
    site_map: SiteMapOpt = None,
    node_label: NodeLabelOpt = DEFAULT_LABEL,
    image: ImageOpt = DEFAULT_IMAGE,
    transfer_image: TransferImageOpt = None,
    wait_image: Annotated[str, typer.Option(
        help="Image of the pods that wait for a step's begin time (POSIX sh, date, sleep).")]
    = DEFAULT_WAIT_IMAGE,
    command: CommandOpt = DEFAULT_COMMAND,
    transfer: TransferOpt = DEFAULT_TRANSFER,
    namespace: NamespaceOpt = None,
    shift_to: ShiftTo = None,
    plan_id: PlanIdOpt = None,
    checkpoint_claim: ClaimOpt = None,
    toleration: TolerationOpt = None,
    node_selector: NodeSelectorOpt = None,
    margin: MarginOpt = DEFAULT_MARGIN_S,
    ttl: TtlOpt = DEFAULT_TTL_S,
    kueue_queue: Annotated[Optional[str], typer.Option(
        help="Kueue LocalQueue of run steps' pods (label kueue.x-k8s.io/queue-name; needs "
             "Kueue's pod integration): Kueue admits each pod by quota once it is due.")] = None,
    service_account: Annotated[Optional[str], typer.Option(
        help="ServiceAccount the Workflow's pods run as (Argo's executor needs its rights).")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """One Argo Workflow (workflow.yaml): a DAG that starts every step at its planned time and
    after its job's previous step; argo submit OUT/workflow.yaml runs the plan."""
    from milp.export.argo import MAX_WORKFLOW_BYTES, check_argo_options, export_argo
    from milp.export.steps import totals
    from milp.export.targets import SiteMap
    from milp.files import staged_dir

    _check_out_dir(out, files=("workflow.yaml", "steps.csv", "steps.json"))
    sched = _schedule(plan, shift_to, plan_id)
    sites = SiteMap.load(site_map)
    opts = _pod_options(node_label, image, transfer_image, command, transfer, namespace,
                        checkpoint_claim, toleration, node_selector, margin, ttl)
    check_argo_options(wait_image, kueue_queue, service_account)
    _warn_unused_sites(sites, sched.steps)
    with staged_dir(out, kept=_warn_kept) as stage:
        size = export_argo(sched, stage, sites, opts, wait_image, kueue_queue, service_account)
    _echo_totals(out / "workflow.yaml", totals(sched.steps), sched.plan_id, as_json)
    if size > 0.75 * MAX_WORKFLOW_BYTES:     # the status Argo adds while it runs needs room
        typer.echo(f"warning: the Workflow is {size / 1024:.0f} KiB as JSON; Argo fails "
                   f"Workflows over {MAX_WORKFLOW_BYTES // 1024} KiB by default, status "
                   f"included (its MAX_WORKFLOW_SIZE), so this plan may not run as one "
                   f"Workflow: raise MAX_WORKFLOW_SIZE, or use milp export slurm or kubernetes",
                   err=True)


def _warn_unused_sites(sites, steps) -> None:
    """A site-map entry for a site no step uses is most likely a typo: say so (not an error,
    since one map may serve many plans)."""
    unused = sorted(set(sites.sites) - {s.site for s in steps} - {s.dst for s in steps})
    if unused:
        typer.echo(f"warning: the site map names sites no step of this plan uses: "
                   f"{', '.join(unused)}", err=True)


def _check_out_file(out: Path) -> None:
    if out.is_dir():
        raise InputError(str(out), "--out must be a file, and this is a folder")
    _check_parents(out)


def _echo_totals(path: Path, t: dict, plan_id: str | None = None,
                 as_json: bool = False) -> None:
    if as_json:
        _emit_json({"wrote": str(path), **t, **({"plan_id": plan_id} if plan_id else {})})
        return
    typer.echo(f"wrote {path}: {t['run_steps']} run steps ({t['compute_s']:.6g} compute s), "
               f"{t['transfer_steps']} transfer steps ({t['transfer_s']:.6g} s)"
               + (f"; plan id {plan_id}" if plan_id else ""))


def main() -> None:
    """Console entry point: run the app. A user mistake — in a file (:class:`InputError`) or
    on the command line (an unknown option, a bad value) — is one ``error:`` line on stderr
    and exit 2. Running out of memory is one ``error: out of memory`` line and exit 1 (staging
    folders removed on the way out). SIGTERM and SIGHUP end it as Ctrl-C does, removing its
    staging folders (exit 143, 129)."""
    import signal

    from milp.files import stop_on_termination

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    stop_on_termination()
    try:
        code = app(standalone_mode=False, prog_name="milp")
    except InputError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except _NO_ARGS_HELP as e:                  # "milp", "milp export": the help
        typer.echo(e.ctx.get_help())
        sys.exit(2)
    except click.exceptions.UsageError as e:
        typer.echo(f"error: {_usage_error(e)}", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        typer.echo(f"error: {InputError('milp', e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except MemoryError:
        typer.echo(f"error: {OUT_OF_MEMORY}", err=True)
        sys.exit(1)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(e) -> InputError:
    """A command-line mistake the framework found, as the one-line error of a file mistake:
    the option (or argument, or command) it is about, and what is wrong."""
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "milp"
    param = getattr(e, "param", None)
    if isinstance(e, click.exceptions.NoSuchOption):
        hint = f"; did you mean {' or '.join(e.possibilities)}?" if e.possibilities else ""
        return InputError(e.option_name, f"no such option of {command}{hint}")
    if isinstance(e, click.exceptions.MissingParameter) and param is not None:
        kind = "option" if getattr(param, "param_type_name", "") == "option" else "argument"
        return InputError(_option_name(param), f"{command} needs this {kind}")
    if param is not None:
        return InputError(_option_name(param), e.message)
    if isinstance(e, click.exceptions.BadOptionUsage) and getattr(e, "option_name", None):
        return InputError(e.option_name, e.message)
    return InputError(command, f"{e.message} (see {command} --help)")
