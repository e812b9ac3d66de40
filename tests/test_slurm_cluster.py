"""A real Slurm (tests/slurm_cluster.py) accepts the held jobs a plan turns into, and reports
them back as expected. Skips, saying why, where Slurm is not installed (.ci/install-slurm.sh
installs it) or does not start."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import SLURM_PARTITIONS as PARTITIONS
from tests.slurm_cluster import SlurmCluster, parse_scontrol_line

def _begin(days: int = 3) -> str:
    """A whole-second UTC time ``days`` from now, as sbatch --begin takes it."""
    t = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days, hours=1)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _submit(slurm: SlurmCluster, *args: str) -> str:
    r = slurm.run(["sbatch", "--parsable", "--hold", *args, "--wrap", "true"])
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip().split(";")[0]  # --parsable: "<id>" or "<id>;<cluster>"
    assert job_id.isdigit(), r.stdout
    return job_id


def test_partitions_and_gpus(slurm):
    r = slurm.run(["sinfo", "-h", "-o", "%R %G"])
    assert r.returncode == 0, r.stderr
    rows = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert sorted(rows) == sorted(PARTITIONS)
    assert all(g.startswith("gpu:8") for g in rows.values()), rows


def test_held_job_with_dependency(slurm, tmp_path_factory):
    begin = _begin()
    # A working folder and a job name with spaces: show_job must keep such values whole.
    workdir = tmp_path_factory.mktemp("work") / "plan dir"
    workdir.mkdir()
    first = _submit(slurm, "--partition=s02-solar", f"--begin={begin}", "--time=17",
                    "--gres=gpu:1", f"--chdir={workdir}", "--job-name=milp job a")
    second = _submit(slurm, "--partition=wind", f"--begin={begin}", "--time=5",
                     "--gres=gpu:1", f"--dependency=afterok:{first}")
    try:
        job = slurm.show_job(first)
        assert job["JobId"] == first
        assert job["JobName"] == "milp job a"
        assert job["Partition"] == "s02-solar"
        # scontrol has no BeginTime field: a pending job's --begin shows as EligibleTime (and
        # StartTime), in the daemons' and client's time zone, UTC here.
        assert job["EligibleTime"] == begin
        assert job["StartTime"] == begin
        assert job["TimeLimit"] == "00:17:00"
        assert job["JobState"] == "PENDING"
        assert job["Reason"] == "JobHeldUser"  # sbatch --hold; `scontrol hold` is JobHeldAdmin
        assert job["Priority"] == "0"
        assert job["Dependency"] == "(null)"
        assert job["TresPerNode"] == "gres:gpu:1"
        assert job["WorkDir"] == str(workdir)

        dep = slurm.show_job(second)
        assert dep["Partition"] == "wind"
        assert dep["TimeLimit"] == "00:05:00"
        assert dep["JobState"] == "PENDING"
        assert dep["Reason"] == "JobHeldUser"
        assert dep["Dependency"] == f"afterok:{first}(unfulfilled)"
        # With --begin, EligibleTime shows it even while the dependency is unmet (without
        # --begin it would be "Unknown").
        assert dep["EligibleTime"] == begin

        r = slurm.run(["squeue", "-h", "-t", "PENDING", "-o", "%i %P %r"])
        assert sorted(r.stdout.split("\n")[:-1]) == sorted(
            [f"{first} s02-solar JobHeldUser", f"{second} wind JobHeldUser"])
    finally:
        r = slurm.run(["scancel", first, second])
    assert r.returncode == 0, r.stderr
    assert slurm.show_job(first)["JobState"] == "CANCELLED"
    assert slurm.show_job(second)["JobState"] == "CANCELLED"
    assert slurm.run(["squeue", "-h", "-t", "PENDING", "-o", "%i"]).stdout.strip() == ""


def test_parse_scontrol_line():
    line = ("JobId=7 JobName=a b UserId=root(0) Dependency=afterok:6(unfulfilled) NodeList= "
            "TRES=cpu=1,mem=1M,node=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
            "Command=/x/run me --flag WorkDir=/tmp/a b Power= ")
    assert parse_scontrol_line(line) == {
        "JobId": "7", "JobName": "a b", "UserId": "root(0)",
        "Dependency": "afterok:6(unfulfilled)", "NodeList": "", "TRES": "cpu=1,mem=1M,node=1",
        "CPUs/Task": "1", "ReqB:S:C:T": "0:0:*:*", "Command": "/x/run me --flag",
        "WorkDir": "/tmp/a b", "Power": ""}
