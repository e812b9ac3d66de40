#!/usr/bin/env bash
# Regenerate every committed benchmark result (about 20 minutes on 2 cores):
#   benchmarks/results/study/      milp bench on paper-5site and the week of 5-site days
#   benchmarks/results/milp_scale.* the MILP from 5x20 to 20x500
#   benchmarks/results/replay/      plan once vs re-plan under faults (replays the study's plans)
#   benchmarks/results/year/        a year of days, serial against 2 Dask workers (about 45 more minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf benchmarks/results/study
.venv/bin/milp bench instances/paper-5site instances/week-5site/* --out benchmarks/results/study --time-limit 60
.venv/bin/python benchmarks/milp_scale.py --time-limit 60
.venv/bin/python benchmarks/replay_faults.py --time-limit 20
.venv/bin/python benchmarks/year_sweep.py --weeks 52 --time-limit 30 --workers 2
