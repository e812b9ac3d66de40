"""The plan every policy produces: for each job, a chain of runs and migrations.

A :class:`Plan` is what a policy (greedy or MILP) hands to the evaluator and to exporters. It says
nothing about metrics: those come from :func:`milp.evaluate.evaluate` only.

Times are seconds from the instance start. Between two steps a job waits where it is; before its
first migration it is at its origin. ``plan.json`` follows ``schemas/plan-v3.schema.json``
(version 1 and 2 files, which hold no restores, are read too);
``schedule.csv`` is a derived, per-slot view (one row per job × slot).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Union

import jsonschema
import numpy as np
import pandas as pd

from milp.errors import InputError
from milp.files import write_atomic
from milp.limits import MAX_JOBS, check_count

if TYPE_CHECKING:
    from milp.instance import Instance

SCHEMA_NAME = "milp-plan"
#: Columns of :meth:`Plan.to_frame`.
FRAME_COLUMNS = ("job", "step", "kind", "site", "src", "dst", "start", "end", "start_s",
                 "end_s", "restore_s", "checkpoint_gb", "transfer_s", "disruption_s", "lost")
SCHEMA_VERSION = 3
#: Oldest plan.json version this milp reads (older ones are refused with a clear message).
FIRST_VERSION = 1


@dataclass(frozen=True)
class Run:
    """The job holds one GPU of ``site`` during ``[start_s, end_s)`` (seconds): it loads its
    checkpoint for the first ``restore_s`` seconds (power drawn, no work), then computes.

    ``lost``: the work of this run was undone by a fault before the next checkpoint (only in
    plans ``milp replay`` executed); it held the GPU and drew power, but did no work.
    """

    site: str
    start_s: float
    end_s: float
    lost: bool = False
    restore_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def work_s(self) -> float:
        """Seconds of computing (the run after its restore)."""
        return self.end_s - self.start_s - self.restore_s


@dataclass(frozen=True)
class Migration:
    """The job stops at ``start_s`` and moves ``src``→``dst``.

    Its checkpoint (GB) is in flight during ``[start_s, start_s + transfer_s)``; the job can run
    at ``dst`` from ``start_s + disruption_s`` (transfer + load + downtime, seconds).
    """

    src: str
    dst: str
    start_s: float
    checkpoint_gb: float
    transfer_s: float
    disruption_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.disruption_s


Step = Union[Run, Migration]


@dataclass(frozen=True)
class JobPlan:
    job: str
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A whole plan: which instance it is for, which policy made it, and one chain per job."""

    instance: str
    start: str                         #: ISO 8601 time of second 0
    slot_minutes: float
    policy: str
    jobs: tuple[JobPlan, ...]
    info: Mapping[str, Any] = field(default_factory=dict)

    def job(self, job_id: str) -> JobPlan | None:
        """The chain of job ``job_id`` (its first, if the plan lists it twice), or ``None``."""
        return self._by_job.get(job_id)

    @cached_property
    def _by_job(self) -> dict[str, JobPlan]:
        """Job id → chain, built once: looking every job up stays linear in the plan's size."""
        index: dict[str, JobPlan] = {}
        for jp in self.jobs:
            index.setdefault(jp.job, jp)
        return index

    # ---- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "instance": self.instance,
            "start": self.start, "slot_minutes": self.slot_minutes, "policy": self.policy,
            "info": dict(self.info),
            "jobs": [{"job": jp.job, "steps": [_step_dict(s) for s in jp.steps]}
                     for jp in self.jobs],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan.json") -> "Plan":
        """Build a plan from parsed JSON, refusing anything the schema does not allow."""
        if isinstance(data, dict) and data.get("schema") == SCHEMA_NAME:
            version = data.get("version")
            if type(version) is not int:
                raise InputError(source, f"plan schema version must be a whole number, got "
                                 f"{version!r}", field="version")
            if version > SCHEMA_VERSION:
                raise InputError(source, f"plan schema version {version} is newer than this milp "
                                 f"reads ({SCHEMA_VERSION}); upgrade milp", field="version")
            if version < FIRST_VERSION:
                raise InputError(source, f"plan schema version {version} predates the first "
                                 f"published version ({FIRST_VERSION}); re-plan with this milp",
                                 field="version")
        if isinstance(data, dict) and isinstance(data.get("jobs"), list):
            check_count(len(data["jobs"]), MAX_JOBS, "jobs", source, field="jobs")
        version = data.get("version") if isinstance(data, dict) else None
        known = type(version) is int and FIRST_VERSION <= version <= SCHEMA_VERSION
        validator = _validator(version if known else SCHEMA_VERSION)
        error = jsonschema.exceptions.best_match(map(_own_branch, validator.iter_errors(data)))
        if error is not None:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise InputError(source, error.message, field=where.lstrip(".") or None)
        for key in ("instance", "policy"):
            _printable(data[key], source, key)
        for i, jp in enumerate(data["jobs"]):
            _printable(jp["job"], source, f"jobs[{i}].job")
            for k, step in enumerate(jp["steps"]):
                for key, value in step.items():
                    if isinstance(value, float) and not math.isfinite(value):
                        raise InputError(source, f"{value} is not a finite number",
                                         field=f"jobs[{i}].steps[{k}].{key}")
                    if isinstance(value, str):
                        _printable(value, source, f"jobs[{i}].steps[{k}].{key}")
        return cls(
            instance=data["instance"], start=data["start"], slot_minutes=data["slot_minutes"],
            policy=data["policy"], info=data.get("info", {}),
            jobs=tuple(JobPlan(jp["job"], tuple(_step(s) for s in jp["steps"]))
                       for jp in data["jobs"]))

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, self.to_json())

    def to_frame(self) -> pd.DataFrame:
        """One row per step, jobs in plan order, columns :data:`FRAME_COLUMNS`: ``job``,
        ``step`` (position in the job's chain, from 0), ``kind`` (``run`` or ``migration``),
        ``site`` (a run's), ``src`` and ``dst`` (a migration's), ``start`` and ``end``
        (timezone-aware times: a run's end, a migration's start + disruption), ``start_s`` and
        ``end_s`` (seconds from the plan's start), ``restore_s`` (a run's first seconds loading
        its checkpoint), ``checkpoint_gb``, ``transfer_s`` and ``disruption_s`` (a
        migration's), ``lost`` (a run whose work a fault undid, ``milp replay``)."""
        origin = pd.Timestamp(self.start)
        rows = []
        for jp in self.jobs:
            for k, s in enumerate(jp.steps):
                run = isinstance(s, Run)
                rows.append({
                    "job": jp.job, "step": k, "kind": "run" if run else "migration",
                    "site": s.site if run else None, "src": None if run else s.src,
                    "dst": None if run else s.dst, "start_s": s.start_s, "end_s": s.end_s,
                    "restore_s": s.restore_s if run else 0.0,
                    "checkpoint_gb": 0.0 if run else s.checkpoint_gb,
                    "transfer_s": 0.0 if run else s.transfer_s,
                    "disruption_s": 0.0 if run else s.disruption_s,
                    "lost": bool(run and s.lost)})
        df = pd.DataFrame(rows, columns=[c for c in FRAME_COLUMNS if c not in ("start", "end")])
        df["start"] = origin + pd.to_timedelta(df["start_s"].astype(float), unit="s")
        df["end"] = origin + pd.to_timedelta(df["end_s"].astype(float), unit="s")
        return df[list(FRAME_COLUMNS)]

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        """Read and check a plan.json (schema, size policy, printable names)."""
        from milp.files import read_json

        return cls.from_dict(read_json(path, "plan"), str(path))


def check_chains(plan: Plan, source: str = "plan.json") -> None:
    """Refuse, with one line naming the job and step, a plan that no instance can make valid:
    what can be checked without the instance, before a plan from elsewhere is exported.

    Each job is listed once; its steps are in time order (a step starts when the previous one
    has ended: a run at its end, a migration when its transfer is done, as the evaluator
    sequences them); a run ends after it starts and its restore fits in it; a migration's
    disruption covers its transfer and it leaves the site the job is at (the site of its
    previous run or migration), for another site; a run is at the site the job is at. Times
    are finite seconds from 0 to 1e9 and sizes finite (the schema's bounds, which
    :meth:`Plan.from_dict` checks). The evaluator checks the rest against an instance."""
    from milp.evaluate import EPS_S

    first: dict[str, int] = {}
    for i, jp in enumerate(plan.jobs):
        if jp.job in first:
            raise InputError(source, f"job {jp.job!r} is listed twice (also jobs[{first[jp.job]}])",
                             field=f"jobs[{i}].job")
        first[jp.job] = i
        here: str | None = None       # the site the job is at, once a step has said it
        free = 0.0                    # when the previous step has ended
        for k, s in enumerate(jp.steps):
            where = f"jobs[{i}].steps[{k}]"
            if s.start_s < free - EPS_S:
                raise InputError(source, f"job {jp.job!r} step {k} starts at {s.start_s:g} s, "
                                 f"before its previous step ends ({free:g} s): steps must be in "
                                 f"time order", field=f"{where}.start_s")
            if isinstance(s, Run):
                if s.end_s <= s.start_s:
                    raise InputError(source, f"job {jp.job!r} step {k} is a run that ends at "
                                     f"{s.end_s:g} s, not after it starts ({s.start_s:g} s)",
                                     field=f"{where}.end_s")
                if s.restore_s > s.duration_s + EPS_S:
                    raise InputError(source, f"job {jp.job!r} step {k}: restore of "
                                     f"{s.restore_s:g} s is longer than the run "
                                     f"({s.duration_s:g} s)", field=f"{where}.restore_s")
                if here is not None and s.site != here:
                    raise InputError(source, f"job {jp.job!r} step {k} runs at {s.site!r}, but "
                                     f"the job is at {here!r} (no migration took it there)",
                                     field=f"{where}.site")
                here, free = s.site, s.end_s
            else:
                if s.src == s.dst:
                    raise InputError(source, f"job {jp.job!r} step {k} migrates from {s.src!r} "
                                     f"to itself", field=f"{where}.dst")
                if here is not None and s.src != here:
                    raise InputError(source, f"job {jp.job!r} step {k} migrates from {s.src!r}, "
                                     f"but the job is at {here!r}", field=f"{where}.src")
                if s.disruption_s < s.transfer_s - EPS_S:
                    raise InputError(source, f"job {jp.job!r} step {k}: disruption of "
                                     f"{s.disruption_s:g} s is shorter than its transfer "
                                     f"({s.transfer_s:g} s), which it includes",
                                     field=f"{where}.disruption_s")
                here, free = s.dst, s.start_s + s.transfer_s


def check_matches(plan: Plan, inst: Instance, source: str = "plan.json") -> None:
    """Refuse, with one line naming the field, a plan made for another instance: its
    ``instance`` name, its ``start`` (as an instant) or its ``slot_minutes`` differ from the
    instance's. (A plan that matches but names an unknown job or site is the evaluator's to
    report, or :func:`check_names`'.)"""
    from datetime import datetime

    if plan.instance != inst.name:
        raise InputError(source, f"is a plan for instance {plan.instance!r}, not "
                         f"{inst.name!r}", field="instance")
    try:
        start = datetime.fromisoformat(plan.start)
    except ValueError:
        start = None
    if start is None or start.tzinfo is None or start != inst.start:
        raise InputError(source, f"the plan starts at {plan.start}, instance {inst.name!r} at "
                         f"{inst.start.isoformat()}", field="start")
    if abs(plan.slot_minutes - inst.slot_minutes) > 1e-9:
        raise InputError(source, f"the plan has {plan.slot_minutes:g}-minute slots, instance "
                         f"{inst.name!r} {inst.slot_minutes:g}-minute ones",
                         field="slot_minutes")


def check_names(plan: Plan, inst: Instance, source: str = "plan.json") -> None:
    """Refuse a plan that names a job or a site ``inst`` does not have (a plan of another
    instance), naming the first such job or step."""
    for i, jp in enumerate(plan.jobs):
        if jp.job not in inst.job_index_map:
            raise InputError(source, f"job {jp.job!r} is not a job of instance {inst.name!r}",
                             field=f"jobs[{i}].job")
        for k, s in enumerate(jp.steps):
            for site in (s.site,) if isinstance(s, Run) else (s.src, s.dst):
                if site not in inst.site_index_map:
                    raise InputError(source, f"site {site!r} is not a site of instance "
                                     f"{inst.name!r}", field=f"jobs[{i}].steps[{k}]")


def _printable(text: str, source: str, where: str) -> None:
    """Names end up in scripts, manifests and messages: no line breaks or control characters."""
    if not text.isprintable():
        raise InputError(source, f"{text!r} is not printable text (no line breaks or control "
                         f"characters)", field=where)


def _own_branch(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """A step that fails ``oneOf`` (run | migration) is judged by the branch of its own
    ``kind``: a run with a wrong field says so, not that ``kind`` should be 'migration'."""
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        branch = {"run": 0, "migration": 1}.get(error.instance.get("kind"))
        own = [e for e in error.context if e.relative_schema_path[0] == branch]
        if own:
            return jsonschema.exceptions.best_match(own)
    return error


def _step_dict(step: Step) -> dict[str, Any]:
    if isinstance(step, Run):
        d = {"kind": "run", "site": step.site, "start_s": step.start_s, "end_s": step.end_s}
        if step.restore_s:
            d["restore_s"] = step.restore_s
        return d | {"lost": True} if step.lost else d
    return {"kind": "migration", "src": step.src, "dst": step.dst, "start_s": step.start_s,
            "checkpoint_gb": step.checkpoint_gb, "transfer_s": step.transfer_s,
            "disruption_s": step.disruption_s}


def _step(d: dict[str, Any]) -> Step:
    if d["kind"] == "run":
        return Run(d["site"], d["start_s"], d["end_s"], d.get("lost", False),
                   d.get("restore_s", 0.0))
    return Migration(d["src"], d["dst"], d["start_s"], d["checkpoint_gb"], d["transfer_s"],
                     d["disruption_s"])


@cache
def schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema of plan.json version ``version`` (default: the one this milp writes)."""
    text = resources.files("milp").joinpath(f"schemas/plan-v{version}.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


@cache
def _validator(version: int = SCHEMA_VERSION) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema(version))


# ---- schedule.csv ------------------------------------------------------------------------

SCHEDULE_COLUMNS = ["job", "slot", "time", "site", "state", "run_s", "migration_s"]


def schedule_frame(plan: Plan, inst) -> pd.DataFrame:
    """One row per job × slot: where the job is at the slot's end and what it does in the slot.

    ``state`` is ``pending`` (before release), ``migrating`` (a migration overlaps the slot),
    ``running`` (it runs in the slot), ``waiting`` (released, more steps to come) or ``ended``
    (after its last step). ``run_s`` / ``migration_s``: seconds of the slot spent on each (to the
    millisecond).
    Jobs of the instance missing from the plan appear as never run.
    """
    bounds = np.arange(inst.n_slots + 1) * inst.slot_s
    times = [t.isoformat() for t in inst.slot_times()]
    frames = []
    for j, job in enumerate(inst.jobs):
        jp = plan.job(job)
        steps = jp.steps if jp else ()
        run_s = np.zeros(inst.n_slots)
        mig_s = np.zeros(inst.n_slots)
        site_change = []  # (time the job is at dst, dst)
        for s in steps:
            end = s.end_s
            overlap = np.clip(np.minimum(bounds[1:], end) - np.maximum(bounds[:-1], s.start_s),
                              0, None)
            if isinstance(s, Run):
                run_s += overlap
            else:
                mig_s += overlap
                site_change.append((s.start_s, s.dst))
        last = max((s.end_s for s in steps), default=np.inf)
        site = []
        for k in range(inst.n_slots):
            here = inst.sites[inst.origin[j]]
            for t0, dst in site_change:
                if t0 < bounds[k + 1]:
                    here = dst
            site.append(here)
        state = np.where(mig_s > 0, "migrating", np.where(run_s > 0, "running", "waiting"))
        state = np.where(bounds[:-1] >= last, "ended", state)
        state = np.where(bounds[1:] <= inst.release_s[j], "pending", state)
        frames.append(pd.DataFrame({
            "job": job, "slot": np.arange(inst.n_slots), "time": times, "site": site,
            "state": state, "run_s": np.round(run_s, 3), "migration_s": np.round(mig_s, 3)}))
    return pd.concat(frames, ignore_index=True)[SCHEDULE_COLUMNS]


def save_schedule(plan: Plan, inst, path: str | Path) -> Path:
    return write_atomic(path, schedule_frame(plan, inst).to_csv(index=False))
