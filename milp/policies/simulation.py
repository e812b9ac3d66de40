"""Slot-stepped bookkeeping shared by the greedy policies.

A :class:`Simulation` holds where each job is, how much work it has left, its current run, the
GPUs taken, the power committed per site and slot, and the link and site WAN use; it turns a
policy's decisions (run job j in slot t, move job j to site d in slot t) into a slot-level
:class:`~milp.physics.Solution`, and that into a :class:`~milp.plan.Plan` by the shared rules of
:mod:`milp.physics` — so every greedy plan is also a point of the MILP (its warm start):

- a job runs in slot ``t`` only at its current site, after its release (and arrival), for a
  full slot or what its work still needs, holding one GPU for the whole slot; a run that does
  not continue the job's previous slot there begins with a restore (except its first run), and
  a run after a pause at the same site is a restart (at most ``max_restarts``);
- a running job keeps its GPU: jobs continuing a run are served before the others, and a run
  shorter than ``min_run_minutes`` only ends when the job is done;
- a job moves at the start of a slot and does not run in it, and only from a site it has run at
  since it came there (or from its origin); short moves over one link in one slot are queued (their transfers add up to at most a slot); a long move has the link to
  itself; the links in use at a site in a slot fit its WAN capacity; the moved job may run at
  its destination from the slot after its checkpoint arrives.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from milp import physics
from milp.instance import Instance
from milp.physics import Solution
from milp.plan import Plan

#: Below this many seconds of work, a job is done (float noise).
DONE_S = 1e-6
Progress = Callable[[int, int], None]


class Simulation:
    """Mutable state of one greedy run over an instance (time in slots; work in seconds)."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.slot_s = inst.slot_s
        self.stop_s = inst.migration.stop_s
        n, J, T = inst.n_sites, inst.n_jobs, inst.n_slots
        self.site = inst.origin.astype(int).copy()            #: [j] current site
        self.ready = inst.release_slot.astype(int).copy()     #: [j] first slot it may run there
        self.left_s = inst.work_h * 3600.0                    #: [j] work still to do (s)
        self.started = np.array(inst.from_checkpoint, dtype=bool)  #: ran or moved already
        self.last_run = np.full(J, -2)                        #: [j] last slot it ran in
        self.last_full = np.zeros(J, dtype=bool)              #: ... and held all of it
        self.run_slots = np.zeros(J, dtype=int)               #: slots of its current run
        self.ran_here = np.zeros(J, dtype=bool)               #: ran at its site since arrival
        self.arrived = np.zeros(J, dtype=bool)                #: moved, not run there yet
        self.restarts = np.zeros(J, dtype=int)
        self.gpus_used = np.zeros((n, T), dtype=int)
        self.load_kw = np.repeat(inst.idle_kw[:, None], T, axis=1).astype(float)
        self.rate = physics.link_rate_gbps(inst)
        self.queue_s: dict[tuple[int, int, int], float] = {}  # short transfers per link-slot
        self.link_busy: set[tuple[int, int, int]] = set()     # link-slots held by long moves
        self.site_gbps = np.zeros((n, T))
        self.max_restarts = inst.execution.max_restarts
        self.min_run_slots = physics.min_run_slots(inst)[0]
        self.sol = Solution()

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

    def continuing(self, j: int, t: int) -> bool:
        """Job j ran all of slot t − 1 at its site: running in t continues that run."""
        return bool(self.last_run[j] == t - 1 and self.last_full[j])

    def can_run(self, j: int, t: int) -> bool:
        if self.left_s[j] <= DONE_S or self.ready[j] > t or not self.gpu_free(self.site[j], t):
            return False
        restart = self.ran_here[j] and not self.continuing(j, t)
        return not (restart and self.max_restarts is not None
                    and self.restarts[j] >= self.max_restarts)

    def in_flight(self, j: int, t: int) -> bool:
        """True while job j has moved and may not run yet at the start of slot t."""
        return self.ready[j] > t and self.inst.release_slot[j] <= t

    def must_run_on(self, j: int, t: int) -> bool:
        """Job j is in a run shorter than ``min_run_minutes``: only its end may end it."""
        return self.continuing(j, t) and self.run_slots[j] < self.min_run_slots

    def move_option(self, j: int, dst: int, t: int) -> float | None:
        """If job j moved to ``dst`` in slot t now: its disruption counted from the slot start
        (the link's queued transfer seconds, its own, load and downtime); None without a link,
        with the link or a site's WAN taken, in a run too short to end, or when it could not
        run at ``dst`` before the horizon's end."""
        src, inst = self.site[j], self.inst
        if src == dst or self.rate[src, dst] <= 0 or self.in_flight(j, t) or \
                self.must_run_on(j, t) or self.arrived[j]:
            return None                            # (a moved job runs before it moves on)
        transfer = float(physics.transfer_s(inst, j, src, dst))
        long = bool(physics.is_long(transfer, self.slot_s))
        slots = range(t, t + physics.busy_slots(transfer, self.slot_s)) if long else (t,)
        queued = self.queue_s.get((src, dst, t), 0.0)
        if long and (queued > 0 or any((src, dst, s) in self.link_busy or
                                       (src, dst, s) in self.queue_s for s in slots)):
            return None                            # a long move needs the link to itself
        if not long and (queued + transfer > self.slot_s + 1e-9 or (src, dst, t) in self.link_busy):
            return None                            # queued moves all arrive within the slot
        if not self._wan_room(src, dst, slots):
            return None
        if t + physics.resume_after(transfer, self.slot_s) >= inst.n_slots:
            return None
        return queued + transfer + self.stop_s

    def _wan_room(self, a: int, b: int, slots) -> bool:
        """Whether link a→b may be in use in ``slots`` within both sites' WAN capacity."""
        for s in slots:
            if s >= self.inst.n_slots or (a, b, s) in self.queue_s or (a, b, s) in self.link_busy:
                continue                           # in use already: no extra rate
            for n in (a, b):
                if self.site_gbps[n, s] + self.rate[a, b] > self.inst.wan_gbps[n] + 1e-9:
                    return False
        return True

    # ---- decisions ----------------------------------------------------------------------------
    def run(self, j: int, t: int) -> float:
        """Run job j at its site in slot t for a full slot or what its work still needs (after
        a restore when the run is new); return the seconds of work done."""
        if not self.can_run(j, t):
            return 0.0
        n = self.site[j]
        going_on = self.continuing(j, t)
        restore = 0.0 if going_on or not self.started[j] else self.stop_s
        work = min(self.left_s[j], self.slot_s - restore)
        held = work + restore
        self.sol.x[j, n, t] = work / self.slot_s
        if not going_on:
            self.restarts[j] += int(self.ran_here[j])
            self.run_slots[j] = 0
        self.run_slots[j] += 1
        self.last_run[j], self.last_full[j] = t, held >= self.slot_s - DONE_S
        self.started[j] = self.ran_here[j] = True
        self.arrived[j] = False
        self.left_s[j] -= work
        if self.left_s[j] <= DONE_S:
            self.left_s[j] = 0.0
        self.gpus_used[n, t] += 1
        self.load_kw[n, t] += self.inst.compute_kw[j, n] * held / self.slot_s
        return work

    def move(self, j: int, dst: int, t: int) -> bool:
        """Move job j to ``dst`` at the start of slot t (see :meth:`move_option`)."""
        if self.move_option(j, dst, t) is None:
            return False
        src, inst = self.site[j], self.inst
        transfer = float(physics.transfer_s(inst, j, src, dst))
        if physics.is_long(transfer, self.slot_s):
            used = [(src, dst, t + i) for i in range(physics.busy_slots(transfer, self.slot_s))]
            self.link_busy.update(used)
        else:
            used = [] if (src, dst, t) in self.queue_s else [(src, dst, t)]
            self.queue_s[src, dst, t] = self.queue_s.get((src, dst, t), 0.0) + transfer
        for (a, b, s) in used:
            if s < inst.n_slots:
                self.site_gbps[a, s] += self.rate[a, b]
                self.site_gbps[b, s] += self.rate[a, b]
        for i, e in enumerate(physics.transfer_kwh(inst, transfer)):
            if t + i < inst.n_slots:
                self.load_kw[src, t + i] += e / inst.slot_h
        self.sol.moves.add((j, src, dst, t))
        self.site[j], self.started[j], self.ran_here[j], self.arrived[j] = dst, True, False, True
        self.last_run[j] = -2
        self.ready[j] = t + physics.resume_after(transfer, self.slot_s)
        return True

    def plan(self, policy: str, info: dict[str, Any] | None = None) -> Plan:
        return physics.plan_from_solution(self.inst, self.sol, policy, info)


def by_deadline(inst: Instance) -> np.ndarray:
    """Job indices, earliest deadline first (then release, then file order)."""
    return np.lexsort((np.arange(inst.n_jobs), inst.release_slot, inst.deadline_slot))


def by_release(inst: Instance) -> np.ndarray:
    """Job indices, earliest release first (then deadline, then file order)."""
    return np.lexsort((np.arange(inst.n_jobs), inst.deadline_slot, inst.release_slot))


def continuing_first(sim: Simulation, order: np.ndarray, t: int) -> list[int]:
    """``order`` with the jobs continuing a run in slot t first: a running job keeps its GPU."""
    return sorted(order.tolist(), key=lambda j: not sim.continuing(j, t))
