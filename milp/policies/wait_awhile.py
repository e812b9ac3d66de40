"""``wait-awhile``: temporal shifting at the origin, no migration ("Let's Wait Awhile").

Jobs are taken least slack first (deadline − release − work: the jobs that can wait least choose
first, then earliest deadline). Each picks, at its origin and between its release and its
deadline, the runs where it would run greenest — the slots with the most spare renewable power,
capped at the job's own power, so a fully green slot is a fully green slot — under the execution
rules (restores, at most ``max_restarts`` restarts, no run shorter than ``min_run_minutes`` but
its last), on GPUs the jobs placed before it left free; ties go to the earlier slot. Spare power
is what earlier-placed jobs left, so jobs do not all pile into the same sunny slot. The choice
is exact for the job (:func:`milp.jobpath.best_path`). If the deadline leaves too little room,
the job runs as early as it can after it (a reported deadline miss, never a dropped job).
"""

from __future__ import annotations

import numpy as np

from milp import physics
from milp.instance import Instance
from milp.jobpath import JobPath, JobProblem, best_path
from milp.plan import Plan
from milp.policies.simulation import Progress, Simulation

#: kWh-equivalent per unit of occupancy after the deadline (late slots only if unavoidable).
LATE_COST = 1e3
#: Cost of a slot's position (earlier is better), far below any energy difference.
TIE_COST = 1e-7


def plan(inst: Instance, progress: Progress | None = None) -> Plan:
    sim = Simulation(inst)
    slack_s = inst.deadline_s - inst.release_s - inst.work_h * 3600.0
    order = np.lexsort((np.arange(inst.n_jobs), inst.deadline_slot, slack_s))
    for done, j in enumerate(order, start=1):
        path = choose(sim, int(j))
        for (_, t) in sorted(path.x, key=lambda key: key[1]):
            sim.run(int(j), t)
        if progress:
            progress(done, len(order))
    return sim.plan("wait-awhile")


def choose(sim: Simulation, j: int) -> JobPath:
    """The greenest runs of job j at its origin (before its deadline if it can)."""
    inst = sim.inst
    r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
    path = best_path(_problem(sim, j, r, d))
    if path is None:              # too little room before the deadline: as early as it can
        path = best_path(_problem(sim, j, r, inst.n_slots, late_from=d))
    if path is None:              # not even by the horizon's end: as much as it can
        path = best_path(_problem(sim, j, r, inst.n_slots, late_from=d, elastic=True))
    return path


def _problem(sim: Simulation, j: int, first: int, end: int, late_from: int | None = None,
             elastic: bool = False) -> JobProblem:
    inst = sim.inst
    n = int(inst.origin[j])
    t = np.arange(first, end)
    kw = inst.compute_kw[j, n]
    spare = np.maximum(0.0, inst.renewable_kw[n, t] - sim.load_kw[n, t])
    occupy = inst.slot_h * (kw - np.minimum(spare, kw)) + TIE_COST * (t - first)
    if late_from is not None:
        occupy = occupy + np.where(t >= late_from, LATE_COST, 0.0)
    # a price per unit of occupancy: kWh per full slot of 1, nothing free
    hold = np.where(sim.gpus_used[n, t] < inst.gpus[n], 0.0, np.inf)
    cap = inst.execution.max_restarts
    return JobProblem(
        sites=np.array([n]), origin_k=0, release=first, deadline=end,
        work=float(sim.left_s[j] / inst.slot_s), sigma=physics.restore_share(inst),
        hold=hold[None, :], occupy=occupy[None, :], kwh=np.ones(1), progress=np.zeros(len(t)),
        started=bool(inst.from_checkpoint[j]), max_restarts=cap,
        min_run_slots=physics.min_run_slots(inst)[0],
        max_restores=(cap if cap is not None else 8) + 1,
        unfinished=LATE_COST * 10 if elastic else None)
