"""The study's feasibility-domain model (Tomei et al., arXiv 2511.16182), as pure functions.

Units are in the names: GB (10^9 bytes), Gbps (10^9 bit/s), seconds (``_s``), hours (``_h``),
kW. Every function accepts scalars or numpy arrays and broadcasts.

- transfer time        ``T_transfer = 8 · S[GB] / B[Gbps]``                       (s)
- disruption           ``T_mig = T_transfer + T_load + T_down``                   (s)
- time feasibility     ``T_mig ≤ α · W``  (W = renewable window left at the destination)
- energy breakeven     ``t_be = P_transfer · T_transfer / P_compute``             (s)
- workload class       A: S < 10 GB, B: 10 ≤ S ≤ 100 GB, C: S > 100 GB
- renewable window     maximal run of slots whose renewable power ≥ a threshold (kW)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The study's parameter values (PAPER.md, "Feasibility-domain model").
ALPHA = 0.10
LOAD_TIME_S = 10.0
DOWNTIME_S = 0.4
TRANSFER_KW = 1.8
COMPUTE_KW = 0.75
#: Window range in real curtailment data named by the study (hours).
STUDY_WINDOWS_H = (2.5, 9.5)
CLASS_A_MAX_GB = 10.0
CLASS_B_MAX_GB = 100.0


def _out(a: np.ndarray):
    """Arrays stay arrays; a 0-d result becomes the matching Python scalar."""
    return a if a.ndim else a.item()


def transfer_s(checkpoint_gb, bandwidth_gbps):
    """Seconds to send ``checkpoint_gb`` GB over ``bandwidth_gbps`` Gbps: ``8·S/B`` (inf if B ≤ 0)."""
    s = np.asarray(checkpoint_gb, dtype=float)
    b = np.asarray(bandwidth_gbps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(b > 0, 8.0 * s / np.where(b > 0, b, 1.0), np.inf)
    return _out(t)


def disruption_s(checkpoint_gb, bandwidth_gbps, load_time_s=LOAD_TIME_S, downtime_s=DOWNTIME_S):
    """Seconds a migration stops the job: transfer + checkpoint load + stop-and-copy downtime."""
    return transfer_s(checkpoint_gb, bandwidth_gbps) + load_time_s + downtime_s


def time_feasible(disruption, window_s, alpha=ALPHA):
    """True where a migration's disruption (s) fits in ``alpha`` of the window left (s)."""
    ok = np.asarray(disruption, dtype=float) <= alpha * np.asarray(window_s, dtype=float)
    return _out(ok)


def breakeven_s(transfer, transfer_kw=TRANSFER_KW, compute_kw=COMPUTE_KW):
    """Seconds of renewable compute that pay back a migration's energy: ``P_tr·T_tr / P_comp``."""
    return _out(transfer_kw * np.asarray(transfer, dtype=float) / compute_kw)


def max_checkpoint_gb(bandwidth_gbps, window_s, alpha=ALPHA, load_time_s=LOAD_TIME_S,
                      downtime_s=DOWNTIME_S):
    """Largest checkpoint (GB) whose migration is time-feasible for a window (s); 0 if none."""
    budget = alpha * np.asarray(window_s, dtype=float) - load_time_s - downtime_s
    gb = np.maximum(budget, 0.0) * np.asarray(bandwidth_gbps, dtype=float) / 8.0
    return _out(gb)


def workload_class(checkpoint_gb):
    """The study's class of a checkpoint size: 'A' (< 10 GB), 'B' (10–100 GB), 'C' (> 100 GB)."""
    s = np.asarray(checkpoint_gb, dtype=float)
    cls = np.where(s < CLASS_A_MAX_GB, "A", np.where(s <= CLASS_B_MAX_GB, "B", "C"))
    return _out(cls)


def in_window(renewable_kw, threshold_kw):
    """Boolean mask of the slots whose renewable power (kW) reaches the threshold (kW)."""
    return np.asarray(renewable_kw, dtype=float) >= threshold_kw


def windows(renewable_kw, threshold_kw) -> list[tuple[int, int]]:
    """Renewable windows of one site: maximal runs ``[first, end)`` of in-window slot indices."""
    mask = in_window(np.ravel(renewable_kw), threshold_kw).astype(np.int8)
    edges = np.diff(np.concatenate(([0], mask, [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def remaining_window_slots(renewable_kw, threshold_kw) -> np.ndarray:
    """For each slot (last axis), how many slots from it to the end of its window (0 outside).

    Works on one site (1-D) or many (2-D ``[site, slot]``).
    """
    mask = in_window(renewable_kw, threshold_kw)
    left = np.zeros(mask.shape, dtype=int)
    run = np.zeros(mask.shape[:-1], dtype=int)
    for t in range(mask.shape[-1] - 1, -1, -1):
        run = np.where(mask[..., t], run + 1, 0)
        left[..., t] = run
    return left


@dataclass(frozen=True)
class Feasibility:
    """Every number the study's model gives for one checkpoint, link and window."""

    checkpoint_gb: float
    bandwidth_gbps: float
    window_h: float
    alpha: float
    transfer_s: float
    disruption_s: float
    breakeven_s: float
    workload_class: str
    budget_s: float
    feasible: bool
    max_checkpoint_gb: float


def assess(checkpoint_gb: float, bandwidth_gbps: float, window_h: float, *, alpha: float = ALPHA,
           load_time_s: float = LOAD_TIME_S, downtime_s: float = DOWNTIME_S,
           transfer_kw: float = TRANSFER_KW, compute_kw: float = COMPUTE_KW) -> Feasibility:
    """Evaluate one migration: transfer, disruption, breakeven, class and time feasibility."""
    t = transfer_s(checkpoint_gb, bandwidth_gbps)
    d = t + load_time_s + downtime_s
    window = window_h * 3600.0
    return Feasibility(
        checkpoint_gb=float(checkpoint_gb), bandwidth_gbps=float(bandwidth_gbps),
        window_h=float(window_h), alpha=float(alpha), transfer_s=float(t), disruption_s=float(d),
        breakeven_s=float(breakeven_s(t, transfer_kw, compute_kw)),
        workload_class=workload_class(checkpoint_gb), budget_s=alpha * window,
        feasible=bool(time_feasible(d, window, alpha)),
        max_checkpoint_gb=float(max_checkpoint_gb(bandwidth_gbps, window, alpha, load_time_s,
                                                  downtime_s)))


def phase_region(disruption, windows_h, alpha=ALPHA):
    """'feasible' (fits α·W for every window given), 'marginal' (only for the longer ones),
    'infeasible' (not even for the longest window). Windows in hours."""
    w = np.asarray(windows_h, dtype=float) * 3600.0
    d = np.asarray(disruption, dtype=float)
    region = np.where(d <= alpha * w.min(), "feasible",
                      np.where(d <= alpha * w.max(), "marginal", "infeasible"))
    return _out(region)


def phase_diagram(checkpoint_gb, bandwidth_gbps, windows_h=STUDY_WINDOWS_H, *, alpha=ALPHA,
                  load_time_s=LOAD_TIME_S, downtime_s=DOWNTIME_S) -> pd.DataFrame:
    """Grid of checkpoint size (GB) × bandwidth (Gbps) with disruption (s), class and region.

    One row per pair; ``region`` as in :func:`phase_region` for the given windows (hours).
    """
    s, b = np.meshgrid(np.asarray(checkpoint_gb, float), np.asarray(bandwidth_gbps, float),
                       indexing="ij")
    s, b = s.ravel(), b.ravel()
    t = transfer_s(s, b)
    d = t + load_time_s + downtime_s
    return pd.DataFrame({
        "checkpoint_gb": s, "bandwidth_gbps": b, "transfer_s": t, "disruption_s": d,
        "class": workload_class(s), "region": phase_region(d, windows_h, alpha)})
