"""The cheapest schedule of one job under the slot rules, by dynamic programming.

What ``wait-awhile`` chooses for a job at its origin, and what the decomposition engine prices
(a column is one job's schedule). Rules and notation are those of :mod:`milp.physics`: runs
fill whole slots except the job's last slot (which holds what its work still needs); a new run
begins with a restore (share σ, no progress) unless it is the job's first; restarts (runs after
a pause at the same site) are capped; a run that is not the last lasts at least U slots; a move
made in slot t lands the job at its destination for slot t + ρ.

Costs: holding a GPU at site k in slot t costs ``hold[k, t]`` (the whole slot); occupying a
share ``occ`` of it (progress + restore) costs ``occupy[k, t] · max(0, kwh[k]·occ − free[k, t])``
— linear prices when ``free`` is 0 (column generation), the marginal grid energy of the job
when ``free`` is the renewable energy the other jobs leave (a best response); each unit of
progress costs ``progress[t]``; each slot the job fills (occupancy 1) ``full[k, t]`` more; a move
``move[a, b, t]``; and, when ``unfinished`` is given, each unit of progress left at the deadline
costs that much (else the job must finish). Completing costs ``completion`` per slot from
release to the end of the last slot's occupancy (a mean-JCT bound's dual), and must happen by
``finish_by`` slots from release.

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
from numba import njit

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
    occupy: np.ndarray                #: [K, D] price per kWh of occupancy (beyond ``free``)
    kwh: np.ndarray                   #: [K] kWh of a full slot of occupancy
    progress: np.ndarray              #: [D] cost per unit of progress
    move: np.ndarray | None = None    #: [K, K, D] cost of a move (inf: not allowed)
    rho: np.ndarray | None = None     #: [K, K] slots from a move's slot to its arrival
    window: np.ndarray | None = None  #: [K, D] slot in a renewable window (arrivals run in it)
    started: bool = False             #: even the first run restores (from a checkpoint)
    max_restarts: int | None = None
    min_run_slots: int = 0
    max_restores: int = 4
    unfinished: float | None = None   #: cost per unit of progress left undone (elastic)
    free: np.ndarray | None = None    #: [K, D] kWh of a slot that cost nothing (default 0)
    full: np.ndarray | None = None    #: [K, D] extra cost of a full slot (default 0)
    completion: float = 0.0           #: cost per slot of completion time from release
    finish_by: float = math.inf       #: latest completion, in slots from release

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
    K, D = len(p.sites), p.length
    U = max(1, p.min_run_slots)
    M = RUN + U
    B = p.max_restores + 1
    capped = p.max_restarts is not None
    R = (p.max_restarts + 1) if capped else 1
    Kk = int(math.floor(p.work + p.max_restores * p.sigma + EPS)) + 2
    shape = (K, Kk, B, R, M)
    S = K * Kk * B * R * M
    pred = np.empty((D + 1, S), dtype=np.int32)
    ptime = np.empty((D + 1, S), dtype=np.int16)
    act = np.empty((D + 1, S), dtype=np.int8)
    moves = p.move is not None
    move = p.move if moves else np.full((K, K, max(D, 1)), np.inf)
    rho = p.rho.astype(np.int64) if moves else np.ones((K, K), dtype=np.int64)
    window = p.window if p.window is not None else np.zeros((K, max(D, 1)), dtype=bool)
    free = p.free if p.free is not None else np.zeros((K, max(D, 1)))
    full = p.full if p.full is not None else np.zeros((K, max(D, 1)))
    cost, i_end, flat, action = _sweep(
        K, Kk, B, R, U, M, capped, float(p.work), float(p.sigma), int(p.origin_k),
        READY if p.started else FRESH, moves, p.window is not None,
        p.unfinished is not None, float(p.unfinished or 0.0),
        np.ascontiguousarray(p.hold, dtype=np.float64),
        np.ascontiguousarray(p.occupy, dtype=np.float64),
        np.ascontiguousarray(p.kwh, dtype=np.float64),
        np.ascontiguousarray(free, dtype=np.float64),
        np.ascontiguousarray(full, dtype=np.float64),
        np.ascontiguousarray(p.progress, dtype=np.float64),
        np.ascontiguousarray(move, dtype=np.float64), rho,
        np.ascontiguousarray(window, dtype=np.bool_), float(p.completion),
        float(min(p.finish_by, 1e18)), float(p.deadline - p.release), pred, ptime, act)
    if i_end < 0:
        return None
    return _path(p, shape, cost, i_end, flat, action, pred, ptime, act)



@njit(cache=True)
def _sweep(K, Kk, B, R, U, M, capped, work, sigma, origin_k, start_mode, has_moves,
           has_window, elastic, unfinished, hold, occupy, kwh, free, full, progress, move,
           rho, window, completion, finish_by, end_slots, pred, ptime, act):
    """The forward sweep over slots; fills the backtracking arrays; returns the best end
    (cost, slot, state, action) — slot −1 when the job cannot finish."""
    D = hold.shape[1]
    S = K * Kk * B * R * M
    sRM = R * M
    sBRM = B * sRM
    sKBRM = Kk * sBRM
    ring = 2
    if has_moves:
        for a in range(K):
            for b in range(K):
                if rho[a, b] + 1 > ring:
                    ring = rho[a, b] + 1
    V = np.full(S, np.inf)
    nxt = np.full(S, np.inf)
    arr = np.full((ring, S), np.inf)
    arr_pred = np.zeros((ring, S), dtype=np.int32)
    arr_time = np.zeros((ring, S), dtype=np.int16)
    leave = np.full(S // M, np.inf)                  # cheapest state that may move, per
    leave_mode = np.zeros(S // M, dtype=np.int8)     # (site, k, b, r), and its mode
    V[origin_k * sKBRM + start_mode] = 0.0
    best, best_i, best_s, best_a = np.inf, -1, -1, -1
    last_run = RUN + U - 1
    for i in range(D):
        nxt[:] = np.inf
        prog = progress[i]
        # reachable states only: k ≤ i slots run so far, b ≤ k restores, r ≤ b restarts
        kmax = i + 1 if i + 1 < Kk else Kk
        for s_idx in range(K * kmax):
            kn, k = s_idx // kmax, s_idx % kmax
            for br in range(min(B, k + 1) * R):
                b, r = br // R, br % R
                if r > b:
                    continue
                s_base = kn * sKBRM + k * sBRM + b * sRM + r * M
                for mode in range(M):
                    s = s_base + mode
                    v = V[s]
                    if v == np.inf:
                        continue
                    left = work - (k - b * sigma)
                    h = hold[kn, i]
                    restart = mode == PAUSED
                    may_run = h < np.inf and not (restart and capped and r >= R - 1)
                    restore = mode == READY or mode == ARRIVED or mode == PAUSED
                    if may_run:
                        price = occupy[kn, i]
                        e = kwh[kn]
                        f = free[kn, i]
                        fc = full[kn, i]
                        oc = price * (e - f if e > f else 0.0) + fc     # a full slot
                        rs = sigma if restore else 0.0
                        # end the job in this slot: run what its work still needs
                        if left > EPS and left + rs <= 1.0 + EPS and \
                                i + left + rs <= finish_by + EPS:
                            e_end = e * (left + rs)
                            c = v + h + price * (e_end - f if e_end > f else 0.0) + prog * left
                            c += completion * (i + left + rs)
                            if left + rs >= 1.0 - EPS:
                                c += fc
                            if c < best:
                                best, best_i, best_s = c, i, s
                                if mode >= RUN:
                                    best_a = 10 + CONT
                                elif mode == FRESH:
                                    best_a = 10 + NEW_FRESH
                                elif restart:
                                    best_a = 10 + NEW_RESTART
                                else:
                                    best_a = 10 + NEW_RESTORE
                        # run a full slot that does not end the job
                        nk = k + 1
                        nb, nr = b, r
                        if mode >= RUN:
                            ell = mode - RUN + 1
                            nmode = RUN + (ell if ell >= U else ell + 1) - 1
                            c = v + h + oc + prog
                            code = CONT
                        elif mode == FRESH:
                            nmode = RUN
                            c = v + h + oc + prog
                            code = NEW_FRESH
                        else:
                            nmode = RUN
                            nb = b + 1 if b + 1 < B else B - 1
                            if restart and capped:
                                nr = r + 1
                            c = v + h + oc + prog * (1.0 - sigma)
                            code = NEW_RESTART if restart else NEW_RESTORE
                        if nk < Kk and work - (nk - nb * sigma) > EPS:
                            t = kn * sKBRM + nk * sBRM + nb * sRM + nr * M + nmode
                            if c < nxt[t]:
                                nxt[t] = c
                                pred[i + 1, t] = s
                                ptime[i + 1, t] = i
                                act[i + 1, t] = code
                    # idle through the slot
                    stay = -1
                    if mode >= RUN:
                        if mode == last_run:
                            stay = PAUSED
                    elif mode == ARRIVED:
                        if has_window and i + 1 < D and window[kn, i + 1]:
                            stay = ARRIVED
                    else:
                        stay = mode
                    if stay >= 0:
                        t = s - mode + stay
                        if v < nxt[t]:
                            nxt[t] = v
                            pred[i + 1, t] = s
                            ptime[i + 1, t] = i
                            act[i + 1, t] = IDLE
                    # a move at the start of this slot may leave from here (not right after
                    # arriving, nor from a short run): keep the cheapest such state per
                    # (site, k, b, r)
                    if has_moves and (mode == FRESH or mode == READY or mode == PAUSED
                                      or mode == last_run):
                        q = s // M
                        if v < leave[q]:
                            leave[q] = v
                            leave_mode[q] = mode
        if has_moves:
            # the slot's moves: each allowed (src, dst) pair from the cheapest leaving states
            for a in range(K):
                for kb in range(K):
                    c = move[a, kb, i]
                    if c == np.inf:
                        continue
                    ta = i + rho[a, kb]
                    if ta >= D:
                        continue
                    slot = ta % ring
                    for k in range(kmax):
                        q0 = (a * Kk + k) * B * R
                        t0 = (kb * Kk + k) * B * R
                        for br in range(min(B, k + 1) * R):
                            v = leave[q0 + br]
                            if v == np.inf:
                                continue
                            t = (t0 + br) * M + ARRIVED
                            if v + c < arr[slot, t]:
                                arr[slot, t] = v + c
                                arr_pred[slot, t] = (q0 + br) * M + leave_mode[q0 + br]
                                arr_time[slot, t] = i
            leave[:] = np.inf
        slot = (i + 1) % ring
        for t in range(S):
            if arr[slot, t] < nxt[t]:
                nxt[t] = arr[slot, t]
                pred[i + 1, t] = arr_pred[slot, t]
                ptime[i + 1, t] = arr_time[slot, t]
                act[i + 1, t] = MOVE
            arr[slot, t] = np.inf
        V, nxt = nxt, V
    if elastic:
        for s in range(S):
            v = V[s]
            if v == np.inf or s % M == ARRIVED:      # a move is followed by a run
                continue
            kn = s // sKBRM
            rest = s - kn * sKBRM
            k = rest // sBRM
            b = (rest - k * sBRM) // sRM
            left = work - (k - b * sigma)
            c = v + unfinished * (left if left > 0.0 else 0.0) + completion * end_slots
            if c < best:
                best, best_i, best_s, best_a = c, D, s, END
    return best, best_i, best_s, best_a


def _path(p: JobProblem, shape: tuple, cost: float, i_end: int, flat: int, action: int,
          pred: np.ndarray, ptime: np.ndarray, act: np.ndarray) -> JobPath:
    """Walk back from the end; then replay forward to set exact shares."""
    events: list[tuple[int, str, int, int]] = []      # (slot index, kind, site, extra)
    if action != END:
        events.append((i_end, "finish", int(np.unravel_index(flat, shape)[0]), action - 10))
    i = i_end
    while i > 0:
        a = int(act[i, flat])
        src = int(pred[i, flat])
        t_from = int(ptime[i, flat])
        site = int(np.unravel_index(flat, shape)[0])
        if a == MOVE:
            events.append((t_from, "move", int(np.unravel_index(src, shape)[0]), site))
        elif a in (CONT, NEW_FRESH, NEW_RESTORE, NEW_RESTART):
            events.append((i - 1, "run", site, a))
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
