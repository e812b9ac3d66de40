"""``energy-only``: chase the renewable surplus, ignoring the feasibility domain.

Any move to a site with more spare renewable power (and a link and a free GPU) is taken,
whatever its disruption; migrations still cost their real time and energy in the plan.
"""

from __future__ import annotations

from milp.instance import Instance
from milp.plan import Plan
from milp.policies.follow import follow_renewables
from milp.policies.simulation import Progress, Simulation


def _always(sim: Simulation, j: int, dst: int, t: int, start_s: float,
            disruption_s: float) -> bool:
    return True


def plan(inst: Instance, progress: Progress | None = None) -> Plan:
    return follow_renewables(inst, "energy-only", _always, progress)
