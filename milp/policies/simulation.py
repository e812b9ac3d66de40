"""Slot-stepped bookkeeping shared by the greedy policies.

A :class:`Simulation` holds where each job is, how much work it has left, which GPUs and links
are taken, and the power committed per site and slot; it turns a policy's decisions (run job j
in slot t, move job j to site d) into the steps of a :class:`~milp.plan.Plan`.

Rules it enforces, so that every greedy plan passes the evaluator:

- a job runs in slot ``t`` only at its current site, after its release and its arrival there,
  for at most its remaining work, on a GPU counted as taken for the whole slot (so the GPUs in
  use at any instant never exceed the site's);
- a migration starts at the slot start or when the link src→dst is free, whichever is later;
  transfers on one link are serialised at full bandwidth (``8·S/B`` seconds), so a link never
  carries more than its Gbps; the job waits, then is disrupted for transfer + load + downtime;
- a migration must end inside the horizon.
"""

from __future__ import annotations

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
        self.site = inst.origin.astype(int).copy()            #: [j] current site (dst in flight)
        self.ready_s = inst.release_s.astype(float).copy()    #: [j] may run at site from here
        self.left_s = inst.work_h * 3600.0                    #: [j] work still to do (s)
        self.gpus_used = np.zeros((inst.n_sites, inst.n_slots), dtype=int)
        self.load_kw = np.repeat(inst.idle_kw[:, None], inst.n_slots, axis=1).astype(float)
        self.link_free_s = np.zeros((inst.n_sites, inst.n_sites))
        self.steps: list[list] = [[] for _ in range(inst.n_jobs)]

    # ---- queries ----------------------------------------------------------------------------
    def released(self, t: int) -> np.ndarray:
        """Jobs released by slot t with work left, in index order."""
        return np.flatnonzero((self.inst.release_slot <= t) & (self.left_s > DONE_S))

    def in_flight(self, j: int, t: int) -> bool:
        """True while job j is still migrating at the start of slot t."""
        return self.ready_s[j] > t * self.slot_s + DONE_S and self.inst.release_slot[j] <= t

    def spare_kw(self, n: int, t: int) -> float:
        """Renewable power (kW) at site n in slot t not yet used by committed load."""
        return max(0.0, float(self.inst.renewable_kw[n, t] - self.load_kw[n, t]))

    def spare_kw_all(self, t: int) -> np.ndarray:
        return np.maximum(0.0, self.inst.renewable_kw[:, t] - self.load_kw[:, t])

    def gpu_free(self, n: int, t: int) -> bool:
        return t < self.inst.n_slots and self.gpus_used[n, t] < self.inst.gpus[n]

    def can_run(self, j: int, t: int) -> bool:
        slot_end = (t + 1) * self.slot_s
        return (self.left_s[j] > DONE_S and self.ready_s[j] < slot_end - DONE_S
                and self.gpu_free(self.site[j], t))

    def migration_window(self, j: int, dst: int, t: int) -> tuple[float, float, float] | None:
        """If job j moved to ``dst`` in slot t: (start_s, transfer_s, disruption_s), or None
        without a link or when it would end past the horizon."""
        src = self.site[j]
        gbps = self.inst.link_gbps[src, dst]
        if src == dst or gbps <= 0:
            return None
        start = max(t * self.slot_s, self.ready_s[j], self.link_free_s[src, dst])
        transfer = float(self.inst.transfer_s(j, src, dst))
        m = self.inst.migration
        disruption = transfer + m.load_time_s + m.downtime_s
        if start + disruption > self.inst.horizon_s:
            return None
        return start, transfer, disruption

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
        self.gpus_used[n, t] += 1
        self.load_kw[n, t] += self.inst.compute_kw[j, n] * length / self.slot_s
        return length

    def migrate(self, j: int, dst: int, t: int) -> Migration | None:
        """Move job j to ``dst`` starting in slot t (see :meth:`migration_window`)."""
        window = self.migration_window(j, dst, t)
        if window is None:
            return None
        start, transfer, disruption = window
        src = self.site[j]
        step = Migration(self.inst.sites[src], self.inst.sites[dst], start,
                         float(self.inst.checkpoint_gb[j]), transfer, disruption)
        self.steps[j].append(step)
        self.link_free_s[src, dst] = start + transfer
        self._add_power(src, start, start + transfer, self.inst.migration.transfer_kw)
        self.site[j] = dst
        self.ready_s[j] = start + disruption
        return step

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
