"""Kubernetes export: one ``batch/v1`` Job manifest per step, created suspended.

Layout of the output folder::

    jobs/<name>.yaml     one Job per step (run or transfer)
    kustomization.yaml   lists them all: ``kubectl apply -k DIR`` creates every Job
    steps.csv            the steps, as ``milp export csv`` writes them

Every Job is created with ``spec.suspend: true``: nothing runs until a controller (or Kueue, or
an operator with ``kubectl patch job NAME -p '{"spec":{"suspend":false}}'``) resumes it at its
planned time. What that controller needs is in the annotations:

- ``milp.io/begin``, ``milp.io/end``: planned start and end (ISO 8601),
- ``milp.io/planned-seconds``: planned length (compute seconds of a run, transfer seconds),
- ``milp.io/after``: the Job that must succeed first (empty for a job's first step),
- ``milp.io/job``, ``milp.io/step``, ``milp.io/kind``, ``milp.io/site``, ``milp.io/dst``,
  ``milp.io/checkpoint-bytes``: the plan's own names and numbers.

The site becomes a ``nodeSelector`` on a configurable node label (``--node-label``; value from
the site map's ``node_label``). A transfer Job runs at the source site. ``activeDeadlineSeconds``
is the planned length rounded up, so a step never holds its GPU past its slot.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from milp.errors import InputError
from milp.export import DEFAULT_COMMAND, DEFAULT_IMAGE, DEFAULT_LABEL, DEFAULT_TRANSFER
from milp.export.commands import fill, step_values
from milp.export.steps import Step, dns_name, iso, steps_frame
from milp.export.targets import SiteMap
from milp.plan import Plan

#: A label value: at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends.
LABEL_VALUE = re.compile(r"^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
#: A qualified label key: optional DNS-subdomain prefix and '/', then a name like a value.
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class _Quoted(yaml.SafeDumper):
    """Every string double-quoted: YAML 1.1 readers (kubectl) take a bare y, no, on or 1e3 for
    a boolean or a number, and the API wants strings there."""


_Quoted.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style='"'))


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Quoted, sort_keys=False, allow_unicode=True)


def check_options(node_label: str, namespace: str | None, image: str = "x",
                transfer_image: str | None = None) -> None:
    """Refuse a node label key, namespace or image the Kubernetes API would reject."""
    for option, value in (("--image", image), ("--transfer-image", transfer_image)):
        if value is not None and (not value.strip() or not value.isprintable()
                                  or any(c.isspace() for c in value)):
            raise InputError(option, f"{value!r} is not a container image name")
    if not LABEL_KEY.fullmatch(node_label):
        raise InputError("--node-label", f"{node_label!r} is not a valid label key "
                         "(e.g. milp.io/site)")
    if namespace is not None and not NAMESPACE.fullmatch(namespace):
        raise InputError("--namespace", f"{namespace!r} is not a valid namespace (lowercase "
                         "letters, digits, '-', at most 63)")


def job_names(plan: Plan, steps: list[Step]) -> dict[str, str]:
    """A unique DNS-1123 Job name per step: ``<plan>-<job>-<step>-<kind>``, at most 63 chars."""
    prefix = dns_name(f"{plan.instance}-{plan.policy}", 24)
    names = {s.name: dns_name(f"{prefix}-{s.job}-{s.index}-{s.kind}") for s in steps}
    if len(set(names.values())) < len(names):
        raise InputError("plan.json", "two steps map to the same Kubernetes name", field="jobs")
    return names


def manifest(step: Step, plan: Plan, name: str, after: str, sites: SiteMap, label: str,
             image: str, transfer_image: str, command: str, transfer: str,
             namespace: str | None) -> dict:
    """The Job object of one step, as a plain dict (apiVersion batch/v1, kind Job)."""
    t = sites[step.site]
    if not LABEL_VALUE.fullmatch(t.node_label):
        raise InputError("--site-map", f"node label value {t.node_label!r} of site "
                         f"{step.site!r} is not a valid label value; set sites.{step.site}."
                         f"node_label", field=f"sites.{step.site}.node_label")
    values = step_values(step, sites)
    run = step.kind == "run"
    labels = {"app.kubernetes.io/managed-by": "milp", "milp.io/plan": dns_name(
        f"{plan.instance}-{plan.policy}"), "milp.io/kind": step.kind}
    annotations = {"milp.io/job": step.job, "milp.io/step": str(step.index),
                   "milp.io/kind": step.kind, "milp.io/site": step.site,
                   "milp.io/dst": step.dst, "milp.io/begin": iso(step.begin),
                   "milp.io/end": iso(step.end),
                   "milp.io/planned-seconds": repr(step.seconds), "milp.io/after": after,
                   "milp.io/checkpoint-bytes": str(step.checkpoint_bytes)}
    container = {
        "name": "run" if run else "transfer",
        "image": image if run else transfer_image,
        "command": ["/bin/sh", "-c", fill(command if run else transfer, values,
                                          "--command" if run else "--transfer")],
        "env": [{"name": f"MILP_{k.upper()}", "value": v} for k, v in values.items()],
    }
    if run and t.gpu_resource:
        container["resources"] = {"limits": {t.gpu_resource: "1"}}
    metadata = {"name": name, "labels": labels, "annotations": annotations}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
        "spec": {
            "suspend": True, "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(step.seconds - 1e-9)),
            "template": {"metadata": {"labels": dict(labels)},
                         "spec": {"restartPolicy": "Never", "nodeSelector": {label: t.node_label},
                                  "containers": [container]}},
        },
    }


def export_kubernetes(plan: Plan, steps: list[Step], out: Path, sites: SiteMap,
                      label: str = DEFAULT_LABEL, image: str = DEFAULT_IMAGE,
                      transfer_image: str | None = None,
                      command: str = DEFAULT_COMMAND, transfer: str = DEFAULT_TRANSFER,
                      namespace: str | None = None) -> int:
    """Write one Job manifest per step, ``kustomization.yaml`` and ``steps.csv`` into ``out``
    (a staging folder); transfer steps use ``transfer_image`` (default: ``image``). Returns the
    number of manifests."""
    names = job_names(plan, steps)
    transfer_image = transfer_image or image
    jobs = out / "jobs"
    jobs.mkdir(parents=True)
    files = []
    for s in steps:
        doc = manifest(s, plan, names[s.name], names.get(s.after, ""), sites, label, image,
                       transfer_image, command, transfer, namespace)
        path = jobs / f"{names[s.name]}.yaml"
        path.write_text(dump(doc), encoding="utf-8")
        files.append(f"jobs/{path.name}")
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": files}
    (out / "kustomization.yaml").write_text(dump(kustomization), encoding="utf-8")
    (out / "steps.csv").write_text(steps_frame(steps).to_csv(index=False), encoding="utf-8")
    return len(steps)
