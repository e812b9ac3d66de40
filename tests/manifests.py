"""Validate exported manifests against published schemas, offline.

- Kubernetes kinds (batch/v1 Job): ``kubernetes-validate`` in strict mode, against the
  OpenAPI schemas it ships for the oldest and the newest Kubernetes release it knows
  (:data:`KUBERNETES_VERSIONS`): unknown fields, wrong types, missing required fields fail.
- Argo Workflows: Argo's own JSON schema (``tests/schemas/``, releases :data:`ARGO_RELEASES`),
  with ``additionalProperties`` closed wherever an object lists its properties, plus the
  checks Argo's controller makes before it runs a Workflow that a schema cannot express
  (names, references, dependencies, cycles: :func:`argo_semantics`).

Each function raises :class:`ManifestError` naming the document and the path of the problem.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent / "schemas"
ARGO_RELEASES = ("3.7.18", "4.1.2")
#: Argo's names of templates and DAG tasks (workflow/validate/validate.go).
ARGO_FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
ARGO_PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


class ManifestError(AssertionError):
    """A manifest the API (or Argo's controller) would refuse."""


def kubernetes_versions() -> tuple[str, str]:
    """The oldest and the newest Kubernetes release kubernetes-validate has schemas for."""
    from kubernetes_validate.utils import all_versions

    versions = all_versions()
    return versions[0], versions[-1]


def validate_kubernetes(doc: dict, where: str = "manifest") -> None:
    """A core Kubernetes object (here: batch/v1 Job) against the published schemas of the
    oldest and newest release known, strictly; plus the names and labels the schemas leave to
    the API server (DNS-1123 name, label keys and values)."""
    import kubernetes_validate

    for version in kubernetes_versions():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise ManifestError(f"{where}: Kubernetes {version}: {_path(e.absolute_path)}: "
                                f"{e.message}") from None
    meta = doc.get("metadata", {})
    if not DNS_LABEL.fullmatch(meta.get("name", "")):
        raise ManifestError(f"{where}: metadata.name {meta.get('name')!r} is not a DNS-1123 "
                            f"label (a Job's name becomes a pod label value)")
    _labels(meta, f"{where}: metadata")
    template = doc.get("spec", {}).get("template", {}).get("metadata", {})
    _labels(template, f"{where}: spec.template.metadata")


def _labels(meta: dict, where: str) -> None:
    for key, value in meta.get("labels", {}).items():
        if not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(value):
            raise ManifestError(f"{where}: label {key}={value!r} is not valid")
    for key in meta.get("annotations", {}):
        if not LABEL_KEY.fullmatch(key):
            raise ManifestError(f"{where}: annotation key {key!r} is not valid")


def _closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that lists
    ``properties`` and says nothing about other properties."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and "x-kubernetes-preserve-unknown-fields" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(x) for x in schema]
    return schema


@cache
def argo_validator(release: str) -> jsonschema.protocols.Validator:
    """A validator of Argo ``Workflow`` objects from Argo's published JSON schema."""
    schema = json.loads((SCHEMAS / f"argo-workflows-v{release}.schema.json").read_text())
    root = {"$schema": schema["$schema"], "definitions": _closed(schema["definitions"]),
            "$ref": "#/definitions/io.argoproj.workflow.v1alpha1.Workflow"}
    cls = jsonschema.validators.validator_for(root)
    cls.check_schema(root)
    return cls(root)


def validate_argo(doc: dict, where: str = "workflow") -> None:
    """An Argo Workflow against the schemas of :data:`ARGO_RELEASES` and
    :func:`argo_semantics`."""
    for release in ARGO_RELEASES:
        error = jsonschema.exceptions.best_match(argo_validator(release).iter_errors(doc))
        if error is not None:
            raise ManifestError(f"{where}: Argo {release}: {_path(error.absolute_path)}: "
                                f"{error.message}")
    argo_semantics(doc, where)


def argo_semantics(doc: dict, where: str = "workflow") -> None:
    """What Argo's controller checks before running a Workflow (workflow/validate), for the
    features the export uses: a name of at most 63 characters, unique valid template names,
    an existing entrypoint; in each DAG unique valid task names, existing templates and
    dependencies, no cycle, every input parameter of a task's template given; valid labels."""
    meta = doc["metadata"]
    name = meta.get("name", "")
    if not DNS_LABEL.fullmatch(name):
        raise ManifestError(f"{where}: metadata.name {name!r} must be a DNS-1123 label of at "
                            f"most 63 characters")
    _labels(meta, f"{where}: metadata")
    templates = {}
    for t in doc["spec"]["templates"]:
        _field_name(t["name"], f"{where}: template")
        if t["name"] in templates:
            raise ManifestError(f"{where}: template {t['name']!r} is not unique")
        templates[t["name"]] = t
        _labels(t.get("metadata", {}), f"{where}: template {t['name']}.metadata")
    if doc["spec"]["entrypoint"] not in templates:
        raise ManifestError(f"{where}: entrypoint {doc['spec']['entrypoint']!r} is no template")
    for t in templates.values():
        if "dag" not in t:
            continue
        tasks = {}
        for task in t["dag"]["tasks"]:
            _field_name(task["name"], f"{where}: {t['name']} task")
            if task["name"] in tasks:
                raise ManifestError(f"{where}: task {task['name']!r} is not unique")
            tasks[task["name"]] = task
        for task in tasks.values():
            target = templates.get(task["template"])
            if target is None:
                raise ManifestError(f"{where}: task {task['name']!r} runs template "
                                    f"{task['template']!r}, which does not exist")
            for dep in task.get("dependencies", []):
                if dep not in tasks:
                    raise ManifestError(f"{where}: task {task['name']!r} depends on "
                                        f"{dep!r}, which is no task")
            given = {p["name"] for p in task.get("arguments", {}).get("parameters", [])}
            for p in target.get("inputs", {}).get("parameters", []):
                if not ARGO_PARAM_NAME.fullmatch(p["name"]):
                    raise ManifestError(f"{where}: parameter name {p['name']!r} is invalid")
                if p["name"] not in given and "value" not in p and "default" not in p:
                    raise ManifestError(f"{where}: task {task['name']!r} does not give "
                                        f"parameter {p['name']!r} of {target['name']!r}")
        _acyclic(tasks, where)


def _acyclic(tasks: dict[str, dict], where: str) -> None:
    state: dict[str, int] = {}          # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ManifestError(f"{where}: dependency cycle {' -> '.join(path + [name])}")
        state[name] = 1
        for dep in tasks[name].get("dependencies", []):
            visit(dep, path + [name])
        state[name] = 2

    for name in tasks:
        visit(name, [])


def _field_name(name: str, where: str) -> None:
    if len(name) > 128 or not ARGO_FIELD_NAME.fullmatch(name):
        raise ManifestError(f"{where} name {name!r}: alphanumerics and '-', starting with an "
                            f"alphanumeric, at most 128")


def _path(parts) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") \
        or "(top)"


def mutated(doc: dict, path: str | list, value: Any) -> dict:
    """A deep copy of ``doc`` with ``value`` set at ``path``: dotted (``a.b[0].c``) or a list
    of keys and indexes (for keys holding dots)."""
    out = copy.deepcopy(doc)
    keys = path if isinstance(path, list) else [
        int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    node = out
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return out
