"""The state of a day at time ``at``, and re-planning the rest of the horizon from it.

``STATE.json`` (written by ``milp replay``, or by an operator's tooling)::

    {"schema": "milp-state", "version": 1, "instance": "paper-5site",
     "at": "2019-04-21T12:00:00-07:00",
     "down_sites": ["s03-wind"],           # sites without power from now on
     "bandwidth_factor": 0.5,              # links carry this share of their planned Gbps
     "jobs": [{"job": "j0001", "site": "s02-solar", "work_left_h": 1.25,
               "ready": "2019-04-21T12:03:10-07:00"}]}

Each job entry says where the job's checkpoint is (for a checkpoint in flight: its destination),
how much work it still has (GPU hours) and from when it can run there (the arrival of a
checkpoint in flight — its next run loads it first; default ``at``). A job the state does not list is untouched: at its
origin with all its work. ``work_left_h`` 0 means finished.

:func:`replan` cuts the instance at the first slot boundary at or after ``at``
(:func:`remainder`), runs any policy on that remainder and shifts the plan back to the
instance's clock, so it continues the steps already taken.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from milp.errors import InputError
from milp.evaluate import Evaluation, evaluate
from milp.files import read_json, write_atomic
from milp.instance import Instance, read_only
from milp.limits import MAX_BANDWIDTH_FACTOR, MAX_JOBS, check_count
from milp.plan import JobPlan, Migration, Plan, Run

STATE_SCHEMA = "milp-state"
STATE_VERSION = 1


@dataclass(frozen=True)
class JobState:
    """Where one job is (site index), its work left (GPU hours) and when it can run (s)."""

    site: int
    work_left_h: float
    ready_s: float


@dataclass(frozen=True)
class State:
    """The day at ``at_s`` seconds from the instance start."""

    at_s: float
    jobs: dict[int, JobState]                  #: by job index; missing = untouched
    down_sites: frozenset[int] = frozenset()
    bandwidth_factor: float = 1.0

    def to_dict(self, inst: Instance) -> dict[str, Any]:
        def iso(s: float) -> str:
            return inst.time_of(s).isoformat(timespec="milliseconds")
        return {"schema": STATE_SCHEMA, "version": STATE_VERSION, "instance": inst.name,
                "at": iso(self.at_s), "down_sites": [inst.sites[n] for n in
                                                      sorted(self.down_sites)],
                "bandwidth_factor": self.bandwidth_factor,
                "jobs": [{"job": inst.jobs[j], "site": inst.sites[s.site],
                          "work_left_h": round(s.work_left_h, 9), "ready": iso(s.ready_s)}
                         for j, s in sorted(self.jobs.items())]}

    def save(self, inst: Instance, path: str | Path) -> Path:
        return write_atomic(path, json.dumps(self.to_dict(inst), indent=1) + "\n")


def parse_time(inst: Instance, text: str, source: str, fld: str) -> float:
    """Seconds from the instance start of an ISO 8601 time with offset, or of ``<hours>h``."""
    if isinstance(text, str) and text.endswith("h"):
        try:
            hours = float(text[:-1])
        except ValueError:
            hours = math.nan
        if math.isfinite(hours):
            return hours * 3600.0
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(source, f"{text!r} is not an ISO 8601 time or a number of hours like "
                         f"'6.5h'", field=fld) from None
    if t.tzinfo is None:
        raise InputError(source, f"{text!r} has no UTC offset", field=fld)
    return (t - inst.start).total_seconds()


def load_state(inst: Instance, path: str | Path, at: str | None = None) -> State:
    """Read and check ``STATE.json`` against ``inst``; ``at`` (CLI ``--at``) overrides its time."""
    src = str(path)
    data = read_json(path, "state")
    if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
        raise InputError(src, f"not a state file (\"schema\" must be {STATE_SCHEMA!r})",
                         field="schema")
    if type(data.get("version")) is not int or data["version"] != STATE_VERSION:
        raise InputError(src, f"state version {data.get('version')!r} is not one this milp "
                         f"reads ({STATE_VERSION})", field="version")
    unknown = set(data) - {"schema", "version", "instance", "at", "down_sites",
                           "bandwidth_factor", "jobs"}
    if unknown:
        raise InputError(src, "unknown key", field=sorted(unknown)[0])
    if data.get("instance", inst.name) != inst.name:
        raise InputError(src, f"state is for instance {data['instance']!r}, not {inst.name!r}",
                         field="instance")
    when = at if at is not None else data.get("at")
    if when is None:
        raise InputError(src, "no time: give \"at\" or --at", field="at")
    at_s = parse_time(inst, when, "--at" if at is not None else src, "at")
    if not 0 <= at_s < inst.horizon_s:
        raise InputError("--at" if at is not None else src, f"{when} is outside the horizon",
                         field="at")
    if at is not None and "at" in data:
        own = parse_time(inst, data["at"], src, "at")
        if at_s < own:
            raise InputError("--at", f"{at} is before the state's own time {data['at']}: the "
                             f"state does not say where the jobs were then")
    factor = data.get("bandwidth_factor", 1.0)
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool)
            and 0 < factor <= MAX_BANDWIDTH_FACTOR):
        raise InputError(src, f"must be a number > 0 and <= {MAX_BANDWIDTH_FACTOR:g}",
                         field="bandwidth_factor")
    down = data.get("down_sites", [])
    if not isinstance(down, list):
        raise InputError(src, "must be a list of sites", field="down_sites")
    down_idx = frozenset(_site(inst, s, src, f"down_sites[{i}]") for i, s in enumerate(down))
    rows = data.get("jobs", [])
    if not isinstance(rows, list):
        raise InputError(src, "must be a list", field="jobs")
    check_count(len(rows), MAX_JOBS, "jobs", src, field="jobs")
    jobs: dict[int, JobState] = {}
    for i, row in enumerate(rows):
        where = f"jobs[{i}]"
        if not isinstance(row, dict) or set(row) - {"job", "site", "work_left_h", "ready"}:
            raise InputError(src, "must be an object with job, site, work_left_h and "
                             "optionally ready", field=where)
        j = inst.job_index_map.get(row.get("job")) if isinstance(row.get("job"), str) else None
        if j is None:
            raise InputError(src, f"unknown job {row.get('job')!r}", field=f"{where}.job")
        if j in jobs:
            raise InputError(src, f"job {row['job']!r} is listed twice", field=f"{where}.job")
        left = row.get("work_left_h")
        if not (isinstance(left, (int, float)) and not isinstance(left, bool)
                and 0 <= left <= inst.work_h[j] + 1e-9):
            raise InputError(src, f"must be a number from 0 to the job's work "
                             f"({inst.work_h[j]:g} h)", field=f"{where}.work_left_h")
        ready = parse_time(inst, row["ready"], src, f"{where}.ready") if "ready" in row \
            else at_s
        if not math.isfinite(ready):
            raise InputError(src, "must be a time", field=f"{where}.ready")
        jobs[j] = JobState(_site(inst, row.get("site"), src, f"{where}.site"), float(left),
                           max(ready, at_s))
    return State(at_s, jobs, down_idx, float(factor))


def _site(inst: Instance, name: Any, src: str, fld: str) -> int:
    n = inst.site_index_map.get(name) if isinstance(name, str) else None
    if n is None:
        raise InputError(src, f"unknown site {name!r}", field=fld)
    return n


# ---- the remainder of the day -----------------------------------------------------------

@dataclass(frozen=True)
class Remainder:
    """The instance from slot ``offset`` on, as the state leaves it; ``jobs[k]`` is the full
    instance's index of the remainder's job ``k``."""

    inst: Instance
    offset: int
    jobs: tuple[int, ...] = field(default=())
    #: Jobs with work left whose checkpoint is ready only after the last slot starts: they
    #: cannot run again before the horizon ends, so they are not in ``inst`` (full instance's
    #: index → its state). They stay unfinished; :func:`replan`'s callers report them.
    late: dict[int, JobState] = field(default_factory=dict)

    @property
    def offset_s(self) -> float:
        return self.offset * self.inst.slot_s


def remainder(inst: Instance, state: State) -> Remainder:
    """The planning problem left at ``state.at_s``, from the next slot boundary to the end.

    Jobs keep their ids; each starts at its state site with its work left, released at the slot
    where it is ready (and not before its own release). A job that has run or moved resumes
    from its checkpoint: even its first run in the remainder begins with a restore. A deadline already passed, or too close
    to hold the job's release slot, becomes the end of the horizon (the job is late either way;
    the evaluator reports it). A job whose checkpoint is ready only after the last slot starts
    cannot run again today: it is left out, in :attr:`Remainder.late`. Sites down have no GPU and no renewable power; links carry
    ``bandwidth_factor`` of their Gbps.
    """
    offset = math.ceil(state.at_s / inst.slot_s - 1e-9)
    if offset >= inst.n_slots:
        raise InputError("--at", "no slot starts after this time: nothing is left to plan")
    n_slots = inst.n_slots - offset
    keep, origin, release, deadline, work, resumes = [], [], [], [], [], []
    late: dict[int, JobState] = {}
    for j in range(inst.n_jobs):
        s = state.jobs.get(j, JobState(int(inst.origin[j]), float(inst.work_h[j]),
                                       float(inst.release_s[j])))
        if s.work_left_h <= 1e-9:
            continue
        r = max(int(inst.release_slot[j]),
                math.ceil(s.ready_s / inst.slot_s - 1e-9)) - offset
        if r >= n_slots:          # ready after the last slot starts: no slot left to run in
            late[j] = s
            continue
        r = max(r, 0)
        d = int(inst.deadline_slot[j]) - offset
        keep.append(j)
        origin.append(s.site)
        release.append(r)
        deadline.append(d if d > r else n_slots)
        work.append(s.work_left_h)
        resumes.append(bool(inst.from_checkpoint[j]) or s.site != inst.origin[j]
                       or s.work_left_h < inst.work_h[j] - 1e-9)
    down = np.array(sorted(state.down_sites), dtype=int)
    gpus = inst.gpus.copy()
    gpus[down] = 0
    renewable = inst.renewable_kw[:, offset:].copy()
    renewable[down] = 0.0
    idx = np.array(keep, dtype=int)

    sub = replace(
        inst, start=inst.time_of(offset * inst.slot_s), n_slots=n_slots, gpus=read_only(gpus),
        renewable_kw=read_only(renewable),
        carbon_g_per_kwh=read_only(inst.carbon_g_per_kwh[:, offset:])
        if inst.carbon_g_per_kwh is not None else None,
        link_gbps=read_only(inst.link_gbps * state.bandwidth_factor),
        wan_gbps=read_only(inst.wan_gbps * state.bandwidth_factor),
        jobs=tuple(inst.jobs[j] for j in keep), origin=read_only(np.array(origin, dtype=int)),
        release_slot=read_only(np.array(release, dtype=int)),
        deadline_slot=read_only(np.array(deadline, dtype=int)),
        work_h=read_only(np.array(work, dtype=float)), checkpoint_gb=read_only(inst.checkpoint_gb[idx]),
        compute_kw=read_only(inst.compute_kw[idx]), extra={},
        from_checkpoint=read_only(np.array(resumes, dtype=bool)))
    return Remainder(sub, offset, tuple(keep), late)


def shift(plan: Plan, inst: Instance, offset_s: float, policy: str) -> Plan:
    """A remainder's plan on the full instance's clock (every time + ``offset_s``)."""
    def move(s):
        if isinstance(s, Run):
            return Run(s.site, s.start_s + offset_s, s.end_s + offset_s, s.lost, s.restore_s)
        return Migration(s.src, s.dst, s.start_s + offset_s, s.checkpoint_gb, s.transfer_s,
                         s.disruption_s)
    return Plan(instance=inst.name, start=inst.start.isoformat(), slot_minutes=inst.slot_minutes,
                policy=policy, info=dict(plan.info),
                jobs=tuple(JobPlan(jp.job, tuple(move(s) for s in jp.steps))
                           for jp in plan.jobs))


def plan_remainder(rest: Remainder, policy: str, options: Mapping[str, Any] | None = None,
                   progress: Callable[[dict], None] | None = None) -> Plan:
    """Run ``policy`` (a greedy name or ``milp``) on a remainder; the plan is on its clock.
    ``options``: the MILP's (:data:`milp.run.DEFAULTS` for those not given; ``elastic`` is
    always on here); ``progress`` hears the MILP's progress events.

    The MILP runs elastic: after a fault, some deadlines may no longer be reachable, and the
    re-plan must still say what it can do for every job. Its greedy seeds may miss deadlines
    there, so they cannot warm-start it; they stay candidates instead, and the evaluator picks
    the best (least unfinished work, then least grid energy): a MILP re-plan is never worse
    than its seeds.
    """
    from milp.policies import POLICIES

    if rest.inst.n_jobs == 0:
        return Plan(instance=rest.inst.name, start=rest.inst.start.isoformat(),
                    slot_minutes=rest.inst.slot_minutes, policy=policy, jobs=())
    if policy == "milp":
        from milp.engine.solve import SEED_POLICIES, NoPlanFound, plan_milp
        from milp.run import solve_options

        candidates = [POLICIES[name](rest.inst, None) for name in SEED_POLICIES]
        try:
            candidates.append(plan_milp(rest.inst, solve_options(
                {**(options or {}), "elastic": True}, progress=progress))[0])
        except NoPlanFound:
            pass

        best = min(reversed(candidates),                 # ties go to the MILP
                   key=lambda plan: outlook(evaluate(rest.inst, plan)))
        return replace(best, info={**best.info, "chosen": best.policy})
    if policy not in POLICIES:
        raise InputError("--policy", f"unknown policy {policy!r} (known: milp, "
                         f"{', '.join(POLICIES)})")
    return POLICIES[policy](rest.inst, None)


def outlook(e: Evaluation) -> tuple[float, float]:
    """How a re-plan ranks a plan's evaluation: least unfinished work (GPU hours), then least
    grid energy (kWh), both rounded so that float noise does not decide."""
    return round(e.unfinished_work_h, 6), round(e.grid_energy_kwh, 6)


def replan(inst: Instance, state: State, policy: str, options: Mapping[str, Any] | None = None,
           progress: Callable[[dict], None] | None = None) -> tuple[Plan, Remainder, Plan]:
    """Plan the rest of the horizon from ``state``: (plan on the instance's clock, the
    remainder problem, the plan on the remainder's clock). ``options``: the MILP's."""
    rest = remainder(inst, state)
    local = plan_remainder(rest, policy, options, progress)
    return shift(local, inst, rest.offset_s, f"replan:{policy}"), rest, local
