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
              (cells no job can touch add their max(0, idle_n·h − R_nt·h) as a constant)

Objective (kWh): min Σ g + w_mig·Σ m + w_c·Σ x·h·((t+1)·h − release_j) (+ 1000·Σ s if elastic).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from milp import feasibility as fz
from milp.instance import Instance
from milp.plan import JobPlan, Migration, Plan, Run
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
class Background:
    """What the jobs outside the model use (for neighbourhood search over a subset of jobs).

    ``load_kwh`` [n, t] includes the sites' idle energy; ``gpu_share`` [n, t] is the GPU time
    taken (slot shares); ``link_s`` the seconds of short transfers per (a, b, t); ``link_busy``
    the (a, b, t) held by long transfers."""

    load_kwh: np.ndarray
    gpu_share: np.ndarray
    link_s: dict[tuple[int, int, int], float] = field(default_factory=dict)
    link_busy: set[tuple[int, int, int]] = field(default_factory=set)

    @classmethod
    def empty(cls, inst: Instance) -> "Background":
        return cls(np.repeat(inst.idle_kw[:, None] * inst.slot_h, inst.n_slots, axis=1),
                   np.zeros((inst.n_sites, inst.n_slots)))


@dataclass
class Index:
    """The model's sparse sets and coefficients, built from an instance with numpy."""

    inst: Instance
    jobs: list[int]                            #: the jobs the model decides
    occ: list[tuple[int, int, int]]
    moves: list[Move]
    fixed_jobs: set[int]                       #: jobs that can never move (o fixed to 1)
    background: Background
    link_cap: dict[tuple[int, int, int], float] = field(default_factory=dict)

    def moves_by(self, key) -> dict:
        out = defaultdict(list)
        for k, mv in enumerate(self.moves):
            out[key(mv)].append(k)
        return out


def build_index(inst: Instance, *, jobs: list[int] | None = None,
                background: Background | None = None, max_sites: int | None = None,
                must_include: dict[int, set[int]] | None = None, with_moves: bool = True
                ) -> Index:
    """Enumerate the (job, site, slot) triples and moves that can be non-zero.

    ``jobs`` (default all) are the jobs to decide; ``background`` what the others use: link
    capacity they take is not offered again. ``max_sites`` keeps, per job, its origin, the sites
    in ``must_include[j]`` (e.g. those a warm-start plan visits) and the best others by renewable
    energy during the job's slots. ``with_moves=False`` only sizes the model (no moves listed).
    """
    dt = inst.slot_s
    lost_s = inst.migration.stop_s
    alpha = inst.migration.alpha
    window_s = inst.remaining_window_slots * dt                 # [n, t] left at slot start
    bg = background or Background.empty(inst)
    cap = np.minimum(dt, alpha * window_s) - lost_s            # [b, t] queue allowed at b
    occ, moves, fixed = [], [], set()
    for j in (range(inst.n_jobs) if jobs is None else jobs):
        r, d, origin = int(inst.release_slot[j]), int(inst.deadline_slot[j]), int(inst.origin[j])
        sites = np.array(_candidates(inst, j, max_sites, (must_include or {}).get(j, set())))
        ok, transfer, disruption = _domain_moves(inst, j, sites, r, d, window_s)
        t = np.arange(r, d)
        reach = np.full(len(sites), np.inf)                      # last slot before first stay
        reach[np.flatnonzero(sites == origin)] = r - 1
        for _ in range(len(sites)):                              # Bellman-Ford on first reach
            later = ok & (t[None, None, :] > reach[:, None, None])
            first = np.where(later.any(axis=2), t[np.argmax(later, axis=2)], np.inf).min(axis=0)
            new = np.minimum(reach, first)
            if np.array_equal(new, reach):
                break
            reach = new
        job_moves = []
        usable = ok & (t[None, None, :] > reach[:, None, None])
        if not with_moves:
            usable[:] = False
            job_moves = [None] if ok.any() else []
        for ai, bi, ti in zip(*np.nonzero(usable)):
            a, b, slot = int(sites[ai]), int(sites[bi]), int(t[ti])
            mv = _move(inst, j, a, b, slot, float(transfer[ai, bi]), float(disruption[ai, bi]))
            if _link_free(mv, bg, cap[b, slot]):
                job_moves.append(mv)
        if not job_moves:
            fixed.add(j)                                         # it stays at its origin
            reach = np.where(sites == origin, reach, np.inf)
        moves += [mv for mv in job_moves if mv is not None]
        for i, n in enumerate(sites.tolist()):
            if reach[i] < np.inf:
                occ += [(j, n, slot) for slot in range(max(r, int(reach[i])), d)]
    index = Index(inst, list(range(inst.n_jobs)) if jobs is None else list(jobs), occ, moves,
                  fixed, bg)
    for (a, b, t) in {(mv.src, mv.dst, mv.slot) for mv in moves}:
        index.link_cap[a, b, t] = cap[b, t] - bg.link_s.get((a, b, t), 0.0)
    return index


def _domain_moves(inst: Instance, j: int, sites: np.ndarray, r: int, d: int,
                  window_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ok[a, b, t−r]: job j may move sites[a]→sites[b] in slot t (a link, inside the feasibility
    domain, resuming before its deadline); with the transfer and disruption seconds [a, b]."""
    transfer = fz.transfer_s(inst.checkpoint_gb[j], inst.link_gbps[np.ix_(sites, sites)])
    disruption = transfer + inst.migration.stop_s
    resume = resume_after(disruption, inst.slot_s)
    t = np.arange(r, d)
    ok = (disruption[:, :, None] <= inst.migration.alpha * window_s[sites][None, :, r:d] + 1e-9) \
        & (t[None, None, :] + resume[:, :, None] < d)
    return ok, transfer, disruption


def _link_free(mv: Move, bg: Background, cap_s: float) -> bool:
    """Whether the background leaves link room for this move."""
    key = (mv.src, mv.dst, mv.slot)
    if mv.long:
        return not any((mv.src, mv.dst, mv.slot + i) in bg.link_busy
                       or bg.link_s.get((mv.src, mv.dst, mv.slot + i), 0.0) > 0
                       for i in range(mv.link_slots))
    return key not in bg.link_busy and mv.transfer_s <= cap_s - bg.link_s.get(key, 0.0) + 1e-9


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
    touched = {(n, t) for (_, n, t) in index.occ} | {
        (mv.src, mv.slot + i) for mv in index.moves for i in range(len(mv.energy_kwh))
        if mv.slot + i < inst.n_slots}
    m.SLOTS = pyo.Set(initialize=sorted(touched), dimen=2, ordered=True)

    m.o = pyo.Var(m.OCC, domain=pyo.Binary)
    m.x = pyo.Var(m.OCC, bounds=(0, 1))
    m.m = pyo.Var(m.MOV, bounds=(0, 1))
    m.g = pyo.Var(m.SLOTS, domain=pyo.NonNegativeReals)
    for (j, n, t) in index.occ:
        if j in index.fixed_jobs:
            m.o[j, n, t].fix(1)
    if elastic:
        m.JOBS = pyo.Set(initialize=index.jobs, ordered=True)
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
    """run: x[j,n,t] ≤ o[j,n,t] − Σ (moves into n made in a slot t' with t' ≤ t < resume slot):
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
    """gpus: Σ_j x[j,n,t] ≤ GPUs_n − background share (only where it could bind)."""
    users = defaultdict(list)
    for (j, n, t) in index.occ:
        users[n, t].append(m.x[j, n, t])
    free = index.inst.gpus[:, None] - index.background.gpu_share
    m.gpus = pyo.Constraint([key for key, vs in sorted(users.items()) if len(vs) > free[key] - 1e-9],
                            rule=lambda _, n, t: sum(users[n, t]) <= max(0.0, float(free[n, t])))


def _add_work(m, index: Index, elastic: bool) -> None:
    """work: Σ_{n,t} x[j,n,t]·Δ/3600 (+ s[j]) = work_j (GPU-hours)."""
    inst = index.inst
    per_job = defaultdict(list)
    for (j, n, t) in index.occ:
        per_job[j].append(m.x[j, n, t])

    def work(_, j):
        done = inst.slot_h * sum(per_job[j])
        return done + (m.s[j] if elastic else 0) == float(inst.work_h[j])
    m.work = pyo.Constraint(index.jobs, rule=work)


def _add_grid(m, index: Index) -> None:
    """grid: g[n,t] ≥ idle_n·h (+ background) + Σ_j kW_jn·h·x + Σ_moves-from-n e_kt·m_k − R_nt·h."""
    inst = index.inst
    h = inst.slot_h
    load = defaultdict(list)
    for (j, n, t) in index.occ:
        load[n, t].append(float(inst.compute_kw[j, n]) * h * m.x[j, n, t])
    for k, mv in enumerate(index.moves):
        for i, e in enumerate(mv.energy_kwh):
            load[mv.src, mv.slot + i].append(e * m.m[k])

    fixed = index.background.load_kwh
    m.load_kwh = pyo.Expression(m.SLOTS, rule=lambda _, n, t: float(fixed[n, t])
                                + sum(load.get((n, t), ())))
    m.grid = pyo.Constraint(m.SLOTS, rule=lambda _, n, t: m.g[n, t] >= m.load_kwh[n, t]
                            - float(inst.renewable_kw[n, t] * h))


def _add_objective(m, index: Index, elastic: bool) -> None:
    """min Σ g + w_mig·Σ m + w_c·Σ x·h·((t+1)·h − release_h) (+ elastic penalty on s).

    g exists only for the (site, slot) cells the model's jobs can touch; the grid energy of the
    others (background load, idle power) is a constant of the objective."""
    inst = index.inst
    w = inst.objective
    h = inst.slot_h
    bg = index.background
    untouched = np.ones((inst.n_sites, inst.n_slots), dtype=bool)
    for key in m.SLOTS:
        untouched[key] = False
    constant = float((np.maximum(0.0, bg.load_kwh - inst.renewable_kw * h) * untouched).sum())
    energy = pyo.quicksum(m.g.values()) + constant
    moves = pyo.quicksum(m.m.values())
    late = pyo.quicksum((((t + 1) - inst.release_slot[j]) * h * h) * m.x[j, n, t]
                        for (j, n, t) in index.occ)
    expr = energy + w.migration_kwh * moves + w.completion_kwh * late
    if elastic:
        expr += ELASTIC_KWH_PER_GPU_H * pyo.quicksum(m.s.values())
    m.grid_energy = pyo.Expression(expr=energy)
    m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)


# ================================================================== slot-level solution ====

@dataclass
class Solution:
    """A plan at slot level: shares ``x[(j, n, t)]`` (0–1 of slot t at site n) and the moves
    ``(j, a, b, t)`` made at the start of slot t. :func:`plan_from_solution` turns it into exact
    steps; :func:`solution_from_plan` reads a greedy plan back (same slot semantics)."""

    x: dict[tuple[int, int, int], float] = field(default_factory=dict)
    moves: set[tuple[int, int, int, int]] = field(default_factory=set)

    def only(self, jobs) -> "Solution":
        keep = set(jobs)
        return Solution({k: v for k, v in self.x.items() if k[0] in keep},
                        {mv for mv in self.moves if mv[0] in keep})

    def without_idle_moves(self) -> "Solution":
        """Drop moves after a job's last run: they cannot help (a time-limited solve may
        return them) and a plan must not move a finished job."""
        last: dict[int, int] = {}
        for (j, _, t), v in self.x.items():
            if v > 0:
                last[j] = max(last.get(j, -1), t)
        return Solution(dict(self.x), {mv for mv in self.moves if mv[3] <= last.get(mv[0], -1)})

    def replace(self, jobs, other: "Solution") -> "Solution":
        drop = set(jobs)
        x = {k: v for k, v in self.x.items() if k[0] not in drop}
        x.update(other.x)
        return Solution(x, {mv for mv in self.moves if mv[0] not in drop} | other.moves)


def solution_from_plan(inst: Instance, plan: Plan) -> Solution:
    """Slot-level view of a plan made under the planners' slot semantics."""
    dt = inst.slot_s
    sol = Solution()
    for jp in plan.jobs:
        j = inst.job_index_map.get(jp.job)
        if j is None:
            continue
        for step in jp.steps:
            if isinstance(step, Migration):
                sol.moves.add((j, inst.site_index_map[step.src], inst.site_index_map[step.dst],
                               int(step.start_s // dt)))
                continue
            n = inst.site_index_map[step.site]
            for t in range(int(step.start_s // dt), min(inst.n_slots, math.ceil(step.end_s / dt))):
                overlap = min(step.end_s, (t + 1) * dt) - max(step.start_s, t * dt)
                if overlap > 0:
                    sol.x[j, n, t] = sol.x.get((j, n, t), 0.0) + overlap / dt
    return sol


def solution_from_model(m, index: Index) -> Solution:
    x = {key: _clean(m.x[key].value) for key in index.occ}
    moves = {(mv.job, mv.src, mv.dst, mv.slot) for k, mv in enumerate(index.moves)
             if (m.m[k].value or 0) > 0.5}
    x = {k: v for k, v in x.items() if v > 0}
    if not hasattr(m, "s"):  # snap each job's work to exactly work_h (solver tolerance ~1e-9)
        done = defaultdict(float)
        for (j, _, _), v in x.items():
            done[j] += v * index.inst.slot_h
        for key in x:
            want = float(index.inst.work_h[key[0]])
            if abs(done[key[0]] - want) <= 1e-6 * want:
                x[key] = min(1.0, x[key] * want / done[key[0]])
    return Solution(x, moves).without_idle_moves()


def background_of(inst: Instance, sol: Solution) -> Background:
    """What a (partial) solution uses: load with idle, GPU shares, link seconds and holds."""
    bg = Background.empty(inst)
    for (j, n, t), share in sol.x.items():
        bg.load_kwh[n, t] += float(inst.compute_kw[j, n]) * inst.slot_h * share
        bg.gpu_share[n, t] += share
    for (j, a, b, t) in sol.moves:
        mv = _move_of(inst, j, a, b, t)
        for i, e in enumerate(mv.energy_kwh):
            if t + i < inst.n_slots:
                bg.load_kwh[a, t + i] += e
        if mv.long:
            bg.link_busy.update((a, b, t + i) for i in range(mv.link_slots))
        else:
            bg.link_s[a, b, t] = bg.link_s.get((a, b, t), 0.0) + mv.transfer_s
    return bg


def _move_of(inst: Instance, j: int, a: int, b: int, t: int) -> Move:
    transfer = float(inst.transfer_s(j, a, b))
    lost_s = inst.migration.stop_s
    return _move(inst, j, a, b, t, transfer, transfer + lost_s)


def warm_start(m, index: Index, sol: Solution) -> int:
    """Set the model's variables from a slot-level solution; return how many jobs fit the
    model (a job whose moves or runs the model cannot represent is left to the solver)."""
    inst = index.inst
    move_key = {(mv.job, mv.src, mv.dst, mv.slot): k for k, mv in enumerate(index.moves)}
    occ = set(index.occ)
    o_val, x_val, m_val, fitted = {}, {}, {}, 0
    for j in index.jobs:
        r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
        mine = sorted((t, a, b) for (jj, a, b, t) in sol.moves if jj == j)
        runs = {(n, t): v for (jj, n, t), v in sol.x.items() if jj == j}
        if any((j, a, b, t) not in move_key for t, a, b in mine) or \
                any((j, n, t) not in occ for (n, t) in runs):
            continue
        site, where, ok = int(inst.origin[j]), {}, True
        for t in range(r, d):
            for (tt, a, b) in mine:
                if tt == t:
                    site = b
            if (j, site, t) not in occ:
                ok = False
                break
            where[t] = site
        if not ok:
            continue
        o_val.update({(j, n, t): 1.0 for t, n in where.items()})
        x_val.update({(j, n, t): min(1.0, v) for (n, t), v in runs.items()})
        m_val.update({move_key[j, a, b, t]: 1.0 for t, a, b in mine})
        fitted += 1
    for key in index.occ:
        if not m.o[key].fixed:
            m.o[key].set_value(o_val.get(key, 0.0))
        m.x[key].set_value(x_val.get(key, 0.0))
    for k in m.MOV:
        m.m[k].set_value(m_val.get(k, 0.0))
    for (n, t) in m.SLOTS:
        m.g[n, t].set_value(max(0.0, pyo.value(m.load_kwh[n, t])
                                - inst.renewable_kw[n, t] * inst.slot_h))
    if hasattr(m, "s"):
        for j in index.jobs:
            done = sum(v for (jj, _, _), v in x_val.items() if jj == j) * inst.slot_h
            m.s[j].set_value(max(0.0, float(inst.work_h[j]) - done))
    return fitted


def plan_from_solution(inst: Instance, sol: Solution, policy: str = "milp",
                       info: dict | None = None) -> Plan:
    """Turn a slot-level solution into exact steps.

    Moves on one link in one slot send their checkpoints one after the other from the slot
    start, in job order (each disrupted for its own transfer + load + downtime); the jobs of a
    site and slot are packed on its GPUs by McNaughton's wrap-around rule.
    """
    dt = inst.slot_s
    lost_s = inst.migration.stop_s
    steps: dict[int, list] = defaultdict(list)
    by_link = defaultdict(list)
    for (j, a, b, t) in sol.moves:
        by_link[a, b, t].append(j)
    for (a, b, t), jobs in sorted(by_link.items()):
        start = t * dt
        for j in sorted(jobs):
            transfer = float(inst.transfer_s(j, a, b))
            steps[j].append(Migration(inst.sites[a], inst.sites[b], start,
                                      float(inst.checkpoint_gb[j]), transfer, transfer + lost_s))
            start += transfer
    per_cell = defaultdict(list)
    for (j, n, t), share in sorted(sol.x.items()):
        share = _clean(share)
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
    out: list = []
    for s in steps:
        last = out[-1] if out else None
        if isinstance(s, Run) and isinstance(last, Run) and last.site == s.site and \
                abs(last.end_s - s.start_s) < 1e-6:
            out[-1] = Run(s.site, last.start_s, s.end_s)
        else:
            out.append(s)
    return JobPlan(job, tuple(out))
