"""Slot arithmetic shared by every planner (greedy and MILP) — one definition, one place."""

from __future__ import annotations

import numpy as np


def resume_after(disruption_s, slot_s: float):
    """Slots from a move's slot to the one in which the moved job resumes (scalar or array;
    inf for an impossible move).

    A job moves at the start of a slot and runs again from the first slot start at or after its
    arrival (``disruption_s`` later), so at least one slot later."""
    slots = np.maximum(1.0, np.ceil(np.asarray(disruption_s, dtype=float) / slot_s - 1e-9))
    return slots if slots.ndim else (int(slots) if np.isfinite(slots) else float("inf"))
