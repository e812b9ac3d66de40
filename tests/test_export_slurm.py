"""Exported plans in a real Slurm (tests/slurm_cluster.py: slurmctld, slurmd and munge on
this machine, one partition per site).

- Held: every step of two plans lands as planned (begin time, partition, time limit, GPU,
  dependency, kill-on-invalid-dep, name and comment with the plan id).
- Run: a small plan of second-long steps runs for real. Steps start in the planned order and
  never before their begin time; a step that fails cancels the rest of its job's chain; a run
  step gets its warning signal and can end well; cancel.sh cancels what is left, and leaves
  what has finished.

The cluster has no accounting database (slurmdbd), so ``sacct`` cannot answer here: the tests
read each job's state, times, exit code and reason from ``scontrol show job``, which keeps
finished jobs for ``MinJobAge`` (an hour in this cluster), and from a log the steps' commands
write. Every wait polls with a generous timeout; nothing asserts how long anything took.
"""

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
            # --begin=now+N+1, N counted at submission: the planned start, never earlier
            # (sbatch's time() may lag date +%s by a tick: the extra second covers it)
            eligible = utc(job["EligibleTime"])
            assert s.begin_unix <= eligible <= s.begin_unix + (after - before) + 2, s.name
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


# ---- a plan run for real -------------------------------------------------------------------

#: Seconds from now to the plan's start: time to export and submit before the first step.
LEAD_S = 15
#: --margin of the run: the warning signal comes this long before a run step's time limit.
#: A 2 s run then has a 3-minute limit and its signal is due 70 s after it starts (Slurm may
#: send it up to a minute earlier, and checks limits only every few tens of seconds): 110 s
#: of slack before the limit.
MARGIN_S = 110
#: How long to wait for the plan to play out (it takes a minute or two).
TIMEOUT_S = 900


def _live_plan() -> Plan:
    """Five jobs of second-long steps (times in seconds from the start):

    - ``ok``: run at solar, send the checkpoint to wind, run there: everything succeeds;
    - ``late``: its first run takes 8 s instead of 2, so its second starts after it, not at 4;
    - ``bad``: its first run fails (exit 3): the transfer and run after it must never start;
    - ``sig``: runs until Slurm's warning signal, which it catches to end well (exit 0);
    - ``long``: runs for ten minutes, ignoring the signal, its next step pending: what
      cancel.sh must cancel.
    """
    move = dict(checkpoint_gb=1.0, transfer_s=1.0, disruption_s=3.0)
    return Plan(instance="live", start="2030-01-01T00:00:00+00:00", slot_minutes=15,
                policy="by-hand", jobs=(
                    JobPlan("ok", (Run("solar", 0.0, 2.0), Migration("solar", "wind", 4.0, **move),
                                   Run("wind", 8.0, 10.0))),
                    JobPlan("late", (Run("city", 0.0, 2.0), Run("city", 4.0, 6.0))),
                    JobPlan("bad", (Run("solar", 0.0, 2.0), Migration("solar", "wind", 4.0, **move),
                                    Run("wind", 8.0, 10.0))),
                    JobPlan("sig", (Run("city", 0.0, 2.0),)),
                    JobPlan("long", (Run("wind", 0.0, 600.0), Run("wind", 700.0, 702.0)))))


def _commands(log: Path, signals: Path) -> tuple[str, str]:
    """--command and --transfer of the live plan: each step logs '<job> <step> <kind> <unix
    time>' when it starts, then behaves as its job is meant to (see :func:`_live_plan`)."""
    run = (f"echo {{job}} {{step}} run $(date +%s) >> {log}; case {{job}} in "
           "bad) exit 3 ;; late) sleep 8 ;; "
           "long) trap '' USR1; sleep 1000 ;; "
           f"sig) trap 'echo $(date +%s) > {signals}; exit 0' USR1; sleep 1000 & wait ;; "
           "*) sleep 1 ;; esac")
    transfer = f"echo {{job}} {{step}} transfer $(date +%s) >> {log}"
    return run, transfer


def started(log: Path) -> dict[tuple[str, int], int]:
    """(job, step) -> the Unix time the step's command started, from the steps' log."""
    return {(w[0], int(w[1])): int(w[3]) for w in map(str.split, log.read_text().splitlines())}


def _wait(predicate, what: str, explain, timeout: float = TIMEOUT_S) -> None:
    """Poll ``predicate`` every second; after ``timeout`` seconds fail, quoting ``explain()``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: "
                                 f"{explain()}")
        time.sleep(1)


def test_an_exported_plan_runs_in_slurm(slurm, tmp_path):
    if not slurm.slurmd_started:
        pytest.skip(f"slurmd did not start here, so no job can run: {slurm.slurmd_problem}")
    plan_path = _live_plan().save(tmp_path / "plan.json")
    log, signals = tmp_path / "ran.log", tmp_path / "signalled"
    log.touch()
    run, transfer = _commands(log, signals)
    start = (datetime.now(timezone.utc) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
    out = tmp_path / "slurm"
    r = run_cli("export", "slurm", plan_path, "--out", out, "--shift-to", start.isoformat(),
                "--command", run, "--transfer", transfer, "--margin", str(MARGIN_S))
    assert r.exit_code == 0, r.output
    sched = schedule(Plan.load(plan_path), start.isoformat())
    ids, _, _ = submit(slurm, out)
    by_name = {s.name: s for s in sched.steps}
    try:
        def state(name: str) -> str:
            return slurm.show_job(ids[name])["JobState"]

        def states() -> str:
            return ", ".join(f"{s.name} {state(s.name)}" for s in sched.steps)

        _wait(lambda: all(state(s.name) in FINAL for s in sched.steps if s.job != "long")
              and state("long.0.run") == "RUNNING", "every job but 'long' to end", states)
        jobs = {s.name: slurm.show_job(ids[s.name]) for s in sched.steps}
        ran = started(log)

        # ok and late: every step ran, in order, never before its begin time
        for job in ("ok", "late"):
            chain = [s for s in sched.steps if s.job == job]
            for s in chain:
                j = jobs[s.name]
                assert (j["JobState"], j["ExitCode"]) == ("COMPLETED", "0:0"), (s.name, j)
                assert utc(j["StartTime"]) >= utc(j["EligibleTime"]) >= s.begin_unix, s.name
                assert ran[(s.job, s.index)] >= s.begin_unix, s.name
                if s.after:
                    before = jobs[s.after]
                    assert utc(j["StartTime"]) >= utc(before["EndTime"]), s.name
                    assert ran[(s.job, s.index)] >= ran[(s.job, s.index - 1)]
        # late.1 waited for late.0 (8 s), not only for its own begin time (4 s after the start)
        assert utc(jobs["late.1.run"]["StartTime"]) >= utc(jobs["late.0.run"]["EndTime"]) \
            >= utc(jobs["late.0.run"]["StartTime"]) + 8
        # bad: the failure cancelled the rest of the chain at once; none of it ever ran
        assert (jobs["bad.0.run"]["JobState"], jobs["bad.0.run"]["ExitCode"]) == \
            ("FAILED", "3:0")
        for name in ("bad.1.transfer", "bad.2.run"):
            assert (jobs[name]["JobState"], jobs[name]["Reason"]) == \
                ("CANCELLED", "DependencyNeverSatisfied"), jobs[name]
        assert [k for k in ran if k[0] == "bad"] == [("bad", 0)]
        # sig: the warning came after the planned length was up, before the time limit, and
        # the command caught it and ended well
        j = jobs["sig.0.run"]
        assert (j["JobState"], j["ExitCode"]) == ("COMPLETED", "0:0"), j
        warned = int(signals.read_text())
        assert utc(j["StartTime"]) + by_name["sig.0.run"].seconds <= warned <= utc(j["EndTime"])
        # names and comments carry the plan id
        assert {j["JobName"] for j in jobs.values()} == {
            job_name(sched, s) for s in sched.steps}
        assert {j["Comment"].strip() for j in jobs.values()} == {f"milp-plan={sched.plan_id}"}

        # long: running, its next step pending; cancel.sh cancels both and leaves the rest
        assert state("long.1.run") == "PENDING"
        c = subprocess.run(["bash", str(out / "cancel.sh")], env=slurm.env,
                           capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stderr
        assert f"{len(sched.steps)} steps of plan {sched.plan_id}" in c.stdout
        _wait(lambda: state("long.0.run") in FINAL and state("long.1.run") in FINAL,
              "cancel.sh to end 'long'", states, timeout=120)
        assert state("long.0.run") == state("long.1.run") == "CANCELLED"
        after = {s.name: slurm.show_job(ids[s.name]) for s in sched.steps if s.job != "long"}
        assert {n: j["JobState"] for n, j in after.items()} == {
            n: j["JobState"] for n, j in jobs.items() if not n.startswith("long.")}
        assert ("long", 0) in started(log) and ("long", 1) not in started(log)
    finally:
        slurm.run(["scancel", *ids.tolist()])
