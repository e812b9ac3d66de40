"""``static``: no migration, no waiting.

Every job runs at its origin from its release as soon as a GPU is free there, and keeps it until
it is done (one run); free GPUs go to the earliest-released job first, then the earliest
deadline.
"""

from __future__ import annotations

from milp.instance import Instance
from milp.plan import Plan
from milp.policies.simulation import Progress, Simulation, by_release, continuing_first


def plan(inst: Instance, progress: Progress | None = None) -> Plan:
    sim = Simulation(inst)
    order = by_release(inst)
    for t in range(inst.n_slots):
        for j in continuing_first(sim, order, t):
            if inst.release_slot[j] <= t:
                sim.run(j, t)
        if progress:
            progress(t + 1, inst.n_slots)
    return sim.plan("static")
