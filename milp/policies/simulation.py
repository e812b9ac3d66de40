"""Slot-stepped bookkeeping shared by the greedy policies.

A :class:`Simulation` holds where each job is, how much work it has left, which GPUs are taken,
and the power committed per site and slot; it turns a policy's decisions (run job j in slot t,
move job j to site d in slot t) into the steps of a :class:`~milp.plan.Plan`.

The rules are the planners' common **slot semantics**, which the MILP (``milp/model.py``)
writes as constraints, so that every greedy plan is also a MILP solution (its warm start):

- a job runs in slot ``t`` only at its current site, after its release and its arrival there,
  for at most its remaining work, on a GPU counted as taken for the whole slot (so the GPUs in
  use at any instant never exceed the site's);
- moves start at a slot start and use the link alone or in a queue, never sharing bandwidth, so
  a link never carries more than its Gbps. **Short moves**: the jobs leaving over link a→b in
  slot ``t`` stop at the slot start; their checkpoints go one after the other at full bandwidth
  (``8·S/B`` s each); all of them can run at b from ``t·Δ + U + load + downtime``, U being the
  link's transfer seconds in that slot, which must end inside the slot
  (``U + load + downtime ≤ Δ``). **Long moves** (``8·S/B + load + downtime > Δ``) have the link
  to themselves from their slot until their transfer ends, and arrive in a later slot;
- a job moving into b holds one of b's GPUs for the whole slot it arrives in.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import numpy as np

from milp.instance import Instance
from milp.plan import JobPlan, Migration, Plan, Run

#: Below this many seconds of work, a job is done (float noise).
DONE_S = 1e-6
Progress = Callable[[int, int], None]


class Simulation:
    """Mutable state of one greedy run over an instance (time in seconds from its start)."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.slot_s = inst.slot_s
        self.lost_s = inst.migration.load_time_s + inst.migration.downtime_s
        self.site = inst.origin.astype(int).copy()            #: [j] current site
        self.ready_s = inst.release_s.astype(float).copy()    #: [j] may run at site from here
        self.left_s = inst.work_h * 3600.0                    #: [j] work still to do (s)
        self.gpus_used = np.zeros((inst.n_sites, inst.n_slots), dtype=int)
        self.load_kw = np.repeat(inst.idle_kw[:, None], inst.n_slots, axis=1).astype(float)
        self.steps: list[list] = [[] for _ in range(inst.n_jobs)]
        self._moves: dict[tuple[int, int], list[int]] = defaultdict(list)  # this slot's moves
        self._link_s: dict[tuple[int, int], float] = defaultdict(float)    # ... their seconds
        self._moving_slot = -1
        self._link_free_s = np.zeros((inst.n_sites, inst.n_sites))  # end of the last transfer
        self._held: set[tuple[int, int]] = set()   # (job, slot): GPU reserved at arrival
        self._pending_kw = np.zeros(inst.n_sites)

    # ---- queries ----------------------------------------------------------------------------
    def spare_kw_all(self, t: int) -> np.ndarray:
        """[n] renewable power (kW) in slot t not yet used by committed or planned load."""
        return np.maximum(0.0, self.inst.renewable_kw[:, t] - self.load_kw[:, t]
                          - (self._pending_kw if t == self._moving_slot else 0.0))

    def spare_kw(self, n: int, t: int) -> float:
        return float(self.spare_kw_all(t)[n])

    def gpu_free(self, n: int, t: int) -> bool:
        return t < self.inst.n_slots and self.gpus_used[n, t] < self.inst.gpus[n]

    def can_run(self, j: int, t: int) -> bool:
        slot_end = (t + 1) * self.slot_s
        return (self.left_s[j] > DONE_S and self.ready_s[j] < slot_end - DONE_S
                and ((j, t) in self._held or self.gpu_free(self.site[j], t)))

    def in_flight(self, j: int, t: int) -> bool:
        """True while job j's move is not over at the start of slot t."""
        return self.ready_s[j] > t * self.slot_s + DONE_S and self.inst.release_slot[j] <= t

    def move_option(self, j: int, dst: int, t: int) -> tuple[float, float] | None:
        """If job j moved to ``dst`` in slot t now: (transfer_s alone, disruption_s counted from
        the slot start: the link's queued transfer seconds, j's, load and downtime). None
        without a link, a free link, a free GPU at dst when j arrives, or inside the horizon."""
        src = self.site[j]
        inst = self.inst
        if src == dst or inst.link_gbps[src, dst] <= 0 or self.in_flight(j, t) or \
                self._link_free_s[src, dst] > t * self.slot_s + DONE_S:
            return None
        transfer = float(inst.transfer_s(j, src, dst))
        queued = self._link_s[(src, dst)] if self._moving_slot == t else 0.0
        disruption = queued + transfer + self.lost_s
        if disruption > self.slot_s and queued > 0:
            return None  # a long move needs the link to itself
        if t * self.slot_s + disruption > inst.horizon_s - DONE_S:
            return None
        if not self.gpu_free(dst, self.arrival_slot(t, disruption)):
            return None
        return transfer, disruption

    def arrival_slot(self, t: int, disruption_s: float) -> int:
        """Slot in which a job that stops at the start of slot t for disruption_s arrives."""
        return int((t * self.slot_s + disruption_s) // self.slot_s)

    # ---- decisions ----------------------------------------------------------------------------
    def run(self, j: int, t: int) -> float:
        """Run job j at its site in slot t for as long as it can; return the seconds run."""
        if not self.can_run(j, t):
            return 0.0
        n = self.site[j]
        s0 = max(t * self.slot_s, self.ready_s[j])
        length = min(self.left_s[j], (t + 1) * self.slot_s - s0)
        steps = self.steps[j]
        last = steps[-1] if steps else None
        if isinstance(last, Run) and last.site == self.inst.sites[n] and \
                abs(last.end_s - s0) <= DONE_S:
            steps[-1] = Run(last.site, last.start_s, s0 + length)
        else:
            steps.append(Run(self.inst.sites[n], s0, s0 + length))
        self.left_s[j] -= length
        if self.left_s[j] <= DONE_S:
            self.left_s[j] = 0.0
        if (j, t) not in self._held:
            self.gpus_used[n, t] += 1
        self.load_kw[n, t] += self.inst.compute_kw[j, n] * length / self.slot_s
        return length

    def move(self, j: int, dst: int, t: int) -> bool:
        """Plan job j's move to ``dst`` in slot t (see :meth:`move_option`); it happens at
        :meth:`commit_moves`. Reserves a GPU at dst for the slot."""
        option = self.move_option(j, dst, t)
        if option is None:
            return False
        if self._moving_slot != t:
            self._start_slot(t)
        src = self.site[j]
        self._moves[(src, dst)].append(j)
        self._link_s[(src, dst)] += option[0]
        self.site[j] = dst
        arrival = self.arrival_slot(t, option[1])
        self.gpus_used[dst, arrival] += 1
        self._held.add((j, arrival))
        if arrival == t:
            self._pending_kw[dst] += self.inst.compute_kw[j, dst] * (1 - option[1] / self.slot_s)
        return True

    def commit_moves(self, t: int) -> list[int]:
        """Write the slot's moves as steps (serialised per link); return the jobs that moved."""
        moved = []
        for (src, dst), jobs in sorted(self._moves.items()) if self._moving_slot == t else ():
            arrival = t * self.slot_s + self._link_s[(src, dst)] + self.lost_s
            start = t * self.slot_s
            for j in jobs:
                transfer = float(self.inst.transfer_s(j, src, dst))
                self.steps[j].append(Migration(
                    self.inst.sites[src], self.inst.sites[dst], start,
                    float(self.inst.checkpoint_gb[j]), transfer, arrival - start))
                self._add_power(src, start, start + transfer, self.inst.migration.transfer_kw)
                self.ready_s[j] = arrival
                start += transfer
                moved.append(j)
            self._link_free_s[src, dst] = start
        self._pending_kw[:] = 0.0
        return moved

    def _add_power(self, n: int, s0: float, s1: float, kw: float) -> None:
        """Commit ``kw`` at site n during [s0, s1), as slot-average power."""
        for t in range(int(s0 // self.slot_s), min(self.inst.n_slots, int(s1 // self.slot_s) + 1)):
            overlap = min(s1, (t + 1) * self.slot_s) - max(s0, t * self.slot_s)
            if overlap > 0:
                self.load_kw[n, t] += kw * overlap / self.slot_s

    def end_slot(self, t: int) -> None:
        """Forget the slot's move bookkeeping."""
        if self._moving_slot == t:
            self._start_slot(-1)

    def _start_slot(self, t: int) -> None:
        self._moving_slot = t
        self._moves.clear()
        self._link_s.clear()
        self._pending_kw[:] = 0.0

    def plan(self, policy: str, info: dict[str, Any] | None = None) -> Plan:
        inst = self.inst
        return Plan(inst.name, inst.start.isoformat(), inst.slot_minutes, policy,
                    tuple(JobPlan(job, tuple(self.steps[j])) for j, job in enumerate(inst.jobs)),
                    info or {})


def by_deadline(inst: Instance) -> np.ndarray:
    """Job indices, earliest deadline first (then release, then file order)."""
    return np.lexsort((np.arange(inst.n_jobs), inst.release_slot, inst.deadline_slot))


def by_release(inst: Instance) -> np.ndarray:
    """Job indices, earliest release first (then deadline, then file order)."""
    return np.lexsort((np.arange(inst.n_jobs), inst.deadline_slot, inst.release_slot))
