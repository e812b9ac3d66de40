"""Benchmark: the study's headline on both axes — grid energy AND mean JCT against `static`.

    .venv/bin/python benchmarks/tradeoff.py [--time-limit 120]

Three `milp bench` runs (milp.bench.run_bench, every plan scored by the evaluator), each in its
own folder under ``benchmarks/results/tradeoff/``:

* ``contention/``: every policy, the MILP unconstrained, on the seven days with queues
  (``instances/contention-5site/*``);
* ``contention-jct/``: the MILP at the point of its frontier that meets the study's JCT claim,
  ``--max-jct-increase -18`` (mean JCT at least 18 % below static's), same days;
* ``study-jct/``: the MILP with mean JCT no worse than static's (``--max-jct-increase 0``) on
  the study days (``paper-5site`` and ``week-5site/*``);
* ``peak-cover-2-jct/``: sensitivity — the contention days rebuilt with twice the renewable
  power (``peak_cover = 2``; the instances are written to ``peak-cover-2-instances/``), static
  and the MILP at ``--max-jct-increase -18``.

It prints and writes ``tradeoff.md``/``tradeoff.csv``: per day and on average, the change of
grid energy and of mean JCT against ``static``, and whether the targets are met (issue 15):
at least 52 % less grid energy and at least 18 % lower mean JCT than static at the same time,
on average over the contention days. The MILP's bound (its lower bound on grid energy) says
how far any plan under the same JCT bound could go.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from milp import build  # noqa: E402
from milp.bench import run_bench  # noqa: E402
from milp.files import write_atomic  # noqa: E402
from milp.instance import load_instance  # noqa: E402
from milp.sweep import SweepFailed  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "tradeoff"
CONTENTION = sorted((ROOT / "instances" / "contention-5site").glob("*/"))
STUDY = [ROOT / "instances" / "paper-5site", *sorted((ROOT / "instances" / "week-5site")
                                                     .glob("*/"))]
GREEDY = ["static", "wait-awhile", "energy-only", "feasibility-aware"]
TARGET_GRID_PCT, TARGET_JCT_PCT = -52.0, -18.0
FLAGS = {"time_limit_s": "--time-limit", "threads": "--threads",
         "max_jct_increase_pct": "--max-jct-increase"}


def bench(name: str, instances: list[Path], policies: list[str], options: dict) -> pd.DataFrame:
    command = (f"milp bench {' '.join(str(p.relative_to(ROOT)) for p in instances)} --policies "
               f"{','.join(policies)} --out benchmarks/results/tradeoff/{name} "
               + " ".join(f"{FLAGS[k]} {v:g}" for k, v in options.items()))
    print(f"== {name}: {command}", flush=True)
    return run_bench(instances, policies, OUT / name, options, command=command)


def bench_planned(name: str, instances: list[Path], policies: list[str], options: dict
                  ) -> tuple[pd.DataFrame, list[str]]:
    """:func:`bench` over the days where every policy finds a plan (a bound no plan met in the
    time fails a MILP cell, and :func:`run_bench` raises :class:`SweepFailed`); returns the
    table and the days left out."""
    planned, missed = [], []
    for day in instances:
        try:
            bench(name, [day], policies, options)
            planned.append(day)
        except SweepFailed:
            missed.append(day.name)
    if not planned:
        return pd.DataFrame(columns=["instance", "policy"]), missed
    return bench(name, planned, policies, options), missed


def peak_cover_2() -> list[Path]:
    """The contention-5site days rebuilt with ``peak_cover = 2`` (same jobs, same days)."""
    out = OUT / "peak-cover-2-instances"
    days = []
    for p in build.load_presets()["contention-5site"]:
        p = replace(p, name=f"{p.name}-peak2", peak_cover=2.0)
        days.append(build.build_instance(build.check_params(p), out / p.day))
    return days


def bound_pct(df: pd.DataFrame, r: pd.Series) -> float | None:
    """The MILP's lower bound (objective ≈ grid kWh) against static's grid energy (%): no
    plan under the same JCT bound can save more than this says."""
    if r.policy != "milp" or pd.isna(r.get("solver_bound")):
        return None
    static = df[(df.instance == r.instance) & (df.policy == "static")].grid_energy_kwh.iloc[0]
    return 100.0 * (r.solver_bound / static - 1)


#: The plan label of the energy ceiling: static's demand, every renewable kWh of the day used.
CEILING = "ceiling: every renewable kWh used"


def ceiling_pct(instance: str, static: pd.Series) -> float:
    """The most any plan could save against static (%), from energy alone: static's total
    energy (kWh; a move only adds to it) served first by every renewable kWh of the day."""
    inst = load_instance(next(d for d in CONTENTION if instance.endswith(d.name)))
    renewable = float((inst.renewable_kw * inst.slot_h).sum())
    grid = max(0.0, static.total_energy_kwh - renewable)
    return 100.0 * (grid / static.grid_energy_kwh - 1)


def row(days: str, label: str, df: pd.DataFrame, r: pd.Series) -> dict:
    """One line of tradeoff.csv: the plan of ``r`` (a bench row of ``df``) against static."""
    if label == CEILING:
        return {"days": days, "plan": label, "instance": r.instance,
                "grid_vs_static_pct": ceiling_pct(r.instance, r)}
    return {"days": days, "plan": label, "instance": r.instance,
            "grid_vs_static_pct": r.grid_vs_static_pct, "jct_vs_static_pct": r.jct_vs_static_pct,
            "unfinished_jobs": r.unfinished_jobs, "valid": r.valid,
            "solver_gap": r.get("solver_gap"), "bound_vs_static_pct": bound_pct(df, r)}


def sensitivity(mean: pd.DataFrame, no_plan: list[str]) -> list[str]:
    """The sentence on the peak_cover = 2 days, when they were run (``no_plan``: the days
    where the MILP found no plan under the JCT bound in the time)."""
    rows = mean[mean.days == "contention, peak_cover 2"]
    if rows.empty:
        return []
    r = rows.iloc[0]
    return [f"**Sensitivity.** With twice the renewable power on the same days and jobs "
            f"(`peak_cover = 2`), the MILP at the same JCT bound saves "
            f"{-r.grid_vs_static_pct:.1f} % of static's grid energy (mean JCT "
            f"{r.jct_vs_static_pct:+.1f} %; bound {r.bound_vs_static_pct:+.1f} %): the headline "
            "is a matter of how much surplus there is to follow."
            + (f" On {', '.join(no_plan)} the MILP found no plan under that JCT bound in the "
               "time (no greedy plan meets it to start from); the average is over the other "
               "days." if no_plan else "")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=120.0,
                    help="seconds per MILP cell (default 120)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the cells of an earlier run (default: start afresh)")
    a = ap.parse_args()
    if OUT.exists() and not a.resume:
        shutil.rmtree(OUT)
    base = {"time_limit_s": a.time_limit, "threads": 1}
    free = bench("contention", CONTENTION, [*GREEDY, "milp"], base)
    tight = bench("contention-jct", CONTENTION, ["static", "milp"],
                  {**base, "max_jct_increase_pct": TARGET_JCT_PCT})
    study = bench("study-jct", STUDY, ["static", "milp"], {**base, "max_jct_increase_pct": 0.0})
    peak2, no_plan = bench_planned("peak-cover-2-jct", peak_cover_2(), ["static", "milp"],
                                   {**base, "max_jct_increase_pct": TARGET_JCT_PCT})

    rows = []
    for label, df in (("milp (unconstrained)", free), ("milp, mean JCT ≤ 0.82 × static", tight),
                      *((p, free) for p in GREEDY[1:])):
        policy = "milp" if label.startswith("milp") else label
        rows += [row("contention", label, df, r) for _, r in df[df.policy == policy].iterrows()]
    rows += [row("contention", CEILING, free, r) for _, r in
             free[free.policy == "static"].iterrows()]
    rows += [row("study", "milp, mean JCT ≤ static", study, r)
             for _, r in study[study.policy == "milp"].iterrows()]
    rows += [row("contention, peak_cover 2", "milp, mean JCT ≤ 0.82 × static", peak2, r)
             for _, r in peak2[peak2.policy == "milp"].iterrows()]
    table = pd.DataFrame(rows)
    write_atomic(OUT / "tradeoff.csv", table.to_csv(index=False))
    mean = (table.groupby(["days", "plan"], sort=False)
            [["grid_vs_static_pct", "jct_vs_static_pct", "bound_vs_static_pct", "solver_gap"]]
            .mean().reset_index())
    static_unfinished = free[free.policy == "static"].unfinished_jobs.sum()
    head = mean[(mean.days == "contention") & (mean.plan.str.contains("0.82"))].iloc[0]
    met = head.grid_vs_static_pct <= TARGET_GRID_PCT and head.jct_vs_static_pct <= TARGET_JCT_PCT
    ceiling = mean[mean.plan == CEILING].grid_vs_static_pct.iloc[0]
    text = "\n".join([
        "# Trade-off: grid energy and mean JCT against static",
        "",
        "Command: `.venv/bin/python benchmarks/tradeoff.py --time-limit "
        f"{a.time_limit:g}` (one thread per solve). Every number is the evaluator's; the bench "
        "folders beside this file hold every cell's plan and summary.",
        "",
        "## Averages over the days (change against `static`, %)",
        "",
        mean.round(2).to_markdown(index=False),
        "",
        f"**Target** (issue 15, the study's headline): grid ≤ {TARGET_GRID_PCT:g} % and mean "
        f"JCT ≤ {TARGET_JCT_PCT:g} % at the same time, on average over the contention days: "
        f"**{'reached' if met else 'not reached'}** — grid {head.grid_vs_static_pct:+.1f} %, "
        f"mean JCT {head.jct_vs_static_pct:+.1f} %. `bound_vs_static_pct` is the MILP's "
        "lower bound under the same JCT bound: no plan can save more. It bounds the objective, "
        "grid energy plus the tie-breakers (`migration_kwh` per move, `completion_kwh` per "
        "GPU-hour and hour), which add 0.1–0.5 % here, so it can sit a hair above the plan's "
        "grid energy.",
        "",
        f"`{CEILING}` is the most any plan could save from energy alone: static's total "
        "energy served first by every renewable kWh of the day (a move only adds energy). "
        f"On average over the contention days it is {ceiling:+.1f} %: the grid target is "
        + ("out of reach on these days whatever the planner." if ceiling > TARGET_GRID_PCT
           else "within reach from energy alone."),
        "",
        *sensitivity(mean, no_plan),
        "",
        f"`static` leaves {static_unfinished} job(s) unfinished over the contention days (its "
        "JCT counts them as completing at the horizon's end, a lower bound); every MILP plan "
        "finishes every job.",
        "",
        "## Every day",
        "",
        table.round(2).to_markdown(index=False),
        ""])
    write_atomic(OUT / "tradeoff.md", text)
    print(text)


if __name__ == "__main__":
    main()
