"""Benchmark: every policy on every instance, scored by the evaluator, tabulated and plotted.

``milp bench INSTANCES... --policies ... --out DIR`` keeps one folder per cell
(``DIR/cells/<instance>/<policy>/`` with ``plan.json`` and ``summary.json``), a sweep of
:mod:`milp.sweep`: cells run in this process or on a Dask cluster (local processes, an existing
cluster, Slurm), each is written atomically, and a finished cell is kept when rerun with the
same options (an interrupted run resumes) and computed again when its options differ. A MILP
cell uses one thread unless ``threads`` says otherwise. From the cells it writes
``results.csv`` (one row per instance × policy, every evaluator metric, wall time, solver
facts), ``results.md`` (readable tables, change against ``static``, the study's figures side by
side) and three PNGs: grid energy and mean JCT by policy, and a per-site timeline of one
instance.

The cells' functions (:func:`plan_cell`, :func:`replay_cell`) live here: what one cell of a
sweep computes, wherever it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from milp.errors import InputError
from milp.evaluate import METRICS, evaluate
from milp.files import write_atomic
from milp.instance import Instance, load_instance
from milp import sweep
from milp.plan import Migration, Plan
from milp.run import DEFAULTS, ProgressFn, plan, solve_options_dict
from milp.sweep import Cell, Where

if TYPE_CHECKING:
    from milp.replay import Faults

ALL_POLICIES = ("static", "wait-awhile", "energy-only", "feasibility-aware", "milp")
#: The study's headline numbers (PAPER.md), change against no migration.
STUDY = {"feasibility-aware": {"grid_pct": -52.0, "jct_pct": -18.0, "overhead_pct": "< 2"},
         "energy-only": {"jct_pct": +35.0}}


#: Solver threads of a MILP cell unless the options say otherwise: cells run side by side.
CELL_THREADS = 1


def run_cell(inst: Instance, policy: str, options: Mapping[str, Any],
             progress: ProgressFn | None = None, command: str | None = None
             ) -> tuple[Plan, dict]:
    """Plan one instance with one policy (:func:`milp.run.plan`; ``options`` are the MILP's);
    return the plan and its summary (evaluator metrics, policy, wall time, solver facts for
    the MILP, options, provenance with ``command``)."""
    outcome = plan(inst, policy, progress=progress or (lambda event: None),
                   **(dict(options) if policy == "milp" else {}))
    summary = outcome.summary()
    if command is not None:
        summary["provenance"]["command"] = command
    return outcome.plan, summary


def plan_cell(inst: Instance, policy: str, options: Mapping[str, Any],
              command: str | None = None, progress: ProgressFn | None = None
              ) -> tuple[dict, dict[str, str]]:
    """One bench cell (:class:`milp.sweep.Cell`): its summary and ``plan.json``."""
    plan_, summary = run_cell(inst, policy, options, progress, command)
    return summary, {"plan.json": plan_.to_json()}


def replay_cell(inst: Instance, plan_: Plan, faults: Faults, replan: str | None,
                options: Mapping[str, Any], progress: ProgressFn | None = None
                ) -> tuple[dict, dict[str, str]]:
    """One replay cell (``benchmarks/replay_faults.py``): ``plan_`` executed under ``faults``,
    re-planned at each fault with ``replan`` (``options``: the MILP's, per re-plan); the
    summary of :func:`milp.run.replay` and the executed ``plan.json``."""
    from milp.run import replay

    done = replay(inst, plan_, faults, replan, progress=progress or (lambda event: None),
                  **(dict(options) if replan == "milp" else {}))
    return done.summary(), {"plan.json": done.result.executed.to_json()}


def cell_options(policy: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What a finished cell of ``policy`` records as its options (its summary's
    ``options``): the MILP's as used, none for a greedy policy."""
    return solve_options_dict(options) if policy == "milp" else {}


def load_in_folder(d: Path) -> Instance:
    """:func:`load_instance`, whose mistake names the instance folder too (a sweep reads many:
    ``days/x/jobs.csv line 2, …`` rather than ``jobs.csv line 2, …``)."""
    try:
        return load_instance(d)
    except InputError as e:
        if Path(e.file).is_absolute() or e.file.startswith(str(d)):
            raise
        raise InputError(str(Path(d) / e.file), e.message, line=e.line, field=e.field,
                         row=e.row) from None


def run_bench(instances: list[Path], policies: list[str], out: Path,
              options: Mapping[str, Any] | None = None, progress: ProgressFn | None = None,
              command: str | None = None, where: Where = Where()) -> pd.DataFrame:
    """Run every missing cell (where ``where`` says, :mod:`milp.sweep`), then write
    results.csv, results.md and the figures.

    ``options``: the MILP's (:data:`milp.run.DEFAULTS` for those not given; ``threads``
    :data:`CELL_THREADS` when not given). ``progress`` hears ``{"phase": "bench",
    "cells_done", "cells_total", "cell", "status", "finished": True}`` after each cell and, in
    this process, the cell planner's events with ``cell`` added. Raises
    :class:`milp.sweep.SweepFailed` when cells failed (the others are written, no table)."""
    options = {**DEFAULTS, **(options or {})}
    if options.get("threads") is None:
        options["threads"] = CELL_THREADS
    loaded = [(d, load_in_folder(d)) for d in instances]
    seen: dict[str, Path] = {}
    for d, inst in loaded:
        if inst.name in seen:
            raise InputError(str(d), f"instance {inst.name!r} is also the name of {seen[inst.name]}"
                             ": their cells would be the same folder; give each instance once")
        seen[inst.name] = d
    if "milp" in policies and options.get("objective") == "co2":
        for d, inst in loaded:
            if inst.carbon_g_per_kwh is None:
                raise InputError(str(d), "--objective co2 needs carbon.csv in every instance, "
                                         "and this one has none")
    cells = [Cell(name=f"{inst.name} / {policy}", folder=out / "cells" / inst.name / policy,
                  fn=plan_cell, args=(inst, policy, options if policy == "milp" else {},
                                      command),
                  options=cell_options(policy, options), inputs=sweep.fingerprint(d))
             for d, inst in loaded for policy in policies]
    sweep.run(cells, where, label="bench", progress=progress)
    table = results_table(out, [inst.name for _, inst in loaded], policies)
    write_atomic(out / "results.csv", table.to_csv(index=False))
    write_atomic(out / "results.md", results_markdown(table, options, command))
    _figures(out, table, loaded, policies)
    return table


def results_table(out: Path, names: list[str], policies: list[str]) -> pd.DataFrame:
    """One row per instance × policy from the cells' summaries, with change against static."""
    rows = []
    for name in names:
        for policy in policies:
            s = json.loads((out / "cells" / name / policy / "summary.json").read_text())
            row = {"instance": name, "policy": policy, "wall_s": s["wall_s"]}
            row.update({k: s.get(k) for k in METRICS if k != "violations"})
            row["violations"] = len(s["violations"])
            solver = s.get("solver") or {}
            row["solver_status"] = solver.get("status")
            row["solver_gap"] = solver.get("gap")
            row["solver_bound"] = solver.get("bound")
            rows.append(row)
    df = pd.DataFrame(rows)
    static = df[df.policy == "static"].set_index("instance")
    if not static.empty:
        base_grid = df.instance.map(static["grid_energy_kwh"])
        base_jct = df.instance.map(static["mean_jct_h"])
        df["grid_vs_static_pct"] = 100 * (df.grid_energy_kwh / base_grid - 1)
        df["jct_vs_static_pct"] = 100 * (df.mean_jct_h / base_jct - 1)
    return df


def results_markdown(df: pd.DataFrame, options: Mapping[str, Any],
                     command: str | None = None) -> str:
    cols = ["instance", "policy", "grid_energy_kwh", "grid_vs_static_pct", "mean_jct_h",
            "jct_vs_static_pct", "migrations", "migrations_outside_domain",
            "migration_overhead_pct", "deadline_misses", "unfinished_jobs", "valid", "wall_s",
            "solver_gap"]
    cols = [c for c in cols if c in df]
    milp_options = ", ".join(f"{k} {v}" for k, v in options.items() if v is not None)
    lines = [f"# Benchmark results\n\nEvery plan scored by the evaluator; MILP with "
             f"{milp_options}. Changes are against `static` on the same instance. Versions, "
             "machine and wall time of each cell: `provenance` in its `summary.json`.\n"] + (
                [f"Command: `{command}`\n"] if command else []) + [
                "## Every instance × policy\n",
             df[cols].round(3).to_markdown(index=False), ""]
    if "grid_vs_static_pct" in df:
        mean = df.groupby("policy", sort=False)[
            ["grid_vs_static_pct", "jct_vs_static_pct", "migration_overhead_pct",
             "migrations_outside_domain", "deadline_misses"]].mean().round(2)
        lines += ["## Mean over the instances\n", mean.to_markdown(), ""]
    lines += ["## Targets\n"] + [f"- {t}" for t in targets(df)] + [""]
    return "\n".join(lines)


def targets(df: pd.DataFrame) -> list[str]:
    """The benchmark issue's targets, each with whether these results reach it."""
    out = []
    if "milp" in set(df.policy):
        milp = df[df.policy == "milp"].set_index("instance")["grid_energy_kwh"]
        greedy = df[df.policy != "milp"].groupby("instance")["grid_energy_kwh"].min()
        if greedy.empty:
            out.append("milp grid energy ≤ every greedy policy's on every instance: not "
                       "measured (no greedy policy in this run)")
        else:
            worse = [i for i in milp.index if milp[i] > greedy[i] + 1e-9]
            out.append("milp grid energy ≤ every greedy policy's on every instance: "
                       + ("reached" if not worse else f"NOT reached on {', '.join(worse)}"))
        if "grid_vs_static_pct" in df:
            m = df[df.policy == "milp"]
            out.append(f"milp vs static, mean: grid {m.grid_vs_static_pct.mean():+.1f} % "
                       f"(target ≤ −60 %: {'reached' if m.grid_vs_static_pct.mean() <= -60 else 'NOT reached'}), "
                       f"JCT {m.jct_vs_static_pct.mean():+.1f} % (target ≤ 0: "
                       f"{'reached' if m.jct_vs_static_pct.mean() <= 0 else 'NOT reached'}), "
                       f"overhead {m.migration_overhead_pct.mean():.2f} % (target < 2 %: "
                       f"{'reached' if m.migration_overhead_pct.mean() < 2 else 'NOT reached'})")
    return out


# ---- figures -------------------------------------------------------------------------------

def _figures(out: Path, df: pd.DataFrame, loaded: list, policies: list[str]) -> None:
    from milp.figures import bars_png, timeline_png
    bars_png(df, "grid_energy_kwh", "grid (non-renewable) energy, kWh", out / "grid_energy.png")
    bars_png(df, "mean_jct_h", "mean job completion time, h", out / "jct.png")
    _, inst = loaded[0]
    policy = "milp" if "milp" in policies else policies[-1]
    plan = Plan.load(out / "cells" / inst.name / policy / "plan.json")
    e = evaluate(inst, plan)
    moves = [(inst.site_index_map[s.dst], s.start_s) for jp in plan.jobs for s in jp.steps
             if isinstance(s, Migration)]
    timeline_png(inst, e.load_kwh / inst.slot_h, np.array(moves).reshape(-1, 2),
                 f"{inst.name}, {policy}", out / "timeline.png")
