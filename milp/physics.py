"""The plan's physics at slot level, written once for every planner.

The greedy policies (:mod:`milp.policies.simulation`), the compact MILP
(:mod:`milp.engine.compact`) and the decomposition engine (:mod:`milp.engine.decomposition`)
all plan with these definitions; only the evaluator (:mod:`milp.evaluate`) recomputes the rules,
on its own and in exact seconds, as the referee.

Notation: Δ slot length (s), h = Δ/3600 (h), L = load_time_s + downtime_s (s), σ = L/Δ.

**Moves** (the feasibility domain)
    A job moves at the start of a slot t and does not run in t. Its checkpoint (S GB) goes over
    the link a→b at the link's rate ``r_ab = min(B_ab, WAN_a, WAN_b)`` Gbps, ``T = 8·S/r_ab`` s,
    drawing ``transfer_kw`` at a. It may run at b from slot ``t + ρ``, ``ρ = max(1, ⌈T/Δ⌉)``
    (the first slot start after its checkpoint arrives).
    Inside the domain: ``T + L ≤ α·W_b(t)`` (W_b(t): renewable window left at b at t's start)
    **and** the job resumes inside that window: its next step is a run at b, starting before the
    window ends (so ``ρ < W_b(t)/Δ``) and before its deadline. A job never moves on from a site
    it moved to without running there.
    *Short* moves (``T ≤ Δ``) over one link in one slot are sent one after the other from the
    slot start: their seconds add up to at most ``cap_b(t) = min(Δ, α·W_b(t) − L)``, so each
    arrives in the slot and its disruption (wait + T + L) fits α·W. A *long* move (``T > Δ``)
    has the link to itself for ``⌈T/Δ⌉`` slots.
    **Site WAN**: in a slot, every link a site sends or receives on is in use from the slot
    start at its rate; the rates of a site's links in use add up to at most its ``wan_gbps``.

**Runs**
    A *run* is a stretch of consecutive slots in which a job runs at one site. Runs start and
    end on the slot grid: every slot a job runs in is full, except its very last slot, which
    holds what its work still needs (so only a job's last run ends inside a slot). The job
    holds one GPU of the site for the whole of every slot it runs in.
    Every run begins with a **restore** of L seconds (checkpoint load: GPU held, ``compute_kw``
    drawn, no progress), except a job's very first run (unless it resumes from a checkpoint,
    ``Instance.from_checkpoint``). A **restart** is a run after a pause at the same site
    (moves do not count): at most ``max_restarts`` per job. Every run but a job's last lasts at
    least ``min_run_minutes``: ``(last − first + occupancy of its last slot)·Δ ≥ min_run``.

**Energy** per site and slot (kWh): ``load = idle·h + Σ_j kW_jn·h·(x + σ·restore) + Σ transfer``;
``grid = max(0, load − R·h)``.

**Objective**: ``Σ_{n,t} w_nt·grid + w_mig·moves + w_c·Σ_j,t x·h·((t+1)·h − release_j·h)``
(``+ about 1000 per unfinished GPU-hour`` when elastic, :func:`unfinished_weight`), with
``w = 1`` per kWh when minimising grid energy or the grid's kg CO₂ per kWh when minimising CO₂
(:func:`grid_weights`; the other quantity is then a tie-breaker).

**Completion**: a job completes at the end of its last slot's occupancy; its JCT (hours from
release, :func:`jct_h`) is what ``--max-mean-jct-h`` bounds.

A slot-level schedule is a :class:`Solution`: each job's progress share ``x[j,n,t]`` (0–1 of
slot t spent computing at n) and its moves ``(j, a, b, t)``. Runs and restores follow from it
(:func:`runs_of`); :func:`plan_from_solution` and :func:`solution_from_plan` translate to and
from exact :class:`~milp.plan.Plan` steps, and :func:`usage` / :func:`objective` account for it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from milp import feasibility as fz
from milp.instance import Instance
from milp.plan import JobPlan, Migration, Plan, Run

#: kWh charged per unfinished GPU-hour in elastic mode: far above any grid energy a GPU-hour
#: can cost, so unfinished work is minimised first.
ELASTIC_KWH_PER_GPU_H = 1000.0
#: Shares within this of 0 or 1 are 0 or 1 (solver noise).
SHARE_EPS = 1e-7


# ================================================================== coefficients ==========

def restore_share(inst: Instance) -> float:
    """σ: the share of a slot a restore takes (L / Δ)."""
    return inst.migration.stop_s / inst.slot_s


def link_rate_gbps(inst: Instance) -> np.ndarray:
    """[a, b] the rate one transfer gets over link a→b: its Gbps, capped by both sites' WAN
    capacity (0 where there is no link)."""
    wan = inst.wan_gbps
    return np.minimum(inst.link_gbps, np.minimum(wan[:, None], wan[None, :]))


def transfer_s(inst: Instance, j: int, a, b):
    """Seconds job j's checkpoint takes alone over a→b (``8·S / r_ab``; inf without a link)."""
    return fz.transfer_s(inst.checkpoint_gb[j], link_rate_gbps(inst)[a, b])


def resume_after(transfer, slot_s: float):
    """ρ: slots from a move's slot to the first one the moved job may run in at its
    destination (the first slot start after its checkpoint arrives; at least 1). Scalar or
    array; inf for an impossible move."""
    slots = np.maximum(1.0, np.ceil(np.asarray(transfer, dtype=float) / slot_s - 1e-9))
    return slots if slots.ndim else (int(slots) if np.isfinite(slots) else float("inf"))


def busy_slots(transfer, slot_s: float):
    """Slots a transfer of ``transfer`` seconds spans from its move's slot (at least 1)."""
    return resume_after(transfer, slot_s)


def is_long(transfer, slot_s: float):
    """A long move's transfer outlasts its slot: it has the link to itself."""
    return np.asarray(transfer) > slot_s + 1e-9


def window_left_s(inst: Instance) -> np.ndarray:
    """[n, t] seconds of renewable window left at site n from the start of slot t."""
    return inst.remaining_window_slots * inst.slot_s


def queue_cap_s(inst: Instance) -> np.ndarray:
    """[b, t] transfer seconds the short moves of one slot over a link into b may add up to:
    ``min(Δ, α·W_b(t) − L)`` (may be negative: no move)."""
    return np.minimum(inst.slot_s, inst.migration.alpha * window_left_s(inst)
                      - inst.migration.stop_s)


def domain_moves(inst: Instance, j: int, sites: np.ndarray, first: int, end: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """ok[a, b, t − first] for t in [first, end): job j may move sites[a]→sites[b] in slot t
    inside the feasibility domain, resuming inside b's window before its deadline; and the
    transfer seconds [a, b]."""
    sites = np.asarray(sites, dtype=int)
    transfer = transfer_s(inst, j, sites[:, None], sites[None, :])
    rho = resume_after(transfer, inst.slot_s)
    t = np.arange(first, end)
    left = inst.remaining_window_slots[sites][:, first:end]          # [b, t]
    alpha_w = inst.migration.alpha * left * inst.slot_s
    ok = (transfer[:, :, None] + inst.migration.stop_s <= alpha_w[None, :, :] + 1e-9) \
        & (rho[:, :, None] < left[None, :, :]) \
        & (t[None, None, :] + rho[:, :, None] < inst.deadline_slot[j])
    return ok, transfer


def transfer_kwh(inst: Instance, transfer) -> list[float]:
    """Transfer energy at the source (kWh) in each slot the transfer spans, from its start at a
    slot start (a queued short move's energy all falls in its slot)."""
    dt, kw = inst.slot_s, inst.migration.transfer_kw
    n = busy_slots(transfer, dt)
    return [kw * min(dt, transfer - k * dt) / 3600.0 for k in range(int(n))]


#: What the MILP can minimise.
OBJECTIVES = ("grid-kwh", "co2")
#: Weight of the other quantity, as a tie-breaker (per kWh, or per kg CO₂).
TIE = 1e-4


def grid_weights(inst: Instance, objective: str = "grid-kwh") -> np.ndarray:
    """[n, t] the objective's cost of one kWh of grid energy in each site and slot: 1 (plus
    1e-4 × its kg CO₂, a tie-breaker) for ``grid-kwh``; its kg CO₂ (plus 1e-4, a tie-breaker)
    for ``co2`` (which needs carbon.csv)."""
    ci = (inst.carbon_g_per_kwh / 1000.0 if inst.carbon_g_per_kwh is not None
          else np.zeros((inst.n_sites, inst.n_slots)))
    if objective == "co2":
        if inst.carbon_g_per_kwh is None:
            raise ValueError("the co2 objective needs carbon.csv")
        return ci + TIE
    return 1.0 + TIE * ci


def unfinished_weight(inst: Instance) -> np.ndarray:
    """[j] kWh per unfinished GPU-hour of each job in elastic mode: 1000, raised by up to 1e-4
    for the jobs due earliest, so that work left undone piles up on as few jobs as possible —
    the latest due — rather than spreading over many."""
    order = np.lexsort((-np.arange(inst.n_jobs), -inst.release_slot, -inst.deadline_slot))
    rank = np.empty(inst.n_jobs)
    rank[order] = np.arange(inst.n_jobs)
    return ELASTIC_KWH_PER_GPU_H * (1.0 + 1e-4 * rank / max(1, inst.n_jobs))


def completion_weight(inst: Instance, j: int, t):
    """kWh-equivalent per unit of progress share in slot t of job j: ``w_c·h·((t+1)·h − r_j·h)``
    (work done later costs more: the completion tie-breaker)."""
    h = inst.slot_h
    return inst.objective.completion_kwh * h * ((np.asarray(t) + 1 - inst.release_slot[j]) * h)


def min_run_slots(inst: Instance) -> tuple[int, float]:
    """(U, m): a run that is not a job's last spans at least U slots, U = ⌈min_run/Δ⌉, and its
    occupancy over its first U slots is at least m = min_run/Δ (0, 0 without the rule)."""
    m = inst.execution.min_run_s / inst.slot_s
    return (max(1, math.ceil(m - 1e-9)), m) if m > 1e-9 else (0, 0.0)


# ================================================================== a slot-level schedule ==

@dataclass
class Solution:
    """A schedule at slot level: progress shares ``x[(j, n, t)]`` (0–1 of slot t computing at n)
    and moves ``(j, a, b, t)`` made at the start of slot t. Runs and restores follow from it
    (:func:`runs_of`)."""

    x: dict[tuple[int, int, int], float] = field(default_factory=dict)
    moves: set[tuple[int, int, int, int]] = field(default_factory=set)

    def only(self, jobs) -> "Solution":
        keep = set(jobs)
        return Solution({k: v for k, v in self.x.items() if k[0] in keep},
                        {mv for mv in self.moves if mv[0] in keep})

    def replace(self, jobs, other: "Solution") -> "Solution":
        drop = set(jobs)
        x = {k: v for k, v in self.x.items() if k[0] not in drop}
        x.update(other.x)
        return Solution(x, {mv for mv in self.moves if mv[0] not in drop} | other.moves)

    def without_idle_moves(self) -> "Solution":
        """Drop moves after a job's last run: they cannot help (a time-limited solve may
        return them) and a plan must not move a finished job."""
        last: dict[int, int] = {}
        for (j, _, t), v in self.x.items():
            if v > 0:
                last[j] = max(last.get(j, -1), t)
        return Solution(dict(self.x), {mv for mv in self.moves if mv[3] < last.get(mv[0], -1)})


@dataclass(frozen=True)
class SlotRun:
    """One run of a job at slot level: site, first and last slot, whether it begins with a
    restore, and its occupancy of its last slot (share of the slot it holds, restore included)."""

    site: int
    first: int
    last: int
    restore: bool
    restart: bool          #: a run after a pause at the same site
    last_occupancy: float

    def length_slots(self) -> float:
        """The run's length in slots (its last slot counted by occupancy)."""
        return self.last - self.first + self.last_occupancy


def clean(v: float | None) -> float:
    """Snap solver noise: values within :data:`SHARE_EPS` of 0 or 1 become 0 or 1."""
    v = float(v or 0.0)
    return 0.0 if v < SHARE_EPS else 1.0 if v > 1 - SHARE_EPS else v


def runs_of(inst: Instance, sol: Solution) -> dict[int, list[SlotRun]]:
    """Each job's runs, in time order, as the slot rules make them from its shares and moves.

    Consecutive running slots at one site form one run while the earlier slot is full
    (occupancy 1, restore included); a slot that is not full ends its run. A run begins with a
    restore unless it is the job's first step (and the job does not resume from a checkpoint).
    """
    sigma = restore_share(inst)
    per_job: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for (j, n, t), v in sol.x.items():
        if v > 0:
            per_job[j].append((t, n, v))
    first_move: dict[int, int] = {}
    move_slots: dict[int, list[int]] = defaultdict(list)
    for (j, _, _, t) in sol.moves:
        first_move[j] = min(first_move.get(j, t), t)
        move_slots[j].append(t)
    out: dict[int, list[SlotRun]] = {}
    for j, cells in per_job.items():
        runs: list[SlotRun] = []
        cells.sort()
        started = bool(inst.from_checkpoint[j])
        moves = sorted(move_slots.get(j, ()))
        for t, n, v in cells:
            prev = runs[-1] if runs else None
            if prev and prev.site == n and prev.last == t - 1 and \
                    prev.last_occupancy >= 1 - SHARE_EPS and not _moved_between(moves, t - 1, t):
                runs[-1] = SlotRun(n, prev.first, t, prev.restore, prev.restart, min(1.0, v))
                continue
            restore = started or first_move.get(j, t) < t or bool(runs)
            restart = bool(prev) and prev.site == n and not _moved_between(moves, prev.last, t)
            occupancy = v + (sigma if restore else 0.0)
            runs.append(SlotRun(n, t, t, restore, restart, min(1.0, occupancy)))
            started = True
        out[j] = runs
    return out


def _moved_between(move_slots: list[int], after: int, until: int) -> bool:
    """Whether a move was made in a slot in (after, until]."""
    return any(after < t <= until for t in move_slots)


def occupancy(inst: Instance, sol: Solution) -> dict[tuple[int, int, int], float]:
    """Share of each (job, site, slot) the job holds its GPU busy (progress + restore)."""
    sigma = restore_share(inst)
    occ = dict(sol.x)
    for j, runs in runs_of(inst, sol).items():
        for r in runs:
            if r.restore:
                occ[j, r.site, r.first] = min(1.0, occ[j, r.site, r.first] + sigma)
    return occ


# ================================================================== accounting ============

@dataclass
class Usage:
    """What a (partial) schedule uses, per site and slot: energy with idle (kWh), GPUs, link
    seconds of short moves per (a, b, t), link-slots held by long moves, and the WAN rate of
    the links in use per site (Gbps)."""

    load_kwh: np.ndarray
    gpus: np.ndarray
    link_s: dict[tuple[int, int, int], float] = field(default_factory=dict)
    link_busy: set[tuple[int, int, int]] = field(default_factory=set)
    site_gbps: np.ndarray | None = None

    def links_in_use(self) -> set[tuple[int, int, int]]:
        return set(self.link_s) | self.link_busy


def usage(inst: Instance, sol: Solution) -> Usage:
    """Account for a schedule by the slot rules (idle power included)."""
    h = inst.slot_h
    u = Usage(np.repeat(inst.idle_kw[:, None] * h, inst.n_slots, axis=1),
              np.zeros((inst.n_sites, inst.n_slots)), site_gbps=np.zeros((inst.n_sites,
                                                                           inst.n_slots)))
    for (j, n, t), share in occupancy(inst, sol).items():
        u.load_kwh[n, t] += float(inst.compute_kw[j, n]) * h * share
        u.gpus[n, t] += 1
    for (j, a, b, t) in sol.moves:
        transfer = float(transfer_s(inst, j, a, b))
        for i, e in enumerate(transfer_kwh(inst, transfer)):
            if t + i < inst.n_slots:
                u.load_kwh[a, t + i] += e
        if is_long(transfer, inst.slot_s):
            u.link_busy.update((a, b, t + i) for i in range(busy_slots(transfer, inst.slot_s)))
        else:
            u.link_s[a, b, t] = u.link_s.get((a, b, t), 0.0) + transfer
    rate = link_rate_gbps(inst)
    for (a, b, t) in u.links_in_use():
        if t < inst.n_slots:
            u.site_gbps[a, t] += rate[a, b]
            u.site_gbps[b, t] += rate[a, b]
    return u


def grid_kwh(inst: Instance, load_kwh: np.ndarray) -> np.ndarray:
    """[n, t] grid energy of a load: ``max(0, load − R·h)`` per site and slot (kWh)."""
    return np.maximum(0.0, load_kwh - inst.renewable_kw * inst.slot_h)


def objective(inst: Instance, sol: Solution, unfinished_h: dict[int, float] | None = None,
              weights: np.ndarray | None = None) -> tuple[float, float]:
    """(objective, grid energy kWh) of a schedule, by the slot rules (``unfinished_h``: GPU
    hours left undone per job, elastic mode; ``weights``: :func:`grid_weights`, 1 if None)."""
    cells = grid_kwh(inst, usage(inst, sol).load_kwh)
    grid = float(cells.sum())
    cost = grid if weights is None else float((cells * weights).sum())
    late = sum(float(completion_weight(inst, j, t)) * v for (j, _, t), v in sol.x.items())
    weight = unfinished_weight(inst) if unfinished_h else None
    left = sum(weight[j] * h for j, h in (unfinished_h or {}).items())
    return cost + inst.objective.migration_kwh * len(sol.moves) + late + left, grid


@dataclass(frozen=True)
class Goal:
    """What a planner minimises and under which bound: the objective's cost per kWh of grid
    energy in each site and slot (:func:`grid_weights`) and, with a mean-JCT bound H, the
    budget ``J × H`` the jobs' completion times from release may add up to (hours)."""

    weights: np.ndarray
    jct_budget_h: float | None = None

    @classmethod
    def of(cls, inst: Instance, objective: str = "grid-kwh",
           max_mean_jct_h: float | None = None) -> "Goal":
        budget = None if max_mean_jct_h is None else max_mean_jct_h * inst.n_jobs
        return cls(grid_weights(inst, objective), budget)

    def cost(self, inst: Instance, sol: Solution, unfinished_h: dict[int, float] | None = None
             ) -> tuple[float, float]:
        """(objective, grid energy kWh) of a schedule under this goal."""
        return objective(inst, sol, unfinished_h, self.weights)

    def allows(self, inst: Instance, sol: Solution) -> bool:
        """Whether the schedule's completion times fit the budget."""
        return self.jct_budget_h is None or \
            float(jct_h(inst, sol).sum()) <= self.jct_budget_h + 1e-6


def jct_h(inst: Instance, sol: Solution) -> np.ndarray:
    """[j] each job's completion time from its release (hours): the end of its last slot's
    occupancy; the horizon's end for a job that does not run at all."""
    out = (inst.n_slots - inst.release_slot).astype(float) * inst.slot_h
    for j, runs in runs_of(inst, sol).items():
        if runs:
            last = runs[-1]
            out[j] = (last.last + last.last_occupancy - inst.release_slot[j]) * inst.slot_h
    return out


# ================================================================== plans ↔ schedules ====

def plan_from_solution(inst: Instance, sol: Solution, policy: str, info: dict | None = None
                       ) -> Plan:
    """Exact steps of a schedule: each run from its first slot's start for its length (restore
    first); the moves over one link in one slot send their checkpoints one after the other from
    the slot start, in job order."""
    dt = inst.slot_s
    stop = inst.migration.stop_s
    steps: dict[int, list] = defaultdict(list)
    by_link = defaultdict(list)
    for (j, a, b, t) in sol.moves:
        by_link[a, b, t].append(j)
    for (a, b, t), jobs in sorted(by_link.items()):
        start = t * dt
        for j in sorted(jobs):
            transfer = float(transfer_s(inst, j, a, b))
            steps[j].append(Migration(inst.sites[a], inst.sites[b], start,
                                      float(inst.checkpoint_gb[j]), transfer, transfer + stop))
            start += transfer
    for j, runs in runs_of(inst, sol).items():
        for r in runs:
            steps[j].append(Run(inst.sites[r.site], r.first * dt,
                                (r.last + r.last_occupancy) * dt, restore_s=stop if r.restore
                                else 0.0))
    jobs = [JobPlan(job, tuple(sorted(steps[j], key=lambda s: (s.start_s, isinstance(s, Run)))))
            for j, job in enumerate(inst.jobs)]
    return Plan(inst.name, inst.start.isoformat(), inst.slot_minutes, policy, tuple(jobs),
                info or {})


def solution_from_plan(inst: Instance, plan: Plan) -> Solution:
    """Slot-level view of a plan made under the slot rules: each run's computing time (after
    its restore) as shares of the slots it covers; each move in the slot it starts in."""
    dt = inst.slot_s
    sol = Solution()
    for jp in plan.jobs:
        j = inst.job_index_map.get(jp.job)
        if j is None:
            continue
        for step in jp.steps:
            if isinstance(step, Migration):
                sol.moves.add((j, inst.site_index_map[step.src], inst.site_index_map[step.dst],
                               int(step.start_s // dt)))
                continue
            n = inst.site_index_map[step.site]
            s0 = step.start_s + step.restore_s
            for t in range(int(step.start_s // dt), min(inst.n_slots, math.ceil(step.end_s / dt))):
                overlap = min(step.end_s, (t + 1) * dt) - max(s0, t * dt)
                if overlap > 0:
                    sol.x[j, n, t] = sol.x.get((j, n, t), 0.0) + overlap / dt
    return sol
