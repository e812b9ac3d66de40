"""The size policy: the largest inputs milp accepts, all in one place.

Every command's time and memory grow with the number of sites, jobs and slots (the per-slot
views, ``schedule.csv`` and the evaluator's arrays, with jobs × slots; the MILP with jobs × sites
× slots), so an input beyond these limits is refused at once, with one line naming the file and
the limit, instead of running out of memory or time. The limits keep the shipped instances (at
most 2000 jobs, 50 sites, 96 slots) well inside and were measured on a 24 GB machine with the
greedy policies, the evaluator and the exports at the corners (README.md, "Size policy"); the
MILP's own time and memory are bounded by ``--time-limit`` and its engine.

The loaders call these checks as soon as a size is known: a file's size before it is read, the
number of slots from ``instance.toml`` before any CSV, the number of sites and jobs row by row.
"""

from __future__ import annotations

from milp.errors import InputError

#: Sites of an instance (rows of sites.csv).
MAX_SITES = 200
#: Jobs of an instance (rows of jobs.csv), of a plan and of a state.
MAX_JOBS = 10_000
#: Slots of an instance's horizon (instance.toml ``slots``): a week of 5-minute slots.
MAX_SLOTS = 2_016
#: Jobs × slots of an instance: the rows of ``schedule.csv`` and the size of the per-job,
#: per-slot arrays every planner and the evaluator hold.
MAX_JOB_SLOTS = 4_000_000
#: Bytes of any file milp reads: instance files, plan.json, state.json, site maps.
MAX_FILE_BYTES = 256 * 1024 * 1024

#: Largest number any numeric field or option takes (a plausibility bound: beyond it,
#: arithmetic on kW, GB and seconds would lose its meaning).
HUGE = 1e12

#: Where the limits are explained (every refusal names it).
POLICY = "README.md, 'Size policy'"


def max_jobs(slots: int) -> int:
    """The most jobs an instance of ``slots`` slots may have: :data:`MAX_JOBS`, fewer on long
    horizons so that jobs × slots stays within :data:`MAX_JOB_SLOTS`."""
    return min(MAX_JOBS, MAX_JOB_SLOTS // max(1, slots))


def check_file_size(size: int, source: str) -> None:
    """Refuse a file of more than :data:`MAX_FILE_BYTES` bytes (before reading it)."""
    if size > MAX_FILE_BYTES:
        raise InputError(source, f"is {size / 2**20:.1f} MiB; milp reads files of at most "
                         f"{MAX_FILE_BYTES // 2**20} MiB ({POLICY})")


def check_count(count: int, limit: int, what: str, source: str, *, line: int | None = None,
                field: str | None = None, why: str = "") -> None:
    """Refuse more than ``limit`` ``what`` (e.g. "jobs"), naming the file, and the line where
    the limit is crossed when known; ``why`` adds what the limit depends on."""
    if count > limit:
        raise InputError(source, f"more than {limit} {what}{why}: milp plans at most that many "
                         f"({POLICY})", line=line, field=field)


# ---- ranges of fault parameters (milp replay options, state.json) ---------------------------

#: Largest ``bandwidth_factor`` (links carry this share of their Gbps): above it, transfer
#: times fall below what any clock resolves.
MAX_BANDWIDTH_FACTOR = 1e6
#: Largest ``--renewable-noise`` (std-dev of the relative forecast error): beyond it, the
#: perturbed power is noise alone (and, far beyond, no longer a finite number).
MAX_RENEWABLE_NOISE = 100.0
