"""Exported plans submitted, held, to a real Slurm (tests/slurm_cluster.py): every step lands
as planned (begin time, partition, time limit, GPU, dependency, kill-on-invalid-dep, name and
comment with the plan id), read back with ``scontrol show job``."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from milp.export.slurm import job_name, limit_s, minutes, signalled, slug
from milp.export.steps import schedule
from milp.instance import load_instance
from milp.plan import JobPlan, Migration, Plan, Run
from milp.policies import POLICIES
from tests.conftest import GOLDEN_PLAN, TINY, run_cli

#: States a Slurm job does not leave.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def tomorrow() -> str:
    t = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return (t + timedelta(days=1)).isoformat()


def time_limit(seconds: float) -> str:
    """scontrol's TimeLimit of --time=<minutes>: [D-]HH:MM:SS."""
    m = minutes(seconds)
    d, h, mm = m // 1440, m % 1440 // 60, m % 60
    return (f"{d}-" if d else "") + f"{h:02d}:{mm:02d}:00"


def utc(text: str) -> int:
    """A time of scontrol (the cluster's TZ=UTC, whole seconds) as Unix seconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def submit(slurm, out: Path, *args: str) -> tuple[pd.Series, float, float]:
    """Run ``submit.sh`` against the test cluster: the job id of each step, and the Unix
    times just before and after it ran."""
    before = time.time()
    r = subprocess.run(["bash", str(out / "submit.sh"), *args], env=slurm.env,
                       capture_output=True, text=True, timeout=600)
    after = time.time()
    assert r.returncode == 0, r.stderr
    ids = pd.read_csv(out / "submitted.csv", dtype=str).set_index("step")["slurm_job_id"]
    return ids, before, after


@pytest.mark.parametrize("which", ["tiny-energy-only", "paper-5site-golden"])
def test_exported_plan_lands_in_slurm_as_planned(slurm, tmp_path, which):
    if which == "tiny-energy-only":
        plan = POLICIES["energy-only"](load_instance(TINY), None).save(tmp_path / "plan.json")
    else:
        plan = GOLDEN_PLAN
    out = tmp_path / "slurm"
    r = run_cli("export", "slurm", plan, "--out", out, "--shift-to", tomorrow())
    assert r.exit_code == 0, r.output
    sched = schedule(Plan.load(plan), tomorrow())
    ids, before, after = submit(slurm, out, "--hold")
    steps = pd.read_csv(out / "steps.csv", keep_default_na=False)
    assert len(ids) == len(steps) == len(sched.steps) and (steps["kind"] == "transfer").any()
    try:
        for s in sched.steps:
            job = slurm.show_job(ids[s.name])
            # --begin=now+N, N counted at submission: the planned start, never earlier
            eligible = utc(job["EligibleTime"])
            assert s.begin_unix <= eligible <= s.begin_unix + (after - before) + 1, s.name
            assert job["Partition"] == s.site
            assert job["TimeLimit"] == time_limit(limit_s(s, 300, signalled(s, "USR1")))
            assert job["JobName"] == job_name(sched, s) == f"{sched.plan_id}.{slug(s.name)}"
            assert job["Comment"].strip() == f"milp-plan={sched.plan_id}"
            assert job["KillOInInvalidDependent"] == "Yes"      # (sic) scontrol's spelling
            assert (job["JobState"], job["Reason"]) == ("PENDING", "JobHeldUser")
            want = f"afterok:{ids[s.after]}(unfulfilled)" if s.after else "(null)"
            assert job["Dependency"] == want
            if s.kind == "run":
                assert job["TresPerNode"] == "gres:gpu:1"
            else:
                assert "gpu" not in job.get("TresPerNode", "")
            assert Path(job["Command"]).name == f"{slug(s.name)}.sbatch"
    finally:
        slurm.run(["scancel", *ids.tolist()])
