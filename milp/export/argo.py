"""Argo Workflows export: the whole plan as one ``Workflow`` whose DAG starts every step by
itself, at its planned time and after its job's previous step, with no controller of ours.

Layout of the output folder::

    workflow.yaml        the Workflow (argo submit workflow.yaml, or kubectl create -f)
    steps.csv, steps.json  the steps (:mod:`milp.export.steps`)

The DAG has two tasks per step: ``<step>-wait`` runs the small ``wait-until`` template (a pod
of ``--wait-image`` that sleeps until the step's begin time; no GPU, no node selection) and
``<step>`` runs the step's own template (the same container, node selection, tolerations and
checkpoint volume as the Job of ``milp export kubernetes``, :func:`milp.export.kubernetes.pod_parts`).
``<step>-wait`` depends on the job's previous step and ``<step>`` on its wait, so a step starts
at its begin time or when its predecessor has succeeded, whichever is later, and at most one
wait pod per job exists at a time. The DAG has ``failFast: false``: a step that fails (or
exceeds its deadline, the planned length plus ``--margin``) stops only its own job's chain;
other jobs go on, and the Workflow ends Failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from milp.errors import InputError
from milp.export import DEFAULT_WAIT_IMAGE
from milp.export.kubernetes import (LABEL_VALUE, SUBDOMAIN, PodOptions, annotations,
                                    check_image, deadline_s, dump, job_names, labels, pod_parts)
from milp.export.steps import Schedule, iso, write_steps
from milp.export.targets import SiteMap

#: Name of the DAG template (the Workflow's entrypoint) and of the wait template.
ENTRYPOINT = "plan"
WAIT = "wait-until"
#: The wait pod's script: sleep until the Unix time in $1 (no-op when it has passed). POSIX sh,
#: ``date +%s`` and ``sleep`` only (busybox has them).
WAIT_SCRIPT = 'now=$(date +%s); if [ "$1" -gt "$now" ]; then sleep $(( $1 - now )); fi'
#: The label Kueue reads to queue a pod (its pod integration admits it by quota).
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: Argo's default largest Workflow (its MAX_WORKFLOW_SIZE, bytes of JSON, status included;
#: it compresses the status of a larger one, then fails it).
MAX_WORKFLOW_BYTES = 1024 * 1024


def check_argo_options(wait_image: str, kueue_queue: str | None,
                       service_account: str | None) -> None:
    """Refuse a wait image, Kueue queue or service account the API would reject."""
    check_image("--wait-image", wait_image)
    if kueue_queue is not None and not (kueue_queue and LABEL_VALUE.fullmatch(kueue_queue)):
        raise InputError("--kueue-queue", f"{kueue_queue!r} is not a LocalQueue name usable "
                         f"as a label value")
    if service_account is not None and not SUBDOMAIN.fullmatch(service_account):
        raise InputError("--service-account", f"{service_account!r} is not a ServiceAccount "
                         f"name")


def _no_argo_syntax(opts: PodOptions) -> None:
    """Argo replaces ``{{…}}`` in every string of a Workflow: a command holding it would run
    changed."""
    for option, text in (("--command", opts.command), ("--transfer", opts.transfer)):
        if "{{" in text:
            raise InputError(option, "'{{' is Argo template syntax and would be replaced by "
                             "Argo; write it another way (e.g. '{ {')")


def workflow(sched: Schedule, sites: SiteMap, opts: PodOptions = PodOptions(),
             wait_image: str = DEFAULT_WAIT_IMAGE, kueue_queue: str | None = None,
             service_account: str | None = None) -> dict[str, Any]:
    """The Workflow of a plan, as a plain dict (apiVersion argoproj.io/v1alpha1)."""
    opts.check()
    check_argo_options(wait_image, kueue_queue, service_account)
    _no_argo_syntax(opts)
    names = job_names(sched, prefix=False)
    waits = {n: f"{name}-wait" for n, name in names.items()}
    if len(set(names.values()) | set(waits.values())) < 2 * len(names):
        raise InputError("plan.json", "two steps map to the same Argo task name", field="jobs")
    tasks: list[dict[str, Any]] = []
    templates: list[dict[str, Any]] = []
    for s in sched.steps:
        name, after = names[s.name], names.get(s.after, "")
        wait: dict[str, Any] = {"name": waits[s.name], "template": WAIT, "arguments": {
            "parameters": [{"name": "begin", "value": str(s.begin_unix)}]}}
        if after:
            wait["dependencies"] = [after]
        tasks += [wait, {"name": name, "template": name, "dependencies": [waits[s.name]]}]
        parts = pod_parts(s, sites, opts)
        pod_labels = labels(sched, s)
        if kueue_queue and s.kind == "run":
            pod_labels[KUEUE_LABEL] = kueue_queue
        template: dict[str, Any] = {
            "name": name,
            "metadata": {"labels": pod_labels, "annotations": annotations(s, after)},
            # IntOrString: Argo reads "750" as 750, and its published JSON schema types the
            # field as a string.
            "activeDeadlineSeconds": str(deadline_s(s, opts.margin)),
            "nodeSelector": parts["nodeSelector"],
        }
        for key in ("tolerations", "volumes"):
            if key in parts:
                template[key] = parts[key]
        template["container"] = parts["container"]
        if "{{" in json.dumps(template, ensure_ascii=False):
            raise InputError("plan.json", f"step {s.name!r} would hold '{{{{', which Argo "
                             f"replaces (its template syntax): a job id, site name or site-map "
                             f"value with '{{{{' cannot go into a Workflow", field="jobs")
        templates.append(template)
    wait_template = {
        "name": WAIT,
        "inputs": {"parameters": [{"name": "begin"}]},
        "metadata": {"labels": {"app.kubernetes.io/managed-by": "milp",
                                "milp.io/plan": sched.plan_id, "milp.io/kind": "wait"}},
        "container": {"name": "wait", "image": wait_image,
                      "command": ["/bin/sh", "-c", WAIT_SCRIPT, WAIT,
                                  "{{inputs.parameters.begin}}"],
                      "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
    }
    metadata: dict[str, Any] = {
        "name": sched.plan_id,
        "labels": {"app.kubernetes.io/managed-by": "milp", "milp.io/plan": sched.plan_id},
        "annotations": {"milp.io/instance": sched.plan.instance,
                        "milp.io/policy": sched.plan.policy, "milp.io/start": iso(sched.start)},
    }
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    spec: dict[str, Any] = {"entrypoint": ENTRYPOINT}
    if service_account:
        spec["serviceAccountName"] = service_account
    if opts.ttl is not None:
        spec["ttlStrategy"] = {"secondsAfterCompletion": opts.ttl}
    spec["templates"] = [{"name": ENTRYPOINT, "dag": {"failFast": False, "tasks": tasks}},
                         wait_template, *templates]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": metadata,
            "spec": spec}


def workflow_bytes(doc: dict[str, Any]) -> int:
    """The size of a Workflow as the API stores it (compact JSON), in bytes."""
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def export_argo(sched: Schedule, out: Path, sites: SiteMap, opts: PodOptions = PodOptions(),
                wait_image: str = DEFAULT_WAIT_IMAGE, kueue_queue: str | None = None,
                service_account: str | None = None) -> int:
    """Write ``workflow.yaml``, ``steps.csv`` and ``steps.json`` into ``out`` (a staging
    folder). Returns the Workflow's size (:func:`workflow_bytes`)."""
    doc = workflow(sched, sites, opts, wait_image, kueue_queue, service_account)
    (out / "workflow.yaml").write_text(dump(doc), encoding="utf-8")
    write_steps(out, sched)
    return workflow_bytes(doc)
