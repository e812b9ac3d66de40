"""Kubernetes Jobs and Argo Workflows: every manifest validates against the published schemas
(tests/manifests.py: kubernetes-validate for Jobs, Argo's JSON schema for Workflows) and
carries the plan: names, times, order, node selection, options."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from milp.export.argo import KUEUE_LABEL, WAIT, WAIT_SCRIPT
from milp.plan import JobPlan, Migration, Plan, Run
from tests.conftest import SHIPPED_PLANS, run_cli
from tests.manifests import (ManifestError, argo_semantics, mutated, validate_argo,
                             validate_kubernetes)

cli = run_cli
#: Every option the Kubernetes exports take, set.
OPTIONS = ("--node-label", "example.org/site", "--namespace", "green",
           "--image", "registry.example/train:1", "--transfer-image", "registry.example/sync:2",
           "--checkpoint-claim", "ckpt", "--toleration", "nvidia.com/gpu:NoSchedule",
           "--toleration", "site=solar", "--node-selector", "nvidia.com/gpu.present=true",
           "--ttl", "3600", "--margin", "120")
ARGO_OPTIONS = ("--wait-image", "registry.example/busybox:1", "--kueue-queue", "gpu-queue",
                "--service-account", "argo-runner")


def jobs(out: Path) -> list[dict]:
    return [yaml.safe_load(f.read_text()) for f in sorted((out / "jobs").glob("*.yaml"))]


def workflow(out: Path) -> dict:
    return yaml.safe_load((out / "workflow.yaml").read_text())


def steps_of(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "steps.csv", keep_default_na=False)


# ---- Kubernetes Jobs -----------------------------------------------------------------------

def test_jobs_validate_and_carry_the_plan_and_the_options(moving_plan, tmp_path):
    out = tmp_path / "k8s"
    result = cli("export", "kubernetes", moving_plan, "--out", out, *OPTIONS)
    assert result.exit_code == 0, result.output
    docs = jobs(out)
    steps = steps_of(out)
    plan_id = json.loads((out / "steps.json").read_text())["plan_id"]
    assert len(docs) == len(steps)
    by_step = {(d["metadata"]["annotations"]["milp.io/job"],
                int(d["metadata"]["annotations"]["milp.io/step"])): d for d in docs}
    names = {f"{j}.{k}": d["metadata"]["name"] for (j, k), d in by_step.items()}
    for _, s in steps.iterrows():
        doc = by_step[(s["job"], s["step"])]
        validate_kubernetes(doc, s["name"])
        meta, spec = doc["metadata"], doc["spec"]
        pod = spec["template"]["spec"]
        assert meta["name"].startswith(f"{plan_id}-") and meta["namespace"] == "green"
        assert meta["labels"]["milp.io/plan"] == plan_id
        assert spec["template"]["metadata"]["labels"]["milp.io/plan"] == plan_id
        ann = meta["annotations"]
        assert ann["milp.io/begin"] == s["begin"] and ann["milp.io/end"] == s["end"]
        assert ann["milp.io/after"] == (names[f"{s['job']}.{s['step'] - 1}"] if s["step"]
                                        else "")
        assert spec["suspend"] is True and spec["backoffLimit"] == 0
        assert pod["restartPolicy"] == "Never"
        assert spec["activeDeadlineSeconds"] == math.ceil(s["seconds"] + 120 - 1e-9)
        assert spec["ttlSecondsAfterFinished"] == 3600
        assert pod["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "site", "operator": "Equal", "value": "solar"}]
        assert pod["volumes"] == [{"name": "checkpoints",
                                   "persistentVolumeClaim": {"claimName": "ckpt"}}]
        container = pod["containers"][0]
        assert container["volumeMounts"] == [{"name": "checkpoints",
                                              "mountPath": "/checkpoints"}]
        if s["kind"] == "run":
            assert pod["nodeSelector"] == {"example.org/site": s["site"],
                                           "nvidia.com/gpu.present": "true"}
            assert container["image"] == "registry.example/train:1"
            assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
        else:
            assert pod["nodeSelector"] == {"example.org/site": s["site"]}   # any node there
            assert container["image"] == "registry.example/sync:2"
            assert "resources" not in container and "rsync" in container["command"][-1]


def test_jobs_without_options_keep_the_defaults(moving_plan, tmp_path):
    assert cli("export", "kubernetes", moving_plan, "--out", tmp_path / "k").exit_code == 0
    for doc in jobs(tmp_path / "k"):
        validate_kubernetes(doc)
        pod = doc["spec"]["template"]["spec"]
        assert "tolerations" not in pod and "volumes" not in pod and "namespace" not in \
            doc["metadata"]
        assert list(pod["nodeSelector"]) == ["milp.io/site"]
        assert doc["spec"]["ttlSecondsAfterFinished"] == 86400
        seconds = float(doc["metadata"]["annotations"]["milp.io/planned-seconds"])
        assert doc["spec"]["activeDeadlineSeconds"] == math.ceil(seconds + 300 - 1e-9)


# ---- Argo Workflows ------------------------------------------------------------------------

def test_workflow_starts_each_step_at_its_time_after_its_predecessor(moving_plan, tmp_path):
    out = tmp_path / "argo"
    result = cli("export", "argo", moving_plan, "--out", out, *OPTIONS, *ARGO_OPTIONS,
                 "--shift-to", "2030-01-02T00:00:00+01:00")
    assert result.exit_code == 0, result.output
    wf = workflow(out)
    validate_argo(wf)
    steps = steps_of(out)
    plan_id = json.loads((out / "steps.json").read_text())["plan_id"]
    assert wf["metadata"]["name"] == plan_id and wf["metadata"]["namespace"] == "green"
    spec = wf["spec"]
    assert spec["serviceAccountName"] == "argo-runner"
    assert spec["ttlStrategy"] == {"secondsAfterCompletion": 3600}
    templates = {t["name"]: t for t in spec["templates"]}
    dag = templates[spec["entrypoint"]]["dag"]
    assert dag["failFast"] is False            # a failed step stops only its own job's chain
    tasks = {t["name"]: t for t in dag["tasks"]}
    assert len(tasks) == 2 * len(steps)
    by_step = {}
    for name, t in templates.items():
        ann = t.get("metadata", {}).get("annotations", {})
        if "milp.io/job" in ann:
            by_step[(ann["milp.io/job"], int(ann["milp.io/step"]))] = name
    for _, s in steps.iterrows():
        name = by_step[(s["job"], s["step"])]
        task, t = tasks[name], templates[name]
        wait = tasks[task["dependencies"][0]]
        assert task["dependencies"] == [wait["name"]] and task["template"] == name
        assert wait["template"] == WAIT
        begin = datetime.fromisoformat(s["begin"]).timestamp()
        assert wait["arguments"]["parameters"] == [
            {"name": "begin", "value": str(math.ceil(begin))}]
        previous = by_step.get((s["job"], s["step"] - 1))
        assert wait.get("dependencies", []) == ([previous] if s["step"] else [])
        assert t["metadata"]["annotations"]["milp.io/after"] == (previous or "")
        assert t["metadata"]["annotations"]["milp.io/begin"] == s["begin"]
        assert t["activeDeadlineSeconds"] == str(math.ceil(s["seconds"] + 120 - 1e-9))
        assert t["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert t["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ckpt"
        labels = t["metadata"]["labels"]
        assert labels["milp.io/plan"] == plan_id
        if s["kind"] == "run":
            assert labels[KUEUE_LABEL] == "gpu-queue"
            assert t["nodeSelector"]["nvidia.com/gpu.present"] == "true"
            assert t["container"]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
        else:
            assert KUEUE_LABEL not in labels and "resources" not in t["container"]
    waiter = templates[WAIT]
    assert waiter["container"]["image"] == "registry.example/busybox:1"
    assert "nodeSelector" not in waiter and "resources" in waiter["container"]
    assert "gpu" not in json.dumps(waiter["container"]["resources"])


def test_the_wait_pod_never_returns_before_the_begin_time(tmp_path):
    """WAIT_SCRIPT under a plain POSIX sh: it sleeps until the Unix time it is given, and
    returns at once for a time that has passed."""
    begin = math.ceil(time.time()) + 2
    r = subprocess.run(["/bin/sh", "-c", WAIT_SCRIPT, WAIT, str(begin)], timeout=120,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert time.time() >= begin
    r = subprocess.run(["/bin/sh", "-c", WAIT_SCRIPT, WAIT, str(begin - 3600)], timeout=120)
    assert r.returncode == 0


def test_a_workflow_of_one_job_failing_leaves_the_others(tmp_path):
    """The DAG's shape when a step fails: only tasks downstream of it (its own job's later
    steps) depend on it, directly or not."""
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("a", (Run("s1", 0.0, 60.0), Migration("s1", "s2", 60.0, 1.0,
                                                                     5.0, 10.0),
                                    Run("s2", 70.0, 130.0))),
                      JobPlan("b", (Run("s1", 0.0, 60.0), Run("s1", 90.0, 120.0)))))
    path = plan.save(tmp_path / "plan.json")
    assert cli("export", "argo", path, "--out", tmp_path / "o").exit_code == 0
    tasks = {t["name"]: t for t in workflow(tmp_path / "o")["spec"]["templates"][0]["dag"]
             ["tasks"]}

    def downstream(name: str) -> set[str]:
        out = {t for t, task in tasks.items() if name in task.get("dependencies", [])}
        return out.union(*(downstream(t) for t in out)) if out else set()

    assert downstream("a-0-run") == {"a-1-transfer-wait", "a-1-transfer", "a-2-run-wait",
                                     "a-2-run"}
    assert downstream("b-0-run") == {"b-1-run-wait", "b-1-run"}


# ---- every shipped plan --------------------------------------------------------------------

@pytest.mark.parametrize("plan", SHIPPED_PLANS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_every_manifest_of_the_shipped_plans_validates(plan, tmp_path):
    """Jobs with every option set (a superset of the default fields, which
    test_jobs_without_options_keep_the_defaults validates); Workflows with and without."""
    assert SHIPPED_PLANS, "no plan.json under solutions/"
    out = tmp_path / "k"
    result = cli("export", "kubernetes", plan, "--out", out, *OPTIONS)
    assert result.exit_code == 0, result.output
    docs = jobs(out)
    assert len(docs) == len(steps_of(out)) > 0
    for doc in docs:
        validate_kubernetes(doc, f"{plan}: {doc['metadata']['name']}")
    for args in ((), (*OPTIONS, *ARGO_OPTIONS)):
        out = tmp_path / f"a{len(args)}"
        result = cli("export", "argo", plan, "--out", out, *args)
        assert result.exit_code == 0, result.output
        validate_argo(workflow(out), str(plan))


# ---- the validators are no rubber stamps ---------------------------------------------------

def test_the_validators_refuse_what_the_api_would(moving_plan, tmp_path):
    assert cli("export", "kubernetes", moving_plan, "--out", tmp_path / "k").exit_code == 0
    assert cli("export", "argo", moving_plan, "--out", tmp_path / "a").exit_code == 0
    job = jobs(tmp_path / "k")[0]
    validate_kubernetes(job)
    for path, value, message in [
            ("spec.suspended", True, "suspended"),                       # misspelt field
            ("spec.activeDeadlineSeconds", "10", "not of type"),           # wrong type
            ("spec.template.spec.containers[0].resources", [], "not of type"),
            ("metadata.name", "Upper_Case", "DNS-1123"),                 # name rules
            (["metadata", "labels", "milp.io/plan"], "bad value!", "label")]:
        with pytest.raises(ManifestError, match=re.escape(message)):
            validate_kubernetes(mutated(job, path, value))
    broken = json.loads(json.dumps(job))
    del broken["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ManifestError, match="'name' is a required property"):
        validate_kubernetes(broken)

    wf = workflow(tmp_path / "a")
    validate_argo(wf)
    step = next(i for i, t in enumerate(wf["spec"]["templates"]) if "annotations" in
                t.get("metadata", {}))
    for path, value, message in [
            (f"spec.templates[{step}].container.imagePullPolicyy", "x", "imagePullPolicyy"),
            (f"spec.templates[{step}].activeDeadlineSeconds", [1], "not of type"),
            ("spec.templates[0].dag.failFast", "no", "not of type"),
            ("spec.templates[0].dag.tasks[0].dependencies", "x", "not of type")]:
        with pytest.raises(ManifestError, match=re.escape(message)):
            validate_argo(mutated(wf, path, value))
    tasks = "spec.templates[0].dag.tasks"
    first = wf["spec"]["templates"][0]["dag"]["tasks"][0]["name"]
    second = wf["spec"]["templates"][0]["dag"]["tasks"][1]["name"]
    for path, value, message in [
            (f"{tasks}[0].dependencies", ["nowhere"], "which is no task"),
            (f"{tasks}[0].dependencies", [second], "cycle"),
            (f"{tasks}[1].template", "missing", "does not exist"),
            (f"{tasks}[0].arguments", {"parameters": []}, "does not give parameter"),
            (f"{tasks}[1].name", first, "not unique"),
            ("spec.entrypoint", "nothing", "entrypoint"),
            ("metadata.name", "x" * 64, "DNS-1123")]:
        with pytest.raises(ManifestError, match=re.escape(message)):
            argo_semantics(mutated(wf, path, value))


# ---- options -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, option", [
    (["--namespace", "ns\n"], "--namespace"), (["--node-label", "milp.io/site\n"], "--node-label"),
    (["--node-label", "bad label"], "--node-label"),
    (["--image", ""], "--image"), (["--image", "a b"], "--image"),
    (["--toleration", "nvidia.com/gpu:Sometimes"], "--toleration"),
    (["--toleration", "a b"], "--toleration"), (["--toleration", "k=v=w"], "--toleration"),
    (["--node-selector", "gpu"], "--node-selector"),
    (["--node-selector", "milp.io/site=x"], "--node-selector"),
    (["--node-selector", "a=1", "--node-selector", "a=2"], "--node-selector"),
    (["--checkpoint-claim", "Ckpt_1"], "--checkpoint-claim"),
    (["--ttl", "-1"], "--ttl"), (["--margin", "-5"], "--margin"), (["--margin", "inf"], "--margin"),
    (["--plan-id", "UPPER"], "--plan-id")])
@pytest.mark.parametrize("kind", ["kubernetes", "argo"])
def test_options_the_api_would_reject(moving_plan, tmp_path, kind, args, option):
    r = cli("export", kind, moving_plan, "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and option in r.error and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, option", [
    (["--wait-image", "a b"], "--wait-image"), (["--kueue-queue", "a queue"], "--kueue-queue"),
    (["--service-account", "Argo"], "--service-account"),
    (["--command", "echo {{workflow.name}}"], "--command"),
    (["--transfer", "rsync {{x}}"], "--transfer")])
def test_argo_options_the_api_would_reject(moving_plan, tmp_path, args, option):
    r = cli("export", "argo", moving_plan, "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and option in r.error and not (tmp_path / "o").exists()


def test_a_site_claim_mounts_on_the_sites_checkpoint_folder(moving_plan, tmp_path):
    site_map = tmp_path / "m.toml"
    site_map.write_text('[sites.solar]\ncheckpoint = "/data/ckpt/job-{job}/latest"\n'
                        'claim = "solar-ckpt"\n')
    for kind in ("kubernetes", "argo"):
        out = tmp_path / kind
        r = cli("export", kind, moving_plan, "--out", out, "--site-map", site_map,
                "--checkpoint-claim", "ckpt")
        assert r.exit_code == 0, r.output
        pods = ([d["spec"]["template"]["spec"] | {"container": d["spec"]["template"]["spec"]
                                                  ["containers"][0]} for d in jobs(out)]
                if kind == "kubernetes" else
                [t for t in workflow(out)["spec"]["templates"] if "volumes" in t])
        sites = {p["nodeSelector"]["milp.io/site"] for p in pods}
        assert "solar" in sites and len(sites) > 1
        for p in pods:
            solar = p["nodeSelector"]["milp.io/site"] == "solar"
            claim = p["volumes"][0]["persistentVolumeClaim"]["claimName"]
            assert claim == ("solar-ckpt" if solar else "ckpt")
            assert p["container"]["volumeMounts"][0]["mountPath"] == (
                "/data/ckpt" if solar else "/checkpoints")
    site_map.write_text('[sites.solar]\ncheckpoint = "ckpt/{job}"\n')
    r = cli("export", "kubernetes", moving_plan, "--out", tmp_path / "rel", "--site-map",
            site_map, "--checkpoint-claim", "ckpt")
    assert r.exit_code == 2 and "sites.solar.checkpoint" in r.error
    assert cli("export", "kubernetes", moving_plan, "--out", tmp_path / "rel", "--site-map",
               site_map).exit_code == 0           # no claim: the path is the command's business


def test_yaml_strings_stay_strings_for_yaml_1_1_readers(tmp_path):
    """kubectl reads YAML 1.1: a bare y or 1e3 would become a boolean or a number."""
    plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15, policy="p",
                jobs=(JobPlan("y", (Run("on", 0.0, 90.0),)),
                      JobPlan("1e3", (Run("on", 0.0, 90.0),))))
    path = plan.save(tmp_path / "plan.json")
    assert cli("export", "kubernetes", path, "--out", tmp_path / "k", "--margin", "0").exit_code \
        == 0
    for doc_path in (tmp_path / "k" / "jobs").glob("*.yaml"):
        text = doc_path.read_text()
        doc = yaml.load(text, Loader=yaml.BaseLoader)        # no implicit types at all
        typed = yaml.safe_load(text)                         # YAML 1.1 implicit types
        assert typed["metadata"]["annotations"]["milp.io/job"] == \
            doc["metadata"]["annotations"]["milp.io/job"] in ("y", "1e3")
        assert typed["spec"]["template"]["spec"]["nodeSelector"] == {"milp.io/site": "on"}
        assert typed["spec"]["activeDeadlineSeconds"] == 90 and typed["spec"]["suspend"] is True
    assert cli("export", "argo", path, "--out", tmp_path / "a").exit_code == 0
    typed = workflow(tmp_path / "a")["spec"]["templates"]
    for t in typed[2:]:
        assert t["metadata"]["annotations"]["milp.io/job"] in ("y", "1e3")
        assert t["nodeSelector"] == {"milp.io/site": "on"}
        assert t["activeDeadlineSeconds"] == "390"
    for task in typed[0]["dag"]["tasks"][::2]:                  # the wait tasks' begin times
        assert task["arguments"]["parameters"][0]["value"] == "1893456000"


def test_a_workflow_too_large_for_argo_is_warned_about(tmp_path):
    import sys

    from milp.export.argo import MAX_WORKFLOW_BYTES

    def export(jobs: int) -> tuple[subprocess.CompletedProcess, int]:
        plan = Plan(instance="x", start="2030-01-01T00:00:00+00:00", slot_minutes=15,
                    policy="p", jobs=tuple(JobPlan(f"job{i:04d}", (Run("s", 0.0, 90.0),))
                                           for i in range(jobs)))
        path = plan.save(tmp_path / f"plan{jobs}.json")
        out = tmp_path / f"o{jobs}"
        r = subprocess.run([sys.executable, "-c", "from milp.cli import main; main()", "export",
                            "argo", str(path), "--out", str(out)], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        size = len(json.dumps(workflow(out), separators=(",", ":")).encode())
        return r, size

    small, size = export(10)
    assert small.stderr == "" and size < 0.75 * MAX_WORKFLOW_BYTES
    large, size = export(1000)
    assert size > 0.75 * MAX_WORKFLOW_BYTES
    assert large.stderr.startswith("warning: the Workflow is ") and "MAX_WORKFLOW_SIZE" in \
        large.stderr and len(large.stderr.strip().splitlines()) == 1
