"""Pricing: the cheapest schedule of each job at the master's duals (a reduced cost).

The prices of a job's choices, from the duals (:class:`~milp.engine.decomposition.master.Duals`):
holding a GPU at (n, t) costs ``−gpu[n,t]`` (and filling it ``full[n,t]``, the rounding cut's
dual × f); each kWh drawn at (n, t) costs ``grid[n,t]``; a
move costs the move weight, its transfer energy at the source's prices, its share of the link
rows (``−link[a,b,t]·T/cap`` for a queued move, ``−link`` per slot held for a long one) and the
job's ``use`` rows of the links it takes; progress costs the completion term; work left undone
(elastic) costs its weight. :func:`milp.jobpath.best_path` finds the cheapest schedule exactly
under the slot rules; its cost minus ``conv[j]`` is the job's least reduced cost.
"""

from __future__ import annotations

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
    move = None
    if sp.ok.any():
        move = np.full(sp.ok.shape, np.inf)
        use = d.use.get(j, {})
        cap = physics.queue_cap_s(inst)
        for (a, b), energy in sp.energy.items():
            sa, sb = int(sites[a]), int(sites[b])
            cost = np.full(len(ts), inst.objective.migration_kwh)
            for i, e in enumerate(energy):
                shifted = np.minimum(ts + i, inst.n_slots - 1)
                cost += np.where(ts + i < inst.n_slots, d.grid[sa, shifted] * e, 0.0)
            if sp.long[a, b]:
                for i in range(int(sp.rho[a, b])):
                    shifted = np.minimum(ts + i, inst.n_slots - 1)
                    cost -= np.where(ts + i < inst.n_slots, d.link[sa, sb, shifted], 0.0)
                    cost += _use_price(use, sa, sb, ts + i)
            else:
                share = np.where(cap[sb, ts] > 0, sp.transfer[a, b] / np.maximum(cap[sb, ts],
                                                                                1e-12), 0.0)
                cost -= d.link[sa, sb, ts] * share
                cost += _use_price(use, sa, sb, ts)
            move[a, b] = np.where(sp.ok[a, b], cost, np.inf)
    cap = inst.execution.max_restarts
    return JobProblem(
        sites=sites, origin_k=sp.origin_k, release=sp.release, deadline=sp.deadline,
        work=float(inst.work_h[j] / inst.slot_h), sigma=physics.restore_share(inst),
        hold=hold, occupy=occupy, kwh=sp.kw * inst.slot_h, full=d.full[np.ix_(sites, ts)],
        progress=physics.completion_weight(inst, j, ts),
        move=move, rho=sp.rho, window=sp.window, started=bool(inst.from_checkpoint[j]),
        max_restarts=cap, min_run_slots=physics.min_run_slots(inst)[0],
        max_restores=(cap if cap is not None else 2) + EXTRA_RESTORES + 1,
        unfinished=float(physics.unfinished_weight(inst)[j] * inst.slot_h) if elastic else None)


def _use_price(use: dict, a: int, b: int, slots: np.ndarray) -> np.ndarray:
    if not use:
        return np.zeros(len(slots))
    return np.array([use.get((a, b, int(t)), 0.0) for t in slots])


def price(inst: Instance, sp: JobSpace, d: Duals, elastic: bool) -> JobPath | None:
    """The job's cheapest schedule at ``d`` (None: it cannot finish by its deadline)."""
    return best_path(job_problem(inst, sp, d, elastic))
