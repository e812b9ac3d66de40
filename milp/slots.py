"""Slot arithmetic shared by every planner (greedy and MILP) — one definition, one place."""

from __future__ import annotations

import math


def resume_after(disruption_s: float, slot_s: float) -> int:
    """Slots from a move's slot to the one in which the moved job resumes.

    A job moves at the start of a slot and runs again from the first slot start at or after its
    arrival (``disruption_s`` later), so at least one slot later."""
    return max(1, math.ceil(disruption_s / slot_s - 1e-9))
