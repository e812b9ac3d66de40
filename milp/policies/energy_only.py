"""``energy-only``: chase the renewable surplus, ignoring the feasibility domain.

Any move to a site with more spare renewable power (and a link, a free GPU and room on the link
inside the slot) is taken, whatever the window left there; migrations still cost their real time
and energy in the plan.
"""

from __future__ import annotations

from milp.instance import Instance
from milp.plan import Plan
from milp.policies.follow import follow_renewables
from milp.policies.simulation import Progress, Simulation


def _always(sim: Simulation, j: int, dst: int, t: int, disruption_s: float) -> bool:
    return True


def plan(inst: Instance, progress: Progress | None = None) -> Plan:
    return follow_renewables(inst, "energy-only", _always, progress)
