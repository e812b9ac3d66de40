"""Plan once vs re-plan under faults: the committed MILP plans of the study days, executed with
``milp.replay`` under three fault scenarios, followed as made or re-planned at each fault.

Scenarios (the outage hits the site with the most planned GPU hours from 10:00 to 16:00 local,
the one whose loss hurts most):

- ``slow-wan``: every link carries half its Gbps all day;
- ``outage``: that site goes dark at 11:00 local until the end of the day;
- ``combined``: links at 70 %, renewable forecast error σ = 30 % (seed 1), the site dark from
  13:00.

Modes: ``plan-once`` (follow the plan), ``replan-milp`` (the MILP re-plans the rest of the day
at each fault, ``--time-limit`` s each), ``replan-feasibility-aware`` (the greedy re-plans).
Every number comes from the evaluator, run on the perturbed instance.

    .venv/bin/python benchmarks/replay_faults.py [--time-limit 20] [--days paper-5site,...]
        [--workers N | --scheduler ADDRESS | --slurm ...]

Each (day, scenario, mode) is one cell of a sweep (:mod:`milp.sweep`): in this process, or on
Dask as ``milp bench`` runs them; each is written to
``benchmarks/results/replay/cells/<day>/<scenario>/<mode>/`` (``summary.json`` of ``milp
replay``, the executed ``plan.json``) as it finishes, and a rerun keeps the cells made with the
same MILP options. It prints a table and writes ``benchmarks/results/replay/results.csv`` and
``results.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from milp import sweep
from milp.bench import cell_options, replay_cell
from milp.instance import load_instance
from milp.plan import Plan, Run
from milp.replay import Faults

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "replay"
CELLS = ROOT / "benchmarks" / "results" / "study" / "cells"
DAYS = "paper-5site,week-5site/2019-04-16,week-5site/2019-04-18"
MODES = {"plan-once": None, "replan-milp": "milp",
         "replan-feasibility-aware": "feasibility-aware"}
COLUMNS = ["grid_energy_kwh", "mean_jct_h", "unfinished_jobs", "unfinished_work_h",
           "lost_work_h", "deadline_misses", "migrations", "migrations_outside_domain", "valid"]


def busiest_site(inst, plan: Plan) -> int:
    """The site with most planned run hours between 10:00 and 16:00 local time."""
    lo, hi = 10 * 3600.0, 16 * 3600.0
    hours = np.zeros(inst.n_sites)
    for jp in plan.jobs:
        for s in jp.steps:
            if isinstance(s, Run):
                hours[inst.site_index_map[s.site]] += max(0.0, min(s.end_s, hi)
                                                          - max(s.start_s, lo))
    return int(hours.argmax())


def scenarios(inst, plan: Plan) -> dict[str, Faults]:
    site = busiest_site(inst, plan)
    return {"slow-wan": Faults(bandwidth_factor=0.5),
            "outage": Faults(outages=((site, 11 * 3600.0),)),
            "combined": Faults(bandwidth_factor=0.7, renewable_noise=0.3, seed=1,
                               outages=((site, 13 * 3600.0),))}


def cells(days: list[str], time_limit_s: float, out: Path, plans: Path = CELLS
          ) -> list[sweep.Cell]:
    """One cell per day × scenario × mode under ``out/cells``, replaying the MILP plan of
    ``plans/<instance>/milp/plan.json``; its summary is ``milp replay``'s."""
    options = {"time_limit_s": time_limit_s, "threads": 1}
    made = []
    for day in days:
        inst = load_instance(ROOT / "instances" / day)
        plan_file = plans / inst.name / "milp" / "plan.json"
        plan = Plan.load(plan_file)
        inputs = sweep.fingerprint(ROOT / "instances" / day, plan_file)
        for name, faults in scenarios(inst, plan).items():
            for mode, policy in MODES.items():
                used = options if policy == "milp" else {}
                made.append(sweep.Cell(f"{inst.name} / {name} / {mode}",
                                      out / "cells" / inst.name / name / mode, replay_cell,
                                      (inst, plan, faults, policy, used),
                                      cell_options(policy or "", used), inputs))
    return made


def row(cell: sweep.Cell) -> dict:
    """The table's row of a finished cell (from its summary.json)."""
    s = json.loads((cell.folder / "summary.json").read_text())
    instance, scenario, mode = cell.name.split(" / ")
    outages = s["faults"]["outages"]
    return {"instance": instance, "scenario": scenario, "mode": mode,
            **{k: s["actual"][k] for k in COLUMNS},
            "outage_site": outages[0].split("@")[0] if outages else "-",
            "replans": sum("re-plan" in e["event"] for e in s["events"]),
            "wall_s": s["provenance"]["wall_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=20.0, help="MILP seconds per re-plan")
    ap.add_argument("--days", default=DAYS, help="instances (under instances/), comma-separated")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the cells and tables")
    ap.add_argument("--plans", type=Path, default=CELLS,
                    help="cells of a milp bench run holding <instance>/milp/plan.json")
    sweep.add_arguments(ap)
    args = ap.parse_args()
    results = args.out
    todo = cells(args.days.split(","), args.time_limit, results, args.plans)
    sweep.run(todo, sweep.from_arguments(args, results / "slurm-logs"), label="replay",
              progress=sweep.console())
    table = pd.DataFrame([row(c) for c in todo])
    for r in table.itertuples():
        print(f"{r.instance:24s} {r.scenario:9s} {r.mode:25s} grid {r.grid_energy_kwh:8.2f} "
              f"kWh  jct {r.mean_jct_h:5.2f} h  unfinished {r.unfinished_jobs:2d} "
              f"({r.unfinished_work_h:.2f} h)  lost {r.lost_work_h:.2f} h")
    table.to_csv(results / "results.csv", index=False)
    means = (table.groupby(["scenario", "mode"], sort=False)
             [["grid_energy_kwh", "mean_jct_h", "unfinished_jobs", "unfinished_work_h",
               "lost_work_h", "migrations_outside_domain"]].mean().round(2).reset_index())
    text = [
        "# Plan once vs re-plan under faults", "",
        f"`{' '.join(['python', 'benchmarks/replay_faults.py', *sys.argv[1:]])}` on "
        f"{platform.processor() or platform.machine()}, MILP re-plans "
        f"{args.time_limit:g} s each. Plans: the committed MILP plans of "
        f"`benchmarks/results/study`. Means over {table['instance'].nunique()} days:", "",
        means.to_markdown(index=False), "", "Every cell:", "",
        table.round(3).to_markdown(index=False), ""]
    (results / "results.md").write_text("\n".join(text))
    print(means.to_string(index=False))
    print(f"wrote {results / 'results.csv'} and results.md")


if __name__ == "__main__":
    sweep.main(main)
