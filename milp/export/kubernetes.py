"""Kubernetes export: one ``batch/v1`` Job manifest per step, created suspended; and the pod
pieces (container, node selection, tolerations, checkpoint volume, names, labels, annotations)
that the Argo export (:mod:`milp.export.argo`) shares.

Layout of the output folder::

    jobs/<name>.yaml     one Job per step (run or transfer)
    kustomization.yaml   lists them all: ``kubectl apply -k DIR`` creates every Job
    steps.csv, steps.json  the steps (:mod:`milp.export.steps`)

Every Job is created with ``spec.suspend: true``: nothing runs until something resumes it
(``kubectl patch job NAME -p '{"spec":{"suspend":false}}'``) at its planned time and after its
predecessor. This export is for teams with a controller of their own; ``milp export argo``
writes a Workflow that starts every step by itself. What a controller needs is in the
annotations:

- ``milp.io/begin``, ``milp.io/end``: planned start and end (ISO 8601),
- ``milp.io/planned-seconds``: planned length (compute seconds of a run, transfer seconds),
- ``milp.io/after``: the Job that must succeed first (empty for a job's first step),
- ``milp.io/job``, ``milp.io/step``, ``milp.io/kind``, ``milp.io/site``, ``milp.io/dst``,
  ``milp.io/checkpoint-bytes``: the plan's own names and numbers.

The site becomes a ``nodeSelector`` on a configurable node label (``--node-label``; value from
the site map's ``node_label``). A transfer Job runs at the source site. ``activeDeadlineSeconds``
is the planned length plus ``--margin``; finished Jobs are deleted after ``--ttl`` seconds.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from milp.errors import InputError
from milp.export import (DEFAULT_COMMAND, DEFAULT_IMAGE, DEFAULT_LABEL, DEFAULT_MARGIN_S,
                         DEFAULT_TRANSFER, DEFAULT_TTL_S)
from milp.export.commands import fill, step_values
from milp.export.steps import Schedule, Step, dns_name, iso, write_steps
from milp.export.targets import SiteMap, Target

#: A label value: at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends.
LABEL_VALUE = re.compile(r"^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
#: A qualified label key: optional DNS-subdomain prefix and '/', then a name like a value.
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: A DNS subdomain (names of PersistentVolumeClaims and ServiceAccounts): at most 253.
SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
#: The name of the checkpoint volume in a pod.
VOLUME = "checkpoints"
#: Largest int32 (activeDeadlineSeconds, ttlSecondsAfterFinished).
INT32 = 2**31 - 1


class _Quoted(yaml.SafeDumper):
    """Every string double-quoted: YAML 1.1 readers (kubectl) take a bare y, no, on or 1e3 for
    a boolean or a number, and the API wants strings there."""


_Quoted.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style='"'))


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Quoted, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class PodOptions:
    """What the Kubernetes exports (Jobs, Argo) put in every step's pod; :meth:`check` refuses
    values the API would reject, naming the option."""

    node_label: str = DEFAULT_LABEL
    image: str = DEFAULT_IMAGE
    transfer_image: str | None = None      #: image of transfer steps (None: ``image``)
    command: str = DEFAULT_COMMAND
    transfer: str = DEFAULT_TRANSFER
    namespace: str | None = None
    checkpoint_claim: str | None = None    #: PVC of every site's checkpoints (site map: ``claim``)
    tolerations: tuple[str, ...] = ()      #: ``KEY[=VALUE][:EFFECT]``, run and transfer pods
    node_selector: tuple[str, ...] = ()    #: ``KEY=VALUE``, run pods only (GPU nodes)
    margin: float = DEFAULT_MARGIN_S       #: seconds past the planned length before the deadline
    ttl: int | None = DEFAULT_TTL_S        #: seconds a finished Job/Workflow is kept

    def check(self) -> None:
        """Refuse a node label key, namespace, image, claim, toleration, selector, margin or
        TTL the Kubernetes API would reject."""
        for option, value in (("--image", self.image), ("--transfer-image", self.transfer_image)):
            check_image(option, value)
        if not LABEL_KEY.fullmatch(self.node_label):
            raise InputError("--node-label", f"{self.node_label!r} is not a valid label key "
                             "(e.g. milp.io/site)")
        if self.namespace is not None and not NAMESPACE.fullmatch(self.namespace):
            raise InputError("--namespace", f"{self.namespace!r} is not a valid namespace "
                             "(lowercase letters, digits, '-', at most 63)")
        if self.checkpoint_claim is not None and not SUBDOMAIN.fullmatch(self.checkpoint_claim):
            raise InputError("--checkpoint-claim", f"{self.checkpoint_claim!r} is not a "
                             "PersistentVolumeClaim name (lowercase letters, digits, '-', '.')")
        if not math.isfinite(self.margin) or not 0 <= self.margin <= INT32 / 2:
            raise InputError("--margin", f"{self.margin!r} is not a number of seconds >= 0")
        if self.ttl is not None and not 0 <= self.ttl <= INT32:
            raise InputError("--ttl", f"{self.ttl} is not a number of seconds >= 0")
        self.parsed_tolerations()
        self.gpu_selector()

    def parsed_tolerations(self) -> list[dict[str, str]]:
        """``--toleration`` values as Toleration objects: ``KEY`` or ``KEY:EFFECT`` tolerates
        the taint whatever its value (operator Exists), ``KEY=VALUE[:EFFECT]`` that value."""
        out = []
        for text in self.tolerations:
            m = re.fullmatch(r"([^=:]+)(?:=([^:]*))?(?::([A-Za-z]+))?", text)
            if not m or not LABEL_KEY.fullmatch(m[1]) or (
                    m[2] is not None and not LABEL_VALUE.fullmatch(m[2])) or (
                    m[3] is not None and m[3] not in TAINT_EFFECTS):
                raise InputError("--toleration", f"{text!r} is not KEY[=VALUE][:EFFECT] with a "
                                 f"label key and value and an effect of "
                                 f"{', '.join(TAINT_EFFECTS)} (e.g. nvidia.com/gpu:NoSchedule)")
            t = {"key": m[1], "operator": "Exists" if m[2] is None else "Equal"}
            if m[2] is not None:
                t["value"] = m[2]
            if m[3] is not None:
                t["effect"] = m[3]
            out.append(t)
        return out

    def gpu_selector(self) -> dict[str, str]:
        """``--node-selector`` values: node labels a run step's node must also have."""
        out: dict[str, str] = {}
        for text in self.node_selector:
            key, eq, value = text.partition("=")
            if not eq or not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(value):
                raise InputError("--node-selector", f"{text!r} is not KEY=VALUE with a label "
                                 f"key and value (e.g. nvidia.com/gpu.present=true)")
            if key == self.node_label or out.get(key, value) != value:
                raise InputError("--node-selector", f"{key!r} is selected twice (the site is "
                                 f"--node-label {self.node_label!r})")
            out[key] = value
        return out


def check_image(option: str, value: str | None) -> None:
    """Refuse an empty container image name or one with spaces or control characters."""
    if value is not None and (not value.strip() or not value.isprintable()
                              or any(c.isspace() for c in value)):
        raise InputError(option, f"{value!r} is not a container image name")


def job_names(sched: Schedule, prefix: bool = True) -> dict[str, str]:
    """A unique DNS-1123 name per step, at most 63 characters: ``<plan id>-<job>-<step>-<kind>``
    (Job names), or without the plan id (names inside one Argo Workflow)."""
    head = f"{sched.plan_id}-" if prefix else ""
    names = {s.name: dns_name(f"{head}{s.job}-{s.index}-{s.kind}") for s in sched.steps}
    if len(set(names.values())) < len(names):
        raise InputError("plan.json", "two steps map to the same Kubernetes name", field="jobs")
    return names


def deadline_s(step: Step, margin: float) -> int:
    """``activeDeadlineSeconds``: the planned length plus ``margin``, rounded up, at least 1."""
    return min(INT32, max(1, math.ceil(step.seconds + margin - 1e-9)))


def labels(sched: Schedule, step: Step) -> dict[str, str]:
    """Labels of a step's Job and pod: who made it, the plan id, run or transfer."""
    return {"app.kubernetes.io/managed-by": "milp", "milp.io/plan": sched.plan_id,
            "milp.io/kind": step.kind}


def annotations(step: Step, after: str) -> dict[str, str]:
    """The plan's names and numbers of a step; ``after`` names the Job (or Argo task) that
    must succeed first."""
    return {"milp.io/job": step.job, "milp.io/step": str(step.index),
            "milp.io/kind": step.kind, "milp.io/site": step.site,
            "milp.io/dst": step.dst, "milp.io/begin": iso(step.begin),
            "milp.io/end": iso(step.end),
            "milp.io/planned-seconds": repr(step.seconds), "milp.io/after": after,
            "milp.io/checkpoint-bytes": str(step.checkpoint_bytes)}


def claim_mount(t: Target) -> str:
    """Where a site's checkpoint claim is mounted: the checkpoint path's folder above ``{job}``
    (``/checkpoints/{job}`` → ``/checkpoints``)."""
    head = t.checkpoint.split("{job}", 1)[0]
    mount = posixpath.normpath(posixpath.dirname(head) if "{job}" in t.checkpoint else head)
    if not mount.startswith("/") or mount == "/":
        raise InputError("--site-map", f"checkpoint path {t.checkpoint!r} of site {t.site!r} "
                         f"needs a folder to mount the checkpoint claim on (absolute, not /)",
                         field=f"sites.{t.site}.checkpoint")
    return mount


def pod_parts(step: Step, sites: SiteMap, opts: PodOptions) -> dict[str, Any]:
    """The pieces of a step's pod: ``container``, ``nodeSelector`` and, when set,
    ``tolerations`` and ``volumes`` (as a Job's pod spec and an Argo template both name them)."""
    t = sites[step.site]
    if not LABEL_VALUE.fullmatch(t.node_label):
        raise InputError("--site-map", f"node label value {t.node_label!r} of site "
                         f"{step.site!r} is not a valid label value; set sites.{step.site}."
                         f"node_label", field=f"sites.{step.site}.node_label")
    values = step_values(step, sites)
    run = step.kind == "run"
    container: dict[str, Any] = {
        "name": "run" if run else "transfer",
        "image": opts.image if run else (opts.transfer_image or opts.image),
        "command": ["/bin/sh", "-c", fill(opts.command if run else opts.transfer, values,
                                          "--command" if run else "--transfer")],
        "env": [{"name": f"MILP_{k.upper()}", "value": v} for k, v in values.items()],
    }
    if run and t.gpu_resource:
        container["resources"] = {"limits": {t.gpu_resource: "1"}}
    parts: dict[str, Any] = {"container": container,
                             "nodeSelector": {opts.node_label: t.node_label,
                                              **(opts.gpu_selector() if run else {})}}
    if opts.tolerations:
        parts["tolerations"] = opts.parsed_tolerations()
    claim = t.claim or opts.checkpoint_claim
    if claim:
        if not SUBDOMAIN.fullmatch(claim):
            raise InputError("--site-map", f"{claim!r} is not a PersistentVolumeClaim name",
                             field=f"sites.{step.site}.claim")
        container["volumeMounts"] = [{"name": VOLUME, "mountPath": claim_mount(t)}]
        parts["volumes"] = [{"name": VOLUME, "persistentVolumeClaim": {"claimName": claim}}]
    return parts


def manifest(step: Step, sched: Schedule, name: str, after: str, sites: SiteMap,
             opts: PodOptions) -> dict:
    """The Job object of one step, as a plain dict (apiVersion batch/v1, kind Job)."""
    parts = pod_parts(step, sites, opts)
    own = labels(sched, step)
    metadata: dict[str, Any] = {"name": name, "labels": own,
                                "annotations": annotations(step, after)}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    pod: dict[str, Any] = {"restartPolicy": "Never", "nodeSelector": parts["nodeSelector"]}
    if "tolerations" in parts:
        pod["tolerations"] = parts["tolerations"]
    pod["containers"] = [parts["container"]]
    if "volumes" in parts:
        pod["volumes"] = parts["volumes"]
    spec: dict[str, Any] = {"suspend": True, "backoffLimit": 0,
                            "activeDeadlineSeconds": deadline_s(step, opts.margin)}
    if opts.ttl is not None:
        spec["ttlSecondsAfterFinished"] = opts.ttl
    spec["template"] = {"metadata": {"labels": dict(own)}, "spec": pod}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def export_kubernetes(sched: Schedule, out: Path, sites: SiteMap,
                      opts: PodOptions = PodOptions()) -> int:
    """Write one Job manifest per step, ``kustomization.yaml``, ``steps.csv`` and
    ``steps.json`` into ``out`` (a staging folder). Returns the number of manifests."""
    opts.check()
    names = job_names(sched)
    jobs = out / "jobs"
    jobs.mkdir(parents=True)
    files = []
    for s in sched.steps:
        doc = manifest(s, sched, names[s.name], names.get(s.after, ""), sites, opts)
        path = jobs / f"{names[s.name]}.yaml"
        path.write_text(dump(doc), encoding="utf-8")
        files.append(f"jobs/{path.name}")
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": files}
    (out / "kustomization.yaml").write_text(dump(kustomization), encoding="utf-8")
    write_steps(out, sched)
    return len(sched.steps)
