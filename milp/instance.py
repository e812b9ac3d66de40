"""Instance folders: reading, validating and holding one day-ahead planning problem.

A folder holds five files (format in README.md, "Instance format"):

- ``instance.toml`` — name, start (ISO 8601 with UTC offset), slot_minutes, slots,
  ``[migration]`` (alpha, load_time_s, downtime_s, transfer_kw), ``[defaults]`` (compute_kw,
  window_threshold_kw), ``[execution]`` (max_restarts, min_run_minutes);
- ``sites.csv`` — ``site,gpus`` (+ optional ``idle_kw``, ``compute_kw``, ``wan_gbps``);
- ``renewable.csv`` — ``time,<site>,…``: renewable power (kW) available per site and slot;
- ``links.csv`` — ``src,dst,gbps``: directed WAN links;
- ``jobs.csv`` — ``job,origin,release,deadline,work_h,checkpoint_gb`` (+ optional ``compute_kw``);
- ``carbon.csv`` (optional) — ``time,<site>,…``: carbon intensity of each site's grid
  (gCO₂/kWh) per slot.

:func:`load_instance` turns a folder into an immutable :class:`Instance` (numpy arrays inside,
read-only) or raises :class:`~milp.errors.InputError` naming file, line and field.
Time is measured in seconds from ``start``; slot ``k`` covers ``[k·slot_s, (k+1)·slot_s)``.
"""

from __future__ import annotations

import csv
import io
import math
import tomllib
from dataclasses import dataclass, field, fields
from functools import cached_property
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping, Union

import numpy as np
import pandas as pd

from milp import feasibility as fz
from milp.errors import InputError
from milp.files import read_input
from milp.limits import (HUGE, MAX_JOB_SLOTS, MAX_JOBS, MAX_SITES, MAX_SLOTS, POLICY,
                         check_count, max_jobs)

TOML = "instance.toml"
SITES = "sites.csv"
RENEWABLE = "renewable.csv"
CARBON = "carbon.csv"
LINKS = "links.csv"
JOBS = "jobs.csv"
#: Where the CSV inputs come from: a folder, or file name -> bytes (frames).
Source = Union[Path, Mapping[str, bytes]]



@dataclass(frozen=True)
class MigrationParams:
    """Migration parameters; defaults are the study's values."""

    alpha: float = fz.ALPHA            #: share of the destination's window a move may take
    load_time_s: float = fz.LOAD_TIME_S  #: checkpoint load time at the destination (s)
    downtime_s: float = fz.DOWNTIME_S    #: stop-and-copy pause (s)
    transfer_kw: float = fz.TRANSFER_KW  #: power drawn at the source while sending (kW)

    @property
    def stop_s(self) -> float:
        """Seconds a move stops the job beyond its transfer: load + downtime."""
        return self.load_time_s + self.downtime_s


#: Defaults of the execution rules, chosen by measurement (benchmarks/README.md, "Execution
#: rules"): at most this many restarts per job over the day, and no run shorter than this
#: (minutes) except a job's last.
MAX_RESTARTS = 2
MIN_RUN_MINUTES = 30.0


@dataclass(frozen=True)
class ExecutionRules:
    """What makes a plan something a site operator or a scheduler runs as written.

    Every run that does not continue the job's previous step at the same site without a pause
    begins with a **restore** of ``load_time_s + downtime_s`` (it loads the checkpoint: GPU held,
    power drawn, no progress); only a job's very first run starts without one. A **restart** is
    such a run after a pause at the same site (moves do not count): at most ``max_restarts`` per
    job (``None``: no cap). No run is shorter than ``min_run_minutes`` except a job's last.
    """

    max_restarts: int | None = MAX_RESTARTS
    min_run_minutes: float = MIN_RUN_MINUTES

    @property
    def min_run_s(self) -> float:
        return self.min_run_minutes * 60.0


#: Rules that let every plan through (no cap): ``milp replay`` scores what reality did with
#: these, since caps are planning rules, not physics.
NO_CAPS = ExecutionRules(max_restarts=None, min_run_minutes=0.0)


@dataclass(frozen=True)
class ObjectiveWeights:
    """Tie-breakers of the MILP's objective, in kWh-equivalents (grid energy comes first).

    ``migration_kwh`` is charged per migration; ``completion_kwh`` per GPU-hour of work per hour
    it runs after the job's release (so earlier work is preferred). Both are small on purpose:
    they only choose among plans of (nearly) equal grid energy.
    """

    migration_kwh: float = 1e-3
    completion_kwh: float = 1e-4


@dataclass(frozen=True, eq=False)
class Instance:
    """One validated planning problem. Arrays are read-only; indices follow ``sites``/``jobs``.

    Sites ``n``, slots ``t`` (``slot_s`` seconds each), jobs ``j``.
    """

    name: str
    start: datetime                 #: time of slot 0 (timezone-aware)
    slot_minutes: float
    n_slots: int
    migration: MigrationParams
    objective: ObjectiveWeights
    execution: ExecutionRules
    default_compute_kw: float       #: power of one running single-GPU job (kW)
    window_threshold_kw: float      #: renewable power (kW) from which a slot is in a window
    sites: tuple[str, ...]
    gpus: np.ndarray                #: [n] GPUs per site
    idle_kw: np.ndarray             #: [n] power a site draws whatever it runs (kW)
    wan_gbps: np.ndarray            #: [n] WAN capacity the site's transfers in and out share
    #: (Gbps; inf = no limit beyond its links)
    renewable_kw: np.ndarray        #: [n, t] renewable power available (kW)
    link_gbps: np.ndarray           #: [src, dst] link capacity (Gbps); 0 = no link
    jobs: tuple[str, ...]
    origin: np.ndarray              #: [j] site index where the job is at release
    release_slot: np.ndarray        #: [j] first slot the job may run
    deadline_slot: np.ndarray       #: [j] work must be done by the start of this slot
    work_h: np.ndarray              #: [j] GPU hours of compute still needed
    checkpoint_gb: np.ndarray       #: [j] checkpoint bytes that move with the job (GB)
    compute_kw: np.ndarray          #: [j, n] power of job j running at site n (kW)
    extra: Mapping[str, pd.DataFrame] = field(default_factory=dict)  #: ignored extra columns
    #: [j] the job resumes from a checkpoint, so even its first run begins with a restore (set
    #: for the rest of a day that is re-planned, :mod:`milp.state`; all False from files)
    from_checkpoint: np.ndarray | None = None
    #: [n, t] carbon intensity of each site's grid energy (gCO₂/kWh); None without carbon.csv
    carbon_g_per_kwh: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.from_checkpoint is None:
            object.__setattr__(self, "from_checkpoint", read_only(np.zeros(len(self.jobs), bool)))

    def __getstate__(self) -> dict[str, Any]:
        """What pickling keeps (a sweep's cells run in other processes, :mod:`milp.sweep`):
        the fields, the read-only mapping ``extra`` as a dict; what is cached is recomputed."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["extra"] = dict(state["extra"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            if isinstance(value, np.ndarray):
                value = read_only(value)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "extra", MappingProxyType(dict(state["extra"])))

    @classmethod
    def from_frames(cls, *, sites: pd.DataFrame, renewable: pd.DataFrame, jobs: pd.DataFrame,
                    links: pd.DataFrame | None = None, carbon: pd.DataFrame | None = None,
                    name: str, start: datetime | str | None = None,
                    slot_minutes: float | None = None, slots: int | None = None,
                    **sections: Mapping[str, Any]) -> "Instance":
        """An instance from pandas frames instead of a folder, checked as a folder is.

        ``sites``, ``renewable``, ``links`` (default: none), ``jobs`` and ``carbon`` (default:
        none) have the columns of the CSV files (README.md, "Instance format"); times are ISO 8601 strings or
        timezone-aware timestamps; ``renewable`` may carry its times as a DatetimeIndex.
        ``name``, ``start`` (default: the first renewable time), ``slot_minutes`` (default
        15), ``slots`` (default: renewable's rows) and the sections ``migration``,
        ``defaults``, ``execution``, ``objective`` (dicts) are the keys of ``instance.toml``.
        A mistake raises :class:`~milp.errors.InputError` naming the frame, the row (its index
        label) and the column."""
        return instance_from_frames(sites=sites, renewable=renewable, jobs=jobs, links=links,
                                    carbon=carbon, name=name, start=start, slot_minutes=slot_minutes,
                                    slots=slots, **sections)

    # ---- time ---------------------------------------------------------------------------
    @property
    def slot_s(self) -> float:
        return self.slot_minutes * 60.0

    @property
    def slot_h(self) -> float:
        return self.slot_minutes / 60.0

    @property
    def horizon_s(self) -> float:
        return self.n_slots * self.slot_s

    def time_of(self, seconds: float) -> datetime:
        """Wall-clock time of an offset in seconds from ``start``."""
        return self.start + timedelta(seconds=float(seconds))

    def slot_times(self) -> list[datetime]:
        return [self.time_of(k * self.slot_s) for k in range(self.n_slots)]

    @property
    def release_s(self) -> np.ndarray:
        return self.release_slot * self.slot_s

    @property
    def deadline_s(self) -> np.ndarray:
        return self.deadline_slot * self.slot_s

    # ---- indices ------------------------------------------------------------------------
    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    @cached_property
    def site_index_map(self) -> Mapping[str, int]:
        return MappingProxyType({s: n for n, s in enumerate(self.sites)})

    @cached_property
    def job_index_map(self) -> Mapping[str, int]:
        return MappingProxyType({s: j for j, s in enumerate(self.jobs)})

    # ---- derived quantities ---------------------------------------------------------------
    @property
    def job_class(self) -> np.ndarray:
        """[j] the study's workload class 'A'/'B'/'C' of each job's checkpoint."""
        return fz.workload_class(self.checkpoint_gb)

    def transfer_s(self, j: int, src: int, dst: int) -> float:
        """Seconds to send job j's checkpoint alone over link src→dst (inf without a link)."""
        return fz.transfer_s(self.checkpoint_gb[j], self.link_gbps[src, dst])

    @cached_property
    def remaining_window_slots(self) -> np.ndarray:
        """[n, t] slots from t to the end of site n's renewable window (0 outside a window)."""
        return read_only(fz.remaining_window_slots(self.renewable_kw, self.window_threshold_kw))

    def remaining_window_s(self, site: int, time_s: float) -> float:
        """Seconds from ``time_s`` to the end of the window of ``site`` it falls in (0 if none)."""
        t = int(time_s // self.slot_s)
        if not 0 <= t < self.n_slots:
            return 0.0
        left = int(self.remaining_window_slots[site, t])
        return max(0.0, (t + left) * self.slot_s - time_s) if left else 0.0

    def windows(self, site: int) -> list[tuple[int, int]]:
        """Renewable windows ``[first_slot, end_slot)`` of one site."""
        return fz.windows(self.renewable_kw[site], self.window_threshold_kw)


# ============================================================================ loading ======

def load_instance(directory: str | Path) -> Instance:
    """Read and validate an instance folder; raise :class:`InputError` on the first mistake."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(str(directory), "not a directory")
    return _build(_read_toml(d), d)


def _build(head: dict[str, Any], d: Source) -> Instance:
    """The instance of a checked ``instance.toml`` (:func:`_check_toml`) and the four CSV
    files of ``d`` (a folder, or file name -> bytes: :meth:`Instance.from_frames`)."""
    start, slot_s, n_slots = head["start"], head["slot_minutes"] * 60.0, head["slots"]
    sites = _read_sites(d)
    renewable = _read_renewable(d, sites["site"], start, slot_s, n_slots)
    has_carbon = CARBON in d if isinstance(d, Mapping) else (d / CARBON).exists()
    carbon = _read_renewable(d, sites["site"], start, slot_s, n_slots, CARBON) \
        if has_carbon else None
    links = _read_links(d, sites["site"])
    jobs = _read_jobs(d, sites, start, slot_s, n_slots, head["defaults"]["compute_kw"])
    return Instance(
        name=head["name"], start=start, slot_minutes=head["slot_minutes"], n_slots=n_slots,
        migration=MigrationParams(**head["migration"]),
        objective=ObjectiveWeights(**head["objective"]),
        execution=ExecutionRules(**head["execution"]),
        default_compute_kw=head["defaults"]["compute_kw"],
        window_threshold_kw=head["defaults"]["window_threshold_kw"],
        sites=tuple(sites["site"]), gpus=read_only(sites["gpus"].astype(int)),
        idle_kw=read_only(sites["idle_kw"]), wan_gbps=read_only(sites["wan_gbps"]),
        renewable_kw=read_only(renewable), link_gbps=read_only(links),
        carbon_g_per_kwh=read_only(carbon) if carbon is not None else None,
        jobs=tuple(jobs["job"]), origin=read_only(jobs["origin"]),
        release_slot=read_only(jobs["release"]), deadline_slot=read_only(jobs["deadline"]),
        work_h=read_only(jobs["work_h"]), checkpoint_gb=read_only(jobs["checkpoint_gb"]),
        compute_kw=read_only(jobs["compute_kw"]),
        extra=MappingProxyType({k: v for k, v in ((SITES, sites["extra"]), (JOBS, jobs["extra"]))
                                if v is not None}))


#: What :meth:`Instance.from_frames` calls each input in its messages.
FRAME_NAMES = {TOML: "settings", SITES: "sites", RENEWABLE: "renewable", LINKS: "links",
               JOBS: "jobs", CARBON: "carbon"}


def instance_from_frames(*, sites: pd.DataFrame, renewable: pd.DataFrame, jobs: pd.DataFrame,
                         links: pd.DataFrame | None = None,
                         carbon: pd.DataFrame | None = None, name: str,
                         start: datetime | str | None = None, slot_minutes: float | None = None,
                         slots: int | None = None, **sections: Mapping[str, Any]) -> Instance:
    """:meth:`Instance.from_frames`: the frames are written as the CSV files they stand for and
    read by the same code as a folder, so they are checked alike; a mistake names the frame,
    its row (the frame's index label) and the column, e.g. ``jobs row 3, field 'release'``,
    or ``settings, field 'migration.alpha'``."""
    frames = {SITES: sites, RENEWABLE: renewable, JOBS: jobs,
              LINKS: links if links is not None else pd.DataFrame(columns=["src", "dst",
                                                                             "gbps"])}
    if carbon is not None:
        frames[CARBON] = carbon
    for key in (RENEWABLE, CARBON):
        f = frames.get(key)
        if isinstance(f, pd.DataFrame) and "time" not in f.columns and \
                isinstance(f.index, pd.DatetimeIndex):
            frames[key] = f.rename_axis("time").reset_index()
    for key, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise InputError(FRAME_NAMES[key], f"must be a pandas DataFrame, got "
                             f"{type(frame).__name__}")
    raw: dict[str, Any] = {"name": name, **{k: dict(v) for k, v in sections.items()}}
    first = frames[RENEWABLE]["time"].iloc[0] if "time" in frames[RENEWABLE] and \
        len(frames[RENEWABLE]) else None
    raw["start"] = start if start is not None else first
    raw["slots"] = slots if slots is not None else len(frames[RENEWABLE])
    if slot_minutes is not None:
        raw["slot_minutes"] = slot_minutes
    if isinstance(raw.get("start"), pd.Timestamp):
        raw["start"] = raw["start"].to_pydatetime()
    if raw.get("execution", {}).get("max_restarts", "") is None:
        raw["execution"]["max_restarts"] = "none"
    texts = {key: frame.to_csv(index=False).encode()
             for key, frame in frames.items()}
    try:
        return _build(_check_toml(raw), texts)
    except InputError as e:
        where = FRAME_NAMES.get(e.file, e.file)
        frame = frames.get(e.file)
        row = None
        if frame is not None and e.line is not None and e.line >= 2 and \
                e.line - 2 < len(frame):
            row = frame.index[e.line - 2]
        elif e.line is not None:
            where += " header" if e.line == 1 else ""
        raise InputError(where, e.message, field=e.field, row=row) from None


def read_only(a) -> np.ndarray:
    """A read-only copy of ``a``: an Instance's arrays never change."""
    a = np.array(a)
    a.setflags(write=False)
    return a


# ---- instance.toml -----------------------------------------------------------------------

_TOML_KEYS: dict[str, Any] = {
    "name": None, "description": None, "start": None, "slot_minutes": 15.0, "slots": None,
    "migration": {"alpha": fz.ALPHA, "load_time_s": fz.LOAD_TIME_S,
                  "downtime_s": fz.DOWNTIME_S, "transfer_kw": fz.TRANSFER_KW},
    "defaults": {"compute_kw": fz.COMPUTE_KW, "window_threshold_kw": None},
    "objective": {"migration_kwh": ObjectiveWeights.migration_kwh,
                  "completion_kwh": ObjectiveWeights.completion_kwh},
    "execution": {"max_restarts": MAX_RESTARTS, "min_run_minutes": MIN_RUN_MINUTES},
}


def _read_toml(d: Path) -> dict[str, Any]:
    data = read_input(d / TOML, TOML)
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))  # a BOM, as in the CSVs
    except UnicodeDecodeError as e:
        raise InputError(TOML, f"not UTF-8 text (bad byte at offset {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(TOML, f"invalid TOML: {e}") from None
    return _check_toml(raw)


def _check_toml(raw: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``instance.toml`` (parsed), checked, with their defaults."""
    _reject_unknown(raw, _TOML_KEYS, "")
    for key in ("name", "start", "slots"):
        if key not in raw:
            raise InputError(TOML, "required key is missing", field=key)
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise InputError(TOML, "must be a non-empty string", field="name")
    if not name.isprintable():
        raise InputError(TOML, "must be printable text (no line breaks or control characters)",
                         field="name")
    start = _toml_time(raw["start"])
    slot_minutes = _toml_number(raw, "slot_minutes", 15.0, positive=True)
    slots = raw["slots"]
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_SLOTS:
        raise InputError(TOML, f"must be a whole number of slots from 1 to {MAX_SLOTS} "
                         f"({POLICY}), got {slots!r}", field="slots")
    try:
        start + timedelta(minutes=slot_minutes * slots)
    except OverflowError:
        raise InputError(TOML, "the horizon (start + slots x slot_minutes) ends after year 9999",
                         field="slots") from None
    mig_raw = raw.get("migration", {})
    migration = {
        "alpha": _toml_number(mig_raw, "alpha", fz.ALPHA, positive=True, maximum=1.0,
                              prefix="migration."),
        "load_time_s": _toml_number(mig_raw, "load_time_s", fz.LOAD_TIME_S, prefix="migration."),
        "downtime_s": _toml_number(mig_raw, "downtime_s", fz.DOWNTIME_S, prefix="migration."),
        "transfer_kw": _toml_number(mig_raw, "transfer_kw", fz.TRANSFER_KW, prefix="migration."),
    }
    def_raw = raw.get("defaults", {})
    compute_kw = _toml_number(def_raw, "compute_kw", fz.COMPUTE_KW, positive=True,
                              prefix="defaults.")
    threshold = _toml_number(def_raw, "window_threshold_kw", compute_kw, positive=True,
                             prefix="defaults.")
    obj_raw = raw.get("objective", {})
    objective = {k: _toml_number(obj_raw, k, v, prefix="objective.")
                 for k, v in _TOML_KEYS["objective"].items()}
    return {"name": name.strip(), "start": start, "slot_minutes": slot_minutes, "slots": slots,
            "migration": migration, "objective": objective,
            "execution": _read_execution(raw.get("execution", {}), slot_minutes * slots),
            "defaults": {"compute_kw": compute_kw, "window_threshold_kw": threshold}}


def _read_execution(raw: dict, horizon_minutes: float) -> dict[str, Any]:
    """``[execution]``: ``max_restarts`` a whole number >= 0 (or the string "none": no cap),
    ``min_run_minutes`` >= 0 and not longer than the horizon."""
    cap = raw.get("max_restarts", MAX_RESTARTS)
    if isinstance(cap, str) and cap.strip().lower() == "none":
        cap = None
    elif isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 1_000_000:
        raise InputError(TOML, f"must be a whole number from 0 to 1000000, or \"none\" for no "
                         f"cap, got {cap!r}", field="execution.max_restarts")
    minutes = _toml_number(raw, "min_run_minutes", MIN_RUN_MINUTES, prefix="execution.",
                           maximum=horizon_minutes)
    return {"max_restarts": cap, "min_run_minutes": minutes}


def _reject_unknown(raw: dict, known: dict, prefix: str) -> None:
    for key, value in raw.items():
        if key not in known:
            raise InputError(TOML, f"unknown key (known: {', '.join(known)})",
                             field=prefix + key)
        if isinstance(known[key], dict):
            if not isinstance(value, dict):
                raise InputError(TOML, "must be a table", field=prefix + key)
            _reject_unknown(value, known[key], prefix + key + ".")


def _toml_number(raw: dict, key: str, default: float, *, positive: bool = False,
                 maximum: float = HUGE, prefix: str = "") -> float:
    value = raw.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > HUGE:
        raise InputError(TOML, f"is implausibly large (> {HUGE:g})", field=prefix + key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(TOML, f"must be a finite number, got {value!r}", field=prefix + key)
    if value < 0 or (positive and value == 0):
        raise InputError(TOML, f"must be {'> 0' if positive else '>= 0'}, got {value!r}",
                         field=prefix + key)
    if value > maximum:
        raise InputError(TOML, f"must be <= {maximum:g}, got {value!r}", field=prefix + key)
    return float(value)


def _toml_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(TOML, f"{value!r} is not an ISO 8601 time", field="start") from None
    else:
        raise InputError(TOML, f"must be an ISO 8601 time, got {value!r}", field="start")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InputError(TOML, f"{value!s} has no UTC offset (e.g. 2024-06-01T00:00:00+00:00)",
                         field="start")
    return ts


# ---- CSV helpers -------------------------------------------------------------------------

def _read_csv(d: Source, name: str, required: list[str], *, may_be_bare: bool = False,
              max_rows: int | None = None, what: str = "rows", why: str = "") -> pd.DataFrame:
    """Read a CSV as strings; the frame index is the file line number of each data row.

    A header without rows is an error unless ``may_be_bare``; more than ``max_rows`` data rows
    (``what``: "jobs", "sites"; ``why``: what the limit depends on) are refused at the first
    row beyond the limit, before the rest of the file is read (size policy,
    :mod:`milp.limits`).
    """
    raw = d[name] if isinstance(d, Mapping) else read_input(d / name, name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        data = e.object  # the bytes after a BOM: e.start counts from there
        before = data[:e.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # as _records
        raise InputError(name, f"not UTF-8 text (bad byte 0x{data[e.start]:02x})",
                         line=before.count(b"\n") + 1) from None
    if not text.strip():
        raise InputError(name, "file is empty", line=1)
    records = _records(name, text)
    header = [c.strip() for c in next(records)[1]]
    _check_header(name, header, required)
    lines, rows = [], []
    for line, row in records:
        if not row:
            continue  # a blank line
        if max_rows is not None and len(rows) == max_rows:
            check_count(max_rows + 1, max_rows, what, name, line=line, why=why)
        if len(row) > len(header):
            raise InputError(name, f"{len(row)} fields where the header has {len(header)}",
                             line=line)
        lines.append(line)
        rows.append([c.strip() for c in row] + [None] * (len(header) - len(row)))
    df = pd.DataFrame(rows, columns=header, index=lines, dtype=object)
    if df.empty and not may_be_bare:
        raise InputError(name, "no data rows", line=2)
    return df


def _check_header(name: str, header: list[str], required: list[str]) -> None:
    """Every column named, once, and the ``required`` ones present: one pass (a set of the
    names seen), so that a header of 200 000 columns is as quick to check as its parsing."""
    seen: set[str] = set()
    for i, col in enumerate(header):
        if not col:
            raise InputError(name, f"column {i + 1} has no name", line=1)
        if col in seen:
            raise InputError(name, "duplicate column", line=1, field=col)
        seen.add(col)
    for col in required:
        if col not in seen:
            raise InputError(name, "column is missing", line=1, field=col)


def _records(name: str, text: str) -> Iterator[tuple[int, list[str]]]:
    """Tokenise CSV text into (first line number, fields) records, one at a time (so that a
    reader can stop early); blank lines give []."""
    reader = csv.reader(io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n")))
    line = 1
    try:
        for row in reader:
            yield line, row
            line = reader.line_num + 1
    except csv.Error as e:
        raise InputError(name, f"unreadable CSV ({e})", line=line) from None


def _cells(df: pd.DataFrame, name: str, col: str, *, optional: bool = False) -> pd.Series:
    """The column's strings; a missing cell is an error unless ``optional`` (then NaN)."""
    s = df[col]
    missing = s.isna() | (s == "")
    if missing.any() and not optional:
        raise InputError(name, "value is missing", line=int(missing.idxmax()), field=col)
    return s.where(~missing, np.nan)


def _numbers(df: pd.DataFrame, name: str, col: str, *, positive: bool = False,
             integer: bool = False, optional: bool = False) -> np.ndarray:
    """Parse a numeric column: finite, >= 0 (or > 0), <= HUGE, whole if ``integer``.

    Optional columns give NaN where a cell is empty.
    """
    raw = _cells(df, name, col, optional=optional)
    given = raw.notna()
    vals = pd.to_numeric(raw, errors="coerce").astype(float)
    checks = [
        (~np.isfinite(vals), "is not a finite number"),
        (vals <= 0 if positive else vals < 0, "must be > 0" if positive else "must be >= 0"),
        (vals > HUGE, f"is implausibly large (> {HUGE:g})"),
        (vals != np.round(vals) if integer else vals != vals, "must be a whole number"),
    ]
    for bad, why in checks:
        bad = bad & given
        if bad.any():
            line = int(bad.idxmax())
            raise InputError(name, f"{raw[line]!r} {why}", line=line, field=col)
    return vals.to_numpy()


def _ids(df: pd.DataFrame, name: str, col: str) -> list[str]:
    ids = _cells(df, name, col)
    bad = ~ids.map(str.isprintable)
    if bad.any():
        line = int(bad.idxmax())
        raise InputError(name, f"id {ids[line]!r} is not printable text (no line breaks or "
                         f"control characters)", line=line, field=col)
    dup = ids.duplicated()
    if dup.any():
        line = int(dup.idxmax())
        raise InputError(name, f"duplicate id {ids[line]!r}", line=line, field=col)
    return ids.tolist()


def _site_refs(df: pd.DataFrame, name: str, col: str, sites: list[str]) -> np.ndarray:
    index = {s: i for i, s in enumerate(sites)}
    refs = _cells(df, name, col)
    for line, value in refs.items():
        if value not in index:
            raise InputError(name, f"unknown site {value!r}", line=int(line), field=col)
    return refs.map(index).to_numpy(dtype=int)


def _time_offsets(df: pd.DataFrame, name: str, col: str, start: datetime, slot_s: float,
                  n_slots: int, *, optional: bool = False, in_order: bool = False
                  ) -> np.ndarray:
    """Slot index of each ISO time in a column (NaN where empty and ``optional``).

    Times must carry a UTC offset, sit on the slot grid and lie in ``[start, end]``. With
    ``in_order``, row ``i`` must be slot ``i``: checked row by row with the others, so that the
    first row out of step is the one named (a day written in wall-clock times across a
    daylight-saving change goes wrong where the clock jumps, not at the end).
    """
    cells = _cells(df, name, col, optional=optional)
    out = np.full(len(cells), np.nan)
    minutes = slot_s / 60.0
    for i, (line, value) in enumerate(cells.items()):
        if not isinstance(value, str):
            continue
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise InputError(name, f"{value!r} is not an ISO 8601 time", line=int(line),
                             field=col) from None
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise InputError(name, f"{value!r} has no UTC offset", line=int(line), field=col)
        k = (ts - start).total_seconds() / slot_s
        if abs(k - round(k)) > 1e-9:
            raise InputError(name, f"{value!r} is not on the {minutes:g}-minute slot grid",
                             line=int(line), field=col)
        if not 0 <= round(k) <= n_slots:
            raise InputError(name, f"{value!r} is outside the horizon", line=int(line),
                             field=col)
        if in_order and round(k) != i:
            raise InputError(name, f"expected the time of slot {i} "
                             f"({start + timedelta(seconds=i * slot_s):%Y-%m-%dT%H:%M%z}), "
                             f"found that of slot {round(k)}", line=int(line), field=col)
        out[i] = round(k)
    return out


def _extra(df: pd.DataFrame, known: list[str], id_col: str) -> pd.DataFrame | None:
    cols = [c for c in df.columns if c not in known]
    return df.set_index(id_col)[cols] if cols else None


# ---- the four tables ---------------------------------------------------------------------

def _read_sites(d: Source) -> dict[str, Any]:
    df = _read_csv(d, SITES, ["site", "gpus"], max_rows=MAX_SITES, what="sites")
    names = _ids(df, SITES, "site")
    if "time" in names:
        raise InputError(SITES, "'time' is reserved (renewable.csv's time column)",
                         line=int(df.index[names.index("time")]), field="site")
    gpus = _numbers(df, SITES, "gpus", positive=True, integer=True)
    idle = (_numbers(df, SITES, "idle_kw", optional=True) if "idle_kw" in df
            else np.full(len(df), np.nan))
    kw = (_numbers(df, SITES, "compute_kw", positive=True, optional=True) if "compute_kw" in df
          else np.full(len(df), np.nan))
    wan = (_numbers(df, SITES, "wan_gbps", positive=True, optional=True) if "wan_gbps" in df
           else np.full(len(df), np.nan))
    return {"site": names, "gpus": gpus, "idle_kw": np.nan_to_num(idle, nan=0.0),
            "compute_kw": kw, "wan_gbps": np.where(np.isnan(wan), np.inf, wan),
            "extra": _extra(df, ["site", "gpus", "idle_kw", "compute_kw", "wan_gbps"], "site")}


def _read_renewable(d: Source, sites: list[str], start: datetime, slot_s: float,
                    n_slots: int, name: str = RENEWABLE) -> np.ndarray:
    """A per-site, per-slot table (renewable.csv, carbon.csv): a time column on the slot grid,
    one row per slot in order, one numeric column (>= 0) per site."""
    df = _read_csv(d, name, ["time", *sites])
    _time_offsets(df, name, "time", start, slot_s, n_slots, in_order=True)
    if len(df) != n_slots:
        raise InputError(name, f"{len(df)} rows where instance.toml has {n_slots} slots",
                         line=int(df.index[-1]))
    return np.vstack([_numbers(df, name, s) for s in sites])


def _read_links(d: Source, sites: list[str]) -> np.ndarray:
    gbps = np.zeros((len(sites), len(sites)))
    df = _read_csv(d, LINKS, ["src", "dst", "gbps"], may_be_bare=True)
    src = _site_refs(df, LINKS, "src", sites)
    dst = _site_refs(df, LINKS, "dst", sites)
    cap = _numbers(df, LINKS, "gbps", positive=True)
    for line, a, b, c in zip(df.index, src, dst, cap):
        if a == b:
            raise InputError(LINKS, f"link from {sites[a]!r} to itself", line=int(line),
                             field="dst")
        if gbps[a, b]:
            raise InputError(LINKS, f"duplicate link {sites[a]}->{sites[b]}", line=int(line),
                             field="dst")
        gbps[a, b] = c
    return gbps


def _read_jobs(d: Source, sites: dict[str, Any], start: datetime, slot_s: float, n_slots: int,
               default_kw: float) -> dict[str, Any]:
    known = ["job", "origin", "release", "deadline", "work_h", "checkpoint_gb", "compute_kw"]
    limit = max_jobs(n_slots)
    df = _read_csv(d, JOBS, known[:6], max_rows=limit, what="jobs",
                   why="" if limit == MAX_JOBS else f" over {n_slots} slots (jobs x slots at "
                   f"most {MAX_JOB_SLOTS})")
    ids = _ids(df, JOBS, "job")
    origin = _site_refs(df, JOBS, "origin", sites["site"])
    release = _time_offsets(df, JOBS, "release", start, slot_s, n_slots)
    deadline = _time_offsets(df, JOBS, "deadline", start, slot_s, n_slots, optional=True)
    deadline = np.where(np.isnan(deadline), n_slots, deadline)
    work_h = _numbers(df, JOBS, "work_h", positive=True)
    ckpt = _numbers(df, JOBS, "checkpoint_gb")
    job_kw = (_numbers(df, JOBS, "compute_kw", positive=True, optional=True)
              if "compute_kw" in df else np.full(len(df), np.nan))
    for line, r, dl, w in zip(df.index, release, deadline, work_h):
        if r >= n_slots:
            raise InputError(JOBS, "release is at the end of the horizon", line=int(line),
                             field="release")
        if dl <= r:
            raise InputError(JOBS, "deadline is not after release", line=int(line),
                             field="deadline")
        if w * 3600.0 > (dl - r) * slot_s + 1e-6:
            raise InputError(JOBS, f"{w:g} h of work cannot fit between release and deadline "
                             f"({(dl - r) * slot_s / 3600:g} h) even alone", line=int(line),
                             field="work_h")
    site_kw = np.where(np.isnan(sites["compute_kw"]), default_kw, sites["compute_kw"])
    compute_kw = np.where(np.isnan(job_kw)[:, None], site_kw[None, :], job_kw[:, None])
    return {"job": ids, "origin": origin, "release": release.astype(int),
            "deadline": deadline.astype(int), "work_h": work_h, "checkpoint_gb": ckpt,
            "compute_kw": compute_kw, "extra": _extra(df, known, "job")}


# ============================================================================ summary ======

def describe(inst: Instance) -> dict[str, Any]:
    """Short facts about an instance (what ``milp check`` prints). Energies in kWh."""
    classes = inst.job_class
    lengths_h = [(e - s) * inst.slot_h for n in range(inst.n_sites) for s, e in inst.windows(n)]
    links = inst.link_gbps[inst.link_gbps > 0]
    own_kw = inst.compute_kw[np.arange(inst.n_jobs), inst.origin]
    return {
        "name": inst.name,
        "start": inst.start.isoformat(),
        "slots": inst.n_slots,
        "slot_minutes": inst.slot_minutes,
        "sites": inst.n_sites,
        "gpus": int(inst.gpus.sum()),
        "jobs": inst.n_jobs,
        "jobs_per_class": {c: int((classes == c).sum()) for c in "ABC"},
        "renewable_energy_kwh": float(inst.renewable_kw.sum() * inst.slot_h),
        "demand_energy_kwh": float((inst.work_h * own_kw).sum()),
        "idle_energy_kwh": float(inst.idle_kw.sum() * inst.n_slots * inst.slot_h),
        "work_h": float(inst.work_h.sum()),
        "wan_gbps": {s: (float(w) if np.isfinite(w) else None)
                     for s, w in zip(inst.sites, inst.wan_gbps)},
        "carbon_g_per_kwh_mean": float(inst.carbon_g_per_kwh.mean())
        if inst.carbon_g_per_kwh is not None else None,
        "max_restarts": inst.execution.max_restarts,
        "min_run_minutes": inst.execution.min_run_minutes,
        "links": int(links.size),
        "link_gbps_min": float(links.min()) if links.size else None,
        "link_gbps_median": float(np.median(links)) if links.size else None,
        "link_gbps_max": float(links.max()) if links.size else None,
        "windows": len(lengths_h),
        "window_h_mean": float(np.mean(lengths_h)) if lengths_h else None,
        "window_h_median": float(np.median(lengths_h)) if lengths_h else None,
        "window_h_min": float(np.min(lengths_h)) if lengths_h else None,
        "window_h_max": float(np.max(lengths_h)) if lengths_h else None,
    }
