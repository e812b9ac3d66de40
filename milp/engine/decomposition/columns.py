"""Columns of the decomposition: one job's whole schedule, and what it uses of the shared rows.

A column is a schedule of one job under the slot rules (:mod:`milp.physics`): its shares per
(site, slot) and its moves. Its coefficients are computed by the physics from that schedule, so
a column's numbers are the same a whole plan's would be: GPUs held (and slots filled) per
(site, slot), energy per
(site, slot) (runs with their restores, transfers at the source), link seconds of short moves and
link-slots held by long moves, and the job's own costs (move weight, completion term, unfinished
work in elastic mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from milp import physics
from milp.instance import Instance
from milp.physics import Solution


@dataclass
class Column:
    """One job's schedule and its coefficients (slot indices absolute; kWh; seconds)."""

    job: int
    x: dict[tuple[int, int], float]                  #: (site, slot) -> progress share
    moves: tuple[tuple[int, int, int], ...]           #: (src, dst, slot)
    cost: float                                       #: the job's own objective terms (kWh)
    unfinished_h: float = 0.0
    jct_h: float = 0.0                                #: completion from release (hours)
    gpu: list[tuple[int, int]] = field(default_factory=list)          #: (site, slot) held
    full: list[tuple[int, int]] = field(default_factory=list)         #: ... and filled
    energy: dict[tuple[int, int], float] = field(default_factory=dict)  #: (site, slot) kWh
    link_s: dict[tuple[int, int, int], float] = field(default_factory=dict)  #: short moves
    link_busy: list[tuple[int, int, int]] = field(default_factory=list)      #: long moves

    @property
    def key(self) -> tuple:
        """Identity of the schedule (shares rounded to 1e-9)."""
        return (self.job, self.moves, tuple(sorted((k, round(v, 9)) for k, v in self.x.items())))

    def links_in_use(self) -> set[tuple[int, int, int]]:
        return set(self.link_s) | set(self.link_busy)

    def solution(self) -> Solution:
        j = self.job
        return Solution({(j, n, t): v for (n, t), v in self.x.items()},
                        {(j, a, b, t) for (a, b, t) in self.moves})


def column_of(inst: Instance, j: int, x: dict[tuple[int, int], float],
              moves, unfinished_h: float = 0.0) -> Column:
    """The column of job j's schedule (shares per (site, slot), moves (src, dst, slot))."""
    sol = Solution({(j, n, t): v for (n, t), v in x.items() if v > 0},
                   {(j, a, b, t) for (a, b, t) in moves})
    col = Column(j, {(n, t): v for (_, n, t), v in sol.x.items()},
                 tuple(sorted((a, b, t) for (_, a, b, t) in sol.moves)), 0.0, unfinished_h)
    h = inst.slot_h
    for (_, n, t), share in physics.occupancy(inst, sol).items():
        col.gpu.append((n, t))
        if share >= 1 - 1e-9:
            col.full.append((n, t))
        col.energy[n, t] = col.energy.get((n, t), 0.0) + float(inst.compute_kw[j, n]) * h * share
    for (a, b, t) in col.moves:
        transfer = float(physics.transfer_s(inst, j, a, b))
        for i, e in enumerate(physics.transfer_kwh(inst, transfer)):
            if t + i < inst.n_slots:
                col.energy[a, t + i] = col.energy.get((a, t + i), 0.0) + e
        if physics.is_long(transfer, inst.slot_s):
            col.link_busy += [(a, b, t + i) for i in range(physics.busy_slots(transfer,
                                                                             inst.slot_s))]
        else:
            col.link_s[a, b, t] = col.link_s.get((a, b, t), 0.0) + transfer
    col.jct_h = float(physics.jct_h(inst, sol)[j])
    late = sum(float(physics.completion_weight(inst, j, t)) * v for (n, t), v in col.x.items())
    weight = physics.unfinished_weight(inst)[j] if unfinished_h > 0 else 0.0
    col.cost = inst.objective.migration_kwh * len(col.moves) + late + weight * unfinished_h
    return col


def columns_of_solution(inst: Instance, sol: Solution, unfinished: dict[int, float] | None = None
                        ) -> dict[int, Column]:
    """One column per job of a whole schedule (e.g. a greedy plan's)."""
    xs: dict[int, dict] = {j: {} for j in range(inst.n_jobs)}
    mv: dict[int, list] = {j: [] for j in range(inst.n_jobs)}
    for (j, n, t), v in sol.x.items():
        xs[j][n, t] = v
    for (j, a, b, t) in sol.moves:
        mv[j].append((a, b, t))
    return {j: column_of(inst, j, xs[j], mv[j], (unfinished or {}).get(j, 0.0))
            for j in range(inst.n_jobs)}


@dataclass
class JobSpace:
    """What pricing needs of one job, computed once: its sites, its moves inside the domain
    and their static numbers (arrays over its sites K and its slots [release, deadline))."""

    j: int
    sites: np.ndarray                 #: [K] site indices (those it can reach)
    origin_k: int
    release: int
    deadline: int
    ok: np.ndarray                    #: [K, K, D] move a->b in slot may be made
    transfer: np.ndarray              #: [K, K] seconds
    rho: np.ndarray                   #: [K, K] slots to arrival
    long: np.ndarray                  #: [K, K]
    window: np.ndarray                #: [K, D] slot in a renewable window
    gpus_ok: np.ndarray               #: [K] the site has GPUs
    kw: np.ndarray                    #: [K] compute kW of the job there
    energy: dict                      #: (a_k, b_k) -> per-slot transfer kWh list
    pairs: np.ndarray                 #: [P, 2] (a_k, b_k) with a move in some slot
    pair_kwh: np.ndarray              #: [P, L] transfer kWh in the i-th slot of the move


def job_space(inst: Instance, j: int) -> JobSpace:
    """Sites job j can reach by moves inside the domain, and those moves (as the index)."""
    from milp.engine.index import first_reach

    r, d, origin = int(inst.release_slot[j]), int(inst.deadline_slot[j]), int(inst.origin[j])
    everywhere = np.arange(inst.n_sites)
    ok, transfer = physics.domain_moves(inst, j, everywhere, r, d)
    reach = first_reach(ok, everywhere == origin, r)
    keep = np.flatnonzero(np.isfinite(reach))
    ok = ok[np.ix_(keep, keep)] & (np.arange(r, d)[None, None, :] > reach[keep][:, None, None])
    transfer = transfer[np.ix_(keep, keep)]
    rho = physics.resume_after(transfer, inst.slot_s)
    rho = np.where(np.isfinite(rho), rho, 0).astype(int)
    energy = {(int(a), int(b)): physics.transfer_kwh(inst, float(transfer[a, b]))
              for a, b in zip(*np.nonzero(ok.any(axis=2)))}
    pairs = np.array(list(energy), dtype=int).reshape(-1, 2)
    width = max((len(e) for e in energy.values()), default=1)
    pair_kwh = np.zeros((len(pairs), width))
    for p, e in enumerate(energy.values()):
        pair_kwh[p, :len(e)] = e
    return JobSpace(
        j=j, sites=keep, origin_k=int(np.flatnonzero(keep == origin)[0]), release=r,
        deadline=d, ok=ok, transfer=transfer, rho=rho,
        long=physics.is_long(transfer, inst.slot_s),
        window=inst.remaining_window_slots[keep][:, r:d] > 0,
        gpus_ok=inst.gpus[keep] > 0, kw=inst.compute_kw[j, keep], energy=energy, pairs=pairs,
        pair_kwh=pair_kwh)


def restricted(sp: JobSpace, keep: np.ndarray) -> JobSpace:
    """The job's space over a subset of its sites (local indices ``keep``, origin included)."""
    keep = np.unique(np.concatenate([[sp.origin_k], np.asarray(keep, dtype=int)]))
    pos = {int(k): i for i, k in enumerate(keep)}
    energy = {(pos[a], pos[b]): e for (a, b), e in sp.energy.items() if a in pos and b in pos}
    pairs = np.array(list(energy), dtype=int).reshape(-1, 2)
    width = sp.pair_kwh.shape[1] if len(sp.pair_kwh) else 1
    pair_kwh = np.zeros((len(pairs), width))
    for p, e in enumerate(energy.values()):
        pair_kwh[p, :len(e)] = e
    ix = np.ix_(keep, keep)
    return JobSpace(
        j=sp.j, sites=sp.sites[keep], origin_k=pos[sp.origin_k], release=sp.release,
        deadline=sp.deadline, ok=sp.ok[ix], transfer=sp.transfer[ix], rho=sp.rho[ix],
        long=sp.long[ix], window=sp.window[keep], gpus_ok=sp.gpus_ok[keep], kw=sp.kw[keep],
        energy=energy, pairs=pairs, pair_kwh=pair_kwh)
