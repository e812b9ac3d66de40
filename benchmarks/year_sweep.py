"""Benchmark: a year of days as one sweep — every policy on one day per week of 2018 (52 days, 5
sites × 8 GPUs, 60 jobs each), the MILP at 30 s, run in this process and on a local Dask cluster.

    .venv/bin/python benchmarks/year_sweep.py [--weeks 52] [--time-limit 30] [--workers 2]

1. builds the days from the shared data (:func:`milp.build.build_days`, the same as ``milp
   build-instance --out DIR --days 2018-01-03..2018-12-26 --every 7 --sites 5 --jobs 60``) into
   ``benchmarks/results/year/instances/`` (not committed; a day already built is kept);
   ``--weeks N`` takes N of those days, spread over the year (every 52 // N weeks);
2. runs ``milp bench`` (:func:`milp.bench.run_bench`, a sweep of :mod:`milp.sweep`) on them
   twice, each from empty cell folders so that every cell is computed: one cell after the other
   in this process (``serial/``), then on a local cluster of ``--workers`` processes
   (``workers-N/``); a MILP cell uses one thread in both;
3. writes ``timing.csv`` and ``timing.md`` (the wall time of each run, their ratio, whether the
   deterministic policies' results are the same), ``monthly.csv`` and
   ``grid_saving_by_month.png``: each policy's grid-energy saving against ``static`` (%,
   :mod:`milp.evaluate`'s ``grid_vs_static_pct`` negated), averaged by month, of the run on the
   cluster.

Wall times depend on the machine and on what else runs on it: ``timing.md`` says where they
were measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from milp import sweep  # noqa: E402
from milp.bench import ALL_POLICIES, run_bench  # noqa: E402
from milp.build import BuildParams, build_days, buildable  # noqa: E402
from milp.errors import InputError  # noqa: E402
from milp.figures import monthly_png  # noqa: E402
from milp.files import write_atomic  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "year"
#: The first day of the year's sweep, a Wednesday (no daylight-saving change falls on one).
FIRST = date(2018, 1, 3)
WEEKS = 52
#: Every day's instance but its day and seed: the shape of week-5site (instances/presets.toml).
BASE = BuildParams(name="year", day=FIRST.isoformat(), sites=5, gpus_per_site=8, jobs=60,
                   seed=1)
#: Policies whose plans do not depend on the clock: their results must not depend on where
#: they ran.
DETERMINISTIC = [p for p in ALL_POLICIES if p != "milp"]


def year_days(weeks: int) -> list[date]:
    """``weeks`` days, one every ``52 // weeks`` weeks from :data:`FIRST`: each the first day
    of its week, from the Wednesday on, an instance can be built on
    (:func:`milp.build.buildable`; 2018-07-04 is not in the CAISO report, so its week has
    2018-07-05)."""
    step = 7 * max(1, WEEKS // weeks)
    days = []
    for k in range(weeks):
        week = [FIRST + timedelta(days=k * step + i) for i in range(7)]
        ok, _ = buildable(week)
        if ok:
            days.append(ok[0])
    return days


def instances(days: list[date], folder: Path) -> list[Path]:
    """The instance folder of each day under ``folder``, building those not built yet (the
    day of week k of the year has seed k + 1, whichever are built)."""
    for d in days:
        if not (folder / d.isoformat() / "instance.toml").is_file():
            week = (d - FIRST).days // 7
            build_days(replace(BASE, seed=BASE.seed + week), [d], folder)
    return [folder / d.isoformat() for d in days]


def timed_run(days: list[Path], out: Path, where: sweep.Where, time_limit_s: float
              ) -> tuple[float, pd.DataFrame]:
    """``milp bench`` of every policy on ``days`` into ``out``, every cell computed (its cells
    folder emptied first): its wall time (s) and results table."""
    shutil.rmtree(out / "cells", ignore_errors=True)
    started = time.perf_counter()
    table = run_bench(days, list(ALL_POLICIES), out, {"time_limit_s": time_limit_s},
                      progress=sweep.console(), command=" ".join(["python", *sys.argv]),
                      where=where)
    return time.perf_counter() - started, table


def by_month(table: pd.DataFrame) -> pd.DataFrame:
    """Mean grid-energy saving against static (%) and mean JCT (h) per month and policy."""
    df = table.assign(month=[int(name.split("-")[-2]) for name in table.instance],
                      grid_saving_pct=0.0 - table.grid_vs_static_pct)
    return (df.groupby(["month", "policy"], sort=False)[["grid_saving_pct", "mean_jct_h"]]
            .mean().round(2).reset_index().sort_values(["month", "policy"], kind="stable"))


def same_results(a: pd.DataFrame, b: pd.DataFrame, policies: list[str]) -> bool:
    """Whether two results tables agree on ``policies``, wall times aside."""
    def part(t: pd.DataFrame) -> pd.DataFrame:
        return t[t.policy.isin(policies)].drop(columns=["wall_s"]).reset_index(drop=True)
    return part(a).equals(part(b))


def timing_markdown(timing: pd.DataFrame, args: argparse.Namespace, n_days: int,
                    same: bool) -> str:
    """``timing.md``: the command, the machine, the wall times and their ratio."""
    serial, parallel = timing.wall_s
    return "\n".join([
        "# A year of days: serial against a local Dask cluster", "",
        f"`python benchmarks/year_sweep.py {' '.join(sys.argv[1:])}`: every policy on {n_days} "
        f"days of 2018 (one every {max(1, WEEKS // args.weeks)} week(s) from {FIRST}, the first in its week that the CAISO report has, 5 sites "
        f"× 8 GPUs, 60 jobs), the MILP at {args.time_limit:g} s with one thread per cell; "
        f"{n_days * len(ALL_POLICIES)} cells per run, every one computed.", "",
        f"Measured on {platform.machine()} with {os.cpu_count()} cores; `load_before` and "
        "`load_after` are the machine's 1-minute load average around each run (a run's own "
        "processes count in `load_after`; a `load_before` well above 0 means other work was "
        "running): the wall times and their ratio are what this machine gave then.", "",
        timing.to_markdown(index=False), "",
        f"Speed-up with {args.workers} workers: **{serial / parallel:.2f}×** "
        f"({serial:.0f} s against {parallel:.0f} s).", "",
        "Results of the deterministic policies (" + ", ".join(DETERMINISTIC) + "): "
        + ("the same in both runs (results.csv less wall times)." if same else
           "**not the same in both runs**."),
        "The MILP's results may differ a little between runs: it stops at its time limit and "
        "its search is driven by the clock.", "",
        "Grid-energy saving against `static` by month (the cluster's run): "
        "`grid_saving_by_month.png`, `monthly.csv`.", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks", type=int, default=WEEKS, help="days, one per week, spread over "
                    f"the year (1..{WEEKS})")
    ap.add_argument("--time-limit", type=float, default=30.0, help="MILP seconds per cell")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the cluster run")
    ap.add_argument("--out", type=Path, default=OUT, help="folder of the results")
    args = ap.parse_args()
    if not 1 <= args.weeks <= WEEKS:
        raise InputError("--weeks", f"must be a whole number from 1 to {WEEKS}")
    days = instances(year_days(args.weeks), args.out / "instances")
    cluster = sweep.where(workers=args.workers)
    rows = []
    for name, where in (("serial", sweep.Where()), (f"workers-{args.workers}", cluster)):
        load_before = os.getloadavg()[0]
        wall, table = timed_run(days, args.out / name, where, args.time_limit)
        rows.append({"run": name, "where": where.describe(), "cells": len(table),
                     "wall_s": round(wall, 1), "load_before": round(load_before, 2),
                     "load_after": round(os.getloadavg()[0], 2)})
        print(f"{name}: {len(table)} cells in {wall:.1f} s", flush=True)
    timing = pd.DataFrame(rows)
    timing["ratio_to_serial"] = (timing.wall_s.iloc[0] / timing.wall_s).round(2)
    serial = pd.read_csv(args.out / "serial" / "results.csv")
    parallel = pd.read_csv(args.out / rows[1]["run"] / "results.csv")
    same = same_results(serial, parallel, DETERMINISTIC)
    write_atomic(args.out / "timing.csv", timing.to_csv(index=False))
    write_atomic(args.out / "timing.md", timing_markdown(timing, args, len(days), same))
    monthly = by_month(parallel)
    write_atomic(args.out / "monthly.csv", monthly.to_csv(index=False))
    monthly_png(monthly, "grid_saving_pct",
                "grid energy saved against static (%)", args.out / "grid_saving_by_month.png",
                title=f"{len(days)} days of 2018, mean by month")
    print(timing.to_string(index=False))
    print(f"wrote {args.out / 'timing.md'}, monthly.csv and grid_saving_by_month.png")


if __name__ == "__main__":
    sweep.main(main)
