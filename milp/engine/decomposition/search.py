"""Best responses: re-plan one job exactly with every other job fixed.

With the other jobs' schedules fixed, a job's contribution to the objective is its own terms
(moves, completion) plus its **marginal grid energy**: in each (site, slot) it draws ``e`` kWh
where the others leave ``free = max(0, R·h − load)`` of renewable energy, costing
``max(0, e − free)``. That depends on the job's own draw in the cell only, so the per-job DP
(:func:`milp.jobpath.best_path`) finds the job's best schedule exactly, on the GPUs, link
queues and WAN the others leave. Sweeping the jobs (most grid-exposed first) never makes the
plan worse; every schedule it finds is also a column for the pool.
"""

from __future__ import annotations

import math
import time

import numpy as np

from milp import physics
from milp.engine.decomposition.columns import Column, JobSpace, column_of, restricted
from milp.instance import Instance
from milp.jobpath import JobProblem, best_path


class Load:
    """The shared use of a set of columns (one per job), kept up to date as columns change:
    energy [n, t] kWh with idle, GPUs [n, t], short-move link seconds and long-move holds per
    (a, b, t), and the WAN rate of the links in use per [n, t]."""

    def __init__(self, inst: Instance, columns: dict[int, Column],
                 goal: physics.Goal | None = None) -> None:
        self.inst = inst
        self.goal = goal or physics.Goal.of(inst)
        self.jct = 0.0                                        #: Σ completion times (hours)
        self.energy = np.repeat(inst.idle_kw[:, None] * inst.slot_h, inst.n_slots, axis=1)
        self.gpus = np.zeros((inst.n_sites, inst.n_slots))
        self.queue: dict[tuple[int, int, int], float] = {}
        self.busy: dict[tuple[int, int, int], int] = {}
        self.in_use: dict[tuple[int, int, int], int] = {}     #: link-slot -> columns using it
        self.site_gbps = np.zeros((inst.n_sites, inst.n_slots))
        self.rate = physics.link_rate_gbps(inst)
        self.columns = dict(columns)
        for col in columns.values():
            self._apply(col, +1)

    def _apply(self, col: Column, sign: int) -> None:
        T = self.inst.n_slots
        self.jct += sign * col.jct_h
        for (n, t) in col.gpu:
            self.gpus[n, t] += sign
        for (n, t), e in col.energy.items():
            self.energy[n, t] += sign * e
        for key, sec in col.link_s.items():
            self.queue[key] = self.queue.get(key, 0.0) + sign * sec
        for key in col.link_busy:
            self.busy[key] = self.busy.get(key, 0) + sign
        for key in col.links_in_use():
            a, b, t = key
            before = self.in_use.get(key, 0)
            self.in_use[key] = before + sign
            if t < T and (before == 0) != (before + sign == 0):   # the link starts/stops
                self.site_gbps[a, t] += sign * self.rate[a, b]
                self.site_gbps[b, t] += sign * self.rate[a, b]

    def replace(self, col: Column) -> None:
        self._apply(self.columns[col.job], -1)
        self.columns[col.job] = col
        self._apply(col, +1)

    def grid(self) -> float:
        """The objective's grid part: grid energy weighted by the goal (kWh or kg CO₂)."""
        return float((physics.grid_kwh(self.inst, self.energy) * self.goal.weights).sum())

    def marginal(self, j: int) -> float:
        """Job j's part of the objective: its own terms and the (weighted) grid energy it
        adds."""
        col = self.columns[j]
        h = self.inst.slot_h
        w = self.goal.weights
        extra = 0.0
        for (n, t), e in col.energy.items():
            room = self.inst.renewable_kw[n, t] * h
            total = self.energy[n, t]
            extra += w[n, t] * (max(0.0, total - room) - max(0.0, total - e - room))
        return extra + col.cost


def best_response(inst: Instance, sp: JobSpace, load: Load, elastic: bool,
                  max_sites: int | None = None):
    """Job ``sp.j``'s best schedule with the others as ``load`` holds them (its own column
    taken out first); returns the DP's path or None. With ``max_sites``, over at most that many
    of its sites: its origin, those its schedule uses, and those with the most renewable
    energy the others leave during its slots."""
    j = sp.j
    own = load.columns.get(j)
    if own is not None:
        load._apply(own, -1)
    try:
        if max_sites is not None and len(sp.sites) > max_sites:
            sp = restricted(sp, _promising(inst, sp, load, own, max_sites))
        return best_path(_problem(inst, sp, load, elastic))
    finally:
        if own is not None:
            load._apply(own, +1)


def _promising(inst: Instance, sp: JobSpace, load: Load, own: Column | None, count: int
               ) -> np.ndarray:
    """Local indices of the job's sites worth a best response (see :func:`best_response`)."""
    ts = np.arange(sp.release, sp.deadline)
    free = np.maximum(0.0, inst.renewable_kw[np.ix_(sp.sites, ts)] * inst.slot_h
                      - load.energy[np.ix_(sp.sites, ts)])
    need = min(len(ts), max(1, int(np.ceil(inst.work_h[sp.j] / inst.slot_h))))
    score = np.partition(free, len(ts) - need, axis=1)[:, len(ts) - need:].sum(axis=1)
    used = set() if own is None else {n for (n, _) in own.x} | {b for (_, b, _) in own.moves}
    keep = {sp.origin_k} | {k for k, n in enumerate(sp.sites.tolist()) if n in used}
    for k in np.argsort(-score, kind="stable").tolist():
        if len(keep) >= count:
            break
        keep.add(k)
    return np.array(sorted(keep), dtype=int)


def _problem(inst: Instance, sp: JobSpace, load: Load, elastic: bool) -> JobProblem:
    j, sites = sp.j, sp.sites
    ts = np.arange(sp.release, sp.deadline)
    h = inst.slot_h
    free_all = np.maximum(0.0, inst.renewable_kw * h - load.energy)      # [n, t]
    hold = np.where((load.gpus[np.ix_(sites, ts)] < inst.gpus[sites][:, None] - 0.5)
                    & sp.gpus_ok[:, None], 0.0, np.inf)
    move = None
    if sp.ok.any():
        move = np.full(sp.ok.shape, np.inf)
        cap = physics.queue_cap_s(inst)
        for (a, b), energy in sp.energy.items():
            sa, sb = int(sites[a]), int(sites[b])
            for i in np.flatnonzero(sp.ok[a, b]):
                t = int(ts[i])
                if not _link_room(inst, load, sp, a, b, sa, sb, t, cap):
                    continue
                cost = inst.objective.migration_kwh
                for k, e in enumerate(energy):
                    if t + k < inst.n_slots:
                        cost += load.goal.weights[sa, t + k] * max(0.0, e - free_all[sa, t + k])
                move[a, b, i] = cost
    cap_r = inst.execution.max_restarts
    from milp.engine.decomposition.pricing import EXTRA_RESTORES
    return JobProblem(
        sites=sites, origin_k=sp.origin_k, release=sp.release, deadline=sp.deadline,
        work=float(inst.work_h[j] / h), sigma=physics.restore_share(inst), hold=hold,
        occupy=load.goal.weights[np.ix_(sites, ts)], kwh=sp.kw * h,
        free=free_all[np.ix_(sites, ts)], progress=physics.completion_weight(inst, j, ts),
        move=move, rho=sp.rho, window=sp.window, started=bool(inst.from_checkpoint[j]),
        max_restarts=cap_r, min_run_slots=physics.min_run_slots(inst)[0],
        max_restores=(cap_r if cap_r is not None else 2) + EXTRA_RESTORES + 1,
        unfinished=float(physics.unfinished_weight(inst)[j] * h) if elastic else None,
        finish_by=math.inf if load.goal.jct_budget_h is None
        else max(0.0, (load.goal.jct_budget_h - load.jct) / h))


def _link_room(inst: Instance, load: Load, sp: JobSpace, a: int, b: int, sa: int, sb: int,
               t: int, cap: np.ndarray) -> bool:
    """Whether the others leave link sa→sb (and both sites' WAN) room for this move in t."""
    transfer = float(sp.transfer[a, b])
    if sp.long[a, b]:
        slots = range(t, t + int(sp.rho[a, b]))
        if any(load.queue.get((sa, sb, s), 0.0) > 1e-9 or load.busy.get((sa, sb, s), 0) > 0
               for s in slots):
            return False
    else:
        slots = (t,)
        if load.busy.get((sa, sb, t), 0) > 0 or \
                load.queue.get((sa, sb, t), 0.0) + transfer > cap[sb, t] + 1e-9:
            return False
    for s in slots:
        if s >= inst.n_slots or load.in_use.get((sa, sb, s), 0) > 0:
            continue
        for n in (sa, sb):
            if load.site_gbps[n, s] + load.rate[sa, sb] > inst.wan_gbps[n] + 1e-9:
                return False
    return True


#: A best response replaces a job's schedule only when it is cheaper by this share of the
#: job's marginal cost (at least 1e-9 kWh): with huge coefficients (compute_kw up to 1e12)
#: rounding alone made "improvements" that cycled, sweep after sweep, until the time limit.
IMPROVES = 1e-9


def sweep(inst: Instance, spaces: list[JobSpace], load: Load, elastic: bool, until: float,
          order: list[int] | None = None, max_sites: int | None = None) -> list[Column]:
    """One pass of best responses (most grid-exposed jobs first unless ``order``); the plan
    in ``load`` only improves. Returns the columns that replaced a job's schedule."""
    if order is None:
        order = sorted(load.columns, key=lambda j: -load.marginal(j))
    changed = []
    for j in order:
        if time.perf_counter() > until:
            break
        path = best_response(inst, spaces[j], load, elastic, max_sites)
        if path is None or not path.exact:
            continue
        marginal = load.marginal(j)
        if path.cost < marginal - IMPROVES * max(1.0, abs(marginal)):
            col = column_of(inst, j, path.x, path.moves, path.unfinished * inst.slot_h)
            load.replace(col)
            changed.append(col)
    return changed


def objective(load: Load) -> float:
    """The plan's objective as ``load`` holds it (grid energy and every job's own terms)."""
    return load.grid() + sum(col.cost for col in load.columns.values())


def ruin_and_recreate(inst: Instance, spaces: list[JobSpace], load: Load, elastic: bool,
                      size: int, rng: np.random.Generator, max_sites: int | None = None
                      ) -> list[Column]:
    """Take out ``size`` related jobs (one drawn by its grid exposure, then those sharing its
    hours), put them back one by one in random order, each by its best response; keep the
    result when it is better, else restore. Returns the new columns when kept."""
    jobs = sorted(load.columns)
    if len(jobs) < 2:
        return []
    exposure = np.array([max(0.0, load.marginal(j)) for j in jobs]) + 1e-6
    first = jobs[int(rng.choice(len(jobs), p=exposure / exposure.sum()))]
    span = {j: _span(load.columns[j]) for j in jobs}
    lo, hi = span[first]
    overlap = np.array([max(0, min(hi, span[j][1]) - max(lo, span[j][0])) + 0.1 for j in jobs])
    overlap[jobs.index(first)] = 0.0
    k = min(size - 1, len(jobs) - 1)
    others = rng.choice(jobs, size=k, replace=False, p=overlap / overlap.sum()).tolist()
    picked = [first, *others]
    before = objective(load)
    old = {j: load.columns[j] for j in picked}
    for j in picked:
        load._apply(old[j], -1)
        del load.columns[j]
    new = []
    for j in rng.permutation(picked).tolist():
        path = best_response(inst, spaces[j], load, elastic, max_sites)
        if path is None or not path.exact:
            break
        col = column_of(inst, j, path.x, path.moves, path.unfinished * inst.slot_h)
        load.columns[j] = col
        load._apply(col, +1)
        new.append(col)
    if len(new) == len(picked) and objective(load) < before - 1e-9:
        return new
    for col in new:                                   # undo
        load._apply(col, -1)
        del load.columns[col.job]
    for j, col in old.items():
        load.columns[j] = col
        load._apply(col, +1)
    return []


def _span(col: Column) -> tuple[int, int]:
    slots = [t for (_, t) in col.x] + [t for (_, _, t) in col.moves]
    return (min(slots), max(slots)) if slots else (0, -1)
