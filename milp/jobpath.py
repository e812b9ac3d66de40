"""The cheapest schedule of one job under the slot rules, by dynamic programming.

What ``wait-awhile`` chooses for a job at its origin, and what the decomposition engine prices
(a column is one job's schedule). Rules and notation are those of :mod:`milp.physics`: runs
fill whole slots except the job's last slot (which holds what its work still needs); a new run
begins with a restore (share σ, no progress) unless it is the job's first; restarts (runs after
a pause at the same site) are capped; a run that is not the last lasts at least U slots; a move
made in slot t lands the job at its destination for slot t + ρ.

Costs are linear: holding a GPU at site k in slot t costs ``hold[k, t]`` (the whole slot);
each unit of occupancy (progress + restore share) ``occupy[k, t]``; each unit of progress
``progress[t]``; a move ``move[a, b, t]``; and, when ``unfinished`` is given, each unit of
progress left at the deadline costs that much (else the job must finish).

State at the start of a slot: (site, k full run slots done, b restores so far, r restarts used,
mode). Progress so far is ``k − b·σ``. Modes: FRESH (never ran nor moved), READY (at its origin,
never ran, but resumes from a checkpoint), ARRIVED (moved here, not run yet: it must start a
run before the destination's window ends, and may not move on before), PAUSED (ran here since
arriving, not in the previous slot), and RUN_ℓ (ran the previous ℓ slots; ℓ capped at U). ``b`` is tracked exactly up to ``max_restores``;
beyond, it is clamped (a relaxation: the returned cost is still a lower bound, and a schedule
that would need more restores is refused, :attr:`JobPath.exact` False).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

INF = np.inf
FRESH, READY, ARRIVED, PAUSED = 0, 1, 2, 3
RUN = 4                     #: mode of RUN_1; RUN_l is RUN + l - 1
#: Actions recorded for backtracking.
CONT, NEW_FRESH, NEW_RESTORE, NEW_RESTART, IDLE, MOVE = 1, 2, 3, 4, 5, 6
END = 7          #: the deadline came with work left (elastic only)
EPS = 1e-9


@dataclass
class JobProblem:
    """One job's choices and their prices over its slots ``[release, deadline)``."""

    sites: np.ndarray                 #: [K] site indices; ``sites[origin_k]`` is the origin
    origin_k: int
    release: int
    deadline: int
    work: float                       #: progress needed, in slots of computing (work_s / Δ)
    sigma: float                      #: restore share of a slot
    hold: np.ndarray                  #: [K, D] cost of running in a slot (inf: not allowed)
    occupy: np.ndarray                #: [K, D] cost per unit of occupancy
    progress: np.ndarray              #: [D] cost per unit of progress
    move: np.ndarray | None = None    #: [K, K, D] cost of a move (inf: not allowed)
    rho: np.ndarray | None = None     #: [K, K] slots from a move's slot to its arrival
    window: np.ndarray | None = None  #: [K, D] slot in a renewable window (arrivals run in it)
    started: bool = False             #: even the first run restores (from a checkpoint)
    max_restarts: int | None = None
    min_run_slots: int = 0
    max_restores: int = 4
    unfinished: float | None = None   #: cost per unit of progress left undone (elastic)

    @property
    def length(self) -> int:
        return self.deadline - self.release


@dataclass
class JobPath:
    """The DP's answer: its cost and the schedule (shares and moves, absolute slots)."""

    cost: float
    x: dict[tuple[int, int], float] = field(default_factory=dict)     #: (site, slot) -> share
    moves: list[tuple[int, int, int]] = field(default_factory=list)   #: (src, dst, slot)
    unfinished: float = 0.0           #: progress left undone (slots)
    exact: bool = True


def best_path(p: JobProblem) -> JobPath | None:
    """The cheapest schedule of one job, or None when it cannot finish (and must)."""
    return _Dp(p).solve()


class _Dp:
    def __init__(self, p: JobProblem) -> None:
        self.p = p
        self.K = len(p.sites)
        self.U = max(1, p.min_run_slots)
        self.M = RUN + self.U                    # FRESH, READY, ARRIVED, PAUSED, RUN_1..U
        self.B = p.max_restores + 1
        self.capped = p.max_restarts is not None              # restarts counted in r
        self.R = (p.max_restarts + 1) if self.capped else 1
        self.Kk = int(math.floor(p.work + p.max_restores * p.sigma + EPS)) + 2
        self.shape = (self.K, self.Kk, self.B, self.R, self.M)
        self.size = int(np.prod(self.shape))
        k = np.arange(self.Kk)[:, None]
        b = np.arange(self.B)[None, :]
        self.done = k - b * p.sigma                           # [Kk, B] progress so far
        self.left = p.work - self.done                        # progress still needed

    # ---- the sweep ------------------------------------------------------------------------
    def solve(self) -> JobPath | None:
        p = self.p
        D = p.length
        V = np.full(self.shape, INF)
        V[p.origin_k, 0, 0, 0, READY if p.started else FRESH] = 0.0
        self.pred = [None] * (D + 1)     # per slot boundary: (pred flat, pred time, action)
        arrivals: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        best = (INF, None)
        for i in range(D):
            cand = self._finish(V, i)
            if cand[0] < best[0]:
                best = cand
            nxt, pred, act = self._step(V, i)
            tm = np.full(self.shape, i, dtype=np.int32)
            if p.move is not None:
                self._moves(V, i, arrivals)
            if i + 1 in arrivals:
                av, ap, at = arrivals.pop(i + 1)
                better = av < nxt
                nxt[better], pred[better], act[better], tm[better] = av[better], ap[better], \
                    MOVE, at[better]
            self.pred[i + 1] = (pred, tm, act)
            V = nxt
        if p.unfinished is not None:
            left = np.maximum(self.left, 0.0)[None, :, :, None, None]
            end = V + p.unfinished * left
            end[..., ARRIVED] = INF               # a move is followed by a run at its end
            flat = int(np.argmin(end))
            if end.flat[flat] < best[0]:
                best = (float(end.flat[flat]), (D, flat, END))
        if best[1] is None:
            return None
        return self._path(best[0], *best[1])

    def _step(self, V: np.ndarray, i: int):
        """States at the start of slot i + 1 from those at slot i: run a full slot, or idle."""
        p, U, sig = self.p, self.U, self.p.sigma
        nxt = np.full(self.shape, INF)
        pred = np.full(self.shape, -1, dtype=np.int64)
        act = np.zeros(self.shape, dtype=np.int8)
        base = np.arange(self.size).reshape(self.shape)
        hold, occ, prog = p.hold[:, i], p.occupy[:, i], p.progress[i]
        full = (hold + occ + prog)[:, None, None, None]                    # [K,1,1,1]
        restored = (hold + occ + prog * (1 - sig))[:, None, None, None]
        alive = self.left > EPS                   # [Kk, B] a state with work still to do

        def put(dst, val, src, action):
            better = val < nxt[dst]
            view_v, view_p, view_a = nxt[dst], pred[dst], act[dst]
            view_v[better], view_p[better], view_a[better] = val[better], src[better], action
            nxt[dst], pred[dst], act[dst] = view_v, view_p, view_a

        # continue a run: RUN_l -> RUN_min(l+1, U), k+1 (a full slot that does not end the job)
        ok = alive[None, 1:, :, None]                                        # [1, Kk-1, B, 1]
        for ell in range(1, U + 1):
            m_from, m_to = RUN + ell - 1, RUN + min(ell + 1, U) - 1
            val = np.where(ok, V[:, :-1, :, :, m_from] + full, INF)
            put((slice(None), slice(1, None), slice(None), slice(None), m_to), val,
                base[:, :-1, :, :, m_from], CONT)
        # a first run, without restore: FRESH -> RUN_1, k+1
        val = np.where(ok, V[:, :-1, :, :, FRESH] + full, INF)
        put((slice(None), slice(1, None), slice(None), slice(None), RUN), val,
            base[:, :-1, :, :, FRESH], NEW_FRESH)
        # a new run with restore (READY, ARRIVED) or a restart (PAUSED): k+1, b+1 (clamped)
        for mode, action in ((READY, NEW_RESTORE), (ARRIVED, NEW_RESTORE),
                             (PAUSED, NEW_RESTART)):
            src_v, src_i = V[:, :-1, :, :, mode], base[:, :-1, :, :, mode]
            r_dst = slice(None)
            if mode == PAUSED and self.capped:
                if self.R == 1:
                    continue                                              # no restart allowed
                src_v, src_i = src_v[:, :, :, :-1], src_i[:, :, :, :-1]   # r -> r + 1
                r_dst = slice(1, None)
            b_next = np.minimum(np.arange(self.B) + 1, self.B - 1)
            ok_b = alive[1:, :][:, b_next][None, :, :, None]
            val = np.where(ok_b, src_v + restored, INF)
            for b in range(self.B):             # b -> min(b + 1, B - 1): clamped sources meet
                dst = (slice(None), slice(1, None), int(b_next[b]), r_dst, RUN)
                put(dst, val[:, :, b], src_i[:, :, b], action)
        # idle: RUN_U (or any run without the rule) -> PAUSED; FRESH/READY/PAUSED stay; ARRIVED
        # stays while the destination's window goes on
        put((Ellipsis, PAUSED), V[..., RUN + U - 1], base[..., RUN + U - 1], IDLE)
        for mode in (FRESH, READY, PAUSED):
            put((Ellipsis, mode), V[..., mode], base[..., mode], IDLE)
        if p.window is not None and i + 1 < p.length:
            waiting = np.where(p.window[:, i + 1][:, None, None, None], V[..., ARRIVED], INF)
            put((Ellipsis, ARRIVED), waiting, base[..., ARRIVED], IDLE)
        return nxt, pred, act

    def _finish(self, V: np.ndarray, i: int) -> tuple[float, tuple | None]:
        """The cheapest way to end the job in slot i: run what its work still needs."""
        p, sig, U = self.p, self.p.sigma, self.U
        hold, occ, prog = p.hold[:, i][:, None, None, None], p.occupy[:, i][:, None, None, None], \
            p.progress[i]
        f = self.left[None, :, :, None]                                     # [1, Kk, B, 1]
        best = (INF, None)
        options = [(RUN + ell - 1, 0.0, CONT) for ell in range(1, U + 1)]
        options += [(FRESH, 0.0, NEW_FRESH), (READY, sig, NEW_RESTORE),
                    (ARRIVED, sig, NEW_RESTORE), (PAUSED, sig, NEW_RESTART)]
        for mode, restore, action in options:
            val = V[..., mode] + hold + occ * (f + restore) + prog * f
            val = np.where((f > EPS) & (f + restore <= 1 + EPS), val, INF)
            if mode == PAUSED and self.capped:
                val[..., -1] = INF                                        # no restart left
            flat = int(np.argmin(val))
            if val.flat[flat] < best[0]:
                idx = np.unravel_index(flat, val.shape)
                best = (float(val.flat[flat]),
                        (i, int(np.ravel_multi_index((*idx, mode), self.shape)), 10 + action))
        return best

    def _moves(self, V: np.ndarray, i: int, arrivals: dict) -> None:
        """Moves made in slot i: from any state that may leave (not one that arrived and has not
        run yet, nor a run shorter than U), arriving as ARRIVED."""
        p, U = self.p, self.U
        modes = np.array([FRESH, READY, PAUSED, RUN + U - 1])
        leave = np.stack([V[..., mode] for mode in modes], -1)
        which = np.argmin(leave, axis=-1)
        movable = np.take_along_axis(leave, which[..., None], -1)[..., 0]   # [K, Kk, B, R]
        src_mode = modes[which]
        cost = p.move[:, :, i]                                              # [K, K]
        if not np.isfinite(cost).any():
            return
        for a, b in zip(*np.nonzero(np.isfinite(cost))):
            t_arr = i + int(p.rho[a, b])
            if t_arr >= p.length:
                continue
            val = movable[a] + cost[a, b]
            if t_arr not in arrivals:
                arrivals[t_arr] = (np.full(self.shape, INF),
                                   np.full(self.shape, -1, dtype=np.int64),
                                   np.full(self.shape, i, dtype=np.int32))
            av, ap, at = arrivals[t_arr]
            better = val < av[b, ..., ARRIVED]
            if not better.any():
                continue
            src = np.ravel_multi_index((np.full(val.shape, a), *np.indices(val.shape)[0:3],
                                        src_mode[a]), self.shape)
            av[b, ..., ARRIVED][better] = val[better]
            ap[b, ..., ARRIVED][better] = src[better]
            at[b, ..., ARRIVED][better] = i

    # ---- backtracking ---------------------------------------------------------------------
    def _path(self, cost: float, i_end: int, flat: int, action: int) -> JobPath:
        """Walk back from the end; then replay forward to set exact shares."""
        p = self.p
        events: list[tuple[int, str, int, int]] = []      # (slot index, kind, site, extra)
        if action != END:
            site = int(np.unravel_index(flat, self.shape)[0])
            events.append((i_end, "finish", site, action - 10))
        i = i_end
        while i > 0:
            pred, tm, act = self.pred[i]
            a = int(act.flat[flat])
            src = int(pred.flat[flat])
            t_from = int(tm.flat[flat])
            state = np.unravel_index(flat, self.shape)
            src_state = np.unravel_index(src, self.shape)
            if a == MOVE:
                events.append((t_from, "move", int(src_state[0]), int(state[0])))
            elif a in (CONT, NEW_FRESH, NEW_RESTORE, NEW_RESTART):
                events.append((i - 1, "run", int(state[0]), a))
            flat, i = src, (t_from if a == MOVE else i - 1)
        events.sort()
        path = JobPath(cost)
        done, restores, exact = 0.0, 0, True
        for i, kind, site, extra in events:
            t = p.release + i
            if kind == "move":
                path.moves.append((int(p.sites[site]), int(p.sites[extra]), t))
                continue
            restore = extra in (NEW_RESTORE, NEW_RESTART)
            share = 1.0 - (p.sigma if restore else 0.0)
            if kind == "finish":
                share = p.work - done
                exact = exact and share > -EPS and share + (p.sigma if restore else 0) <= 1 + 1e-7
            restores += restore
            done += share
            path.x[int(p.sites[site]), t] = max(0.0, share)
        path.unfinished = max(0.0, p.work - done)
        path.exact = exact and restores <= p.max_restores
        return path
