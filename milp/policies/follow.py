"""The loop shared by the two migrating greedy policies: follow the renewable surplus.

Slot by slot, jobs continuing a run go first (a running job keeps its GPU), then the others,
each group earliest deadline first. A job that is not moving looks at the sites it has a free
link to and that have fewer resident jobs than GPUs; among those the policy's rule accepts, it
picks the one with the most spare renewable power (kW not used by the jobs placed before it) and
moves there if that is more than the spare power where it is — unless it is in a run shorter
than ``min_run_minutes``. Otherwise it runs where it is if a GPU is free. No job ever waits on
purpose. (Slot rules: ``simulation.py``.)
"""

from __future__ import annotations

from typing import Callable

from milp.instance import Instance
from milp.plan import Plan
from milp.policies.simulation import Progress, Simulation, by_deadline, continuing_first

#: accept(sim, j, dst, t, disruption_s) -> bool: may job j move to dst in slot t, stopping for
#: disruption_s from the slot start?
Rule = Callable[[Simulation, int, int, int, float], bool]


def follow_renewables(inst: Instance, name: str, accept: Rule,
                      progress: Progress | None = None) -> Plan:
    sim = Simulation(inst)
    order = by_deadline(inst)
    for t in range(inst.n_slots):
        for j in continuing_first(sim, order, t):
            if inst.release_slot[j] > t or sim.left_s[j] <= 0:
                continue
            dst = _best_move(sim, j, t, accept)
            if dst is None or not sim.move(j, dst, t):
                sim.run(j, t)
        if progress:
            progress(t + 1, inst.n_slots)
    return sim.plan(name)


def _best_move(sim: Simulation, j: int, t: int, accept: Rule) -> int | None:
    """The site with the most spare renewable power that beats staying and that j may reach."""
    if sim.in_flight(j, t) or sim.must_run_on(j, t):
        return None
    spare = sim.spare_kw_all(t)
    for d in sorted(range(sim.inst.n_sites), key=lambda d: (-spare[d], d)):
        if spare[d] <= spare[sim.site[j]]:
            return None
        disruption = sim.move_option(j, d, t)
        if disruption is not None and sim.resident(d, t) < sim.inst.gpus[d] and \
                accept(sim, j, d, t, disruption):
            return d
    return None
