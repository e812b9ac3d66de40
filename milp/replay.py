"""Executing a plan against a perturbed reality: slower links, forecast error, sites going dark.

:func:`replay` walks a plan's steps in order of planned start and does what an operator
following it would do, in a reality that differs from the forecast the plan was made for:

- **Links** carry ``bandwidth_factor`` of their planned Gbps. A transfer takes
  ``8·S / (factor·B)`` seconds (and sites' WAN capacity is as much slower); transfers on one
  link queue one after the other (first planned, first sent), so a slow transfer also delays
  the next ones. A moved job resumes at the later of its planned restart and its actual arrival,
  loading its checkpoint first (a restore, as every run that does not continue the job's
  previous one); its runs still end when planned (the GPU is reserved for others after), so
  delays cost work, never GPUs.
- **Renewable power** is the forecast times ``1 + renewable_noise·N(0,1)`` (clipped at 0),
  drawn per site and slot with ``seed``. It changes what the plan's energy costs, not the plan.
- **Outages** (``site@time``): from that instant to the end of the horizon the site has no power.
  A job running there falls back to its last checkpoint — taken when it started running and
  every ``checkpoint_every_s`` since — and the work after it is lost (recorded as a ``lost`` run:
  it drew power and held the GPU, but did no work). Checkpoints are kept on replicated storage,
  so a job stranded at a dark site can still be moved away over the site's links. Nothing is
  run at, or moved to, a dark site.

With ``replan`` set to a policy, the executor stops at each **trigger** (an outage, the moment
the first slow transfer shows, every ``replan_every_s``), rounds it up to the next slot
boundary, takes the :class:`~milp.state.State` of every job there (site, work left, checkpoint
in flight, dark sites, observed bandwidth) and continues with the plan
:func:`~milp.state.replan` makes for the rest of the horizon (rolling re-planning). Without
it, the plan is followed as made (plan once).

The executed plan is scored by the one evaluator against the perturbed instance, without the
execution caps (``max_restarts``, ``min_run_minutes`` are planning rules; a fault may cut a
run short): every job of the instance is either finished or reported with its remaining work
(``unfinished_work_h``), and lost work is ``lost_work_h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from milp.evaluate import Evaluation, evaluate
from milp.instance import NO_CAPS, Instance, read_only
from milp.plan import JobPlan, Migration, Plan, Run
from milp.state import JobState, State, outlook, replan as replan_from

#: Below this many seconds, two instants are the same and a run is empty.
EPS_S = 1e-6


@dataclass(frozen=True)
class Faults:
    """What reality does differently from the plan (see the module docstring)."""

    bandwidth_factor: float = 1.0          #: share of each link's planned Gbps it carries
    renewable_noise: float = 0.0           #: std-dev of the relative forecast error
    seed: int = 0                          #: seed of the forecast error
    outages: tuple[tuple[int, float], ...] = ()  #: (site index, seconds) dark from then on
    checkpoint_every_s: float = 1800.0     #: periodic checkpoint of a running job (s)

    def dark_from(self, n_sites: int) -> np.ndarray:
        """[n] the instant each site goes dark (inf if never)."""
        dark = np.full(n_sites, np.inf)
        for site, t in self.outages:
            dark[site] = min(dark[site], t)
        return dark


def reality(inst: Instance, faults: Faults) -> Instance:
    """The instance as it turns out: noisy renewable power, slower links, dark sites."""
    rng = np.random.default_rng(faults.seed)
    noise = rng.standard_normal(inst.renewable_kw.shape)
    renewable = np.maximum(0.0, inst.renewable_kw * (1.0 + faults.renewable_noise * noise))
    for n, t in enumerate(faults.dark_from(inst.n_sites)):
        if math.isfinite(t):
            k = int(t // inst.slot_s)
            if k < inst.n_slots:
                renewable[n, k] *= (t - k * inst.slot_s) / inst.slot_s
            renewable[n, k + 1:] = 0.0
    return replace(inst, renewable_kw=read_only(renewable),
                   link_gbps=read_only(inst.link_gbps * faults.bandwidth_factor),
                   wan_gbps=read_only(inst.wan_gbps * faults.bandwidth_factor), execution=NO_CAPS)


@dataclass
class _Job:
    """What the executor knows of one job: where it is, work done (s), when it is free."""

    site: int
    done_s: float
    ready_s: float
    work_s: float
    steps: list = field(default_factory=list)
    run_from_s: float = 0.0   #: start of the run in progress (its checkpoints count from there)
    cut: bool = False         #: the last run was only cut at a re-plan instant, not stopped
    fresh: bool = True        #: has neither run nor moved (its first run needs no restore)

    @property
    def finished(self) -> bool:
        return self.done_s >= self.work_s - EPS_S


@dataclass
class Replay:
    """What happened: the executed plan, the perturbed instance, the evaluator's verdict on it,
    the planned plan's verdict on the forecast, and the log of faults and re-plans."""

    executed: Plan
    real: Instance
    actual: Evaluation
    planned: Evaluation
    events: list[dict[str, Any]]
    first_state: State | None


class _Executor:
    """Follows plans step by step over links of ``gbps`` [src, dst] and sites going dark at
    ``dark`` [n] (seconds; inf = never), keeping each job's state."""

    def __init__(self, inst: Instance, gbps: np.ndarray, dark: np.ndarray, every_s: float):
        self.inst, self.gbps, self.dark, self.every_s = inst, gbps, dark, every_s
        self.link_free: dict[tuple[int, int], float] = {}
        self.jobs = [_Job(int(inst.origin[j]), 0.0, float(inst.release_s[j]),
                          float(inst.work_h[j]) * 3600.0, fresh=not inst.from_checkpoint[j])
                     for j in range(inst.n_jobs)]
        self.slow_seen_s = math.inf   # when a transfer was first seen taking longer than planned
        self.now = 0.0                # steps before this instant have been executed
        self.following: Plan | None = None  # the plan being followed
        self.waiting: list[tuple[int, Migration]] = []  # its moves the link has not sent yet

    def what_if(self, gbps: np.ndarray, dark: np.ndarray) -> "_Executor":
        """A copy of the present that will follow plans in another (assumed) future."""
        other = _Executor(self.inst, gbps, dark, self.every_s)
        other.link_free, other.now = dict(self.link_free), self.now
        other.following, other.waiting = self.following, list(self.waiting)
        other.jobs = [replace(j, steps=list(j.steps)) for j in self.jobs]
        return other

    def follow(self, plan: Plan, until_s: float) -> None:
        """Execute the steps of ``plan`` from where the executor stands (``now``) to
        ``until_s``: runs are clipped to that span, moves planned before ``now`` are past."""
        if plan is not self.following:           # a new plan: moves the old one queued are off
            self.following, self.waiting = plan, []
        order = [(s.start_s, j, -1, s) for j, s in self.waiting]
        self.waiting = []
        for jp in plan.jobs:
            j = self.inst.job_index_map.get(jp.job)
            if j is None:
                continue
            for k, s in enumerate(jp.steps):
                if getattr(s, "lost", False) or s.start_s >= until_s:
                    continue
                if isinstance(s, Run) and s.start_s < self.now < s.end_s:
                    s = Run(s.site, self.now, s.end_s)     # the part not yet run (continued)
                if s.start_s >= self.now:
                    order.append((s.start_s, j, k, s))
        self.now = until_s
        for _, j, _, step in sorted(order, key=lambda x: x[:3]):
            if isinstance(step, Run):
                self._run(self.jobs[j], step, until_s)
            else:
                self._move(j, step, until_s)

    def _run(self, job: _Job, step: Run, until_s: float) -> None:
        n = self.inst.site_index_map[step.site]
        if job.finished or n != job.site:
            return
        start = max(step.start_s, job.ready_s)
        last = job.steps[-1] if job.steps else None
        going_on = isinstance(last, Run) and last.site == step.site and not last.lost \
            and abs(last.end_s - start) <= EPS_S
        restore = 0.0 if going_on or job.fresh else self.inst.migration.stop_s
        natural_end = start + restore + job.work_s - job.done_s   # when its work would be done
        if natural_end >= step.end_s - EPS_S:               # (float noise: the planned end)
            natural_end = step.end_s
        if natural_end <= start + restore + EPS_S or self.dark[n] <= start or start >= until_s:
            return
        if not (job.cut and going_on):
            job.run_from_s = start + restore  # a resumed job starts from a checkpoint
        dark = float(self.dark[n])
        end = min(natural_end, until_s, dark)
        restore = min(restore, end - start)
        job.steps.append(Run(step.site, start, end, restore_s=restore))
        job.done_s += end - start - restore
        job.ready_s, job.fresh = end, False
        job.cut = end == until_s < natural_end
        if dark < natural_end and dark <= until_s:   # dark mid-run: back to the last checkpoint
            every = self.every_s
            self._lose(job, job.run_from_s + math.floor((dark - job.run_from_s) / every) * every)
            job.cut = False

    @staticmethod
    def _lose(job: _Job, ckpt_s: float) -> None:
        """Mark the job's run time after its checkpoint at ``ckpt_s`` as lost (it may span runs
        cut at re-plan instants)."""
        k = len(job.steps)
        while k and isinstance(job.steps[k - 1], Run) and job.steps[k - 1].end_s > ckpt_s:
            k -= 1
        keep, tail = job.steps[:k], job.steps[k:]
        if not tail:
            return
        first, end = tail[0], tail[-1].end_s       # contiguous pieces of one run
        if first.start_s < ckpt_s - EPS_S:         # (a checkpoint is never inside a restore)
            keep.append(Run(first.site, first.start_s, ckpt_s, restore_s=first.restore_s))
        lost_from = max(first.start_s, ckpt_s)
        if end > lost_from + EPS_S:
            keep.append(Run(first.site, lost_from, end, lost=True))
        job.done_s -= end - lost_from
        job.steps = keep

    def _move(self, j: int, step: Migration, until_s: float) -> None:
        job, inst = self.jobs[j], self.inst
        src, dst = inst.site_index_map[step.src], inst.site_index_map[step.dst]
        gbps = self.gbps[src, dst]
        if job.finished or src != job.site or self.dark[dst] <= step.start_s or gbps <= 0:
            return
        start = max(step.start_s, job.ready_s, self.link_free.get((src, dst), 0.0))
        transfer_s = 8.0 * float(inst.checkpoint_gb[j]) / float(gbps)
        arrive = start + transfer_s     # its next run loads the checkpoint first
        if start >= until_s:            # the link is busy past this stretch: send it later
            self.waiting.append((j, step))
            return
        if arrive > inst.horizon_s:
            return
        if self.dark[dst] < arrive:     # the destination goes dark first: the move fails
            self.link_free[(src, dst)] = min(start + transfer_s, float(self.dark[dst]))
            return
        if transfer_s > step.transfer_s + EPS_S:
            self.slow_seen_s = min(self.slow_seen_s, step.start_s + step.transfer_s)
        job.steps.append(Migration(step.src, step.dst, start, float(inst.checkpoint_gb[j]),
                                   transfer_s, transfer_s + inst.migration.stop_s))
        self.link_free[(src, dst)] = start + transfer_s
        job.site, job.ready_s, job.fresh = dst, arrive, False

    def state(self, at_s: float, bandwidth_factor: float) -> State:
        down = frozenset(int(n) for n in np.flatnonzero(self.dark <= at_s))
        jobs = {j: JobState(s.site, max(0.0, (s.work_s - s.done_s) / 3600.0),
                            max(at_s, s.ready_s)) for j, s in enumerate(self.jobs)}
        return State(at_s, jobs, down, bandwidth_factor)

    def plan(self, policy: str) -> Plan:
        inst = self.inst
        return Plan(instance=inst.name, start=inst.start.isoformat(),
                    slot_minutes=inst.slot_minutes, policy=policy,
                    jobs=tuple(JobPlan(inst.jobs[j], tuple(s.steps))
                               for j, s in enumerate(self.jobs)))


def triggers(inst: Instance, plan: Plan, faults: Faults, replan_every_s: float | None
             ) -> list[tuple[float, str]]:
    """When a re-planning operator would act: (time, why), in time order.

    Each outage; the planned end of the first transfer when links are slower than planned (the
    first moment a transfer is seen running late); every ``replan_every_s`` seconds.
    """
    dark = faults.dark_from(inst.n_sites)
    out = [(float(t), f"outage at {inst.sites[n]}") for n, t in enumerate(dark)
           if math.isfinite(t)]
    if faults.bandwidth_factor < 1.0:
        moves = [s for jp in plan.jobs for s in jp.steps if isinstance(s, Migration)]
        if moves:
            first = min(moves, key=lambda s: s.start_s)
            out.append((first.start_s + first.transfer_s, "a transfer runs late"))
    if replan_every_s:
        out += [(k * replan_every_s, "scheduled re-plan")
                for k in range(1, int(inst.horizon_s // replan_every_s) + 1)]
    return sorted((t, why) for t, why in out if 0 <= t < inst.horizon_s)


def replay(inst: Instance, plan: Plan, faults: Faults, replan: str | None = None,
           replan_every_s: float | None = None, options: Mapping[str, Any] | None = None,
           planned: Evaluation | None = None,
           progress: Callable[[dict], None] | None = None) -> Replay:
    """Execute ``plan`` in the reality ``faults`` describe; re-plan with policy ``replan`` at
    each trigger (plan once when ``None``; ``options``: the MILP's, its time limit per
    re-plan). Scores the executed plan with the evaluator; ``planned`` is the plan's own
    evaluation on ``inst``, if the caller has it already."""
    real = reality(inst, faults)
    dark = faults.dark_from(inst.n_sites)
    ex = _Executor(inst, real.link_gbps, dark, faults.checkpoint_every_s)
    events: list[dict[str, Any]] = [{"time_s": float(t), "event": f"outage at {inst.sites[n]}"}
                                    for n, t in enumerate(dark) if math.isfinite(t)]
    current, first_state, done_until = plan, None, -math.inf
    for t, why in triggers(inst, plan, faults, replan_every_s):
        at = math.ceil(t / inst.slot_s - 1e-9) * inst.slot_s
        if at <= done_until or at >= inst.horizon_s:   # handled already / no slot left
            continue
        if replan is None:          # plan once: only note the state the first fault leaves
            if first_state is None:
                probe = ex.what_if(real.link_gbps, dark)
                probe.follow(current, at)
                first_state = probe.state(at, _known_factor(probe, faults, at))
            continue
        ex.follow(current, at)
        state = ex.state(at, _known_factor(ex, faults, at))
        first_state = first_state or state
        candidate, _, _ = replan_from(inst, state, replan, options, progress)
        current, verdict = _better(inst, ex, state, current, candidate)
        events.append({"time_s": at, "event": f"re-plan with {replan} ({why}): {verdict}"})
        done_until = at
    ex.follow(current, math.inf)
    label = f"{plan.policy}, executed" + (f", re-planned by {replan}" if replan else "")
    executed = ex.plan(label)
    return Replay(executed=executed, real=real, actual=evaluate(real, executed),
                  planned=planned or evaluate(inst, plan), events=sorted(events, key=lambda e: e["time_s"]),
                  first_state=first_state)


def _known_factor(ex: _Executor, faults: Faults, at_s: float) -> float:
    """The bandwidth factor an operator knows at ``at_s``: measured once a transfer ran late."""
    return faults.bandwidth_factor if ex.slow_seen_s <= at_s else 1.0


def _better(inst: Instance, ex: _Executor, state: State, current: Plan, candidate: Plan
            ) -> tuple[Plan, str]:
    """Keep the current plan or take the re-plan, whichever is better in the future known at
    the state's time (forecast renewable, measured links, dark sites): least unfinished work,
    then least grid energy (a tie keeps the plan). A re-plan never makes the outlook worse."""
    dark = np.full(inst.n_sites, np.inf)
    dark[list(state.down_sites)] = state.at_s
    known = reality(inst, Faults(bandwidth_factor=state.bandwidth_factor,
                                 outages=tuple((n, state.at_s) for n in state.down_sites)))
    scores = []
    for plan in (current, candidate):
        future = ex.what_if(known.link_gbps, dark)
        future.follow(plan, math.inf)
        scores.append(outlook(evaluate(known, future.plan("outlook"))))
    (u0, g0), (u1, g1) = scores
    facts = (f"outlook {u1:.3g} h unfinished, {g1:.4g} kWh grid against {u0:.3g} h, "
             f"{g0:.4g} kWh if the plan is kept")
    if scores[1] < scores[0]:
        return candidate, f"switched ({facts})"
    return current, f"kept the plan ({facts})"


def job_table(inst: Instance, result: Replay):
    """Per job: where it ended, finished or not, completion, work done / left / lost (h)."""
    import pandas as pd

    e = result.actual
    last_site = [inst.sites[int(inst.origin[j])] for j in range(inst.n_jobs)]
    for jp in result.executed.jobs:
        for s in jp.steps:
            last_site[inst.job_index_map[jp.job]] = s.site if isinstance(s, Run) else s.dst
    finished = ~np.isnan(e.completion_s)
    return pd.DataFrame({
        "job": inst.jobs, "site": last_site, "finished": finished,
        "completion": [inst.time_of(c).isoformat(timespec="seconds") if f else ""
                       for c, f in zip(e.completion_s, finished)],
        "work_h": inst.work_h, "work_done_h": np.round(np.minimum(e.work_done_h, inst.work_h), 9),
        "work_left_h": np.round(np.maximum(inst.work_h - e.work_done_h, 0.0), 9),
        "lost_h": np.round(e.lost_h, 9)})
