"""How the MILP planner scales: build and solve time, objective, bound and gap against the best
greedy plan, from 5 sites × 20 jobs to 20 sites × 500 jobs (96 slots of 15 min).

Instances are built from the real data (``milp.build``, day 2019-04-21, seed 1); the two largest
are the shipped ``scale-10x200`` and ``scale-20x500``. Every plan is scored by the evaluator.

    .venv/bin/python benchmarks/milp_scale.py [--time-limit 60] [--sizes 5x20,5x100,...]

prints a table and writes ``benchmarks/results/milp_scale.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from milp.build import BuildParams, build_instance, load_presets
from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.policies import POLICIES
from milp.engine.solve import SolveOptions, plan_milp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHIPPED = {"10x200": "scale-10x200", "20x500": "scale-20x500"}
DEFAULT_SIZES = "5x20,5x100,10x200,20x500"


def instance_for(size: str, tmp: Path):
    """The shipped instance of that size, or one built like them (8 GPUs per site)."""
    if size in SHIPPED:
        return load_instance(ROOT / "instances" / SHIPPED[size])
    sites, jobs = (int(x) for x in size.split("x"))
    base = load_presets()["paper-5site"][0]
    params = BuildParams(**{**base.__dict__, "name": f"bench-{size}", "sites": sites,
                            "jobs": jobs})
    return load_instance(build_instance(params, tmp / size))


def run(size: str, time_limit: float, tmp: Path) -> dict:
    inst = instance_for(size, tmp)
    greedy = {}
    for name, policy in POLICIES.items():
        t0 = time.perf_counter()
        e = evaluate(inst, policy(inst, None))
        greedy[name] = (e.grid_energy_kwh, time.perf_counter() - t0, e.deadline_misses)
    best_name = min(greedy, key=lambda n: greedy[n][0])
    t0 = time.perf_counter()
    plan, facts = plan_milp(inst, SolveOptions(time_limit_s=time_limit, gap=0.01))
    wall = time.perf_counter() - t0
    e = evaluate(inst, plan)
    return {
        "size": size, "instance": inst.name, "sites": inst.n_sites, "jobs": inst.n_jobs,
        "slots": inst.n_slots, "binaries": facts.binaries, "constraints": facts.constraints,
        "seed_s": round(facts.seed_s, 2), "build_s": round(facts.build_s, 2),
        "solve_s": round(facts.solve_s, 2), "wall_s": round(wall, 2), "status": facts.status,
        "objective": _r(facts.objective), "bound": _r(facts.bound),
        "gap_pct": _r(100 * facts.gap if facts.gap is not None else None, 2),
        "milp_grid_kwh": _r(e.grid_energy_kwh), "valid": e.valid,
        "outside_domain": e.migrations_outside_domain, "deadline_misses": e.deadline_misses,
        "best_greedy": best_name, "best_greedy_grid_kwh": _r(greedy[best_name][0]),
        "greedy_max_s": round(max(g[1] for g in greedy.values()), 2),
        "vs_best_greedy_pct": _r(100 * (e.grid_energy_kwh / greedy[best_name][0] - 1), 2)
        if greedy[best_name][0] > 0 else None,
        "search_steps": facts.neighbourhood_steps,
        "search_improvements": facts.neighbourhood_improvements,
    }


def _r(x, digits: int = 3):
    return None if x is None else round(float(x), digits)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0, help="solver seconds per size")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated SITESxJOBS")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            rows.append(run(size.strip(), args.time_limit, Path(tmp)))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "milp_scale.csv", index=False)
    command = " ".join(["benchmarks/milp_scale.py", *(argv if argv is not None else sys.argv[1:])])
    (args.out / "milp_scale.md").write_text(
        f"# MILP scale benchmark\n\nCommand: `.venv/bin/python {command}` "
        f"(time limit {args.time_limit:g} s of solver time per size; machine: "
        f"{platform.machine()}, {platform.python_version()}).\n\n"
        + df.to_markdown(index=False) + "\n")
    print()
    print(df.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
