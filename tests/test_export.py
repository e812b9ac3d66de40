"""Exports: neutral JSON/CSV/steps.json, and Slurm scripts run with stand-in sbatch, scancel
and a BSD-like date here (a real Slurm runs them in test_export_slurm.py). Kubernetes and Argo
manifests: test_export_kubernetes.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml
from milp.export.slurm import minutes
from milp.instance import load_instance
from milp.plan import JobPlan, Migration, Plan, Run
from milp.policies import POLICIES
from tests.conftest import GOLDEN_PLAN as GOLDEN
from tests.conftest import ROOT, run_cli
from tests.conftest import TINY as TINY_DIR

cli = run_cli
STEPS_SCHEMA = ROOT / "milp" / "schemas" / "steps-v1.schema.json"


def plan_totals(path: Path) -> tuple[int, int, float]:
    """Run steps, migration steps and compute seconds, read from plan.json itself."""
    data = json.loads(path.read_text())
    steps = [s for jp in data["jobs"] for s in jp["steps"]]
    runs = [s for s in steps if s["kind"] == "run"]
    return len(runs), len(steps) - len(runs), sum(s["end_s"] - s["start_s"] for s in runs)


def slurm_headers(out: Path) -> list[dict[str, str]]:
    """The ``# milp-step`` line of every sbatch script, as key=value pairs."""
    rows = []
    for f in sorted((out / "jobs").glob("*.sbatch")):
        line = next(x for x in f.read_text().splitlines() if x.startswith("# milp-step "))
        rows.append(dict(kv.split("=", 1) for kv in shlex.split(line)[2:]) | {"file": f.name})
    return rows


def manifests(out: Path) -> list[dict]:
    return [yaml.safe_load(f.read_text()) for f in sorted((out / "jobs").glob("*.yaml"))]


def sbatch_options(script: Path) -> dict[str, str]:
    """The ``#SBATCH --key=value`` lines of a script."""
    return dict(line[len("#SBATCH --"):].split("=", 1)
                for line in script.read_text().splitlines() if line.startswith("#SBATCH --"))


# ---- no step is lost -----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["golden", "moving"])
def test_every_export_keeps_every_step_and_second(which, moving_plan, tmp_path):
    path = GOLDEN if which == "golden" else moving_plan
    runs, moves, compute_s = plan_totals(path)
    assert runs > 0 and (which == "golden" or moves > 0)

    assert cli("export", "slurm", path, "--out", tmp_path / "slurm").exit_code == 0
    heads = slurm_headers(tmp_path / "slurm")
    assert sum(h["kind"] == "run" for h in heads) == runs
    assert sum(h["kind"] == "transfer" for h in heads) == moves
    assert sum(float(h["seconds"]) for h in heads if h["kind"] == "run") == pytest.approx(
        compute_s, rel=1e-12)
    submit = (tmp_path / "slurm" / "submit.sh").read_text()
    assert len(re.findall(r"^submit .* jobs/\S+\.sbatch; s\d+=\$id$", submit, re.M)) == \
        runs + moves

    assert cli("export", "kubernetes", path, "--out", tmp_path / "k8s").exit_code == 0
    docs = manifests(tmp_path / "k8s")
    kinds = [d["metadata"]["annotations"]["milp.io/kind"] for d in docs]
    assert kinds.count("run") == runs and kinds.count("transfer") == moves
    assert sum(float(d["metadata"]["annotations"]["milp.io/planned-seconds"])
               for d in docs if d["metadata"]["annotations"]["milp.io/kind"] == "run") \
        == pytest.approx(compute_s, rel=1e-12)
    kust = yaml.safe_load((tmp_path / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(f"jobs/{d['metadata']['name']}.yaml"
                                               for d in docs)

    assert cli("export", "argo", path, "--out", tmp_path / "argo").exit_code == 0
    wf = yaml.safe_load((tmp_path / "argo" / "workflow.yaml").read_text())
    steps = [t for t in wf["spec"]["templates"] if "container" in t
             and t["metadata"]["labels"]["milp.io/kind"] != "wait"]
    ann = [t["metadata"]["annotations"] for t in steps]
    assert sum(a["milp.io/kind"] == "run" for a in ann) == runs
    assert sum(a["milp.io/kind"] == "transfer" for a in ann) == moves
    assert sum(float(a["milp.io/planned-seconds"]) for a in ann
               if a["milp.io/kind"] == "run") == pytest.approx(compute_s, rel=1e-12)

    assert cli("export", "csv", path, "--out", tmp_path / "steps.csv").exit_code == 0
    table = pd.read_csv(tmp_path / "steps.csv")
    assert (table["kind"] == "run").sum() == runs and (table["kind"] == "transfer").sum() == moves
    assert table.loc[table["kind"] == "run", "seconds"].sum() == pytest.approx(compute_s)

    assert cli("export", "steps", path, "--out", tmp_path / "steps.json").exit_code == 0
    objs = json.loads((tmp_path / "steps.json").read_text())["steps"]
    assert sum(o["kind"] == "run" for o in objs) == runs
    assert sum(o["kind"] == "transfer" for o in objs) == moves
    assert sum(o["end_s"] - o["start_s"] for o in objs if o["kind"] == "run") == pytest.approx(
        compute_s, abs=1e-3 * runs)                   # steps.json: to the millisecond
    for kind in ("slurm", "k8s", "argo"):     # every folder export has the same two files
        assert (tmp_path / kind / "steps.csv").read_text() == \
            (tmp_path / "steps.csv").read_text()
        assert (tmp_path / kind / "steps.json").read_text() == \
            (tmp_path / "steps.json").read_text()


# ---- json / csv ----------------------------------------------------------------------------

def test_export_json_round_trips_and_refuses_other_versions(tmp_path):
    result = cli("export", "json", GOLDEN, "--out", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    assert Plan.load(tmp_path / "p.json") == Plan.load(GOLDEN)
    data = json.loads(GOLDEN.read_text())
    for version, word in [(0, "predates"), (4, "newer")]:
        (tmp_path / f"v{version}.json").write_text(json.dumps(data | {"version": version}))
        result = cli("export", "json", tmp_path / f"v{version}.json", "--out", tmp_path / "x.json")
        assert result.exit_code == 2 and word in result.error
        assert "field 'version'" in result.error
    assert not (tmp_path / "x.json").exists()


def test_csv_steps_chain_and_times(moving_plan, tmp_path):
    assert cli("export", "csv", moving_plan, "--out", tmp_path / "s.csv",
               "--shift-to", "2030-01-02T00:00:00+01:00").exit_code == 0
    t = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    plan = Plan.load(moving_plan)
    for jp in plan.jobs:
        rows = t[t["job"] == jp.job].sort_values("step")
        assert list(rows["after"]) == ["", *rows["name"][:-1]]
        for (_, row), s in zip(rows.iterrows(), jp.steps):
            begin = datetime(2030, 1, 2, tzinfo=timezone(timedelta(hours=1))) + timedelta(
                seconds=s.start_s)
            assert datetime.fromisoformat(row["begin"]) == begin
            if row["kind"] == "transfer":
                assert row["seconds"] == pytest.approx(s.transfer_s)
                assert row["checkpoint_bytes"] == round(s.checkpoint_gb * 1e9)
                assert (row["site"], row["dst"]) == (s.src, s.dst)


def test_shift_to_without_offset_is_refused(moving_plan, tmp_path):
    result = cli("export", "csv", moving_plan, "--out", tmp_path / "s.csv",
                 "--shift-to", "2030-01-02T00:00:00")
    assert result.exit_code == 2 and "--shift-to" in result.error


def test_steps_json_follows_its_schema_and_matches_steps_csv(moving_plan, tmp_path):
    assert cli("export", "steps", moving_plan, "--out", tmp_path / "steps.json",
               "--shift-to", "2030-01-02T00:00:00+01:00").exit_code == 0
    assert cli("export", "csv", moving_plan, "--out", tmp_path / "steps.csv",
               "--shift-to", "2030-01-02T00:00:00+01:00").exit_code == 0
    doc = json.loads((tmp_path / "steps.json").read_text())
    schema = json.loads(STEPS_SCHEMA.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    jsonschema.validate(doc, schema)
    plan = Plan.load(moving_plan)
    assert (doc["instance"], doc["policy"]) == (plan.instance, plan.policy)
    assert datetime.fromisoformat(doc["start"]) == datetime(
        2030, 1, 2, tzinfo=timezone(timedelta(hours=1)))
    table = pd.read_csv(tmp_path / "steps.csv", keep_default_na=False)
    assert list(table.columns) == list(doc["steps"][0])
    for obj, (_, row) in zip(doc["steps"], table.iterrows(), strict=True):
        for key, value in obj.items():
            if key in ("after", "dst"):
                assert (value or "") == row[key] and value != ""
            elif isinstance(value, float):
                assert value == pytest.approx(row[key], rel=1e-12)
            else:
                assert value == row[key], key
        assert datetime.fromisoformat(obj["end"]) - datetime.fromisoformat(obj["begin"]) == \
            pytest.approx(timedelta(seconds=obj["seconds"]), abs=timedelta(milliseconds=1))
    # the schema is no rubber stamp
    for bad in ({**doc, "plan_id": "Not An Id"}, {**doc, "steps": [{**doc["steps"][0],
                                                                    "kind": "sleep"}]},
                {**doc, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_plan_id_is_stable_distinct_and_overridable(moving_plan, tmp_path):
    def plan_id(*args) -> str:
        out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.json"
        r = cli("export", "steps", moving_plan, "--out", out, *args)
        assert r.exit_code == 0, r.output
        return json.loads(out.read_text())["plan_id"]

    first = plan_id()
    assert re.fullmatch(r"tiny-3site-[0-9a-f]{8}", first) and plan_id() == first
    assert plan_id("--shift-to", "2030-01-02T00:00:00+00:00") != first
    other = POLICIES["static"](load_instance(ROOT / "instances" / "tiny-3site"), None)
    other_path = other.save(tmp_path / "other-plan.json")
    assert cli("export", "steps", other_path, "--out", tmp_path / "o.json").exit_code == 0
    assert json.loads((tmp_path / "o.json").read_text())["plan_id"] != first
    assert plan_id("--plan-id", "nightly-42") == "nightly-42"
    for bad in ("Nightly", "a_b", "-a", "a" * 41, ""):
        r = cli("export", "slurm", moving_plan, "--out", tmp_path / "bad", "--plan-id", bad)
        assert r.exit_code == 2 and "--plan-id" in r.error
    assert not (tmp_path / "bad").exists()
    # the id names everything an export writes
    assert cli("export", "slurm", moving_plan, "--out", tmp_path / "sl", "--plan-id",
               "nightly-42").exit_code == 0
    for script in (tmp_path / "sl" / "jobs").glob("*.sbatch"):
        opts = sbatch_options(script)
        assert opts["job-name"] == "nightly-42." + script.name.removesuffix(".sbatch")
        assert opts["comment"] == "milp-plan=nightly-42"


# ---- slurm ---------------------------------------------------------------------------------

FAKE_SBATCH = """#!/bin/bash
# Stand-in for sbatch: records its arguments, prints the next job id ("id;cluster" form);
# fails at call number $SBATCH_FAIL_AT when that is set.
n=$(( $(wc -l < "$SBATCH_LOG") + 100 ))
if [ "$(( n - 99 ))" = "${SBATCH_FAIL_AT:-0}" ]; then echo "sbatch: error: refused" >&2; exit 1; fi
printf '%s\\n' "$*" >> "$SBATCH_LOG"
echo "$n;test"
"""
FAKE_SCANCEL = """#!/bin/bash
printf '%s\\n' "$*" >> "$SCANCEL_LOG"
"""
#: A date as BSD and macOS have it, for what submit.sh may use: `date +%s` works, GNU's
#: `date -d @SECONDS` does not.
FAKE_BSD_DATE = """#!/bin/sh
if [ "$*" = "+%s" ]; then exec {date} +%s; fi
echo "date: illegal option -- $*" >&2
exit 1
"""


def stand_ins(tmp_path: Path, **env: str) -> dict[str, str]:
    """An environment whose PATH finds the stand-in sbatch, scancel and BSD-like date first."""
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL),
                       ("date", FAKE_BSD_DATE.format(date=shutil.which("date")))):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    logs = {"SBATCH_LOG": tmp_path / "sbatch.log", "SCANCEL_LOG": tmp_path / "scancel.log"}
    for log in logs.values():
        log.touch()
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "TZ": "America/Denver",
            **{k: str(v) for k, v in logs.items()}, **env}


def test_submit_sh_wires_begin_dependency_and_order(moving_plan, tmp_path):
    out = tmp_path / "slurm"
    site_map = tmp_path / "sites.toml"
    site_map.write_text('[defaults]\ngres = ""\nsbatch = ["--account=green"]\n'
                        '[sites.solar]\npartition = "p-solar"\nhost = "gpu1.example"\n')
    soon = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    result = cli("export", "slurm", moving_plan, "--out", out, "--site-map", site_map,
                 "--shift-to", soon, "--transfer", "scp -r {src} {dst} # ${HOME}")
    assert result.exit_code == 0, result.output
    env = stand_ins(tmp_path)
    before = time.time()
    run = subprocess.run(["bash", str(out / "submit.sh"), "--hold"], env=env,
                         capture_output=True, text=True, timeout=600)
    after = time.time()
    assert run.returncode == 0, run.stderr       # with BSD's date: no GNU date -d needed
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    submitted = pd.read_csv(out / "submitted.csv", dtype=str, keep_default_na=False)
    assert list(submitted.columns) == ["step", "slurm_job_id", "cluster"]
    assert set(submitted["cluster"]) == {"test"}
    ids = dict(zip(submitted["step"], submitted["slurm_job_id"]))
    steps = pd.read_csv(out / "steps.csv", keep_default_na=False)
    assert len(calls) == len(steps) == len(ids)
    by_script = {c.split()[-1]: c for c in calls}
    for _, s in steps.iterrows():
        call = by_script[f"jobs/{s['name']}.sbatch"]
        assert call.startswith("--parsable --hold ")
        # --begin=now+N+1, N computed at submission: the planned start, never earlier (the
        # extra second covers sbatch's clock lagging date's), whatever the submitter's time zone
        begin = datetime.fromisoformat(s["begin"]).timestamp()
        n = int(re.search(r"--begin=now\+(\d+) ", call)[1]) - 1
        assert begin - after - 1 <= n <= -(-begin // 1) - int(before)
        if s["after"]:
            assert f"--dependency=afterok:{ids[s['after']]}" in call
            assert int(ids[s["after"]]) < int(ids[s["name"]])   # submitted before
        else:
            assert "--dependency" not in call
    # the scripts: partition from the site map, no --gres when "", the extra option, quoting,
    # plan id, limits with the margin, the warning signal on run steps only
    text = (out / "jobs" / f"{steps['name'][0]}.sbatch").read_text()
    assert "#SBATCH --account=green" in text and "--gres" not in text
    transfer = steps[steps["kind"] == "transfer"].iloc[0]
    text = (out / "jobs" / f"{transfer['name']}.sbatch").read_text()
    dst_host = "gpu1.example" if transfer["dst"] == "solar" else transfer["dst"]
    assert f"scp -r {transfer['site']}:/checkpoints/{transfer['job']} " \
           f"{dst_host}:/checkpoints/{transfer['job']} # ${{HOME}}" in text
    plan_id = json.loads((out / "steps.json").read_text())["plan_id"]
    for _, s in steps.iterrows():
        opts = sbatch_options(out / "jobs" / f"{s['name']}.sbatch")
        assert opts["job-name"] == f"{plan_id}.{s['name']}"
        assert opts["comment"] == f"milp-plan={plan_id}"
        assert opts["kill-on-invalid-dep"] == "yes"
        if s["kind"] == "run":
            assert opts["time"] == str(minutes(s["seconds"] + 300 + 60))
            assert opts["signal"] == "B:USR1@300"
        else:
            assert opts["time"] == str(minutes(s["seconds"] + 300))
            assert "signal" not in opts
    solar_runs = steps[(steps["kind"] == "run") & (steps["site"] == "solar")]
    assert "#SBATCH --partition=p-solar" in (
        out / "jobs" / f"{solar_runs.iloc[0]['name']}.sbatch").read_text()
    assert os.stat(out / "submit.sh").st_mode & stat.S_IXUSR
    assert os.stat(out / "cancel.sh").st_mode & stat.S_IXUSR


def test_submit_sh_runs_once_and_cancel_sh_cancels_what_it_submitted(moving_plan, tmp_path):
    out = tmp_path / "slurm"
    assert cli("export", "slurm", moving_plan, "--out", out).exit_code == 0
    env = stand_ins(tmp_path)
    cancel = subprocess.run(["bash", str(out / "cancel.sh")], env=env, capture_output=True,
                            text=True, timeout=60)
    assert cancel.returncode == 1 and "nothing was submitted" in cancel.stderr
    assert subprocess.run(["bash", str(out / "submit.sh")], env=env, capture_output=True,
                          timeout=600).returncode == 0
    submitted = (out / "submitted.csv").read_text()
    again = subprocess.run(["bash", str(out / "submit.sh")], env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 1 and "submitted from here already" in again.stderr
    assert (out / "submitted.csv").read_text() == submitted
    assert len((tmp_path / "sbatch.log").read_text().splitlines()) == len(
        submitted.splitlines()) - 1
    ids = sorted(row.split(",")[-2] for row in submitted.splitlines()[1:])
    cancel = subprocess.run(["bash", str(out / "cancel.sh"), "--state=PENDING"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    calls = (tmp_path / "scancel.log").read_text().splitlines()
    assert len(calls) == 1                      # one call per cluster
    words = calls[0].split()
    assert words[:3] == ["--quiet", "--clusters=test", "--state=PENDING"]
    assert sorted(words[3:]) == ids
    # a new export must not drop the ids cancel.sh needs
    r = cli("export", "slurm", moving_plan, "--out", out, "--margin", "60")
    assert r.exit_code == 2 and "submitted.csv" in r.error and "cancel.sh" in r.error
    assert (out / "submitted.csv").read_text() == submitted


def test_a_failing_sbatch_stops_submit_sh_and_says_what_to_cancel(moving_plan, tmp_path):
    out = tmp_path / "slurm"
    assert cli("export", "slurm", moving_plan, "--out", out).exit_code == 0
    total = len(pd.read_csv(out / "steps.csv"))
    run = subprocess.run(["bash", str(out / "submit.sh")], env=stand_ins(
        tmp_path, SBATCH_FAIL_AT="3"), capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert f"stopped after submitting 2 of {total} steps" in run.stderr
    assert "./cancel.sh" in run.stderr
    assert len((out / "submitted.csv").read_text().splitlines()) == 1 + 2


def _run_script(tmp_path: Path, command: str, *args: str, job: str = "j") -> Path:
    """Export a one-run plan (90 s) of job ``job`` whose run step is ``command``; its sbatch
    script."""
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan(job, (Run("s", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    r = cli("export", "slurm", path, "--out", tmp_path / "o", "--command", command, *args)
    assert r.exit_code == 0, r.output
    return next((tmp_path / "o" / "jobs").glob("*.0.run.sbatch"))


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_script_passes_the_warning_signal_on_to_its_command(tmp_path):
    """Slurm signals only the batch shell (B:USR1): the script hands it to the command, which
    may checkpoint and end well; the command's exit status is the script's."""
    command = (f"trap 'echo got > {tmp_path}/signalled; exit 0' USR1; "
               f"echo up > {tmp_path}/ready; sleep 300 & wait")
    script = _run_script(tmp_path, command)
    assert sbatch_options(script)["signal"] == "B:USR1@300"
    proc = subprocess.Popen(["bash", str(script)], cwd=tmp_path)
    try:
        _wait_for(lambda: (tmp_path / "ready").exists())
        os.kill(proc.pid, signal.SIGUSR1)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert (tmp_path / "signalled").read_text() == "got\n"

    (tmp_path / "failing").mkdir()
    script = _run_script(tmp_path / "failing", "exit 7")
    assert subprocess.run(["bash", str(script)], timeout=60).returncode == 7


@pytest.mark.parametrize("args, signal_line", [
    (["--signal", "none"], None), (["--margin", "0"], None), (["--signal", "SIGTERM"],
                                                               "B:TERM@300"),
    (["--margin", "90.5", "--signal", "usr2"], "B:USR2@90")])
def test_margin_and_signal_options(tmp_path, args, signal_line):
    script = _run_script(tmp_path, "true", *args)
    opts = sbatch_options(script)
    assert opts.get("signal") == signal_line
    text = script.read_text()
    margin = float(args[1]) if args[0] == "--margin" else 300.0
    assert opts["time"] == str(minutes(90 + margin + (60 if signal_line else 0)))
    assert ("trap " in text) == ("set -m" in text) == (signal_line is not None)
    assert text.splitlines()[-1] == ('exit "${milp_rc:-1}"' if signal_line else "true")


@pytest.mark.parametrize("args, option", [
    (["--margin", "-1"], "--margin"), (["--margin", "nan"], "--margin"),
    (["--signal", "KILL"], "--signal"), (["--margin", "70000"], "--margin")])
def test_bad_margin_or_signal_is_refused(moving_plan, tmp_path, args, option):
    r = cli("export", "slurm", moving_plan, "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and option in r.error and not (tmp_path / "o").exists()


def test_slurm_quotes_hostile_job_ids(tmp_path):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("a b;$(rm -rf ~)'", (Run("s1", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    assert cli("export", "slurm", path, "--out", tmp_path / "o").exit_code == 0
    script = next((tmp_path / "o" / "jobs").glob("*.sbatch"))
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.sbatch", script.name)
    text = script.read_text()
    assert "--job a b" not in text and "'a b;$(rm -rf ~)'\"'\"''" in text
    assert re.fullmatch(r"x-[0-9a-f]{8}\.[A-Za-z0-9._-]+", sbatch_options(script)["job-name"])
    for name in ("submit.sh", "cancel.sh", f"jobs/{script.name}"):
        check = subprocess.run(["bash", "-n", str(tmp_path / "o" / name)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("content, field", [
    ('[defaults]\ncolour = "red"\n', "defaults.colour"),
    ('[sites.s1]\npartition = 3\n', "sites.s1.partition"),
    ('[sites.s1]\nsbatch = "--x"\n', "sites.s1.sbatch"),
    ('[other]\n', "other"),
])
def test_bad_site_map_is_one_line_and_writes_nothing(moving_plan, tmp_path, content, field):
    site_map = tmp_path / "m.toml"
    site_map.write_text(content)
    result = cli("export", "slurm", moving_plan, "--out", tmp_path / "o", "--site-map", site_map)
    assert result.exit_code == 2 and f"field '{field}'" in result.error
    assert not (tmp_path / "o").exists()


def test_failed_export_leaves_the_previous_output_untouched(moving_plan, tmp_path):
    out = tmp_path / "k8s"
    assert cli("export", "kubernetes", moving_plan, "--out", out).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    site_map = tmp_path / "m.toml"
    site_map.write_text('[sites.wind]\nnode_label = "not a label!"\n')  # fails mid-way
    result = cli("export", "kubernetes", moving_plan, "--out", out, "--site-map", site_map)
    assert result.exit_code == 2 and "node_label" in result.error
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("instance", ["paper-5site", "week-5site/2019-04-15"])
def test_exports_work_on_shipped_instances(instance, tmp_path):
    plan = POLICIES["feasibility-aware"](load_instance(ROOT / "instances" / instance), None)
    path = plan.save(tmp_path / "plan.json")
    for kind in ("slurm", "kubernetes", "argo"):
        result = cli("export", kind, path, "--out", tmp_path / kind)
        assert result.exit_code == 0, result.output
    wf = yaml.safe_load((tmp_path / "argo" / "workflow.yaml").read_text())
    tasks = wf["spec"]["templates"][0]["dag"]["tasks"]
    assert len(list((tmp_path / "slurm" / "jobs").iterdir())) == len(
        list((tmp_path / "kubernetes" / "jobs").iterdir())) == len(tasks) / 2 == sum(
        len(jp.steps) for jp in plan.jobs)


def test_default_transfer_sends_the_local_checkpoint(moving_plan, tmp_path):
    assert cli("export", "slurm", moving_plan, "--out", tmp_path / "s").exit_code == 0
    script = next((tmp_path / "s" / "jobs").glob("*.transfer.sbatch")).read_text()
    command = script.strip().splitlines()[-1]
    src, dst = command.split()[-2:]
    assert command.startswith("rsync -a -s --partial -- /checkpoints/")
    assert ":" not in src and ":" in dst       # rsync copies local -> remote, never remote-remote


# ---- nothing in a plan runs commands (issue 19) ---------------------------------------------

FAKE_SSH = """#!/bin/sh
# Stand-in for ssh: skip its options and the host, then hand the remote command to a shell,
# as sshd does on the other host.
while [ $# -gt 0 ]; do case $1 in -l|-p|-o) shift 2 ;; -*) shift ;; *) break ;; esac; done
shift
exec sh -c "$*"
"""


@pytest.mark.skipif(not __import__("shutil").which("rsync"), reason="rsync is not installed "
                    "(.ci/install-slurm.sh installs it)")
def test_the_default_transfer_is_safe_on_an_rsync_older_than_3_2_4(tmp_path):
    """rsync before 3.2.4 (RHEL 8/9, Debian 11) hands the remote path to the remote shell;
    RSYNC_OLD_ARGS=1 makes a newer rsync do the same. With -s the path goes through rsync's
    protocol: a job id with $(...) is copied as a name, never run. Without -s it runs (the
    check that the test can tell)."""
    from milp.export import DEFAULT_TRANSFER
    from milp.export.commands import fill

    job = "j$(touch PWNED)"
    (tmp_path / "src" / job).mkdir(parents=True)
    (tmp_path / "src" / job / "ckpt").write_text("state")
    (tmp_path / "dst").mkdir()
    ssh = tmp_path / "fake-ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(0o755)
    env = {**os.environ, "RSYNC_OLD_ARGS": "1", "RSYNC_RSH": str(ssh)}
    values = {"job": job, "step": "1", "site": "a", "begin": "b", "end": "e", "seconds": "1",
              "checkpoint": str(tmp_path / "src" / job), "src": f"a:{tmp_path}/src/{job}",
              "dst": f"b:{tmp_path}/dst/{job}"}
    for template, runs in ((DEFAULT_TRANSFER, False),
                           (DEFAULT_TRANSFER.replace(" -s", ""), True)):
        r = subprocess.run(["bash", "-c", fill(template, values, "--transfer")], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
        assert (tmp_path / "PWNED").exists() == runs, (template, r.stderr)
        if not runs:
            assert r.returncode == 0, r.stderr
            assert (tmp_path / "dst" / job / "ckpt").read_text() == "state"


@pytest.mark.parametrize("job", ["j$(id>x)", "j`id`", "j;id", "j id", "j'x", "~j", "j|x",
                                 "j&x", "j>x", "j*"])
def test_a_job_that_moves_needs_an_id_no_remote_shell_reads(tmp_path, job):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan(job, (Run("a", 0.0, 900.0), Migration("a", "b", 900, 1, 1, 11.4),
                                    Run("b", 1800.0, 2700.0, restore_s=11.4))),))
    path = plan.save(tmp_path / "plan.json")
    for kind in ("slurm", "kubernetes", "argo"):
        r = cli("export", kind, path, "--out", tmp_path / kind)
        assert r.exit_code == 2 and "field 'jobs'" in r.error, r.error
        assert "checkpoint location on another host" in r.error
        assert not (tmp_path / kind).exists()
    run_only = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15,
                    policy="p", jobs=(JobPlan(job, (Run("a", 0.0, 900.0),)),))
    assert cli("export", "slurm", run_only.save(tmp_path / "r.json"), "--out",
               tmp_path / "ok").exit_code == 0          # a run stays here: quoted, fine


@pytest.mark.parametrize("site_map, field", [
    ('[sites.b]\nhost = "-oProxyCommand=x"\n', "sites.b.host"),
    ('[sites.b]\nhost = "b;id"\n', "sites.b.host"),
    ('[defaults]\ncheckpoint = "/ck $(id)/{job}"\n', "sites.a.checkpoint"),
])
def test_a_site_map_value_a_remote_shell_would_read_is_refused(tmp_path, site_map, field):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("j", (Run("a", 0.0, 900.0), Migration("a", "b", 900, 1, 1, 11.4),
                                    Run("b", 1800.0, 2700.0, restore_s=11.4))),))
    path = plan.save(tmp_path / "plan.json")
    (tmp_path / "m.toml").write_text(site_map)
    r = cli("export", "slurm", path, "--out", tmp_path / "o", "--site-map", tmp_path / "m.toml")
    assert r.exit_code == 2 and f"field '{field}'" in r.error and not (tmp_path / "o").exists()


#: A value with everything a shell reads: spaces, ; $() `` quotes, backslash, globs, ~, !.
HOSTILE = "a b;$(touch PWNED)`touch PWNED`'\"\\$HOME\\n*?[x]~!{}"


@pytest.mark.parametrize("template", [
    "printf '%s\\n' {job} > got",
    'printf "%s\\n" "{job}" > got',                   # a placeholder in double quotes
    "printf '%s\\n' '{job}' > got",                   # ... in single quotes
    'printf "%s\\n" "--job={job}" > got',
    "printf '%s\\n' \"$(printf x)\"{job} > got; # {job} in a comment",
    "printf '%s\\n' {job}'' > got <<< {job}",
])
def test_a_placeholder_is_quoted_for_where_it_stands(tmp_path, template):
    """The command, run by bash (and by sh, which runs Kubernetes steps), gets the value as
    one literal word, wherever the template puts the placeholder: nothing split, nothing run."""
    from milp.export.commands import fill

    for shell in ("bash", "sh"):
        if shell == "sh" and "<<<" in template:
            continue                                    # a here-string is bash's
        command = fill(template, {"job": HOSTILE}, "--command")
        subprocess.run([shell, "-c", command], cwd=tmp_path, timeout=60, check=True)
        assert not (tmp_path / "PWNED").exists(), command
        got = (tmp_path / "got").read_text().splitlines()
        prefix = "--job=" if "--job=" in template else "x" if "printf x" in template else ""
        assert got == [prefix + HOSTILE], command


def test_a_hostile_job_id_reaches_the_command_as_written(tmp_path):
    job = "a b;$(touch PWNED)`touch PWNED`'\"$HOME*"    # a job id (no '/' or '\\')
    script = _run_script(tmp_path, 'printf "%s\\n" "--job={job}" {job} > got', job=job)
    subprocess.run(["bash", str(script)], cwd=tmp_path, timeout=60, check=True)
    assert not (tmp_path / "PWNED").exists()
    assert (tmp_path / "got").read_text().splitlines() == [f"--job={job}", job]


@pytest.mark.parametrize("template, words", [
    ("echo `date` {job}", "after a backquote"),
    ("x=$(printf %s {job})", "in or after a command substitution"),
    ("echo $(echo \"(\") {job}", "after a command substitution"),
    ("echo ${HOME:-x} {job}", "after a parameter expansion"),
    ("cat <<EOF\n{job}\nEOF", "after a here-document"),
    ("(cd /tmp && ./train.sh {job})", "after a subshell"),
    ("echo $'a' {job}", "after a $'…' string"),
    ("echo \\{job}", "right after a backslash"),
    ("echo ${job}", "is a placeholder after '$'"),
])
def test_a_placeholder_whose_quoting_cannot_be_followed_is_refused(tmp_path, template, words):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("j", (Run("s", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    for kind in ("slurm", "kubernetes", "argo"):
        r = cli("export", kind, path, "--out", tmp_path / kind, "--command", template)
        assert r.exit_code == 2 and r.error.startswith("error: --command: {job} ") or \
            "'$'" in r.error, r.error
        assert words in r.error and "$MILP_JOB" in r.error
        assert not (tmp_path / kind).exists()


def test_parameters_and_simple_substitutions_before_a_placeholder_are_fine(tmp_path):
    script = _run_script(tmp_path, 'printf "%s %s\\n" "$(printf ok)" ${MILP_STEP} > got; '
                                   "printf '%s\\n' {job} >> got", job="a b;$(x)")
    subprocess.run(["bash", str(script)], cwd=tmp_path, timeout=60, check=True)
    assert (tmp_path / "got").read_text().splitlines() == ["ok 0", "a b;$(x)"]


# ---- plans from elsewhere are checked before any export --------------------------------------

IMPOSSIBLE = {
    "a run ending 13.9 h before it starts": ((Run("s", 50_000.0, 0.0),), "not after it starts"),
    "steps out of time order": ((Run("s", 3600.0, 7200.0), Run("s", 0.0, 1800.0)),
                                "time order"),
    "a move from a site the job is not at": (
        (Run("s", 0.0, 1800.0), Migration("t", "u", 1800.0, 1, 1, 11.4),
         Run("u", 2700.0, 3600.0, restore_s=11.4)), "but the job is at 's'"),
}


@pytest.mark.parametrize("case", IMPOSSIBLE)
@pytest.mark.parametrize("kind", ["json", "csv", "steps", "slurm", "kubernetes", "argo"])
def test_an_impossible_plan_is_refused_by_every_export(tmp_path, case, kind):
    steps, words = IMPOSSIBLE[case]
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("j", steps),))
    path = plan.save(tmp_path / "plan.json")
    out = tmp_path / ("o.file" if kind in ("json", "csv", "steps") else "o")
    r = cli("export", kind, path, "--out", out)
    assert r.exit_code == 2 and r.error.startswith(f"error: {path}, field 'jobs[0].steps[")
    assert words in r.error and not out.exists()


@pytest.mark.parametrize("kind", ["csv", "steps", "slurm", "kubernetes", "argo"])
def test_a_plan_ending_after_year_9999_is_one_line(tmp_path, kind):
    plan = Plan(instance="x", start="9999-12-30T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("j", (Run("s", 0.0, 3 * 86400.0),)),))
    path = plan.save(tmp_path / "plan.json")
    out = tmp_path / ("o.file" if kind in ("csv", "steps") else "o")
    r = cli("export", kind, path, "--out", out)
    assert r.exit_code == 2 and "after year 9999" in r.error and "field 'start'" in r.error
    r = cli("export", kind, plan_of_a_day(tmp_path), "--out", out, "--shift-to",
            "9999-12-31T12:00:00+00:00")
    assert r.exit_code == 2 and r.error.startswith("error: --shift-to: ") and not out.exists()


def plan_of_a_day(tmp_path: Path) -> Path:
    return Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("j", (Run("s", 0.0, 86400.0),)),)).save(tmp_path / "day.json")


def test_long_job_ids_give_short_script_names_and_too_long_ones_one_line(tmp_path):
    def plan(job):
        return Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15,
                    policy="p", jobs=(JobPlan(job, (Run("s", 0.0, 90.0),)),
                                      JobPlan(job[:-1] + "y", (Run("s", 0.0, 90.0),)))
                    ).save(tmp_path / "plan.json")
    r = cli("export", "slurm", plan("j" * 250), "--out", tmp_path / "ok")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "ok" / "jobs").iterdir())
    assert len(names) == 2 and all(len(n) <= 200 for n in names)      # distinct, short
    for name in names:
        opts = sbatch_options(tmp_path / "ok" / "jobs" / name)
        assert opts["job-name"].endswith("." + name.removesuffix(".sbatch"))
    r = cli("export", "slurm", plan("j" * 301), "--out", tmp_path / "long")
    assert r.exit_code == 2 and "longer than a file name may be" in r.error
    assert not (tmp_path / "long").exists()


# ---- what is already in --out -------------------------------------------------------------

def test_an_export_keeps_the_users_files_and_replaces_its_own(moving_plan, tmp_path):
    """It used to replace the whole jobs/ folder of --out, user files included."""
    import subprocess
    import sys

    for kind in ("slurm", "kubernetes"):
        out = tmp_path / kind
        assert cli("export", kind, moving_plan, "--out", out).exit_code == 0
        (out / "jobs" / "notes.txt").write_text("mine")
        (out / "jobs" / "by-hand.yaml").write_text("x")
        assert cli("export", kind, moving_plan, "--out", tmp_path / "fresh" / kind,
                   "--plan-id", "again").exit_code == 0
        r = subprocess.run([sys.executable, "-c", "from milp.cli import main; main()",
                            "export", kind, str(moving_plan), "--out", str(out),
                            "--plan-id", "again"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert (out / "jobs" / "notes.txt").read_text() == "mine"
        fresh = {p.name for p in (tmp_path / "fresh" / kind / "jobs").iterdir()}
        assert {p.name for p in (out / "jobs").iterdir()} == fresh | {"notes.txt",
                                                                       "by-hand.yaml"}
        assert r.stderr.startswith("warning: kept 2 file(s) milp did not write")
        assert "notes.txt" in r.stderr


def test_an_output_name_taken_by_a_folder_is_refused_before_any_work(tmp_path):
    out = tmp_path / "o"
    (out / "plan.json").mkdir(parents=True)
    (out / "plan.json" / "precious").write_text("x")
    r = cli("plan", TINY_DIR, "--policy", "static", "--out", out)
    assert r.exit_code == 2 and "is a folder where milp writes a file" in r.error
    assert (out / "plan.json" / "precious").read_text() == "x"
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "jobs").write_text("a file")
    r = cli("export", "kubernetes", plan_of_a_day(tmp_path), "--out", tmp_path / "k")
    assert r.exit_code == 2 and "where milp writes a folder" in r.error
    assert (tmp_path / "k" / "jobs").read_text() == "a file"


def test_two_exports_into_one_folder_at_once_both_succeed(moving_plan, tmp_path):
    import sys

    out = tmp_path / "o"
    argv = [sys.executable, "-c", "from milp.cli import main; main()", "export", "slurm",
            str(moving_plan), "--out", str(out)]
    for _ in range(3):
        procs = [subprocess.Popen([*argv, "--plan-id", pid], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for pid in ("a", "b")]
        results = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        assert "Traceback" not in "".join(e for _, e in results)
        plan_id = json.loads((out / "steps.json").read_text())["plan_id"]
        scripts = list((out / "jobs").iterdir())
        assert scripts and all(sbatch_options(f)["comment"] == f"milp-plan={plan_id}"
                               for f in scripts)
    assert [p.name for p in tmp_path.iterdir()] == ["o"]


@pytest.mark.parametrize("job", ["../../etc/x", "a/b", ".."])
def test_a_job_id_cannot_climb_out_of_the_checkpoint_folder(tmp_path, job):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan(job, (Run("s", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    r = cli("export", "slurm", path, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "checkpoint path" in r.error and not (tmp_path / "o").exists()


def test_a_site_that_cannot_be_a_partition_needs_the_site_map(tmp_path):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("j", (Run("my site", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    r = cli("export", "slurm", path, "--out", tmp_path / "o")
    assert r.exit_code == 2 and 'sites."my site".partition' in r.error
    (tmp_path / "m.toml").write_text('[sites."my site"]\npartition = "mysite"\n')
    r = cli("export", "slurm", path, "--out", tmp_path / "o", "--site-map", tmp_path / "m.toml")
    assert r.exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[sites."my site"]\npartition = "a b"\n')
    r = cli("export", "slurm", path, "--out", tmp_path / "o2", "--site-map", bad)
    assert r.exit_code == 2 and "field 'sites.my site.partition'" in r.error


def test_a_site_map_entry_no_step_uses_is_warned_about(moving_plan, tmp_path):
    import subprocess
    import sys
    (tmp_path / "m.toml").write_text('[sites.wnd]\npartition = "x"\n')
    r = subprocess.run([sys.executable, "-c", "from milp.cli import main; main()", "export",
                        "slurm", str(moving_plan), "--out", str(tmp_path / "o"), "--site-map",
                        str(tmp_path / "m.toml")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == \
        "warning: the site map names sites no step of this plan uses: wnd"
