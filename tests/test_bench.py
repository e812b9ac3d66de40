"""milp bench end to end on the tiny instance."""

import json
import subprocess
import sys

import pandas as pd

from milp.evaluate import METRICS
from tests.conftest import TINY

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


def test_bench_end_to_end_and_resume(tmp_path):
    out = tmp_path / "bench"
    cmd = [*CLI, "bench", str(TINY), "--out", str(out), "--time-limit", "5"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "results.csv")
    assert list(df.policy) == ["static", "wait-awhile", "energy-only", "feasibility-aware", "milp"]
    assert set(METRICS) - {"violations"} <= set(df.columns)
    assert df.valid.all()
    summary = out / "cells" / "tiny-3site" / "milp" / "summary.json"
    solver = json.loads(summary.read_text())["solver"]
    milp = df[df.policy == "milp"].grid_energy_kwh.item()
    made = {"static", "feasibility-aware", "wait-awhile"} - set(solver["seeds_skipped"])
    seeds = df[df.policy.isin(made)].grid_energy_kwh       # the seeds made within the time
    assert milp <= seeds.min() + 1e-9     # never worse than its seed, however short the time
    assert df[df.policy == "static"].grid_vs_static_pct.item() == 0
    for png in ("grid_energy.png", "jct.png", "timeline.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    md = (out / "results.md").read_text()
    assert "## Targets" in md and "milp grid energy ≤ every greedy policy's" in md
    assert solver["seed_policy"] is not None
    stamp = summary.stat().st_mtime_ns
    r = subprocess.run(cmd, capture_output=True, text=True)  # finished cells are kept
    assert r.returncode == 0 and summary.stat().st_mtime_ns == stamp


def test_bench_rejects_an_unknown_policy(tmp_path):
    r = subprocess.run([*CLI, "bench", str(TINY), "--out", str(tmp_path / "b"), "--policies",
                        "static,magic"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: --policies: unknown policy 'magic'")
