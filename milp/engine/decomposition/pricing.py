"""Pricing: the cheapest schedule of each job at the master's duals (a reduced cost).

The prices of a job's choices, from the duals (:class:`~milp.engine.decomposition.master.Duals`):
holding a GPU at (n, t) costs ``−gpu[n,t]`` (and filling it ``full[n,t]``, the rounding cut's
dual × f); each kWh drawn at (n, t) costs ``grid[n,t]``; a
move costs the move weight, its transfer energy at the source's prices, its share of the link
rows (``−link[a,b,t]·T/cap`` for a queued move, ``−link`` per slot held for a long one) and the
job's ``use`` rows of the links it takes; progress costs the completion term; work left undone
(elastic) costs its weight; with a mean-JCT bound, each hour of the job's completion time costs
``−jct`` (the bound's dual). :func:`milp.jobpath.best_path` finds the cheapest schedule exactly
under the slot rules; its cost minus ``conv[j]`` is the job's least reduced cost.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from milp import physics
from milp.engine.decomposition.columns import JobSpace
from milp.engine.decomposition.master import Duals
from milp.instance import Instance
from milp.jobpath import JobPath, JobProblem, best_path

#: Restores tracked exactly beyond the restarts (moves followed by a run); schedules needing
#: more are only bounded, not generated.
EXTRA_RESTORES = 3


def job_problem(inst: Instance, sp: JobSpace, d: Duals, elastic: bool) -> JobProblem:
    """The DP of job ``sp.j`` at duals ``d`` (see the module docstring)."""
    j = sp.j
    ts = np.arange(sp.release, sp.deadline)
    sites = sp.sites
    hold = -d.gpu[np.ix_(sites, ts)]
    hold = np.where(sp.gpus_ok[:, None], np.maximum(hold, 0.0), np.inf)
    occupy = d.grid[np.ix_(sites, ts)]
    move = move_costs(inst, sp, d.grid, d.link, d.use.get(j, {}), ts) if len(sp.pairs) else None
    cap = inst.execution.max_restarts
    return JobProblem(
        sites=sites, origin_k=sp.origin_k, release=sp.release, deadline=sp.deadline,
        work=float(inst.work_h[j] / inst.slot_h), sigma=physics.restore_share(inst),
        hold=hold, occupy=occupy, kwh=sp.kw * inst.slot_h, full=d.full[np.ix_(sites, ts)],
        progress=physics.completion_weight(inst, j, ts),
        move=move, rho=sp.rho, window=sp.window, started=bool(inst.from_checkpoint[j]),
        max_restarts=cap, min_run_slots=physics.min_run_slots(inst)[0],
        max_restores=(cap if cap is not None else 2) + EXTRA_RESTORES + 1,
        unfinished=float(physics.unfinished_weight(inst)[j] * inst.slot_h) if elastic else None,
        completion=-d.jct * inst.slot_h)


def move_costs(inst: Instance, sp: JobSpace, grid: np.ndarray, link: np.ndarray, use: dict,
               ts: np.ndarray) -> np.ndarray:
    """[K, K, D] the price of each move of the job (inf where it is not allowed): the move
    weight, its transfer energy at the source's prices, its share of the link rows and the
    ``use`` rows of the links it takes (all vectorised over moves and slots)."""
    sites, T = sp.sites, inst.n_slots
    a, b = sp.pairs[:, 0], sp.pairs[:, 1]
    sa, sb = sites[a], sites[b]
    cost = np.full((len(a), len(ts)), inst.objective.migration_kwh)
    for i in range(sp.pair_kwh.shape[1]):          # transfer energy, slot by slot
        later = np.minimum(ts + i, T - 1)
        inside = (ts + i < T)[None, :]
        cost += np.where(inside, grid[sa[:, None], later[None, :]] * sp.pair_kwh[:, i:i + 1],
                         0.0)
    long = sp.long[a, b]
    cap = physics.queue_cap_s(inst)[sb[:, None], ts[None, :]]
    share = np.where(cap > 0, sp.transfer[a, b][:, None] / np.maximum(cap, 1e-12), 0.0)
    cost -= np.where(long[:, None], 0.0, link[sa[:, None], sb[:, None], ts[None, :]] * share)
    for p in np.flatnonzero(long):                 # a long move holds the link ρ slots
        for i in range(int(sp.rho[a[p], b[p]])):
            later = np.minimum(ts + i, T - 1)
            cost[p] -= np.where(ts + i < T, link[sa[p], sb[p], later], 0.0)
    if use:                                        # the job's link-in-use rows
        pos = {(int(x), int(y)): p for p, (x, y) in enumerate(zip(sa, sb))}
        first = int(ts[0])
        for (x, y, t), dual in use.items():
            p = pos.get((x, y))
            if p is None:
                continue
            span = int(sp.rho[a[p], b[p]]) if long[p] else 1
            for start in range(t - span + 1, t + 1):      # moves whose link use covers t
                if first <= start < first + len(ts):
                    cost[p, start - first] += dual
    move = np.full(sp.ok.shape, np.inf)
    move[a, b] = np.where(sp.ok[a, b], cost, np.inf)
    return move


def price(inst: Instance, sp: JobSpace, d: Duals, elastic: bool, *, relaxed: bool = False
          ) -> JobPath | None:
    """The job's cheapest schedule at ``d`` (None: it cannot finish by its deadline). With
    ``relaxed``, a cheaper relaxation — no restart cap, no minimum run, restores not tracked —
    whose cost is a lower bound on the exact one (for the bound only: its schedule may break
    the rules)."""
    problem = job_problem(inst, sp, d, elastic)
    if relaxed:
        problem = replace(problem, max_restarts=None, min_run_slots=0, max_restores=0)
    return best_path(problem)


def candidate_sites(inst: Instance, sp: JobSpace, d: Duals, used: set[int], count: int
                    ) -> np.ndarray:
    """Local indices of the sites to price job ``sp.j`` over: its origin, the sites its pooled
    schedules use (``used``, instance indices), and the cheapest others at ``d`` (the sum of the
    ⌈work⌉ cheapest slot prices there), up to ``count``."""
    ts = np.arange(sp.release, sp.deadline)
    sites = sp.sites
    slot = (np.maximum(-d.gpu[np.ix_(sites, ts)], 0.0) + d.grid[np.ix_(sites, ts)]
            * (sp.kw * inst.slot_h)[:, None] + d.full[np.ix_(sites, ts)])
    slot = np.where(sp.gpus_ok[:, None], slot, np.inf)
    need = min(len(ts), max(1, int(np.ceil(inst.work_h[sp.j] / inst.slot_h))))
    score = np.partition(slot, need - 1, axis=1)[:, :need].sum(axis=1)
    keep = {sp.origin_k} | {k for k, n in enumerate(sites.tolist()) if n in used}
    for k in np.argsort(score, kind="stable").tolist():
        if len(keep) >= count:
            break
        keep.add(k)
    return np.array(sorted(keep), dtype=int)
