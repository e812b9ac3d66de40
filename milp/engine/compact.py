"""The compact MILP (Pyomo): the reference formulation of the slot rules of :mod:`milp.physics`.

It proves optimality on small instances and is the gate every other engine's plans pass in the
tests (each is a feasible point of it with the same objective). Sets come from
:mod:`milp.engine.index`; Δ slot (s), h = Δ/3600, L = load + downtime (s), σ = L/Δ,
U and m from :func:`milp.physics.min_run_slots`, R = ``max_restarts``.

Variables (over OCC unless said)
    o[j,n,t] ∈ {0,1}  job j is at site n in slot t
    y[j,n,t] ∈ {0,1}  it runs there in slot t (and holds a GPU for the slot)
    x[j,n,t] ∈ [0,1]  share of slot t it computes
    z[j,n,t] ∈ [0,1]  a run starts in slot t            (integral when y is)
    q[j,n,t] ∈ [0,1]  that run begins with a restore     (integral when y, o are)
    S[j,t]   ∈ [0,1]  the job ran or moved before slot t (over J×T_j)
    A[j,n,t] ∈ [0,1]  it moved to n and has not run there yet
    hh, rs   ∈ [0,1]  it ran at n earlier in this stay / the run is a restart   (R finite)
    R[j,t]   ∈ [0,1]  the job runs in a slot after t
    later[j,t] ∈ [0,1] a run starts after slot t                                 (U > 0)
    m[k]     ∈ [0,1]  move k is made (integral when o is)
    u[a,b,t] ∈ [0,1]  link a→b is in use in slot t (only next to a site with a WAN cap)
    g[n,t]   ≥ 0      grid energy (kWh);  s[j] ≥ 0 unfinished GPU-hours (elastic only)

Constraints (family: enforced over — what)
    flow:    OCC — o[j,n,t] = o[j,n,t−1] + Σ_a m[j,a,n,t] − Σ_b m[j,n,b,t]  (o[j,n,r−1] = [n = origin])
    leave:   (j,a,t) with moves out — Σ_b m[j,a,b,t] ≤ o[j,a,t−1] − Σ (long moves into a in flight)
    run:     OCC — y[j,n,t] ≤ o[j,n,t] − Σ (moves into n not resumed by t)
    arrived: OCC — A[t] ≥ A[t−1] + Σ moves into n in t − y[t];  leave: Σ_b m[j,a,b,t] ≤ 1 − A[j,a,t−1];
             moves k into b in t — A[j,b,e_k − 1] ≤ 1 − m_k, e_k = min(t + W_b(t)/Δ, deadline_j):
             a move is followed by a run at its destination that starts inside its window
    share:   OCC — x + σ·q ≤ y
    start:   OCC — z ≥ y[t] − y[t−1];  z ≤ y[t];  z ≤ 1 − y[t−1]                  (same site)
    restore: OCC — q ≥ z + S[j,t] − 1, q ≤ z, q ≤ S[j,t] (q = z·S: a run restores iff the job
             ran or moved before);  S[t] ≥ S[t−1], S[t] ≥ Σ_n y[j,n,t−1], S[t] ≥ Σ moves of j in
             t−1, S[t] ≤ S[t−1] + Σ_n y[j,n,t−1] + Σ moves of j in t−1, S[release] = from_checkpoint_j
    full:    OCC — x + σ·q ≥ y − 1 + R[j,t];  R[t] ≥ R[t+1], R[t] ≥ Σ_n y[j,n,t+1]: every slot a job
             runs in is full but its very last (runs start and end on the slot grid)
    minrun:  OCC — Σ_{t'=t..t+U−1} (x + σ·q)[j,n,t'] ≥ m·(z[j,n,t] + later[j,t] − 1);
             later[t] ≥ later[t+1], later[t] ≥ Σ_n z[j,n,t+1]
    restart: OCC — hh[t] ≥ y[t−1] + o[t] − 1, hh[t] ≥ hh[t−1] + o[t] − 1, rs ≥ z + hh − 1;
             J — Σ rs[j,·,·] ≤ R
    link:    (a,b,t) shared — Σ_short T_k·m_k / cap_bt + Σ_long-busy m_k ≤ 1, cap_bt = min(Δ, α·W_b(t) − L)
    site:    (a,b,t) next to a capped site — u ≥ m_k;  (n,t) — Σ_{links at n} r_ab·u[a,b,t] ≤ WAN_n
    gpus:    (n,t) — Σ_j y[j,n,t] ≤ GPUs_n
    work:    J — Σ_{n,t} x·h (+ s[j]) = work_j
    grid:    (n,t) touched — g ≥ idle_n·h + Σ_j kW_jn·h·(x + σ·q) + Σ_{moves from n} e_kt·m_k − R_nt·h
    jct:     Σ_j h·(Σ_t R[j,t] + Σ_{n,t} (x + σ·q − y) + 1) ≤ J·H  (mean JCT ≤ H; only with a
             bound): a job's last slot L gives Σ_t R = L − r, and every slot it runs in but L is
             full, so Σ (occupancy − y) + 1 is the occupancy of L: its completion from release

Objective: min Σ w_nt·g + w_mig·Σ m + Σ w_c·h·((t+1)·h − r_j·h)·x (+ Σ ≈1000·s_j if elastic),
w the grid weights (1 per kWh, or kg CO₂ per kWh); cells no job can touch add their
w·max(0, idle_n·h − R_nt·h) as a constant.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyomo.environ as pyo

from milp import physics
from milp.engine.index import Index
from milp.physics import Solution


def build_model(index: Index, *, elastic: bool = False, weights: np.ndarray | None = None,
                jct_budget_h: float | None = None) -> pyo.ConcreteModel:
    """Create variables, constraints and objective over ``index`` (see the module docstring).
    ``weights`` [n, t]: the objective's cost per kWh of grid energy (1 if None);
    ``jct_budget_h``: the jobs' completion times from release may add up to this (hours)."""
    inst = index.inst
    m = pyo.ConcreteModel(name=f"milp-{inst.name}")
    lk = _Lookups(index)
    m.OCC = pyo.Set(initialize=index.occ, dimen=3, ordered=True)
    m.JT = pyo.Set(initialize=lk.job_slots, dimen=2, ordered=True)
    m.MOV = pyo.RangeSet(0, len(index.moves) - 1) if len(index.moves) else pyo.Set(initialize=[])
    m.SLOTS = pyo.Set(initialize=sorted(lk.touched), dimen=2, ordered=True)

    m.o = pyo.Var(m.OCC, domain=pyo.Binary)
    m.y = pyo.Var(m.OCC, domain=pyo.Binary)
    m.x = pyo.Var(m.OCC, bounds=(0, 1))
    m.z = pyo.Var(m.OCC, bounds=(0, 1))
    m.q = pyo.Var(m.OCC, bounds=(0, 1))
    m.S = pyo.Var(m.JT, bounds=(0, 1))
    m.m = pyo.Var(m.MOV, bounds=(0, 1))
    m.g = pyo.Var(m.SLOTS, domain=pyo.NonNegativeReals)
    for (j, n, t) in index.occ:
        if j in index.fixed_jobs:
            m.o[j, n, t].fix(1)
    if elastic:
        m.JOBS = pyo.Set(initialize=range(inst.n_jobs), ordered=True)
        m.s = pyo.Var(m.JOBS, bounds=lambda _, j: (0, float(inst.work_h[j])))

    _add_flow(m, index, lk)
    _add_arrivals(m, index, lk)
    _add_runs(m, index, lk)
    _add_restore(m, index, lk)
    _add_min_run(m, index, lk)
    _add_restarts(m, index, lk)
    _add_links(m, index)
    _add_sites(m, index)
    _add_gpus(m, index, lk)
    _add_work(m, index, lk, elastic)
    _add_grid(m, index, lk)
    if jct_budget_h is not None:
        _add_jct(m, index, lk, jct_budget_h)
    _add_objective(m, index, elastic, weights)
    return m


class _Lookups:
    """Neighbours and move groups the constraint families share."""

    def __init__(self, index: Index) -> None:
        inst = index.inst
        self.occ = set(index.occ)
        self.sigma = physics.restore_share(inst)
        mv = index.moves
        self.into, self.out_of = defaultdict(list), defaultdict(list)
        self.in_flight, self.away = defaultdict(list), defaultdict(list)
        self.moved_in = defaultdict(list)                 # (j, t) -> moves made in slot t
        for k in range(len(mv)):
            j, a, b, t = mv.key(k)
            self.into[j, b, t].append(k)
            self.out_of[j, a, t].append(k)
            self.moved_in[j, t].append(k)
            for tt in range(t + 1, int(mv.resume[k])):
                self.in_flight[j, b, tt].append(k)
            for tt in range(t, int(mv.resume[k])):
                self.away[j, b, tt].append(k)
        self.job_slots = [(j, t) for j in range(inst.n_jobs)
                          for t in range(int(inst.release_slot[j]), int(inst.deadline_slot[j]))]
        self.at = defaultdict(list)                       # (j, t) -> sites it can be at
        for (j, n, t) in index.occ:
            self.at[j, t].append(n)
        self.touched = {(n, t) for (_, n, t) in index.occ}
        for k in range(len(mv)):
            for i in range(int(physics.busy_slots(mv.transfer_s[k], inst.slot_s))):
                if mv.slot[k] + i < inst.n_slots:
                    self.touched.add((int(mv.src[k]), int(mv.slot[k]) + i))

    def prev(self, m, var, j: int, n: int, t: int):
        """var[j,n,t−1], or 0 where the job cannot be at n in t−1."""
        return var[j, n, t - 1] if (j, n, t - 1) in self.occ else 0


def _occupancy(m, lk: _Lookups, j: int, n: int, t: int):
    return m.x[j, n, t] + lk.sigma * m.q[j, n, t]


def _add_flow(m, index: Index, lk: _Lookups) -> None:
    """flow, leave, run (see the module docstring)."""
    inst = index.inst

    def prev_o(j, n, t):
        if (j, n, t - 1) in lk.occ:
            return m.o[j, n, t - 1]
        return 1 if (t == inst.release_slot[j] and n == inst.origin[j]) else 0

    m.flow = pyo.Constraint(
        [key for key in index.occ if key[0] not in index.fixed_jobs],
        rule=lambda _, j, n, t: m.o[j, n, t] == prev_o(j, n, t)
        + sum(m.m[k] for k in lk.into.get((j, n, t), ()))
        - sum(m.m[k] for k in lk.out_of.get((j, n, t), ())))
    m.leave = pyo.Constraint(
        sorted(lk.out_of), rule=lambda _, j, a, t: sum(m.m[k] for k in lk.out_of[j, a, t])
        <= prev_o(j, a, t) - sum(m.m[k] for k in lk.in_flight.get((j, a, t), ())))
    m.run = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.y[j, n, t] <= m.o[j, n, t]
                           - sum(m.m[k] for k in lk.away.get((j, n, t), ())))


def _add_arrivals(m, index: Index, lk: _Lookups) -> None:
    """arrived: a moved job runs at its destination, starting inside the destination's window,
    before it may move on (the feasibility domain's "resumes inside the window")."""
    inst = index.inst
    m.A = pyo.Var(m.OCC, bounds=(0, 1))
    m.arrived = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.A[j, n, t]
                               >= lk.prev(m, m.A, j, n, t)
                               + sum(m.m[k] for k in lk.into.get((j, n, t), ())) - m.y[j, n, t])
    m.leave_after_run = pyo.Constraint(
        [key for key in sorted(lk.out_of) if (key[0], key[1], key[2] - 1) in lk.occ],
        rule=lambda _, j, a, t: sum(m.m[k] for k in lk.out_of[j, a, t]) <= 1 - m.A[j, a, t - 1])
    mv = index.moves

    def resumed(_, k):
        j, _, b, t = mv.key(k)
        end = min(t + int(inst.remaining_window_slots[b, t]), int(inst.deadline_slot[j]))
        return m.A[j, b, end - 1] <= 1 - m.m[k]
    m.resume_in_window = pyo.Constraint(m.MOV, rule=resumed)


def _add_runs(m, index: Index, lk: _Lookups) -> None:
    """share, start, full: runs are stretches of full slots at one site (but a job's last)."""
    m.share = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: _occupancy(m, lk, j, n, t)
                             <= m.y[j, n, t])
    m.start = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.z[j, n, t]
                             >= m.y[j, n, t] - lk.prev(m, m.y, j, n, t))
    m.start_runs = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.z[j, n, t] <= m.y[j, n, t])
    with_prev = [key for key in index.occ if (key[0], key[1], key[2] - 1) in lk.occ]
    m.start_after_gap = pyo.Constraint(with_prev, rule=lambda _, j, n, t: m.z[j, n, t]
                                       <= 1 - m.y[j, n, t - 1])
    inst = index.inst
    m.R = pyo.Var(m.JT, bounds=(0, 1))
    nxt = [(j, t) for (j, t) in lk.job_slots if t + 1 < inst.deadline_slot[j]]
    m.runs_later_stays = pyo.Constraint(nxt, rule=lambda _, j, t: m.R[j, t] >= m.R[j, t + 1])
    m.runs_later = pyo.Constraint(
        [(j, t) for (j, t) in nxt if lk.at.get((j, t + 1))],
        rule=lambda _, j, t: m.R[j, t] >= sum(m.y[j, n, t + 1] for n in lk.at[j, t + 1]))
    m.full = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: _occupancy(m, lk, j, n, t)
                            >= m.y[j, n, t] - 1 + m.R[j, t])


def _add_restore(m, index: Index, lk: _Lookups) -> None:
    """restore: a run begins with a restore once the job has run or moved (S)."""
    inst = index.inst

    def ran_before(_, j, t):
        r = int(inst.release_slot[j])
        if t == r:
            return m.S[j, t] == (1 if inst.from_checkpoint[j] else 0)
        return pyo.Constraint.Skip

    m.started_at_release = pyo.Constraint(m.JT, rule=ran_before)
    later = [(j, t) for (j, t) in lk.job_slots if t > inst.release_slot[j]]
    m.started_stays = pyo.Constraint(later, rule=lambda _, j, t: m.S[j, t] >= m.S[j, t - 1])
    m.started_by_run = pyo.Constraint(
        [(j, t) for (j, t) in later if lk.at.get((j, t - 1))],
        rule=lambda _, j, t: m.S[j, t] >= sum(m.y[j, n, t - 1] for n in lk.at[j, t - 1]))
    m.started_by_move = pyo.Constraint(
        [(j, t) for (j, t) in later if lk.moved_in.get((j, t - 1))],
        rule=lambda _, j, t: m.S[j, t] >= sum(m.m[k] for k in lk.moved_in[j, t - 1]))
    m.restore = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.q[j, n, t]
                               >= m.z[j, n, t] + m.S[j, t] - 1)
    m.restore_at_start = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.q[j, n, t]
                                        <= m.z[j, n, t])
    m.restore_once_started = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.q[j, n, t]
                                            <= m.S[j, t])
    m.started_only_if = pyo.Constraint(later, rule=lambda _, j, t: m.S[j, t] <= m.S[j, t - 1]
                                       + sum(m.y[j, n, t - 1] for n in lk.at.get((j, t - 1), ()))
                                       + sum(m.m[k] for k in lk.moved_in.get((j, t - 1), ())))


def _add_min_run(m, index: Index, lk: _Lookups) -> None:
    """minrun: every run but a job's last holds its GPU for at least min_run (U slots, m)."""
    inst = index.inst
    span, need = physics.min_run_slots(inst)
    if span == 0:
        return
    m.later = pyo.Var(m.JT, bounds=(0, 1))
    nxt = [(j, t) for (j, t) in lk.job_slots if t + 1 < inst.deadline_slot[j]]
    m.later_stays = pyo.Constraint(nxt, rule=lambda _, j, t: m.later[j, t] >= m.later[j, t + 1])
    m.later_by_start = pyo.Constraint(
        [(j, t) for (j, t) in nxt if lk.at.get((j, t + 1))],
        rule=lambda _, j, t: m.later[j, t] >= sum(m.z[j, n, t + 1] for n in lk.at[j, t + 1]))

    def min_run(_, j, n, t):
        window = [(j, n, tt) for tt in range(t, t + span) if (j, n, tt) in lk.occ]
        return sum(_occupancy(m, lk, *key) for key in window) \
            >= need * (m.z[j, n, t] + m.later[j, t] - 1)
    m.min_run = pyo.Constraint(m.OCC, rule=min_run)


def _add_restarts(m, index: Index, lk: _Lookups) -> None:
    """restart: at most R runs per job after a pause at the same site (moves do not count)."""
    cap = index.inst.execution.max_restarts
    if cap is None:
        return
    m.hh = pyo.Var(m.OCC, bounds=(0, 1))
    m.rs = pyo.Var(m.OCC, bounds=(0, 1))
    with_prev = [key for key in index.occ if (key[0], key[1], key[2] - 1) in lk.occ]
    m.ran_here = pyo.Constraint(with_prev, rule=lambda _, j, n, t: m.hh[j, n, t]
                                >= m.y[j, n, t - 1] + m.o[j, n, t] - 1)
    m.ran_here_stays = pyo.Constraint(with_prev, rule=lambda _, j, n, t: m.hh[j, n, t]
                                      >= m.hh[j, n, t - 1] + m.o[j, n, t] - 1)
    m.restart = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.rs[j, n, t]
                               >= m.z[j, n, t] + m.hh[j, n, t] - 1)
    per_job = defaultdict(list)
    for key in index.occ:
        per_job[key[0]].append(key)
    m.restarts = pyo.Constraint(sorted(per_job), rule=lambda _, j: sum(
        m.rs[key] for key in per_job[j]) <= cap)


def _link_terms(index: Index) -> dict[tuple[int, int, int], list[tuple[float, int]]]:
    """(a, b, t) -> [(coefficient, k)] of the moves that use the link in the slot."""
    inst = index.inst
    cap = physics.queue_cap_s(inst)
    mv = index.moves
    terms = defaultdict(list)
    for k in range(len(mv)):
        j, a, b, t = mv.key(k)
        if mv.long[k]:
            for i in range(int(mv.busy[k])):
                terms[a, b, t + i].append((1.0, k))
        else:       # a short move fits the cap alone, so cap > 0 unless it sends nothing
            share = mv.transfer_s[k] / cap[b, t] if cap[b, t] > 0 else 0.0
            terms[a, b, t].append((float(share), k))
    return terms


def _add_links(m, index: Index) -> None:
    """link: the slot's queued transfers fit the queue cap; a long move holds the link alone.
    (A lone move was filtered to fit, so only shared links and slots get a row.)"""
    terms = _link_terms(index)
    m.link = pyo.Constraint([key for key, ts in sorted(terms.items()) if len(ts) > 1],
                            rule=lambda _, a, b, t: sum(c * m.m[k] for c, k in terms[a, b, t]) <= 1)


def _add_sites(m, index: Index) -> None:
    """site: the rates of the links a capped site uses in a slot fit its WAN capacity."""
    inst = index.inst
    rate = physics.link_rate_gbps(inst)
    terms = _link_terms(index)
    per_site = defaultdict(set)
    for (a, b, t) in terms:
        for n in (a, b):
            if np.isfinite(inst.wan_gbps[n]):
                per_site[n, t].add((a, b, t))
    binding = {key: links for key, links in per_site.items()
               if sum(rate[a, b] for (a, b, _) in links) > inst.wan_gbps[key[0]] + 1e-9}
    used = sorted({link for links in binding.values() for link in links})
    m.LINKS_USED = pyo.Set(initialize=used, dimen=3, ordered=True)
    m.u = pyo.Var(m.LINKS_USED, bounds=(0, 1))
    pairs = [(a, b, t, k) for (a, b, t) in used for _, k in terms[a, b, t]]
    m.link_used = pyo.Constraint(pairs, rule=lambda _, a, b, t, k: m.u[a, b, t] >= m.m[k])
    m.site_wan = pyo.Constraint(sorted(binding), rule=lambda _, n, t: sum(
        float(rate[a, b]) * m.u[a, b, tt] for (a, b, tt) in binding[n, t])
        <= float(inst.wan_gbps[n]))


def _add_gpus(m, index: Index, lk: _Lookups) -> None:
    """gpus: the jobs running at a site in a slot hold at most its GPUs (only where it binds)."""
    users = defaultdict(list)
    for (j, n, t) in index.occ:
        users[n, t].append(m.y[j, n, t])
    gpus = index.inst.gpus
    m.gpus = pyo.Constraint([key for key, vs in sorted(users.items()) if len(vs) > gpus[key[0]]],
                            rule=lambda _, n, t: sum(users[n, t]) <= int(gpus[n]))


def _add_work(m, index: Index, lk: _Lookups, elastic: bool) -> None:
    """work: Σ_{n,t} x·h (+ s[j]) = work_j (GPU-hours)."""
    inst = index.inst
    per_job = defaultdict(list)
    for (j, n, t) in index.occ:
        per_job[j].append(m.x[j, n, t])

    def work(_, j):
        done = inst.slot_h * sum(per_job[j])
        return done + (m.s[j] if elastic else 0) == float(inst.work_h[j])
    m.work = pyo.Constraint(range(inst.n_jobs), rule=work)


def _add_grid(m, index: Index, lk: _Lookups) -> None:
    """grid: g[n,t] ≥ load (idle, runs with restores, transfers) − renewable (kWh)."""
    inst = index.inst
    h = inst.slot_h
    load = defaultdict(list)
    for (j, n, t) in index.occ:
        load[n, t].append(float(inst.compute_kw[j, n]) * h * _occupancy(m, lk, j, n, t))
    mv = index.moves
    for k in range(len(mv)):
        for i, e in enumerate(physics.transfer_kwh(inst, float(mv.transfer_s[k]))):
            if mv.slot[k] + i < inst.n_slots:
                load[int(mv.src[k]), int(mv.slot[k]) + i].append(e * m.m[k])
    m.load_kwh = pyo.Expression(m.SLOTS, rule=lambda _, n, t: float(inst.idle_kw[n] * h)
                                + sum(load.get((n, t), ())))
    m.grid = pyo.Constraint(m.SLOTS, rule=lambda _, n, t: m.g[n, t] >= m.load_kwh[n, t]
                            - float(inst.renewable_kw[n, t] * h))


def job_jct_h(m, index: Index, lk: _Lookups, j: int):
    """Job j's completion time from its release (hours), as an expression (see ``jct``)."""
    inst = index.inst
    mine = [key for key in index.occ if key[0] == j]
    slots = sum(m.R[j, t] for t in range(int(inst.release_slot[j]), int(inst.deadline_slot[j])))
    extra = sum(_occupancy(m, lk, *key) - m.y[key] for key in mine)
    return inst.slot_h * (slots + extra + 1)


def _add_jct(m, index: Index, lk: _Lookups, budget_h: float) -> None:
    """jct: the jobs' completion times from release add up to at most the budget (hours)."""
    m.jct = pyo.Constraint(expr=sum(job_jct_h(m, index, lk, j)
                                    for j in range(index.inst.n_jobs)) <= budget_h)


def _add_objective(m, index: Index, elastic: bool, weights: np.ndarray | None) -> None:
    """min Σ w·g + w_mig·Σ m + completion term (+ elastic penalty); cells no job can touch add
    their idle grid energy as a constant."""
    inst = index.inst
    h = inst.slot_h
    w = np.ones((inst.n_sites, inst.n_slots)) if weights is None else weights
    untouched = np.ones((inst.n_sites, inst.n_slots), dtype=bool)
    for key in m.SLOTS:
        untouched[key] = False
    idle = np.repeat(inst.idle_kw[:, None] * h, inst.n_slots, axis=1)
    constant = float((physics.grid_kwh(inst, idle) * untouched * w).sum())
    energy = pyo.quicksum(float(w[key]) * m.g[key] for key in m.SLOTS) + constant
    late = pyo.quicksum(float(physics.completion_weight(inst, j, t)) * m.x[j, n, t]
                        for (j, n, t) in index.occ)
    expr = energy + inst.objective.migration_kwh * pyo.quicksum(m.m.values()) + late
    if elastic:
        weight = physics.unfinished_weight(inst)
        expr += pyo.quicksum(float(weight[j]) * m.s[j] for j in m.JOBS)
    m.grid_energy = pyo.Expression(expr=energy)
    m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)


# ================================================================== solutions ↔ model =====

def solution_from_model(m, index: Index) -> Solution:
    """The model's schedule: its shares (solver noise snapped; each job's work snapped to
    exactly work_h) and its moves, without moves after a job's last run."""
    inst = index.inst
    x = {key: physics.clean(m.x[key].value) for key in index.occ}
    x = {k: v for k, v in x.items() if v > 0}
    moves = {index.moves.key(k) for k in range(len(index.moves)) if (m.m[k].value or 0) > 0.5}
    if not hasattr(m, "s"):
        done = defaultdict(float)
        for (j, _, _), v in x.items():
            done[j] += v * inst.slot_h
        for key in x:
            want = float(inst.work_h[key[0]])
            if abs(done[key[0]] - want) <= 1e-6 * want:
                x[key] = min(1.0, x[key] * want / done[key[0]])
    return Solution(x, moves).without_idle_moves()


def fits(index: Index, sol: Solution) -> set[int]:
    """The jobs whose moves and runs the index can represent (they can warm-start a model)."""
    keys = index.move_keys()
    occ = set(index.occ)
    bad = {j for (j, a, b, t) in sol.moves if (j, a, b, t) not in keys}
    bad |= {j for key in sol.x if key not in occ for j in [key[0]]}
    return set(range(index.inst.n_jobs)) - bad


def warm_start(m, index: Index, sol: Solution) -> int:
    """Set every variable of the model from a slot-level schedule (the jobs it cannot
    represent are left at 0 for the solver); return how many jobs were placed."""
    inst = index.inst
    placed = fits(index, sol)
    keys = index.move_keys()
    runs = physics.runs_of(inst, sol)
    lk = _Lookups(index)
    val: dict[str, dict] = defaultdict(dict)
    for j in placed:
        _job_values(inst, j, sol, runs.get(j, []), lk, val)
    for key in index.occ:
        if not m.o[key].fixed:
            m.o[key].set_value(val["o"].get(key, 0.0))
        for name in ("y", "x", "z", "q", "A") + (("hh", "rs") if hasattr(m, "hh") else ()):
            getattr(m, name)[key].set_value(val[name].get(key, 0.0))
    for key in m.JT:
        m.S[key].set_value(val["S"].get(key, 0.0))
        m.R[key].set_value(val["R"].get(key, 0.0))
        if hasattr(m, "later"):
            m.later[key].set_value(val["later"].get(key, 0.0))
    moved = {keys[mv] for mv in sol.moves if mv[0] in placed}
    for k in m.MOV:
        m.m[k].set_value(1.0 if k in moved else 0.0)
    terms = _link_terms(index)
    for key in m.LINKS_USED:
        m.u[key].set_value(1.0 if any(k in moved for _, k in terms[key]) else 0.0)
    for (n, t) in m.SLOTS:
        m.g[n, t].set_value(max(0.0, pyo.value(m.load_kwh[n, t])
                                - inst.renewable_kw[n, t] * inst.slot_h))
    if hasattr(m, "s"):
        for j in range(inst.n_jobs):
            done = sum(v for (jj, _, _), v in sol.x.items() if jj == j and j in placed)
            m.s[j].set_value(max(0.0, float(inst.work_h[j]) - done * inst.slot_h))
    return len(placed)


def _job_values(inst, j: int, sol: Solution, runs: list, lk: _Lookups, val) -> None:
    """The values of job j's variables at a schedule (see :func:`warm_start`)."""
    r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
    moves = sorted((t, a, b) for (jj, a, b, t) in sol.moves if jj == j)
    site, started, ran_here = int(inst.origin[j]), bool(inst.from_checkpoint[j]), False
    arrived = False
    slots_run = {(rn.site, t) for rn in runs for t in range(rn.first, rn.last + 1)}
    starts = {(rn.site, rn.first): rn for rn in runs}
    last_start = max((rn.first for rn in runs), default=-1)
    last_slot = max((rn.last for rn in runs), default=-1)
    for t in range(r, d):
        val["S"][j, t] = 1.0 if started else 0.0
        val["later"][j, t] = 1.0 if last_start > t else 0.0
        val["R"][j, t] = 1.0 if last_slot > t else 0.0
        for (tt, a, b) in moves:
            if tt == t:
                site, ran_here, started, arrived = b, False, True, True
        key = (j, site, t)
        val["o"][key] = 1.0
        if (site, t) in slots_run:
            arrived = False
        val["A"][key] = 1.0 if arrived else 0.0
        if (site, t) in slots_run:
            val["y"][key] = 1.0
            val["x"][key] = sol.x.get(key, 0.0)
            run = starts.get((site, t))
            if run is not None:
                val["z"][key] = 1.0
                val["q"][key] = 1.0 if run.restore else 0.0
                val["rs"][key] = 1.0 if run.restart else 0.0
            val["hh"][key] = 1.0 if ran_here else 0.0
            ran_here = True
            started = True
        else:
            val["hh"][key] = 1.0 if ran_here else 0.0


def violated(m, tol: float = 1e-6) -> list[str]:
    """Names of the model's constraints (and variable bounds) the current values break by more
    than ``tol``: empty when the values are a feasible point."""
    out = []
    for c in m.component_data_objects(pyo.Constraint, active=True):
        body = pyo.value(c.body, exception=False)
        if body is None:
            out.append(f"{c.name}: undefined")
            continue
        if (c.has_lb() and body < pyo.value(c.lower) - tol) or \
                (c.has_ub() and body > pyo.value(c.upper) + tol):
            out.append(f"{c.name}: {body:.6g} outside [{pyo.value(c.lower) if c.has_lb() else ''},"
                       f" {pyo.value(c.upper) if c.has_ub() else ''}]")
    for v in m.component_data_objects(pyo.Var):
        val = v.value if v.value is not None else 0.0
        if (v.lb is not None and val < v.lb - tol) or (v.ub is not None and val > v.ub + tol) or \
                (v.is_binary() and min(abs(val), abs(val - 1)) > tol):
            out.append(f"{v.name}: {val:.6g} outside its domain")
    return out
