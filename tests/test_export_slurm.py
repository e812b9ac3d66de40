"""An exported plan submitted, held, to a real Slurm: every step is there with the begin time,
partition, time limit, GPU and dependency the plan says (``scontrol show job``)."""

from __future__ import annotations

import math
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from milp.export.slurm import minutes, slug
from milp.instance import load_instance
from milp.policies import POLICIES
from tests.conftest import ROOT, TINY, run_cli


def tomorrow() -> str:
    t = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return (t + timedelta(days=1)).isoformat()


def time_limit(seconds: float) -> str:
    """scontrol's TimeLimit of --time=<minutes>: [D-]HH:MM:SS."""
    m = minutes(seconds)
    d, h, mm = m // 1440, m % 1440 // 60, m % 60
    return (f"{d}-" if d else "") + f"{h:02d}:{mm:02d}:00"


@pytest.mark.parametrize("which", ["tiny-energy-only", "paper-5site-golden"])
def test_exported_plan_lands_in_slurm_as_planned(slurm, tmp_path, which):
    if which == "tiny-energy-only":
        plan = POLICIES["energy-only"](load_instance(TINY), None).save(tmp_path / "plan.json")
    else:
        plan = ROOT / "solutions" / "paper-5site" / "plan.json"
    out = tmp_path / "slurm"
    r = run_cli("export", "slurm", plan, "--out", out, "--shift-to", tomorrow())
    assert r.exit_code == 0, r.output
    submit = subprocess.run(["bash", str(out / "submit.sh"), "--hold"], env=slurm.env,
                            capture_output=True, text=True, timeout=600)
    assert submit.returncode == 0, submit.stderr
    ids = pd.read_csv(out / "submitted.csv", dtype=str).set_index("step")["slurm_job_id"]
    steps = pd.read_csv(out / "steps.csv", keep_default_na=False)
    assert len(ids) == len(steps) and (steps["kind"] == "transfer").any()
    try:
        for _, s in steps.iterrows():
            job = slurm.show_job(ids[s["name"]])
            begin = datetime.fromisoformat(s["begin"]).astimezone(timezone.utc)
            begin = begin.replace(microsecond=0) + timedelta(seconds=math.ceil(
                begin.microsecond / 1e6))
            assert job["EligibleTime"] == begin.strftime("%Y-%m-%dT%H:%M:%S"), s["name"]
            assert job["Partition"] == s["site"]
            assert job["TimeLimit"] == time_limit(s["seconds"])
            assert job["JobName"] == slug(s["name"])
            assert (job["JobState"], job["Reason"]) == ("PENDING", "JobHeldUser")
            want = f"afterok:{ids[s['after']]}(unfulfilled)" if s["after"] else "(null)"
            assert job["Dependency"] == want
            if s["kind"] == "run":
                assert job["TresPerNode"] == "gres:gpu:1"
            else:
                assert "gpu" not in job.get("TresPerNode", "")
            assert Path(job["Command"]).name == f"{slug(s['name'])}.sbatch"
    finally:
        slurm.run(["scancel", *ids.tolist()])
