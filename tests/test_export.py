"""Exports: neutral JSON/CSV, Slurm scripts (with a stand-in sbatch here; a real Slurm in
test_export_slurm.py) and Kubernetes Jobs checked against the official client's API models."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml
from milp.instance import load_instance
from milp.plan import JobPlan, Plan, Run
from milp.policies import POLICIES
from tests.conftest import ROOT, TINY, run_cli

GOLDEN = ROOT / "solutions" / "paper-5site" / "plan.json"
cli = run_cli


@pytest.fixture(scope="module")
def moving_plan(tmp_path_factory) -> Path:
    """A plan with migrations: energy-only on tiny-3site (it moves jobs to the sun)."""
    plan = POLICIES["energy-only"](load_instance(TINY), None)
    assert any(not isinstance(s, Run) for jp in plan.jobs for s in jp.steps)
    return plan.save(tmp_path_factory.mktemp("plan") / "plan.json")


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
    assert len(re.findall(r"^s\d+=\$\(submit ", submit, re.M)) == runs + moves

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

    assert cli("export", "csv", path, "--out", tmp_path / "steps.csv").exit_code == 0
    table = pd.read_csv(tmp_path / "steps.csv")
    assert (table["kind"] == "run").sum() == runs and (table["kind"] == "transfer").sum() == moves
    assert table.loc[table["kind"] == "run", "seconds"].sum() == pytest.approx(compute_s)


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


# ---- slurm ---------------------------------------------------------------------------------

FAKE_SBATCH = """#!/bin/bash
# Stand-in for sbatch: records its arguments, prints the next job id ("id;cluster" form).
n=$(( $(wc -l < "$SBATCH_LOG") + 100 ))
printf '%s\\n' "$*" >> "$SBATCH_LOG"
echo "$n;test"
"""


def test_submit_sh_wires_begin_dependency_and_order(moving_plan, tmp_path):
    out = tmp_path / "slurm"
    site_map = tmp_path / "sites.toml"
    site_map.write_text('[defaults]\ngres = ""\nsbatch = ["--account=green"]\n'
                        '[sites.solar]\npartition = "p-solar"\nhost = "gpu1.example"\n')
    result = cli("export", "slurm", moving_plan, "--out", out, "--site-map", site_map,
                 "--shift-to", "2030-01-02T00:00:00+00:00",
                 "--transfer", "scp -r {src} {dst} # ${HOME}")
    assert result.exit_code == 0, result.output
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "sbatch").chmod(0o755)
    log = tmp_path / "sbatch.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "SBATCH_LOG": str(log),
           "TZ": "UTC"}
    run = subprocess.run(["bash", str(out / "submit.sh"), "--hold"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    ids = {row.split(",")[0]: row.split(",")[1]
           for row in (out / "submitted.csv").read_text().splitlines()[1:]}
    steps = pd.read_csv(out / "steps.csv", keep_default_na=False)
    assert len(calls) == len(steps) == len(ids)
    by_script = {c.split()[-1]: c for c in calls}
    for _, s in steps.iterrows():
        call = by_script[f"jobs/{s['name']}.sbatch"]
        assert call.startswith("--parsable --hold ")
        begin = datetime.fromisoformat(s["begin"]).astimezone(timezone.utc)
        want = (begin + timedelta(microseconds=999_999)).replace(microsecond=0)
        assert f"--begin={want:%Y-%m-%dT%H:%M:%S}" in call
        if s["after"]:
            assert f"--dependency=afterok:{ids[s['after']]}" in call
            assert int(ids[s["after"]]) < int(ids[s["name"]])   # submitted before
        else:
            assert "--dependency" not in call
    # the scripts: partition from the site map, no --gres when "", the extra option, quoting
    text = (out / "jobs" / f"{steps['name'][0]}.sbatch").read_text()
    assert "#SBATCH --account=green" in text and "--gres" not in text
    transfer = steps[steps["kind"] == "transfer"].iloc[0]
    text = (out / "jobs" / f"{transfer['name']}.sbatch").read_text()
    dst_host = "gpu1.example" if transfer["dst"] == "solar" else transfer["dst"]
    assert f"scp -r {transfer['site']}:/checkpoints/{transfer['job']} " \
           f"{dst_host}:/checkpoints/{transfer['job']} # ${{HOME}}" in text
    assert f"#SBATCH --time={max(1, -(-transfer['seconds'] // 60)):.0f}" in text
    solar_runs = steps[(steps["kind"] == "run") & (steps["site"] == "solar")]
    assert "#SBATCH --partition=p-solar" in (
        out / "jobs" / f"{solar_runs.iloc[0]['name']}.sbatch").read_text()
    assert os.stat(out / "submit.sh").st_mode & stat.S_IXUSR


def test_slurm_quotes_hostile_job_ids(tmp_path):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("a b;$(rm -rf ~)'", (Run("s1", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    assert cli("export", "slurm", path, "--out", tmp_path / "o").exit_code == 0
    script = next((tmp_path / "o" / "jobs").glob("*.sbatch"))
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.sbatch", script.name)
    text = script.read_text()
    assert "--job a b" not in text and "'a b;$(rm -rf ~)'\"'\"''" in text
    assert "#SBATCH --time=2" in text
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
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


# ---- kubernetes ----------------------------------------------------------------------------

def strict(data, type_name: str, where: str = "$") -> None:
    """Check ``data`` against the kubernetes client's model ``type_name`` field by field:
    unknown fields, wrong types and missing required fields fail (the client alone would
    silently drop unknown fields)."""
    from kubernetes import client

    if type_name.lower().startswith("list["):
        assert isinstance(data, list), where
        for i, x in enumerate(data):
            strict(x, type_name[5:-1], f"{where}[{i}]")
    elif type_name.lower().startswith(("dict(", "dict[")):
        assert isinstance(data, dict), where
        inner = type_name[5:-1].split(", ", 1)[1]
        for k, v in data.items():
            assert isinstance(k, str), where
            strict(v, inner, f"{where}.{k}")
    elif type_name == "str":
        assert isinstance(data, str), f"{where}: {data!r} is not a string"
    elif type_name == "int":
        assert isinstance(data, int) and not isinstance(data, bool), where
    elif type_name == "bool":
        assert isinstance(data, bool), where
    elif type_name == "object":
        pass
    else:
        model = getattr(client.models, type_name)
        assert isinstance(data, dict), where
        fields = {v: k for k, v in model.attribute_map.items()}
        for key, value in data.items():
            assert key in fields, f"{where}: {type_name} has no field {key!r}"
            strict(value, model.openapi_types[fields[key]], f"{where}.{key}")


def test_kubernetes_manifests_are_valid_jobs(moving_plan, tmp_path):
    from kubernetes import client

    result = cli("export", "kubernetes", moving_plan, "--out", tmp_path / "k8s",
                 "--node-label", "example.org/site", "--namespace", "green",
                 "--image", "registry.example/train:1")
    assert result.exit_code == 0, result.output
    docs = manifests(tmp_path / "k8s")
    steps = pd.read_csv(tmp_path / "k8s" / "steps.csv", keep_default_na=False)
    names = {d["metadata"]["annotations"]["milp.io/job"] + "." +
             d["metadata"]["annotations"]["milp.io/step"]: d["metadata"]["name"] for d in docs}
    api = client.ApiClient()
    dns = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    for doc, (_, s) in zip(sorted(docs, key=lambda d: d["metadata"]["name"]),
                           steps.assign(n=[names[f"{j}.{k}"] for j, k in
                                           zip(steps["job"], steps["step"])]).sort_values("n")
                           .iterrows()):
        strict(doc, "V1Job")
        job = api._ApiClient__deserialize(doc, "V1Job")   # required fields, enums
        assert isinstance(job, client.V1Job) and job.kind == "Job"
        assert dns.match(job.metadata.name) and job.metadata.namespace == "green"
        for value in job.metadata.labels.values():
            assert re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", value)
        assert job.spec.suspend is True and job.spec.template.spec.restart_policy == "Never"
        ann = job.metadata.annotations
        assert ann["milp.io/begin"] == s["begin"] and ann["milp.io/end"] == s["end"]
        assert job.spec.template.spec.node_selector == {"example.org/site": s["site"]}
        container = job.spec.template.spec.containers[0]
        if s["kind"] == "run":
            assert container.image == "registry.example/train:1"
            assert container.resources.limits == {"nvidia.com/gpu": "1"}
        else:
            assert container.resources is None and "rsync" in container.command[-1]
            assert container.image == "registry.example/train:1"
        assert job.spec.active_deadline_seconds == max(1, -(-float(ann["milp.io/planned-seconds"])
                                                            // 1))
        after = ann["milp.io/after"]
        assert after == (names[f"{s['job']}.{s['step'] - 1}"] if s["step"] else "")


def test_kubernetes_strict_check_catches_mistakes():
    """The checker the manifests pass is not a rubber stamp."""
    good = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "a"},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
    strict(good, "V1Job")
    bad = json.loads(json.dumps(good))
    bad["spec"]["suspended"] = True
    with pytest.raises(AssertionError, match="suspended"):
        strict(bad, "V1Job")
    bad = json.loads(json.dumps(good))
    bad["spec"]["activeDeadlineSeconds"] = "10"
    with pytest.raises(AssertionError):
        strict(bad, "V1Job")


def test_bad_node_label_is_refused(moving_plan, tmp_path):
    result = cli("export", "kubernetes", moving_plan, "--out", tmp_path / "o",
                 "--node-label", "bad label")
    assert result.exit_code == 2 and "--node-label" in result.error


@pytest.mark.parametrize("instance", ["paper-5site", "week-5site/2019-04-15"])
def test_exports_work_on_shipped_instances(instance, tmp_path):
    plan = POLICIES["feasibility-aware"](load_instance(ROOT / "instances" / instance), None)
    path = plan.save(tmp_path / "plan.json")
    for kind in ("slurm", "kubernetes"):
        result = cli("export", kind, path, "--out", tmp_path / kind)
        assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "slurm" / "jobs").iterdir())) == len(
        list((tmp_path / "kubernetes" / "jobs").iterdir())) == sum(
        len(jp.steps) for jp in plan.jobs)


def test_yaml_strings_stay_strings_for_yaml_1_1_readers(tmp_path):
    """kubectl reads YAML 1.1: a bare y or 1e3 would become a boolean or a number."""
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("y", (Run("on", 0.0, 90.0),)),
                      JobPlan("1e3", (Run("on", 0.0, 90.0),))))
    path = plan.save(tmp_path / "plan.json")
    assert cli("export", "kubernetes", path, "--out", tmp_path / "k").exit_code == 0
    for doc_path in (tmp_path / "k" / "jobs").glob("*.yaml"):
        text = doc_path.read_text()
        doc = yaml.load(text, Loader=yaml.BaseLoader)        # no implicit types at all
        typed = yaml.safe_load(text)                         # YAML 1.1 implicit types
        assert typed["metadata"]["annotations"]["milp.io/job"] == \
            doc["metadata"]["annotations"]["milp.io/job"] in ("y", "1e3")
        assert typed["spec"]["template"]["spec"]["nodeSelector"] == {"milp.io/site": "on"}
        assert typed["spec"]["activeDeadlineSeconds"] == 90 and typed["spec"]["suspend"] is True


def test_default_transfer_sends_the_local_checkpoint(moving_plan, tmp_path):
    assert cli("export", "slurm", moving_plan, "--out", tmp_path / "s").exit_code == 0
    script = next((tmp_path / "s" / "jobs").glob("*.transfer.sbatch")).read_text()
    command = script.strip().splitlines()[-1]
    src, dst = command.split()[-2:]
    assert command.startswith("rsync -a --partial /checkpoints/")
    assert ":" not in src and ":" in dst       # rsync copies local -> remote, never remote-remote


@pytest.mark.parametrize("job", ["../../etc/x", "a/b", ".."])
def test_a_job_id_cannot_climb_out_of_the_checkpoint_folder(tmp_path, job):
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan(job, (Run("s", 0.0, 90.0),)),))
    path = plan.save(tmp_path / "plan.json")
    r = cli("export", "slurm", path, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "checkpoint path" in r.error and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, option", [
    (["--namespace", "ns\n"], "--namespace"), (["--node-label", "milp.io/site\n"], "--node-label"),
    (["--image", ""], "--image"), (["--image", "a b"], "--image")])
def test_kubernetes_options_the_api_would_reject(moving_plan, tmp_path, args, option):
    r = cli("export", "kubernetes", moving_plan, "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and option in r.error


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
