"""The sparse sets every engine plans over: where each job can be, and its candidate moves.

Sets (Δ = slot length; notation of :mod:`milp.physics`)
    J jobs; N sites; T slots; for job j, slots T_j = [release_j, deadline_j).
    OCC ⊆ J×N×T   (j, n, t) where job j can be at site n in slot t: n reachable from j's origin
                  by moves inside the feasibility domain by slot t (origin: all of T_j).
    MOV           moves k = (j, a, b, t): link a→b, b a candidate site of j, a reachable by
                  t − 1, inside the domain (:func:`milp.physics.domain_moves`); columns of
                  :class:`Moves` (no per-move Python objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from milp import physics
from milp.instance import Instance


@dataclass
class Moves:
    """Candidate moves as columns, one row per move (indices into the instance)."""

    job: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    slot: np.ndarray
    transfer_s: np.ndarray
    resume: np.ndarray         #: first slot the moved job may run at dst
    long: np.ndarray           #: a long move has the link to itself
    busy: np.ndarray           #: slots from ``slot`` the link is held (1 for a short move)

    @classmethod
    def empty(cls) -> "Moves":
        i = np.zeros(0, dtype=int)
        return cls(i, i, i, i, np.zeros(0), i, np.zeros(0, dtype=bool), i)

    @classmethod
    def concat(cls, parts: list["Moves"]) -> "Moves":
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("job", "src", "dst", "slot", "transfer_s", "resume", "long",
                               "busy")))

    def __len__(self) -> int:
        return len(self.job)

    def key(self, k: int) -> tuple[int, int, int, int]:
        """(job, src, dst, slot) of move k."""
        return int(self.job[k]), int(self.src[k]), int(self.dst[k]), int(self.slot[k])


@dataclass
class Index:
    """Where each job can be and how it can move (see the module docstring)."""

    inst: Instance
    occ: list[tuple[int, int, int]]
    moves: Moves
    fixed_jobs: set[int]                          #: jobs that can never move
    sites: dict[int, list[int]] = field(default_factory=dict)   #: candidate sites per job

    def move_keys(self) -> dict[tuple[int, int, int, int], int]:
        return {self.moves.key(k): k for k in range(len(self.moves))}


def build_index(inst: Instance, *, max_sites: int | None = None,
                must_include: dict[int, set[int]] | None = None, with_moves: bool = True,
                allowed_moves: dict[int, set[tuple[int, int, int]]] | None = None) -> Index:
    """Enumerate the (job, site, slot) triples and moves that can be non-zero.

    ``max_sites`` keeps, per job, its origin, the sites in ``must_include[j]`` (e.g. those a
    warm-start plan visits) and the best others by renewable energy during the job's slots.
    ``with_moves=False`` only sizes the model (reachability without listing moves).
    ``allowed_moves[j]`` restricts job j to those moves ``(src, dst, slot)`` (the decomposition's
    pooled moves)."""
    occ: list[tuple[int, int, int]] = []
    parts: list[Moves] = []
    fixed: set[int] = set()
    sites_of: dict[int, list[int]] = {}
    for j in range(inst.n_jobs):
        sites = np.array(candidate_sites(inst, j, max_sites, (must_include or {}).get(j, set())))
        sites_of[j] = sites.tolist()
        r, d, origin = int(inst.release_slot[j]), int(inst.deadline_slot[j]), int(inst.origin[j])
        ok, transfer = physics.domain_moves(inst, j, sites, r, d)
        if allowed_moves is not None:
            ok = ok & _allowed_mask(sites, r, d, allowed_moves.get(j, set()))
        reach = first_reach(ok, sites == origin, r)
        usable = ok & (np.arange(r, d)[None, None, :] > reach[:, None, None])
        if not usable.any():
            fixed.add(j)                                     # it stays at its origin
            reach = np.where(sites == origin, reach, np.inf)
        elif with_moves:
            parts.append(_moves(inst, j, sites, r, usable, transfer))
        for i, n in enumerate(sites.tolist()):
            if reach[i] < np.inf:
                occ += [(j, n, t) for t in range(max(r, int(reach[i])), d)]
    return Index(inst, occ, Moves.concat(parts), fixed, sites_of)


def _allowed_mask(sites: np.ndarray, r: int, d: int, allowed: set) -> np.ndarray:
    """[a, b, t − r]: the moves in ``allowed`` (src, dst, slot) among ``sites``."""
    pos = {int(n): i for i, n in enumerate(sites)}
    mask = np.zeros((len(sites), len(sites), d - r), dtype=bool)
    for (a, b, t) in allowed:
        if a in pos and b in pos and r <= t < d:
            mask[pos[a], pos[b], t - r] = True
    return mask


def first_reach(ok: np.ndarray, is_origin: np.ndarray, release: int) -> np.ndarray:
    """[site] the first slot a job can be at each candidate site (release − 1 for its origin,
    the slot of the first move there otherwise, inf if never): shortest paths over the moves
    ``ok[a, b, t − release]`` (Bellman–Ford on first arrival)."""
    t = np.arange(release, release + ok.shape[2])
    reach = np.where(is_origin, release - 1.0, np.inf)
    for _ in range(len(reach)):
        later = ok & (t[None, None, :] > reach[:, None, None])
        first = np.where(later.any(axis=2), t[np.argmax(later, axis=2)], np.inf).min(axis=0)
        new = np.minimum(reach, first)
        if np.array_equal(new, reach):
            break
        reach = new
    return reach


def _moves(inst: Instance, j: int, sites: np.ndarray, release: int, usable: np.ndarray,
           transfer: np.ndarray) -> Moves:
    ai, bi, ti = np.nonzero(usable)
    tr = transfer[ai, bi]
    slot = ti + release
    rho = physics.resume_after(tr, inst.slot_s).astype(int)
    long = physics.is_long(tr, inst.slot_s)
    return Moves(np.full(len(ai), j), sites[ai], sites[bi], slot, tr, slot + rho, long,
                 np.where(long, rho, 1))


def candidate_sites(inst: Instance, j: int, max_sites: int | None, keep: set[int]) -> list[int]:
    """Sites job j may use: all, or its origin, ``keep`` and the greenest others during its
    slots up to ``max_sites``."""
    origin = int(inst.origin[j])
    if max_sites is None or max_sites >= inst.n_sites:
        return list(range(inst.n_sites))
    r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
    green = inst.renewable_kw[:, r:d].sum(axis=1)
    ranked = [n for n in np.argsort(-green, kind="stable").tolist() if n != origin]
    chosen = [origin] + [n for n in ranked if n in keep]
    chosen += [n for n in ranked if n not in chosen][:max(0, max_sites - len(chosen))]
    return sorted(set(chosen))
