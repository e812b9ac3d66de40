"""The planner's mixed-integer linear program (Pyomo), built from sparse index sets.

Slot semantics are those of ``milp/policies/simulation.py`` (so every greedy plan is a solution
and can warm-start the solver); the accounting is that of ``milp/evaluate.py``, written again
here as constraints. Δ = slot length (s), h = Δ/3600 (hours), L = load + downtime (s).

Sets
    J jobs; N sites; T slots; for job j, slots T_j = [release_j, deadline_j).
    OCC ⊆ J×N×T   (j, n, t) where job j can be at site n in slot t: n reachable from j's origin
                  by moves inside the feasibility domain by slot t (origin: all of T_j).
    MOV           moves k = (j, a, b, t): link a→b exists, b ∈ candidate sites of j, a reachable
                  by t−1, and the move is inside the **feasibility domain**:
                  T_k + L ≤ α · W_b(t), T_k = 8·S_j/B_ab, W_b(t) = renewable window left at b at
                  the slot start; the job resumes at b in slot t + ⌈(T_k + L)/Δ⌉ < deadline_j.
                  *short* if T_k + L ≤ Δ (queued with the link's other moves of the slot),
                  *long* otherwise (alone on the link until its transfer ends).

Variables
    o[j,n,t] ∈ {0,1}   job j is at site n in slot t (the only integers)
    x[j,n,t] ∈ [0,1]   share of slot t job j computes at n (McNaughton makes any Σ_j x ≤ GPUs
                       schedulable inside the slot, so no run binaries are needed)
    m[k]     ∈ [0,1]   move k is made (integral whenever o is)
    g[n,t]   ≥ 0       grid energy at n in slot t (kWh)
    s[j]     ≥ 0       unfinished work of j (GPU-hours); only with ``elastic``

Constraints (one family each; see the functions below)
    flow      o[j,n,t] = o[j,n,t−1] + Σ_a m[j,a,n,t] − Σ_b m[j,n,b,t]   (o[j,n,r_j−1] = [n = origin])
    leave     Σ_b m[j,a,b,t] ≤ o[j,a,t−1] − Σ (long moves into a that resume after t)
    run       x[j,n,t] ≤ o[j,n,t] − Σ (moves into n made in [t − span_k + 1, t])
    link      Σ_short T_k·m_k / cap_abt + Σ_long-busy m_k ≤ 1,  cap_abt = min(Δ, α·W_b(t)) − L
    gpus      Σ_j x[j,n,t] ≤ GPUs_n
    work      Σ_{n,t} x[j,n,t]·Δ/3600 (+ s[j]) = work_j
    grid      g[n,t] ≥ idle_n·h + Σ_j kW_jn·h·x[j,n,t] + Σ_{k from n} P_tr·overlap_kt/3600·m_k − R_nt·h

Objective (kWh): min Σ g + w_mig·Σ m + w_c·Σ x·h·((t+1)·h − release_j) (+ 1000·Σ s if elastic).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from milp.instance import Instance
from milp.plan import Migration, Plan, Run
from milp.slots import resume_after

#: kWh charged per unfinished GPU-hour in elastic mode: far above any grid energy a GPU-hour
#: can cost, so unfinished work is minimised first.
ELASTIC_KWH_PER_GPU_H = 1000.0


@dataclass
class Move:
    """One candidate migration (indices into the instance; seconds)."""

    job: int
    src: int
    dst: int
    slot: int
    transfer_s: float
    long: bool
    resume_slot: int              #: first slot the job may run at dst
    #: transfer energy at src per slot from ``slot`` on (kWh)
    energy_kwh: list[float]
    #: slots from ``slot`` during which the link is taken (long moves)
    link_slots: int


@dataclass
class Index:
    """The model's sparse sets and coefficients, built from an instance with numpy."""

    inst: Instance
    occ: list[tuple[int, int, int]]
    moves: list[Move]
    fixed_jobs: set[int]                       #: jobs that can never move (o fixed to 1)
    candidates: list[list[int]]                #: [j] sites considered for job j
    link_cap: dict[tuple[int, int, int], float] = field(default_factory=dict)

    def moves_by(self, key) -> dict:
        out = defaultdict(list)
        for k, mv in enumerate(self.moves):
            out[key(mv)].append(k)
        return out


def build_index(inst: Instance, *, max_sites: int | None = None,
                must_include: dict[int, set[int]] | None = None) -> Index:
    """Enumerate the (job, site, slot) triples and moves that can be non-zero.

    ``max_sites`` keeps, per job, its origin, the sites in ``must_include[j]`` (e.g. those a
    warm-start plan visits) and the best others by renewable energy during the job's slots.
    """
    dt = inst.slot_s
    lost_s = inst.migration.load_time_s + inst.migration.downtime_s
    alpha = inst.migration.alpha
    window_s = inst.remaining_window_slots * dt                 # [n, t] left at slot start
    occ, moves, fixed, candidates = [], [], set(), []
    for j in range(inst.n_jobs):
        r, d, origin = int(inst.release_slot[j]), int(inst.deadline_slot[j]), int(inst.origin[j])
        sites = _candidates(inst, j, max_sites, (must_include or {}).get(j, set()))
        candidates.append(sites)
        reach = {n: math.inf for n in sites}
        reach[origin] = r - 1
        options = {}
        for a in sites:
            for b in sites:
                if a == b or inst.link_gbps[a, b] <= 0:
                    continue
                transfer = float(inst.transfer_s(j, a, b))
                disruption = transfer + lost_s
                t = np.arange(r, d)
                ok = (disruption <= alpha * window_s[b, r:d] + 1e-9) & \
                     (t + resume_after(disruption, dt) < d)
                if ok.any():
                    options[a, b] = (t[ok], transfer, disruption)
        for _ in range(len(sites)):                              # Bellman-Ford on first reach
            changed = False
            for (a, b), (ts, _, _) in options.items():
                later = ts[ts > reach[a]]
                if later.size and later[0] < reach[b]:
                    reach[b], changed = int(later[0]), True
            if not changed:
                break
        job_moves = []
        for (a, b), (ts, transfer, disruption) in options.items():
            for t in ts[ts > reach[a]].tolist():
                job_moves.append(_move(inst, j, a, b, t, transfer, disruption))
        if not job_moves:
            fixed.add(j)
        moves += job_moves
        for n in sites:
            first = max(r, int(reach[n]) if n != origin else r) if reach[n] < math.inf else None
            if first is not None:
                occ += [(j, n, t) for t in range(first, d)]
    index = Index(inst, occ, moves, fixed, candidates)
    for (a, b, t) in {(mv.src, mv.dst, mv.slot) for mv in moves}:
        index.link_cap[a, b, t] = min(dt, alpha * window_s[b, t]) - lost_s
    return index


def _candidates(inst: Instance, j: int, max_sites: int | None, keep: set[int]) -> list[int]:
    origin = int(inst.origin[j])
    if max_sites is None or max_sites >= inst.n_sites:
        return list(range(inst.n_sites))
    r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
    green = inst.renewable_kw[:, r:d].sum(axis=1)
    ranked = [n for n in np.argsort(-green, kind="stable").tolist() if n != origin]
    chosen = [origin] + [n for n in ranked if n in keep]
    chosen += [n for n in ranked if n not in chosen][:max(0, max_sites - len(chosen))]
    return sorted(set(chosen))


def _move(inst: Instance, j: int, a: int, b: int, t: int, transfer: float,
          disruption: float) -> Move:
    dt = inst.slot_s
    long = disruption > dt + 1e-9
    busy = max(1, math.ceil(transfer / dt - 1e-9))
    energy = [inst.migration.transfer_kw * min(dt, transfer - k * dt) / 3600.0
              for k in range(busy)] if long else [inst.migration.transfer_kw * transfer / 3600.0]
    return Move(j, a, b, t, transfer, long, t + resume_after(disruption, dt), energy,
                busy if long else 1)


# ==================================================================== the Pyomo model ======

def build_model(index: Index, *, elastic: bool = False) -> pyo.ConcreteModel:
    """Create variables, constraints and objective over ``index`` (see the module docstring)."""
    inst = index.inst
    m = pyo.ConcreteModel(name=f"milp-{inst.name}")
    m.OCC = pyo.Set(initialize=index.occ, dimen=3, ordered=True)
    m.MOV = pyo.RangeSet(0, len(index.moves) - 1) if index.moves else pyo.Set(initialize=[])
    m.SLOTS = pyo.Set(initialize=[(n, t) for n in range(inst.n_sites)
                                  for t in range(inst.n_slots)], dimen=2, ordered=True)

    m.o = pyo.Var(m.OCC, domain=pyo.Binary)
    m.x = pyo.Var(m.OCC, bounds=(0, 1))
    m.m = pyo.Var(m.MOV, bounds=(0, 1))
    m.g = pyo.Var(m.SLOTS, domain=pyo.NonNegativeReals)
    for (j, n, t) in index.occ:
        if j in index.fixed_jobs:
            m.o[j, n, t].fix(1)
    if elastic:
        m.JOBS = pyo.RangeSet(0, inst.n_jobs - 1)
        m.s = pyo.Var(m.JOBS, bounds=lambda _, j: (0, float(inst.work_h[j])))

    _add_flow(m, index)
    _add_run(m, index)
    _add_links(m, index)
    _add_gpus(m, index)
    _add_work(m, index, elastic)
    _add_grid(m, index)
    _add_objective(m, index, elastic)
    return m


def _prev_o(m, index: Index, occ: set, j: int, n: int, t: int):
    """o[j,n,t−1], or the start condition [n = origin] at the release slot, or 0."""
    if (j, n, t - 1) in occ:
        return m.o[j, n, t - 1]
    return 1 if (t == index.inst.release_slot[j] and n == index.inst.origin[j]) else 0


def _add_flow(m, index: Index) -> None:
    """flow: o[j,n,t] = o[j,n,t−1] + Σ_a m[j,a,n,t] − Σ_b m[j,n,b,t] over OCC;
    leave: Σ_b m[j,a,b,t] ≤ o[j,a,t−1] − Σ (long moves into a that resume after t)."""
    occ = set(index.occ)
    into = index.moves_by(lambda mv: (mv.job, mv.dst, mv.slot))
    out_of = index.moves_by(lambda mv: (mv.job, mv.src, mv.slot))
    in_flight = defaultdict(list)  # (j, site, t) -> long moves not over at t's start
    for k, mv in enumerate(index.moves):
        for t in range(mv.slot + 1, mv.resume_slot):
            in_flight[mv.job, mv.dst, t].append(k)

    def flow(_, j, n, t):
        return m.o[j, n, t] == _prev_o(m, index, occ, j, n, t) \
            + sum(m.m[k] for k in into.get((j, n, t), ())) \
            - sum(m.m[k] for k in out_of.get((j, n, t), ()))
    m.flow = pyo.Constraint([(j, n, t) for (j, n, t) in index.occ if j not in index.fixed_jobs],
                            rule=flow)

    def leave(_, j, a, t):
        return sum(m.m[k] for k in out_of[j, a, t]) <= _prev_o(m, index, occ, j, a, t) \
            - sum(m.m[k] for k in in_flight.get((j, a, t), ()))
    m.leave = pyo.Constraint(sorted(out_of), rule=leave)


def _add_run(m, index: Index) -> None:
    """run: x[j,n,t] ≤ o[j,n,t] − Σ (moves into n made at or after t's resume horizon):
    a job moved in slot t' does not run at its destination before its resume slot."""
    away = defaultdict(list)
    for k, mv in enumerate(index.moves):
        for t in range(mv.slot, mv.resume_slot):
            away[mv.job, mv.dst, t].append(k)
    m.run = pyo.Constraint(m.OCC, rule=lambda _, j, n, t: m.x[j, n, t] <= m.o[j, n, t]
                           - sum(m.m[k] for k in away.get((j, n, t), ())))


def _add_links(m, index: Index) -> None:
    """link: Σ_short T_k·m_k / cap_abt + Σ_long-busy m_k ≤ 1 per link a→b and slot t, with
    cap_abt = min(Δ, α·W_b(t)) − L: the slot's queued transfers end in the slot and inside the
    destination's feasibility domain; a long move holds the link alone while it transfers.
    (A lone move was filtered to fit, so only shared links and slots get a row.)"""
    terms = defaultdict(list)  # (a, b, t) -> [(coefficient, k)]
    for k, mv in enumerate(index.moves):
        if mv.long:
            for i in range(mv.link_slots):
                terms[mv.src, mv.dst, mv.slot + i].append((1.0, k))
        else:
            key = (mv.src, mv.dst, mv.slot)
            terms[key].append((mv.transfer_s / index.link_cap[key], k))
    m.link = pyo.Constraint([key for key, ts in sorted(terms.items()) if len(ts) > 1],
                            rule=lambda _, a, b, t: sum(c * m.m[k] for c, k in terms[a, b, t]) <= 1)


def _add_gpus(m, index: Index) -> None:
    """gpus: Σ_j x[j,n,t] ≤ GPUs_n (only where more jobs than GPUs could be)."""
    users = defaultdict(list)
    for (j, n, t) in index.occ:
        users[n, t].append(m.x[j, n, t])
    gpus = index.inst.gpus
    m.gpus = pyo.Constraint([key for key, vs in sorted(users.items()) if len(vs) > gpus[key[0]]],
                            rule=lambda _, n, t: sum(users[n, t]) <= int(gpus[n]))


def _add_work(m, index: Index, elastic: bool) -> None:
    """work: Σ_{n,t} x[j,n,t]·Δ/3600 (+ s[j]) = work_j (GPU-hours)."""
    inst = index.inst
    per_job = defaultdict(list)
    for (j, n, t) in index.occ:
        per_job[j].append(m.x[j, n, t])

    def work(_, j):
        done = inst.slot_h * sum(per_job[j])
        return done + (m.s[j] if elastic else 0) == float(inst.work_h[j])
    m.work = pyo.Constraint(range(inst.n_jobs), rule=work)


def _add_grid(m, index: Index) -> None:
    """grid: g[n,t] ≥ idle_n·h + Σ_j kW_jn·h·x + Σ_moves-from-n e_kt·m_k − R_nt·h (kWh)."""
    inst = index.inst
    h = inst.slot_h
    load = defaultdict(list)
    for (j, n, t) in index.occ:
        load[n, t].append(float(inst.compute_kw[j, n]) * h * m.x[j, n, t])
    for k, mv in enumerate(index.moves):
        for i, e in enumerate(mv.energy_kwh):
            load[mv.src, mv.slot + i].append(e * m.m[k])

    m.load_kwh = pyo.Expression(m.SLOTS, rule=lambda _, n, t: float(inst.idle_kw[n] * h)
                            + sum(load.get((n, t), ())))
    m.grid = pyo.Constraint(m.SLOTS, rule=lambda _, n, t: m.g[n, t] >= m.load_kwh[n, t]
                            - float(inst.renewable_kw[n, t] * h))


def _add_objective(m, index: Index, elastic: bool) -> None:
    """min Σ g + w_mig·Σ m + w_c·Σ x·h·((t+1)·h − release_h) (+ elastic penalty on s)."""
    inst = index.inst
    w = inst.objective
    h = inst.slot_h
    energy = pyo.quicksum(m.g.values())
    moves = pyo.quicksum(m.m.values())
    late = pyo.quicksum((((t + 1) - inst.release_slot[j]) * h * h) * m.x[j, n, t]
                        for (j, n, t) in index.occ)
    expr = energy + w.migration_kwh * moves + w.completion_kwh * late
    if elastic:
        expr += ELASTIC_KWH_PER_GPU_H * pyo.quicksum(m.s.values())
    m.grid_energy = pyo.Expression(expr=energy)
    m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)


# ================================================================ solution <-> plan ======

def warm_start(m, index: Index, plan: Plan) -> int:
    """Set variable values from a plan made under the same slot semantics (a greedy plan).

    Returns how many jobs' values were set; a job whose plan the model cannot represent (a move
    outside MOV, work after the deadline) is left to the solver."""
    inst = index.inst
    dt = inst.slot_s
    move_key = {(mv.job, mv.src, mv.dst, mv.slot): k for k, mv in enumerate(index.moves)}
    occ = set(index.occ)
    set_jobs = 0
    values = {}
    for jp in plan.jobs:
        j = inst.job_index_map.get(jp.job)
        if j is None:
            continue
        r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
        site = np.full(d - r, int(inst.origin[j]))
        run = defaultdict(float)
        job_values, ok = {}, True
        for step in jp.steps:
            if isinstance(step, Migration):
                a, b = inst.site_index_map[step.src], inst.site_index_map[step.dst]
                t = int(step.start_s // dt)
                k = move_key.get((j, a, b, t))
                if k is None:
                    ok = False
                    break
                job_values[("m", k)] = 1.0
                site[max(0, t - r):] = b
            else:
                n = inst.site_index_map[step.site]
                for t in range(int(step.start_s // dt), min(inst.n_slots, math.ceil(step.end_s / dt))):
                    overlap = min(step.end_s, (t + 1) * dt) - max(step.start_s, t * dt)
                    if overlap > 0:
                        run[n, t] += overlap / dt
        if not ok or any(t >= d or t < r or (j, n, t) not in occ for (n, t) in run):
            continue
        for t in range(r, d):
            n = int(site[t - r])
            if (j, n, t) not in occ:
                ok = False
                break
            job_values[("o", j, n, t)] = 1.0
        if not ok:
            continue
        for (n, t), share in run.items():
            job_values[("x", j, n, t)] = min(1.0, share)
        values.update(job_values)
        set_jobs += 1
    for (j, n, t) in index.occ:
        if not m.o[j, n, t].fixed:
            m.o[j, n, t].set_value(values.get(("o", j, n, t), 0.0))
        m.x[j, n, t].set_value(values.get(("x", j, n, t), 0.0))
    for k in m.MOV:
        m.m[k].set_value(values.get(("m", k), 0.0))
    for (n, t) in m.SLOTS:
        m.g[n, t].set_value(max(0.0, pyo.value(m.load_kwh[n, t]) - inst.renewable_kw[n, t] * inst.slot_h))
    return set_jobs


def extract_plan(m, index: Index, policy: str = "milp", info: dict | None = None) -> Plan:
    """Turn a solution into exact steps.

    Moves on one link in one slot send their checkpoints one after the other from the slot
    start, in job order (each disrupted for its own transfer + load + downtime); the jobs of a
    site and slot are packed on its GPUs by McNaughton's wrap-around rule.
    """
    inst = index.inst
    dt = inst.slot_s
    lost_s = inst.migration.load_time_s + inst.migration.downtime_s
    steps: dict[int, list] = defaultdict(list)
    by_link = defaultdict(list)
    for k in m.MOV:
        if (m.m[k].value or 0) > 0.5:
            mv = index.moves[k]
            by_link[mv.src, mv.dst, mv.slot].append(mv)
    for (a, b, t), moves in sorted(by_link.items()):
        start = t * dt
        for mv in sorted(moves, key=lambda mv: mv.job):
            steps[mv.job].append(Migration(inst.sites[a], inst.sites[b], start,
                                           float(inst.checkpoint_gb[mv.job]), mv.transfer_s,
                                           mv.transfer_s + lost_s))
            start += mv.transfer_s
    per_cell = defaultdict(list)
    for (j, n, t) in index.occ:
        share = _clean(m.x[j, n, t].value)
        if share > 0:
            per_cell[n, t].append((j, share))
    for (n, t), jobs in sorted(per_cell.items()):
        for j, s0, s1 in mcnaughton(jobs, t * dt, dt):
            steps[j].append(Run(inst.sites[n], s0, s1))
    jobs = [_merge(job, sorted(steps[j], key=lambda s: (s.start_s, isinstance(s, Run))))
            for j, job in enumerate(inst.jobs)]
    return Plan(inst.name, inst.start.isoformat(), inst.slot_minutes, policy, tuple(jobs),
                info or {})


def mcnaughton(shares: list[tuple[int, float]], t0: float, dt: float
               ) -> list[tuple[int, float, float]]:
    """McNaughton's wrap-around rule: pieces (job, start, end) for jobs running ``share`` of a
    slot [t0, t0+dt) each (share ≤ 1, Σ share ≤ GPUs); a job cut at a GPU's end continues at the
    next GPU's start, never overlapping itself. Whole-slot jobs go first, so they stay whole."""
    pieces, pos = [], 0.0  # GPU-time used so far, GPU after GPU
    for j, share in sorted(shares, key=lambda js: (-js[1], js[0])):
        length = share * dt
        offset = max(0.0, pos - math.floor(pos / dt + 1e-9) * dt)
        if offset + length <= dt + 1e-9:
            pieces.append((j, t0 + offset, t0 + min(dt, offset + length)))
        else:
            pieces.append((j, t0 + offset, t0 + dt))
            pieces.append((j, t0, t0 + offset + length - dt))
        pos += length
    return pieces


def _clean(v: float | None) -> float:
    """Snap solver noise: values within 1e-7 of 0 or 1 become 0 or 1."""
    v = float(v or 0.0)
    return 0.0 if v < 1e-7 else 1.0 if v > 1 - 1e-7 else v


def _merge(job: str, steps: list):
    """Join runs at one site that touch (end == next start)."""
    from milp.plan import JobPlan
    out: list = []
    for s in steps:
        last = out[-1] if out else None
        if isinstance(s, Run) and isinstance(last, Run) and last.site == s.site and \
                abs(last.end_s - s.start_s) < 1e-6:
            out[-1] = Run(s.site, last.start_s, s.end_s)
        else:
            out.append(s)
    return JobPlan(job, tuple(out))
