"""Policies: every one maps an :class:`~milp.instance.Instance` to a :class:`~milp.plan.Plan`.

``POLICIES`` names them for the CLI; each module documents its rule.
"""

from __future__ import annotations

from typing import Callable

from milp.instance import Instance
from milp.plan import Plan
from milp.policies import energy_only, feasibility_aware, static, wait_awhile
from milp.policies.simulation import Progress

PolicyFn = Callable[[Instance, Progress | None], Plan]

#: Greedy baselines, in the order reports list them.
POLICIES: dict[str, PolicyFn] = {
    "static": static.plan,
    "wait-awhile": wait_awhile.plan,
    "energy-only": energy_only.plan,
    "feasibility-aware": feasibility_aware.plan,
}
