"""Slot-stepped bookkeeping shared by the greedy policies.

A :class:`Simulation` holds where each job is, how much work it has left, which GPUs are taken,
and the power committed per site and slot; it turns a policy's decisions (run job j in slot t,
move job j to site d in slot t) into the steps of a :class:`~milp.plan.Plan`.

The rules are the planners' common **slot semantics**, which the MILP (``milp/model.py``)
writes as constraints, so that every greedy plan is also a MILP solution (its warm start):

- a job runs in slot ``t`` only at its current site, after its release, for at most its
  remaining work, on a GPU counted as taken for the whole slot (so the GPUs in use at any instant
  never exceed the site's);
- a job moves at the start of a slot and does not run in that slot. The moves over link a→b in
  slot ``t`` send their checkpoints one after the other at full bandwidth (``8·S/B`` seconds
  each), so the link never carries more than its Gbps; the link's transfer seconds U in the slot
  satisfy ``U + load + downtime ≤ Δ`` (**short** moves). A **long** move
  (``8·S/B + load + downtime > Δ``) has the link to itself until its transfer ends;
- a moved job resumes at its destination at the start of the slot after it arrives.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import numpy as np

from milp.instance import Instance
from milp.plan import JobPlan, Migration, Plan, Run
from milp.slots import resume_after

#: Below this many seconds of work, a job is done (float noise).
DONE_S = 1e-6
Progress = Callable[[int, int], None]


class Simulation:
    """Mutable state of one greedy run over an instance (time in seconds from its start)."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.slot_s = inst.slot_s
        self.lost_s = inst.migration.stop_s
        self.site = inst.origin.astype(int).copy()            #: [j] current site
        self.ready_s = inst.release_s.astype(float).copy()    #: [j] may run at site from here
        self.left_s = inst.work_h * 3600.0                    #: [j] work still to do (s)
        self.gpus_used = np.zeros((inst.n_sites, inst.n_slots), dtype=int)
        self.load_kw = np.repeat(inst.idle_kw[:, None], inst.n_slots, axis=1).astype(float)
        self.steps: list[list] = [[] for _ in range(inst.n_jobs)]
        self._link_s: dict[tuple[int, int], float] = defaultdict(float)  # this slot's queue
        self._link_slot = -1
        self._link_free_s = np.zeros((inst.n_sites, inst.n_sites))  # end of the last transfer

    # ---- queries ----------------------------------------------------------------------------
    def spare_kw_all(self, t: int) -> np.ndarray:
        """[n] renewable power (kW) in slot t not yet used by committed load."""
        return np.maximum(0.0, self.inst.renewable_kw[:, t] - self.load_kw[:, t])

    def gpu_free(self, n: int, t: int) -> bool:
        return t < self.inst.n_slots and self.gpus_used[n, t] < self.inst.gpus[n]

    def resident(self, n: int, t: int) -> int:
        """Jobs released by slot t with work left that are at (or moving to) site n."""
        return int(np.count_nonzero((self.site == n) & (self.left_s > DONE_S)
                                    & (self.inst.release_slot <= t)))

    def can_run(self, j: int, t: int) -> bool:
        return (self.left_s[j] > DONE_S and self.ready_s[j] <= t * self.slot_s + DONE_S
                and self.gpu_free(self.site[j], t))

    def in_flight(self, j: int, t: int) -> bool:
        """True while job j has moved and may not run yet at the start of slot t."""
        return self.ready_s[j] > t * self.slot_s + DONE_S and self.inst.release_slot[j] <= t

    def move_option(self, j: int, dst: int, t: int) -> float | None:
        """If job j moved to ``dst`` in slot t now: its disruption counted from the slot start
        (the link's queued transfer seconds, its own, load and downtime); None without a link,
        with the link taken, or when it could not resume before the horizon's end."""
        src = self.site[j]
        inst = self.inst
        if src == dst or inst.link_gbps[src, dst] <= 0 or self.in_flight(j, t) or \
                self._link_free_s[src, dst] > t * self.slot_s + DONE_S:
            return None
        queued = self._link_s[(src, dst)] if self._link_slot == t else 0.0
        disruption = queued + float(inst.transfer_s(j, src, dst)) + self.lost_s
        if disruption > self.slot_s and queued > 0:
            return None  # a long move needs the link to itself
        if self._resume_slot(t, disruption) >= inst.n_slots:
            return None
        return disruption

    def _resume_slot(self, t: int, disruption_s: float) -> int:
        """First slot a job that stops at the start of slot t for disruption_s can run in."""
        return t + resume_after(disruption_s, self.slot_s)

    # ---- decisions ----------------------------------------------------------------------------
    def run(self, j: int, t: int) -> float:
        """Run job j at its site for as much of slot t as its work needs; return the seconds."""
        if not self.can_run(j, t):
            return 0.0
        n = self.site[j]
        s0 = t * self.slot_s
        length = min(self.left_s[j], self.slot_s)
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
        self.gpus_used[n, t] += 1
        self.load_kw[n, t] += self.inst.compute_kw[j, n] * length / self.slot_s
        return length

    def move(self, j: int, dst: int, t: int) -> bool:
        """Move job j to ``dst`` at the start of slot t (see :meth:`move_option`)."""
        disruption = self.move_option(j, dst, t)
        if disruption is None:
            return False
        if self._link_slot != t:
            self._link_slot = t
            self._link_s.clear()
        src = self.site[j]
        transfer = float(self.inst.transfer_s(j, src, dst))
        start = t * self.slot_s + self._link_s[(src, dst)]
        self.steps[j].append(Migration(self.inst.sites[src], self.inst.sites[dst], start,
                                       float(self.inst.checkpoint_gb[j]), transfer,
                                       transfer + self.lost_s))
        self._link_s[(src, dst)] += transfer
        if disruption > self.slot_s:  # a long move holds the link past this slot
            self._link_free_s[src, dst] = start + transfer
        self._add_power(src, start, start + transfer, self.inst.migration.transfer_kw)
        self.site[j] = dst
        self.ready_s[j] = self._resume_slot(t, disruption) * self.slot_s
        return True

    def _add_power(self, n: int, s0: float, s1: float, kw: float) -> None:
        """Commit ``kw`` at site n during [s0, s1), as slot-average power."""
        for t in range(int(s0 // self.slot_s), min(self.inst.n_slots, int(s1 // self.slot_s) + 1)):
            overlap = min(s1, (t + 1) * self.slot_s) - max(s0, t * self.slot_s)
            if overlap > 0:
                self.load_kw[n, t] += kw * overlap / self.slot_s

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
