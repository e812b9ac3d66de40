#!/usr/bin/env bash
# Regenerate every committed benchmark result (about 3 hours on 2 cores, one thread per solve):
#   benchmarks/results/study/            milp bench on paper-5site and the week of 5-site days
#   benchmarks/results/execution_rules.* what the restart caps cost (7 configurations x 8 days)
#   benchmarks/results/milp_scale.*      both MILP engines from tiny-3site to scale-50x2000
#   benchmarks/results/tradeoff/         grid energy against mean JCT: days with queues
#   benchmarks/results/replay/           plan once vs re-plan under faults (replays the study's plans)
#   solutions/paper-5site/pareto/        the frontier of paper-5site (README, Trade-off)
#   benchmarks/results/year/             a year of days, serial against 2 Dask workers (about 25 more minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf benchmarks/results/study
.venv/bin/milp bench instances/paper-5site instances/week-5site/* --out benchmarks/results/study --time-limit 60 --threads 1
.venv/bin/python benchmarks/execution_rules.py --time-limit 40
.venv/bin/python benchmarks/milp_scale.py
.venv/bin/python benchmarks/tradeoff.py --time-limit 120
rm -rf benchmarks/results/replay
.venv/bin/python benchmarks/replay_faults.py --time-limit 20 --workers 2
rm -rf solutions/paper-5site/pareto
.venv/bin/milp pareto instances/paper-5site --points 5 --time-limit 60 --threads 1 --out solutions/paper-5site/pareto
.venv/bin/python benchmarks/year_sweep.py --weeks 52 --time-limit 30 --workers 2
