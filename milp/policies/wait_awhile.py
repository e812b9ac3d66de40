"""``wait-awhile``: temporal shifting at the origin, no migration ("Let's Wait Awhile").

Jobs are taken least slack first (deadline − release − work: the jobs that can wait least choose
first, then earliest deadline). Each picks, among the slots between its release and its
deadline where its origin has a free GPU, the ones where it would run greenest — the most spare
renewable power, capped at the job's own power, so a fully green slot is a fully green slot —
breaking ties by the earlier slot. Spare power is what earlier-placed jobs left, so jobs do not
all pile into the same sunny slot. If the deadline leaves too few free slots, the rest of the work
goes into the earliest free slots after it (a reported deadline miss, never a dropped job).
"""

from __future__ import annotations

import math

import numpy as np

from milp.instance import Instance
from milp.plan import Plan
from milp.policies.simulation import DONE_S, Progress, Simulation


def plan(inst: Instance, progress: Progress | None = None) -> Plan:
    sim = Simulation(inst)
    slack_s = inst.deadline_s - inst.release_s - inst.work_h * 3600.0
    order = np.lexsort((np.arange(inst.n_jobs), inst.deadline_slot, slack_s))
    for done, j in enumerate(order, start=1):
        for t in sorted(_choose_slots(sim, j)):
            sim.run(j, t)
        if progress:
            progress(done, len(order))
    return sim.plan("wait-awhile")


def _choose_slots(sim: Simulation, j: int) -> list[int]:
    """Slots job j should run in at its origin: greenest before the deadline, then earliest."""
    inst = sim.inst
    n = sim.site[j]
    need = math.ceil(sim.left_s[j] / sim.slot_s - DONE_S / sim.slot_s)
    free = np.flatnonzero(sim.gpus_used[n] < inst.gpus[n])
    free = free[free >= inst.release_slot[j]]
    before = free[free < inst.deadline_slot[j]]
    kw = inst.compute_kw[j, n]
    green = np.minimum(np.maximum(0.0, inst.renewable_kw[n, before] - sim.load_kw[n, before]), kw)
    chosen = before[np.lexsort((before, -green))][:need].tolist()
    after = free[free >= inst.deadline_slot[j]]
    return chosen + after[:need - len(chosen)].tolist()
