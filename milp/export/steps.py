"""A plan as a flat list of steps: what every exporter (CSV, JSON, Slurm, Kubernetes, Argo)
writes out.

Each job's chain becomes numbered steps: ``run`` (hold a GPU at a site from ``begin`` to ``end``:
load the checkpoint for its first ``restore_s`` seconds, then compute) and ``transfer`` (send the
checkpoint ``src``→``dst``; ``seconds`` is the transfer time; the next run loads it). Every
step after a job's first depends on the step before it. Times are absolute (timezone-aware); ``--shift-to`` moves a plan
made for another day to the day it will run.

A :class:`Schedule` is the steps of one plan from one start, with the **plan id** that names
them in a scheduler (:func:`plan_id`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from milp.errors import InputError
from milp.plan import Plan, Run

#: Columns of ``steps.csv`` and fields of each step in ``steps.json`` (same names, same order).
STEP_COLUMNS = ["job", "step", "kind", "name", "after", "site", "dst", "begin", "end",
                "start_s", "end_s", "seconds", "restore_s", "checkpoint_gb", "checkpoint_bytes",
                "disruption_s"]
#: ``steps.json``: its ``schema`` marker and version (``milp/schemas/steps-v1.schema.json``).
STEPS_SCHEMA = "milp-steps"
STEPS_VERSION = 1
#: A plan id: lowercase letters, digits and '-', at most 40 characters, alphanumeric at both
#: ends, so that it fits in Slurm job names, Kubernetes names and label values as it is.
PLAN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class Step:
    """One schedulable unit of a plan.

    ``site`` is where it runs (for a transfer: the source); ``dst`` the destination of a
    transfer (``""`` for a run). ``seconds`` is the planned length: compute seconds of a run,
    transfer seconds of a transfer. ``name`` is unique in the plan; ``after`` names the step this
    one must follow (``""`` for a job's first step).
    """

    job: str
    index: int
    kind: str                 #: "run" or "transfer"
    site: str
    dst: str
    begin: datetime
    start_s: float            #: seconds from the plan's (possibly shifted) start
    end_s: float
    checkpoint_gb: float      #: 0 for a run
    disruption_s: float       #: transfer + load + downtime (s); 0 for a run
    name: str
    after: str
    restore_s: float = 0.0    #: a run's first seconds loading the checkpoint; 0 for a transfer

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    @property
    def end(self) -> datetime:
        return self.begin + timedelta(seconds=self.seconds)

    @property
    def begin_unix(self) -> int:
        """The planned start as whole Unix seconds, rounded up: what a scheduler that counts in
        seconds is given, so that a step never starts before its planned time."""
        return math.ceil(self.begin.timestamp())

    @property
    def checkpoint_bytes(self) -> int:
        return round(self.checkpoint_gb * 1e9)


def iso(t: datetime) -> str:
    """ISO 8601 with offset, rounded to the millisecond; milliseconds only when the time has
    a fraction of a second left."""
    t = t.replace(microsecond=0) + timedelta(milliseconds=round(t.microsecond / 1000))
    return t.isoformat(timespec="milliseconds" if t.microsecond else "seconds")


def ms(seconds: float) -> float:
    """Seconds rounded to the millisecond, as every interchange file writes them (a plan's
    times come from solvers with float noise: 479.9999999999968 is 480.0)."""
    return round(float(seconds), 3) + 0.0


def plan_start(plan: Plan, shift_to: str | None = None) -> datetime:
    """The time of the plan's second 0: its own start, or ``shift_to`` (ISO 8601 with offset)."""
    text = shift_to if shift_to is not None else plan.start
    source, fld = ("--shift-to", None) if shift_to is not None else ("plan.json", "start")
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(source, f"{text!r} is not an ISO 8601 time", field=fld) from None
    if start.tzinfo is None:
        raise InputError(source, f"{text!r} has no UTC offset (write e.g. "
                         f"{start.isoformat()}+00:00)", field=fld)
    return start


def plan_steps(plan: Plan, shift_to: str | None = None) -> list[Step]:
    """Every step of every job, in each job's order (jobs in plan order). Lost runs (history of
    an executed plan, ``milp replay``) are not steps to schedule and are left out."""
    start = plan_start(plan, shift_to)
    steps: list[Step] = []
    for jp in plan.jobs:
        after = ""
        for k, s in enumerate(x for x in jp.steps if not getattr(x, "lost", False)):
            run = isinstance(s, Run)
            kind = "run" if run else "transfer"
            name = f"{jp.job}.{k}.{kind}"
            end_s = s.end_s if run else s.start_s + s.transfer_s
            try:
                begin = start + timedelta(seconds=s.start_s)
                begin + timedelta(seconds=end_s - s.start_s)
            except OverflowError:
                source, fld = ("--shift-to", None) if shift_to is not None else \
                    ("plan.json", "start")
                raise InputError(source, f"job {jp.job!r} step {k} would end after year 9999 "
                                 f"({start.isoformat()} + {end_s:g} s), which no clock "
                                 f"shows", field=fld) from None
            steps.append(Step(
                job=jp.job, index=k, kind=kind, site=s.site if run else s.src,
                dst="" if run else s.dst, begin=begin,
                start_s=s.start_s, end_s=end_s, checkpoint_gb=0.0 if run else s.checkpoint_gb,
                disruption_s=0.0 if run else s.disruption_s, name=name, after=after,
                restore_s=s.restore_s if run else 0.0))
            after = name
    return steps


def step_record(s: Step) -> dict[str, Any]:
    """One step as a flat record, fields :data:`STEP_COLUMNS` (times ISO 8601): a row of
    ``steps.csv``, an object of ``steps.json`` (where an empty ``after``/``dst`` is null).
    Times and seconds are rounded to the millisecond (:func:`ms`)."""
    return {"job": s.job, "step": s.index, "kind": s.kind, "name": s.name, "after": s.after,
            "site": s.site, "dst": s.dst, "begin": iso(s.begin),
            "end": iso(s.end), "start_s": ms(s.start_s), "end_s": ms(s.end_s),
            "seconds": ms(s.seconds), "restore_s": ms(s.restore_s),
            "checkpoint_gb": s.checkpoint_gb, "checkpoint_bytes": s.checkpoint_bytes,
            "disruption_s": ms(s.disruption_s)}


def steps_frame(steps: list[Step]) -> pd.DataFrame:
    """``steps.csv``: one row per step, columns :data:`STEP_COLUMNS` (times ISO 8601)."""
    return pd.DataFrame([step_record(s) for s in steps], columns=STEP_COLUMNS)


@dataclass(frozen=True)
class Schedule:
    """The steps of one plan run from one start, and the id that names them in a scheduler."""

    plan: Plan
    start: datetime           #: the time of the plan's second 0 (its own start or --shift-to)
    steps: tuple[Step, ...]
    plan_id: str


def schedule(plan: Plan, shift_to: str | None = None, plan_id: str | None = None) -> Schedule:
    """The plan's steps from its start (or ``shift_to``), named by ``plan_id`` (``--plan-id``,
    checked) or by the id derived from them (:func:`plan_id`)."""
    steps = tuple(plan_steps(plan, shift_to))
    if plan_id is None:
        plan_id = derived_plan_id(plan, steps)
    elif not PLAN_ID.fullmatch(plan_id):
        raise InputError("--plan-id", f"{plan_id!r} is not a plan id (lowercase letters, digits "
                         f"and '-', at most 40, starting and ending with a letter or digit)")
    return Schedule(plan=plan, start=plan_start(plan, shift_to), steps=steps, plan_id=plan_id)


def derived_plan_id(plan: Plan, steps: tuple[Step, ...] | list[Step]) -> str:
    """``<instance>-<hash>``: the instance's name (lowercase, other characters as '-', at most
    20) and the first 8 hex digits of the SHA-256 of the instance, policy and every step's
    record (:func:`step_record`: sites, absolute times, seconds, bytes). The same plan from the
    same start always gets the same id; another plan, or the same one shifted to another day,
    gets another."""
    text = json.dumps({"instance": plan.instance, "policy": plan.policy,
                       "steps": [step_record(s) for s in steps]},
                      sort_keys=True, ensure_ascii=True, allow_nan=False)
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()[:8]
    name = re.sub(r"[^a-z0-9]+", "-", plan.instance.lower()).strip("-")[:20].strip("-")
    return f"{name or 'plan'}-{digest}"


def steps_document(sched: Schedule) -> dict[str, Any]:
    """``steps.json``: the plan's names, its start and id, and one object per step (fields of
    :func:`step_record`; ``after`` and ``dst`` null where ``steps.csv`` leaves them empty).
    Follows ``milp/schemas/steps-v1.schema.json``."""
    def obj(s: Step) -> dict[str, Any]:
        r = step_record(s)
        return r | {"after": r["after"] or None, "dst": r["dst"] or None}
    return {"schema": STEPS_SCHEMA, "version": STEPS_VERSION, "plan_id": sched.plan_id,
            "instance": sched.plan.instance, "policy": sched.plan.policy,
            "start": iso(sched.start), "steps": [obj(s) for s in sched.steps]}


def steps_json(sched: Schedule) -> str:
    return json.dumps(steps_document(sched), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_steps(out: Path, sched: Schedule) -> None:
    """``steps.csv`` and ``steps.json`` into an export folder (a staging folder)."""
    (out / "steps.csv").write_text(steps_frame(list(sched.steps)).to_csv(index=False),
                                   encoding="utf-8")
    (out / "steps.json").write_text(steps_json(sched), encoding="utf-8")


def totals(steps: list[Step] | tuple[Step, ...]) -> dict[str, float]:
    """Counts and planned seconds per kind: what an export must carry over unchanged."""
    runs = [s for s in steps if s.kind == "run"]
    moves = [s for s in steps if s.kind == "transfer"]
    return {"run_steps": len(runs), "transfer_steps": len(moves),
            "compute_s": sum(s.seconds for s in runs),
            "transfer_s": sum(s.seconds for s in moves)}


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label made from ``text``: lowercase alphanumerics and '-', at most ``limit``
    characters; a short hash keeps distinct inputs distinct when characters had to change."""
    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if clean == text and len(clean) <= limit:
        return clean
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return f"{clean[:limit - 7].rstrip('-')}-{digest}"
