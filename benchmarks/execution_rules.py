"""What the execution rules cost: grid energy and runs per job under several caps, on the study
days (paper-5site and the week to it), with the MILP (decomposition engine) and
feasibility-aware.

Each configuration rewrites ``[execution]`` of a copy of each day (``max_restarts``,
``min_run_minutes``) and plans it; the evaluator scores every plan against that copy. "Before"
is the MILP of the previous round (schema version 2: no restores, no caps): its runs per job,
counted from its committed plans, are in ``results/execution_rules_before.csv``.

    .venv/bin/python benchmarks/execution_rules.py [--time-limit 60] [--configs none/0,2/30,...]
        [--resume]

prints a table and writes ``benchmarks/results/execution_rules.csv`` (after every cell, so that
``--resume`` goes on where a stopped run ended) and ``.md``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from milp.engine.solve import SolveOptions, plan_milp
from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.policies import POLICIES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DAYS = ["paper-5site"] + [f"week-5site/2019-04-{d}" for d in range(15, 22)]
#: max_restarts / min_run_minutes; "none" lifts the restart cap
DEFAULT_CONFIGS = "none/0,none/30,4/15,2/30,1/30,0/30,2/60"
BEFORE = "before (previous round)"


def with_rules(src: Path, dst: Path, restarts: str, minutes: str) -> Path:
    shutil.copytree(src, dst)
    toml = dst / "instance.toml"
    cap = '"none"' if restarts == "none" else restarts
    toml.write_text(toml.read_text() + f"\n[execution]\nmax_restarts = {cap}\n"
                    f"min_run_minutes = {minutes}\n")
    return dst


def before(day: str) -> dict:
    """Runs per job of the previous round's MILP plan of the day (schema version 2, no restores
    and no caps; the plans were ``benchmarks/results/study/cells/<day>/milp/plan.json`` at commit
    006447b): counted once into ``results/execution_rules_before.csv``."""
    table = pd.read_csv(RESULTS / "execution_rules_before.csv").set_index("day")
    if day not in table.index:
        return {}
    row = table.loc[day]
    return {"runs": int(row["runs"]), "max_runs_per_job": int(row["max_runs_per_job"])}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--resume", action="store_true",
                    help="keep the (day, config) cells of an existing execution_rules.csv")
    args = ap.parse_args(argv)
    csv = args.out / "execution_rules.csv"
    done = pd.read_csv(csv) if args.resume and csv.is_file() else pd.DataFrame(
        columns=["day", "config", "policy"])
    done = done[done.config != BEFORE]
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for day in DAYS:
            old = before(day)
            if old:
                rows.append({"day": day, "config": BEFORE, "policy": "milp", **old})
            for config in args.configs.split(","):
                kept = done[(done.day == day) & (done.config == config)]
                if len(kept):
                    rows.extend(kept.to_dict("records"))
                    continue
                restarts, minutes = config.split("/")
                d = with_rules(ROOT / "instances" / day,
                               Path(tmp) / f"{Path(day).name}-{restarts}-{minutes}",
                               restarts, minutes)
                inst = load_instance(d)
                plans = {"feasibility-aware": POLICIES["feasibility-aware"](inst, None)}
                plans["milp"], facts = plan_milp(inst, SolveOptions(
                    time_limit_s=args.time_limit, engine="decomposition", threads=1))
                for policy, plan in plans.items():
                    e = evaluate(inst, plan)
                    rows.append({
                        "day": day, "config": config, "policy": policy, "valid": e.valid,
                        "grid_kwh": round(e.grid_energy_kwh, 3),
                        "bound": round(facts.bound, 3) if policy == "milp" and facts.bound
                        is not None else None,
                        "runs": e.runs, "max_runs_per_job": e.max_runs_per_job,
                        "restarts": e.restarts, "short_runs": e.short_runs,
                        "moves": e.migrations, "mean_jct_h": round(e.mean_jct_h, 3)})
                print(pd.DataFrame(rows[-2:]).to_string(index=False), flush=True)
                pd.DataFrame(rows).to_csv(csv.with_suffix(".tmp"), index=False)
                csv.with_suffix(".tmp").replace(csv)
    df = pd.DataFrame(rows)
    total = lambda col: (col, lambda x: x.sum(min_count=1))  # noqa: E731 (NaN stays NaN)
    mean = (df.groupby(["config", "policy"], sort=False)
            .agg(grid_kwh=total("grid_kwh"), bound=total("bound"), runs=total("runs"),
                 max_runs_per_job=("max_runs_per_job", "max"), restarts=total("restarts"),
                 short_runs=total("short_runs"), moves=total("moves"),
                 mean_jct_h=("mean_jct_h", "mean"))
            .reset_index())
    free = mean[(mean.config == "none/0") & (mean.policy == "milp")].grid_kwh
    if len(free):
        mean["grid_vs_no_caps_pct"] = (100 * (mean.grid_kwh / float(free.iloc[0]) - 1)).round(1)
    command = " ".join(["benchmarks/execution_rules.py", *argv])
    (args.out / "execution_rules.md").write_text(
        f"# What the execution rules cost\n\nCommand: `.venv/bin/python {command}`. Totals over "
        f"the {len(DAYS)} study days (config = max_restarts/min_run_minutes; bound: the "
        f"decomposition's Lagrangian bound).\n\n" + mean.to_markdown(index=False)
        + "\n\nPer day:\n\n" + df.to_markdown(index=False) + "\n")
    print(mean.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
