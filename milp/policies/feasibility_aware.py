"""``feasibility-aware``: the study's orchestrator — move only inside the feasibility domain.

A move of job j to site d in slot t, stopping the job for ``T_mig`` seconds from the slot start
(its transfer, those queued before it on the link, load and downtime), is taken only if

1. d is in a renewable window, ``T_mig ≤ alpha × W`` (W = seconds of that window left at the
   slot start) and the job resumes at d inside that window (time feasibility);
2. the energy breakeven ``transfer_kw · T_transfer / compute_kw`` is shorter than W;
3. the job has at least the breakeven of work left, so the renewable compute pays the move back,
   and it can still finish by its deadline when it resumes at d (at the first slot start after
   its checkpoint arrives, loading it first) — a move never costs a deadline;
4. the move makes the job greener: the spare renewable power it could use at d, capped at its
   own power, exceeds what it could use where it is.

Class C jobs on slow links therefore stay put.
"""

from __future__ import annotations

from milp import feasibility as fz
from milp import physics
from milp.instance import Instance
from milp.plan import Plan
from milp.policies.follow import follow_renewables
from milp.policies.simulation import Progress, Simulation


def in_domain(sim: Simulation, j: int, dst: int, t: int, disruption_s: float) -> bool:
    inst = sim.inst
    src = sim.site[j]
    window_slots = int(inst.remaining_window_slots[dst, t])
    window_s = window_slots * inst.slot_s
    if not fz.time_feasible(disruption_s, window_s, inst.migration.alpha):
        return False
    transfer = float(physics.transfer_s(inst, j, src, dst))
    rho = physics.resume_after(transfer, inst.slot_s)
    if rho >= window_slots:
        return False                  # it would resume after the window has ended
    breakeven = fz.breakeven_s(transfer, inst.migration.transfer_kw, inst.compute_kw[j, dst])
    if breakeven >= window_s or sim.left_s[j] < breakeven:
        return False
    finish_s = (t + rho) * inst.slot_s + inst.migration.stop_s + sim.left_s[j]
    if finish_s > inst.deadline_s[j] + 1e-6:
        return False
    kw_here, kw_there = inst.compute_kw[j, src], inst.compute_kw[j, dst]
    spare = sim.spare_kw_all(t)
    return min(spare[dst], kw_there) / kw_there > min(spare[src], kw_here) / kw_here


def plan(inst: Instance, progress: Progress | None = None) -> Plan:
    return follow_renewables(inst, "feasibility-aware", in_domain, progress)
