"""A plan as a flat list of steps: what every exporter (CSV, Slurm, Kubernetes) writes out.

Each job's chain becomes numbered steps: ``run`` (hold a GPU at a site from ``begin`` to ``end``:
load the checkpoint for its first ``restore_s`` seconds, then compute) and ``transfer`` (send the
checkpoint ``src``→``dst``; ``seconds`` is the transfer time; the next run loads it). Every step after a job's first
depends on the step before it. Times are absolute (timezone-aware); ``--shift-to`` moves a plan
made for another day to the day it will run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from milp.errors import InputError
from milp.plan import Plan, Run

#: Columns of ``steps.csv`` (``milp export csv``).
STEP_COLUMNS = ["job", "step", "kind", "name", "after", "site", "dst", "begin", "end",
                "start_s", "end_s", "seconds", "restore_s", "checkpoint_gb", "checkpoint_bytes",
                "disruption_s"]


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
    def checkpoint_bytes(self) -> int:
        return round(self.checkpoint_gb * 1e9)


def iso(t: datetime) -> str:
    """ISO 8601 with offset; milliseconds only when the time has a fraction of a second."""
    return t.isoformat(timespec="milliseconds" if t.microsecond else "seconds")


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
            steps.append(Step(
                job=jp.job, index=k, kind=kind, site=s.site if run else s.src,
                dst="" if run else s.dst, begin=start + timedelta(seconds=s.start_s),
                start_s=s.start_s, end_s=end_s, checkpoint_gb=0.0 if run else s.checkpoint_gb,
                disruption_s=0.0 if run else s.disruption_s, name=name, after=after,
                restore_s=s.restore_s if run else 0.0))
            after = name
    return steps


def steps_frame(steps: list[Step]) -> pd.DataFrame:
    """``steps.csv``: one row per step, columns :data:`STEP_COLUMNS` (times ISO 8601)."""
    rows = [{"job": s.job, "step": s.index, "kind": s.kind, "name": s.name, "after": s.after,
             "site": s.site, "dst": s.dst, "begin": iso(s.begin),
             "end": iso(s.end), "start_s": s.start_s, "end_s": s.end_s,
             "seconds": round(s.seconds, 6), "restore_s": round(s.restore_s, 6),
             "checkpoint_gb": s.checkpoint_gb,
             "checkpoint_bytes": s.checkpoint_bytes, "disruption_s": s.disruption_s}
            for s in steps]
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def totals(steps: list[Step]) -> dict[str, float]:
    """Counts and planned seconds per kind: what an export must carry over unchanged."""
    runs = [s for s in steps if s.kind == "run"]
    moves = [s for s in steps if s.kind == "transfer"]
    return {"run_steps": len(runs), "transfer_steps": len(moves),
            "compute_s": sum(s.seconds for s in runs),
            "transfer_s": sum(s.seconds for s in moves)}


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label made from ``text``: lowercase alphanumerics and '-', at most ``limit``
    characters; a short hash keeps distinct inputs distinct when characters had to change."""
    import hashlib

    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if clean == text and len(clean) <= limit:
        return clean
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return f"{clean[:limit - 7].rstrip('-')}-{digest}"
