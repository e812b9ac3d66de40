"""Instances from real data: CAISO curtailment, Philly GPU jobs, Skyplane WAN throughput.

:func:`build_instance` turns :class:`BuildParams` into an instance folder (the five files of
README.md's "Instance format" plus a README.md); :func:`load_presets`, :func:`build_preset` and
:func:`build_all` do the same for the presets of ``instances/presets.toml``. Every
transformation is documented in ``instances/README.md``; in short:

- **renewable.csv** — each site is solar- or wind-shaped; site ``i``-th of its fuel takes that
  fuel's hourly curtailment (all rows of an hour summed, MWh = mean MW) on the ``i``-th nearest
  eligible CAISO day around the instance day (D, D+1, D−1, D+2, …), interpolated linearly from
  hour centres to slot centres and scaled so its peak is ``peak_cover × gpus × 0.75 kW``;
- **jobs.csv** — single-GPU Philly jobs of a seeded Philly day, their time of day mapped onto the
  instance day, checkpoints drawn by class mix from ``models.csv`` (``mixed_adam_gb``);
- **links.csv** — site ``k`` sits in the ``k``-th cloud region of :data:`REGIONS`; a link's
  Gbps is the median Skyplane ``throughput_received`` measured from its source to its destination
  region;
- **sites.csv** ``wan_gbps`` — the site's WAN capacity, which its transfers in and out share: the
  highest of those medians measured from or to its region (any other region of the data), i.e.
  the best one VM there was seen to send or receive;
- **carbon.csv** — the carbon intensity of each site's grid: the Electricity Maps zone nearest its
  cloud region (:data:`REGION_ZONE`), hourly direct gCO₂/kWh of 2023 at the same physical
  instant shifted by whole days to the same date in 2023;
- with ``slack`` S > 0 a job's deadline is release + S × work (rounded up to the slot grid, at
  most the horizon's end); with ``origin_sites`` N > 0 jobs originate at the first N sites only
  (days with queues there).

The same parameters give byte-identical files (fixed number formats, seeded generators, no
"now"). User mistakes raise :class:`~milp.errors.InputError` (file = the preset file or
``build-instance``, field = the parameter).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from milp import feasibility as fz
from milp.errors import InputError
from milp.files import staged_dir
from milp.limits import MAX_JOB_SLOTS, MAX_JOBS, MAX_SITES, MAX_SLOTS, POLICY, max_jobs

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "instances" / "sources"     #: default data dir (copies of the source data)
PRESETS = ROOT / "instances" / "presets.toml"

#: ``file`` of the errors raised for parameters given directly (not from a preset file).
CLI_FILE = "build-instance"
TIMEZONE = "America/Los_Angeles"
COMPUTE_KW = fz.COMPUTE_KW
CLASSES = ("A", "B", "C")
FUELS = ("SOLR", "WIND")
FUEL_NAME = {"SOLR": "solar", "WIND": "wind"}

CAISO_CSV = Path("caiso_curtailment") / "curtail_report.csv"
PHILLY_CSV = Path("philly_jobs") / "philly.csv"
SKYPLANE_CSV = Path("skyplane_wan") / "throughput.csv"
MODELS_CSV = Path("checkpoints") / "models.csv"
CARBON_DIR = Path("electricitymaps_hourly")
CARBON_COLUMN = "Carbon Intensity gCO₂eq/kWh (direct)"
#: Data year of the carbon intensity: an instance's days map to the same dates in it.
CARBON_YEAR = 2023

#: Cloud region of site k = REGIONS[k]: US west first (California, then the Pacific
#: Northwest, Arizona, Nevada; providers alternating), then the other US regions (centre,
#: then east), then all the others in alphabetical order. All 63 regions of throughput.csv.
REGIONS: tuple[str, ...] = (
    # US west
    "aws:us-west-1", "azure:westus", "gcp:us-west1-a", "aws:us-west-2", "azure:westus2",
    "azure:westus3", "gcp:us-west4-a",
    # other US
    "gcp:us-central1-a", "azure:northcentralus", "aws:us-east-2", "gcp:us-east4-a",
    "aws:us-east-1", "azure:eastus", "azure:eastus2", "gcp:us-east1-b",
    # the rest, alphabetical
    "aws:af-south-1", "aws:ap-east-1", "aws:ap-northeast-1", "aws:ap-northeast-2",
    "aws:ap-northeast-3", "aws:ap-south-1", "aws:ap-southeast-1", "aws:ap-southeast-2",
    "aws:ca-central-1", "aws:eu-central-1", "aws:eu-north-1", "aws:eu-south-1", "aws:eu-west-1",
    "aws:eu-west-2", "aws:eu-west-3", "aws:me-south-1", "aws:sa-east-1",
    "azure:australiaeast", "azure:canadacentral", "azure:francecentral",
    "azure:germanywestcentral", "azure:japaneast", "azure:koreacentral", "azure:northeurope",
    "azure:uksouth", "azure:westeurope",
    "gcp:asia-east1-a", "gcp:asia-east2-a", "gcp:asia-northeast1-a", "gcp:asia-northeast2-a",
    "gcp:asia-northeast3-a", "gcp:asia-south1-a", "gcp:asia-south2-a", "gcp:asia-southeast1-a",
    "gcp:asia-southeast2-a", "gcp:australia-southeast1-a", "gcp:australia-southeast2-a",
    "gcp:europe-central2-a", "gcp:europe-north1-a", "gcp:europe-west1-b", "gcp:europe-west2-a",
    "gcp:europe-west3-a", "gcp:europe-west4-a", "gcp:europe-west6-a",
    "gcp:northamerica-northeast1-a", "gcp:northamerica-northeast2-a",
    "gcp:southamerica-east1-a", "gcp:southamerica-west1-a",
)


#: Electricity Maps zone (file stem in ``electricitymaps_hourly/``) of each cloud region: the
#: nearest of the zones the data has (the US west to CAISO, the rest of the US to PJM, Canada to
#: Ontario, continental Europe to Germany, the British Isles to Great Britain, and so on).
REGION_ZONE: dict[str, str] = {
    **{r: "US-CAL-CISO" for r in ("aws:us-west-1", "azure:westus", "gcp:us-west1-a",
                                  "aws:us-west-2", "azure:westus2", "azure:westus3",
                                  "gcp:us-west4-a")},
    **{r: "US-MIDA-PJM" for r in ("gcp:us-central1-a", "azure:northcentralus", "aws:us-east-2",
                                  "gcp:us-east4-a", "aws:us-east-1", "azure:eastus",
                                  "azure:eastus2", "gcp:us-east1-b")},
    **{r: "CA-ON" for r in ("aws:ca-central-1", "azure:canadacentral",
                            "gcp:northamerica-northeast1-a", "gcp:northamerica-northeast2-a")},
    **{r: "GB" for r in ("aws:eu-west-1", "aws:eu-west-2", "azure:northeurope", "azure:uksouth",
                         "gcp:europe-west2-a")},
    **{r: "DE-LU" for r in ("aws:eu-central-1", "aws:eu-north-1", "aws:eu-south-1",
                            "aws:eu-west-3", "azure:francecentral", "azure:germanywestcentral",
                            "azure:westeurope", "gcp:europe-central2-a", "gcp:europe-north1-a",
                            "gcp:europe-west1-b", "gcp:europe-west3-a", "gcp:europe-west4-a",
                            "gcp:europe-west6-a")},
    **{r: "JP-TK" for r in ("aws:ap-northeast-1", "aws:ap-northeast-3", "azure:japaneast",
                            "gcp:asia-northeast1-a", "gcp:asia-northeast2-a")},
    **{r: "KR" for r in ("aws:ap-northeast-2", "azure:koreacentral", "gcp:asia-northeast3-a",
                         "aws:ap-east-1", "gcp:asia-east1-a", "gcp:asia-east2-a")},
    **{r: "SG" for r in ("aws:ap-southeast-1", "gcp:asia-southeast1-a",
                         "gcp:asia-southeast2-a")},
    **{r: "IN-WE" for r in ("aws:ap-south-1", "gcp:asia-south1-a", "gcp:asia-south2-a",
                            "aws:me-south-1")},
    **{r: "AU-NSW" for r in ("aws:ap-southeast-2", "azure:australiaeast",
                             "gcp:australia-southeast1-a")},
    "gcp:australia-southeast2-a": "AU-VIC",
    "aws:af-south-1": "ZA",
    **{r: "BR-SP" for r in ("aws:sa-east-1", "gcp:southamerica-east1-a")},
    "gcp:southamerica-west1-a": "CL-SIC",
}

#: Independent random streams: ``numpy.random.default_rng([seed, stream])``.
STREAM_PHILLY_DAY, STREAM_SAMPLE, STREAM_ORIGIN, STREAM_CLASS, STREAM_MODEL = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class BuildParams:
    """What to build; see ``instances/README.md`` for what each parameter does."""

    name: str
    day: str                 # first local day, 'YYYY-MM-DD' (a CAISO day, Pacific time)
    days: int = 1            # consecutive days in the instance
    sites: int = 5
    gpus_per_site: int = 8
    jobs: int = 100
    class_mix: tuple[float, float, float] = (0.5, 0.35, 0.15)   # shares of classes A, B, C
    seed: int = 1
    slot_minutes: int = 15
    peak_cover: float = 1.0  # site renewable peak = peak_cover * gpus * compute_kw (kW)
    solar_share: float = 0.6  # share of sites that are solar-shaped (the others wind-shaped)
    min_job_s: float = 600.0  # Philly jobs shorter than this are not sampled
    max_work_h: float = 12.0  # cap on a job's remaining work (h), also capped to the horizon
    fit_share: float = 0.5   # work ≤ fit_share × time from release to the horizon's end (h)
    slack: float = 0.0       # > 0: deadline = release + slack × work (0: the horizon's end)
    origin_sites: int = 0    # > 0: jobs originate at the first origin_sites sites only
    #: > 0: sample jobs (at most ``jobs``) until their work reaches origin_load × the GPU-hours
    #: of the origin sites over the horizon (a day with queues at the origins); 0: exactly jobs
    origin_load: float = 0.0
    #: jobs submitted at this local hour of the day or later are not sampled (24: any hour); a
    #: day with queues needs time after its last release to finish them
    last_release_h: float = 24.0


PARAM_NAMES = tuple(f.name for f in fields(BuildParams))
#: Instances that ``build-instance --days FROM..TO`` builds at most in one call (ten years).
MAX_RANGE_DAYS = 3660


# ============================================================================ parameters ===

def _tz():
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(TIMEZONE)
    except ZoneInfoNotFoundError:
        raise InputError(CLI_FILE, f"time zone {TIMEZONE} is unknown on this machine "
                         "(install the 'tzdata' package)", field="day") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def instance_days(p: BuildParams) -> list[date]:
    """The local days the instance covers (after :func:`check_params`)."""
    first = date.fromisoformat(p.day)
    return [first + timedelta(days=i) for i in range(p.days)]


def is_dst_change(d: date) -> bool:
    """True when ``d`` has 23 or 25 hours in America/Los_Angeles."""
    tz = _tz()
    a = datetime(d.year, d.month, d.day, tzinfo=tz)
    nxt = d + timedelta(days=1)
    b = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return a.utcoffset() != b.utcoffset()


def check_params(p: BuildParams, file: str = CLI_FILE) -> BuildParams:
    """Validate what needs no data; return the parameters normalised (class_mix a float tuple).

    Raises :class:`InputError` naming ``file`` and the parameter.
    """
    def bad(field: str, msg: str) -> InputError:
        return InputError(file, msg, field=field)

    if not isinstance(p.name, str) or not p.name.strip() or any(c in p.name for c in '"\\\n\r'):
        raise bad("name", f"must be a non-empty string without quotes or backslashes, "
                          f"got {p.name!r}")
    if not isinstance(p.day, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.day):
        raise bad("day", f"{p.day!r} is not a day YYYY-MM-DD")
    try:
        date.fromisoformat(p.day)
    except ValueError:
        raise bad("day", f"{p.day!r} is not a calendar day") from None
    for name, lo, hi in (("days", 1, 366), ("sites", 1, min(len(REGIONS), MAX_SITES)),
                         ("gpus_per_site", 1, 100_000), ("jobs", 1, MAX_JOBS),
                         ("seed", 0, 2**63 - 1), ("slot_minutes", 1, 1440)):
        v = getattr(p, name)
        if not _is_int(v) or not lo <= v <= hi:
            why = (f" (throughput.csv has {len(REGIONS)} cloud regions, one per site)"
                   if name == "sites" else f" ({POLICY})" if name == "jobs" else "")
            raise bad(name, f"must be a whole number from {lo} to {hi}, got {v!r}{why}")
    if 1440 % p.slot_minutes:
        raise bad("slot_minutes", f"must divide a day (1440 min), got {p.slot_minutes}")
    slots = p.days * 1440 // p.slot_minutes
    if slots > MAX_SLOTS:
        raise bad("days", f"{p.days} days of {p.slot_minutes}-minute slots are {slots} slots; "
                          f"an instance has at most {MAX_SLOTS} ({POLICY})")
    if p.jobs > max_jobs(slots):
        raise bad("jobs", f"{p.jobs} jobs over {slots} slots: at most {max_jobs(slots)} (jobs x "
                          f"slots at most {MAX_JOB_SLOTS}; {POLICY})")
    mix = p.class_mix
    if (isinstance(mix, (str, bytes)) or not hasattr(mix, "__len__") or len(mix) != 3
            or not all(_is_num(x) for x in mix)):
        raise bad("class_mix", f"must be three numbers (shares of classes A, B, C), got {mix!r}")
    if any(x < 0 for x in mix):
        raise bad("class_mix", f"shares must be >= 0, got {list(mix)}")
    if abs(sum(mix) - 1.0) > 1e-9:
        raise bad("class_mix", f"shares of classes A, B, C must add up to 1, got "
                               f"{list(mix)} (sum {sum(mix):g})")
    for name, lo, hi, lo_open in (("peak_cover", 0.0, 1e6, True), ("solar_share", 0.0, 1.0, False),
                                  ("min_job_s", 0.0, 1e9, False),
                                  ("max_work_h", 1e-4, 1e6, False),
                                  ("fit_share", 0.0, 1.0, True)):
        v = getattr(p, name)
        if not _is_num(v) or v < lo or v > hi or (lo_open and v == lo):
            raise bad(name, f"must be a number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}, "
                            f"got {v!r}")
    if not _is_num(p.slack) or p.slack < 0 or 0 < p.slack < 1 or p.slack > 1e4:
        raise bad("slack", f"must be 0 (deadline = the horizon's end) or a number from 1 to 1e4 "
                           f"(deadline = release + slack x work), got {p.slack!r}")
    if not _is_int(p.origin_sites) or not 0 <= p.origin_sites <= p.sites:
        raise bad("origin_sites", f"must be a whole number from 0 (every site) to sites="
                                  f"{p.sites}, got {p.origin_sites!r}")
    if not _is_num(p.origin_load) or not 0 <= p.origin_load <= 100:
        raise bad("origin_load", f"must be 0 (exactly `jobs` jobs) or a share > 0 and <= 100 of "
                                 f"the origin sites' GPU-hours, got {p.origin_load!r}")
    if not _is_num(p.last_release_h) or not 0 < p.last_release_h <= 24:
        raise bad("last_release_h", f"must be a number > 0 and <= 24 (an hour of the day), "
                                    f"got {p.last_release_h!r}")
    p = replace(p, class_mix=tuple(float(x) for x in mix), peak_cover=float(p.peak_cover),
                slack=float(p.slack), last_release_h=float(p.last_release_h), origin_sites=int(p.origin_sites),
                origin_load=float(p.origin_load),
                solar_share=float(p.solar_share), min_job_s=float(p.min_job_s),
                max_work_h=float(p.max_work_h), fit_share=float(p.fit_share), days=int(p.days), sites=int(p.sites),
                gpus_per_site=int(p.gpus_per_site), jobs=int(p.jobs), seed=int(p.seed),
                slot_minutes=int(p.slot_minutes))
    for i, d in enumerate(instance_days(p)):
        if is_dst_change(d):
            raise bad("day" if i == 0 else "days",
                      f"{d.isoformat()} is a daylight-saving change day in {TIMEZONE} "
                      "(23 or 25 hours); pick another day")
    return p


# ============================================================================ presets ======

def _display(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def load_presets(path: Path = PRESETS) -> dict[str, list[BuildParams]]:
    """Read a presets file: one table per preset, keys = :class:`BuildParams` fields.

    ``each_day = N`` expands a preset to N one-instance-per-day builds on consecutive days from
    ``day`` (named ``<preset>-<YYYY-MM-DD>``, built into ``<preset>/<YYYY-MM-DD>/``), the i-th
    with seed ``seed + i * seed_step`` (``seed_step`` default 1).
    """
    file = _display(path)
    path = Path(path)
    if not path.is_file():
        raise InputError(file, "preset file is missing")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(file, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(file, f"invalid TOML: {e}") from None
    known = [n for n in PARAM_NAMES if n != "name"] + ["each_day", "seed_step"]
    out: dict[str, list[BuildParams]] = {}
    for preset, table in raw.items():
        if not isinstance(table, dict):
            raise InputError(file, f"{preset!r} must be a table [{preset}]", field=preset)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", preset):
            raise InputError(file, f"preset name {preset!r} must be letters, digits, '.', '_' "
                                   "or '-'", field="name")
        for key in table:
            if key not in known:
                raise InputError(file, f"preset {preset!r}: unknown parameter (known: "
                                       f"{', '.join(known)})", field=key)
        if "day" not in table:
            raise InputError(file, f"preset {preset!r}: 'day' is required", field="day")
        each_day = table.get("each_day")
        seed_step = table.get("seed_step", 1)
        for key, v in (("each_day", each_day), ("seed_step", seed_step)):
            if v is not None and (not _is_int(v) or v < (1 if key == "each_day" else 0)
                                  or v > 366):
                raise InputError(file, f"preset {preset!r}: must be a whole number "
                                       f"{'from 1' if key == 'each_day' else 'from 0'} to 366, "
                                       f"got {v!r}", field=key)
        args = {k: v for k, v in table.items() if k not in ("each_day", "seed_step")}
        if isinstance(args.get("day"), date) and not isinstance(args["day"], datetime):
            args["day"] = args["day"].isoformat()     # an unquoted TOML date
        if isinstance(args.get("class_mix"), list):
            args["class_mix"] = tuple(args["class_mix"])
        base = _check_preset(BuildParams(name=preset, **args), preset, file)
        if each_day is None:
            out[preset] = [base]
            continue
        first = date.fromisoformat(base.day)
        days = [first + timedelta(days=i) for i in range(each_day)]
        out[preset] = [_check_preset(q, preset, file)
                       for q in one_per_day(base, days, seed_step)]
    return out


def one_per_day(base: BuildParams, days: list[date], seed_step: int = 1) -> list[BuildParams]:
    """One build per day of ``days`` (unchecked): named ``<base.name>-<YYYY-MM-DD>``, the
    i-th (from 0) with seed ``base.seed + i * seed_step`` (presets' ``each_day``,
    ``build-instance --days FROM..TO``)."""
    return [replace(base, name=f"{base.name}-{d.isoformat()}", day=d.isoformat(),
                    seed=base.seed + i * seed_step) for i, d in enumerate(days)]


def parse_day_range(text: str, every: int = 1, option: str = "--days") -> list[date]:
    """``FROM..TO`` (``YYYY-MM-DD..YYYY-MM-DD``, both included), every ``every``-th day from
    FROM. Raises :class:`InputError` naming ``option``."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text.strip())
    try:
        first, last = (date.fromisoformat(g) for g in m.groups()) if m else (None, None)
    except ValueError:
        first = last = None
    if first is None or last is None:
        raise InputError(option, f"{text!r} is neither a number of days nor a range of "
                                 "calendar days FROM..TO (YYYY-MM-DD..YYYY-MM-DD)")
    if last < first:
        raise InputError(option, f"{text!r}: the range ends before it starts")
    if not 1 <= every <= 366:
        raise InputError("--every", f"must be a whole number from 1 to 366, got {every}")
    days = [first + timedelta(days=k) for k in range(0, (last - first).days + 1, every)]
    if len(days) > MAX_RANGE_DAYS:
        raise InputError(option, f"{text!r} is {len(days)} days; at most {MAX_RANGE_DAYS} "
                                 "in one call")
    return days


def buildable(days: list[date], sources: Path = SOURCES
              ) -> tuple[list[date], list[tuple[date, str]]]:
    """The days of ``days`` a one-day instance can be built on, and the others with why: a
    daylight-saving change day (an instance is whole 24-hour days), a day outside the CAISO
    data or not in its report."""
    data = load_sources(sources)
    ok, left_out = [], []
    for d in days:
        why = ("a daylight-saving change day" if is_dst_change(d) else
               "outside the CAISO data" if not data.caiso_first <= d <= data.caiso_last else
               "not in the CAISO report" if d not in data.caiso_days else "")
        (left_out.append((d, why)) if why else ok.append(d))
    return ok, left_out


def build_days(base: BuildParams, days: list[date], out_dir: Path, sources: Path = SOURCES
               ) -> list[Path]:
    """One instance per day of ``days`` (:func:`one_per_day`) into ``out_dir/<YYYY-MM-DD>/``,
    all checked before the first is built."""
    builds = [check_params(q) for q in one_per_day(base, days)]
    return [_build(q, Path(out_dir) / q.day, Path(sources), CLI_FILE) for q in builds]


def _check_preset(p: BuildParams, preset: str, file: str) -> BuildParams:
    try:
        return check_params(p, file)
    except InputError as e:
        raise InputError(file, f"preset {preset!r}: {e.message}", field=e.field) from None


def preset_dir(preset: str, params: BuildParams, instances_dir: Path) -> Path:
    """Folder of one build of a preset: ``<preset>/`` or, for ``each_day`` presets,
    ``<preset>/<day>/``."""
    base = Path(instances_dir) / preset
    return base if params.name == preset else base / params.day


def build_preset(name: str, instances_dir: Path, sources: Path = SOURCES, *,
                 presets: Path = PRESETS) -> list[Path]:
    """Build every instance of one preset under ``instances_dir``; return their folders."""
    table = load_presets(presets)
    file = _display(presets)
    if name not in table:
        raise InputError(file, f"unknown preset {name!r} (known: {', '.join(table)})",
                         field="name")
    return [_build(p, preset_dir(name, p, instances_dir), Path(sources), file, preset=name)
            for p in table[name]]


def build_all(instances_dir: Path, sources: Path = SOURCES, *,
              presets: Path = PRESETS) -> list[Path]:
    """Build every preset of the presets file under ``instances_dir``."""
    out = []
    for name in load_presets(presets):
        out += build_preset(name, instances_dir, sources, presets=presets)
    return out


# ============================================================================ source data ==

@dataclass(frozen=True, eq=False)
class SourceData:
    """The four source tables, parsed once per data folder."""

    hourly: dict[str, dict[date, np.ndarray]]  #: fuel -> day -> 24 hourly MWh (hour-ending 1..24)
    caiso_days: frozenset                      #: days with at least one CAISO row
    caiso_first: date
    caiso_last: date
    philly: pd.DataFrame      #: single-GPU jobs: submit (text), ts, day, duration, row; sorted
    philly_first: date
    philly_last: date
    link_bps: dict[tuple[str, str], float]     #: (src, dst region) -> median bits/s
    models: pd.DataFrame      #: model, gb (mixed_adam_gb), class
    carbon: dict[str, np.ndarray]              #: zone -> 8760 hourly gCO₂/kWh of CARBON_YEAR


def _need(df: pd.DataFrame, file: str, cols: list[str]) -> None:
    for c in cols:
        if c not in df.columns:
            raise InputError(file, "column is missing", line=1, field=c)


def load_sources(sources: Path = SOURCES) -> SourceData:
    """Read and parse the source data folder (cached while its files are unchanged)."""
    sources = Path(sources).resolve()
    stamp = []
    for rel in (CAISO_CSV, PHILLY_CSV, SKYPLANE_CSV, MODELS_CSV,
                *(CARBON_DIR / f"{z}_{CARBON_YEAR}_hourly.csv" for z in sorted(set(
                    REGION_ZONE.values())))):
        f = sources / rel
        if not f.is_file():
            raise InputError(_display(f), "source data file is missing (copies of the data "
                             "live in instances/sources/)")
        st = f.stat()
        stamp.append((st.st_mtime_ns, st.st_size))
    return _load_sources(str(sources), tuple(stamp))


@lru_cache(maxsize=4)
def _load_sources(sources: str, _stamp: tuple) -> SourceData:
    root = Path(sources)

    # CAISO: sum every row of an hour (all types, reasons, fuels separately).
    file = _display(root / CAISO_CSV)
    cai = pd.read_csv(root / CAISO_CSV)
    _need(cai, file, ["month", "day", "year", "hour", "reason", "fuel_type", "curtailed_MWh"])
    cai["reason"] = cai["reason"].astype(str).str.strip().str.capitalize()   # LOCAL -> Local
    cai["fuel_type"] = cai["fuel_type"].astype(str).str.strip().str.upper()
    cai["date"] = [date(int(y), int(m), int(d))
                   for y, m, d in zip(cai["year"], cai["month"], cai["day"])]
    if not cai["hour"].between(1, 25).all():
        raise InputError(file, "hour outside 1..25", field="hour")
    sums = cai.groupby(["fuel_type", "date", "hour"])["curtailed_MWh"].sum()
    hourly: dict[str, dict[date, np.ndarray]] = {f: {} for f in FUELS}
    for (fuel, d, hour), mwh in sums.items():
        if fuel in hourly and hour <= 24:   # hour 25 exists only on fall-back days (refused)
            hourly[fuel].setdefault(d, np.zeros(24))[hour - 1] = float(mwh)

    # Philly: single-GPU jobs, sorted by submission then file order.
    file = _display(root / PHILLY_CSV)
    ph = pd.read_csv(root / PHILLY_CSV, dtype={"timestamp": str})
    _need(ph, file, ["timestamp", "duration", "num_gpus"])
    all_ts = pd.to_datetime(ph["timestamp"], format="%Y-%m-%d %H:%M:%S")
    ph = pd.DataFrame({"submit": ph["timestamp"], "ts": all_ts,
                       "duration": ph["duration"].astype(float),
                       "num_gpus": ph["num_gpus"], "row": np.arange(len(ph))})
    ph = ph[ph["num_gpus"] == 1].drop(columns="num_gpus")
    ph["day"] = [t.date() for t in ph["ts"]]
    ph = ph.sort_values(["ts", "row"], kind="stable").reset_index(drop=True)

    # Skyplane: median received throughput per directed region pair.
    file = _display(root / SKYPLANE_CSV)
    tp = pd.read_csv(root / SKYPLANE_CSV)
    _need(tp, file, ["src_region", "dst_region", "throughput_received"])
    med = tp.groupby(["src_region", "dst_region"])["throughput_received"].median()
    link_bps = {(a, b): float(v) for (a, b), v in med.items() if a != b}

    # Checkpoints: mixed-precision Adam state; the class column must match the study's rule.
    file = _display(root / MODELS_CSV)
    mo = pd.read_csv(root / MODELS_CSV)
    _need(mo, file, ["model", "mixed_adam_gb", "class"])
    models = pd.DataFrame({"model": mo["model"].astype(str),
                           "gb": mo["mixed_adam_gb"].astype(float),
                           "class": mo["class"].astype(str)})
    for i, (gb, cls) in enumerate(zip(models["gb"], models["class"])):
        if fz.workload_class(gb) != cls:
            raise InputError(file, f"class {cls!r} does not match mixed_adam_gb {gb:g}",
                             line=i + 2, field="class")
    # Electricity Maps: hourly direct carbon intensity of each zone, 2023 (UTC hours).
    carbon: dict[str, np.ndarray] = {}
    for zone in sorted(set(REGION_ZONE.values())):
        path = root / CARBON_DIR / f"{zone}_{CARBON_YEAR}_hourly.csv"
        file = _display(path)
        ci = pd.read_csv(path, encoding="utf-8")
        _need(ci, file, ["Datetime (UTC)", CARBON_COLUMN])
        values = ci[CARBON_COLUMN].to_numpy(dtype=float)
        first = pd.Timestamp(ci["Datetime (UTC)"].iloc[0])
        if len(values) != 8760 or first != pd.Timestamp(f"{CARBON_YEAR}-01-01 00:00:00") or \
                not np.isfinite(values).all() or (values < 0).any():
            raise InputError(file, f"expected 8760 finite hourly values from "
                             f"{CARBON_YEAR}-01-01 00:00 UTC", field=CARBON_COLUMN)
        carbon[zone] = values
    return SourceData(
        hourly=hourly, caiso_days=frozenset(cai["date"]), caiso_first=min(cai["date"]),
        caiso_last=max(cai["date"]), philly=ph, philly_first=min(ph["day"]),
        philly_last=max(ph["day"]), link_bps=link_bps, models=models, carbon=carbon)


# ============================================================================ building =====

def build_instance(params: BuildParams, out_dir: Path, sources: Path = SOURCES) -> Path:
    """Write the instance of ``params`` into ``out_dir`` (six files + README.md)."""
    return _build(params, Path(out_dir), Path(sources), CLI_FILE)


def site_fuels(n_sites: int, solar_share: float) -> list[str]:
    """Fuel of each site: solar_share·n rounded half up solar sites, spread evenly, solar first
    (site k is solar when ceil((k+1)·S/n) > ceil(k·S/n))."""
    n_solar = int(math.floor(solar_share * n_sites + 0.5))

    def ceil_div(a: int) -> int:
        return -(-a // n_sites)
    return ["SOLR" if ceil_div((k + 1) * n_solar) > ceil_div(k * n_solar) else "WIND"
            for k in range(n_sites)]


def site_names(fuels: list[str]) -> list[str]:
    width = max(2, len(str(len(fuels))))
    return [f"s{k + 1:0{width}d}-{FUEL_NAME[f]}" for k, f in enumerate(fuels)]


def eligible_day(data: SourceData, fuel: str, d: date) -> bool:
    """A CAISO day a site of ``fuel`` may copy: positive curtailment of that fuel, no DST change."""
    h = data.hourly[fuel].get(d)
    return h is not None and h.sum() > 0 and not is_dst_change(d)


def source_days(data: SourceData, fuel: str, around: date, count: int,
                file: str = CLI_FILE) -> list[date]:
    """The ``count`` eligible days of ``fuel`` nearest ``around``: D, D+1, D−1, D+2, D−2, …"""
    out: list[date] = []
    span = (data.caiso_last - data.caiso_first).days
    for step in range(2 * span + 2):
        off = (step + 1) // 2 * (1 if step % 2 else -1)
        d = around + timedelta(days=off)
        if data.caiso_first <= d <= data.caiso_last and eligible_day(data, fuel, d):
            out.append(d)
            if len(out) == count:
                return out
    raise InputError(file, f"only {len(out)} CAISO days with {fuel} curtailment, "
                           f"{count} needed", field="sites")


def _num(x: float, decimals: int = 4) -> str:
    """Fixed-point text without trailing zeros: 6.0 -> '6', 0.125 -> '0.125'."""
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _csv(rows: list[list[str]]) -> str:
    return "".join(",".join(r) + "\n" for r in rows)


def renewable_profiles(data: SourceData, p: BuildParams, fuels: list[str],
                       file: str = CLI_FILE) -> tuple[np.ndarray, list[list[date]]]:
    """[site, slot] kW (rounded to 4 decimals) and each site's CAISO day per instance day."""
    days = instance_days(p)
    n_slots = p.days * 1440 // p.slot_minutes
    picks: list[list[date]] = [[] for _ in fuels]
    for d in days:
        for fuel in FUELS:
            members = [k for k, f in enumerate(fuels) if f == fuel]
            if members:
                for k, sd in zip(members, source_days(data, fuel, d, len(members), file)):
                    picks[k].append(sd)
    hour_c = np.arange(24 * p.days) + 0.5                       # hour centres (h from start)
    slot_c = (np.arange(n_slots) + 0.5) * p.slot_minutes / 60.0  # slot centres (h from start)
    target = p.peak_cover * p.gpus_per_site * COMPUTE_KW
    kw = np.zeros((len(fuels), n_slots))
    for k, fuel in enumerate(fuels):
        mwh = np.concatenate([data.hourly[fuel][sd] for sd in picks[k]])
        prof = np.maximum(np.interp(slot_c, hour_c, mwh), 0.0)   # ends held by np.interp
        kw[k] = np.round(prof * (target / prof.max()), 4)
    return kw, picks


def _philly_pool(data: SourceData, p: BuildParams, file: str) -> tuple[pd.DataFrame, date, date]:
    ph = data.philly[data.philly["duration"] >= p.min_job_s]
    if p.last_release_h < 24:
        hour = ph["ts"].dt.hour + ph["ts"].dt.minute / 60 + ph["ts"].dt.second / 3600
        ph = ph[hour < p.last_release_h]
    # Candidate first days: every day with a job, except the trace's partial first and last day.
    candidates = sorted(d for d in set(ph["day"])
                        if data.philly_first < d < data.philly_last)
    if not candidates:
        raise InputError(file, f"no Philly single-GPU job lasts >= {p.min_job_s:g} s",
                         field="min_job_s")
    rng = np.random.default_rng([p.seed, STREAM_PHILLY_DAY])
    first = candidates[int(rng.integers(len(candidates)))]
    last = first + timedelta(days=p.days - 1)
    while True:
        pool = ph[(ph["day"] >= first) & (ph["day"] <= last)]
        if len(pool) >= p.jobs or last >= data.philly_last:
            break
        last += timedelta(days=1)
    if len(pool) < p.jobs:
        raise InputError(file, f"too few Philly jobs: {len(pool)} single-GPU jobs of >= "
                               f"{p.min_job_s:g} s submitted from {first} to the trace's end "
                               f"({data.philly_last}), {p.jobs} wanted (seed {p.seed} picked "
                               f"{first})", field="jobs")
    return pool.reset_index(drop=True), first, last


def _release_and_units(chosen: pd.DataFrame, first: date, p: BuildParams
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Release slot and work (in 1e-4 h units) of Philly jobs placed on the instance's days."""
    n_slots = p.days * 1440 // p.slot_minutes
    slot_s = p.slot_minutes * 60
    # Release: time of day on the instance day (Philly day offset modulo days), floored to a slot.
    offset_days = np.array([(d - first).days % p.days for d in chosen["day"]])
    sod = np.array([(t - pd.Timestamp(d)).total_seconds()
                    for t, d in zip(chosen["ts"], chosen["day"])])
    release = ((offset_days * 86400 + sod) // slot_s).astype(int)
    fit_h = p.fit_share * (n_slots - release) * slot_s / 3600.0
    dur_h = chosen["duration"].to_numpy(float) / 3600.0
    units = np.maximum(1, np.floor(np.minimum(np.minimum(dur_h, p.max_work_h), fit_h) * 1e4
                                   + 1e-6)).astype(int)
    return release, units


def _pick_jobs(pool: pd.DataFrame, first: date, p: BuildParams, n_sites: int,
               file: str) -> np.ndarray:
    """Rows of the pool to use: ``jobs`` at random, or with ``origin_load`` the shortest random
    prefix whose work reaches that share of the origin sites' GPU-hours."""
    rng = np.random.default_rng([p.seed, STREAM_SAMPLE])
    if p.origin_load <= 0:
        return np.sort(rng.choice(len(pool), size=p.jobs, replace=False))
    order = rng.permutation(len(pool))[:p.jobs]
    _, units = _release_and_units(pool.iloc[order], first, p)
    hours = p.days * 24.0
    target = p.origin_load * (p.origin_sites or n_sites) * p.gpus_per_site * hours
    reach = np.cumsum(units) / 1e4
    if reach[-1] < target:
        raise InputError(file, f"{len(order)} jobs carry {reach[-1]:.1f} GPU-h of work, below "
                               f"origin_load {p.origin_load:g} x {target / p.origin_load:g} "
                               f"GPU-h of the origin sites; raise jobs", field="origin_load")
    return np.sort(order[:int(np.searchsorted(reach, target)) + 1])


def make_jobs(data: SourceData, p: BuildParams, start: datetime, site_list: list[str],
              file: str = CLI_FILE) -> tuple[list[list[str]], dict[str, Any]]:
    """Rows of jobs.csv (header first) and facts for the README."""
    slot_s = p.slot_minutes * 60
    n_slots = p.days * 1440 // p.slot_minutes
    pool, first, last = _philly_pool(data, p, file)
    pick = _pick_jobs(pool, first, p, len(site_list), file)
    chosen = pool.iloc[pick].reset_index(drop=True)
    release, units_all = _release_and_units(chosen, first, p)
    order = np.lexsort((chosen["row"].to_numpy(), chosen["ts"].to_numpy(), release))
    chosen, release = chosen.iloc[order].reset_index(drop=True), release[order]
    units_all = units_all[order]
    n_jobs = len(chosen)

    n_origins = p.origin_sites or len(site_list)
    origin = np.random.default_rng([p.seed, STREAM_ORIGIN]).integers(n_origins, size=n_jobs)
    if p.origin_load > 0:   # balance: each job (by release) to the origin with least work so far
        work = np.zeros(n_origins)
        for j in range(n_jobs):
            origin[j] = int(np.argmin(work))
            work[origin[j]] += units_all[j]
    mix = np.asarray(p.class_mix) / sum(p.class_mix)
    cls = np.random.default_rng([p.seed, STREAM_CLASS]).choice(3, size=n_jobs, p=mix)
    by_class = {c: data.models[data.models["class"] == c].reset_index(drop=True)
                for c in CLASSES}
    for c, share in zip(CLASSES, mix):
        if share > 0 and by_class[c].empty:
            raise InputError(file, f"models.csv has no class-{c} model", field="class_mix")
    model_rng = np.random.default_rng([p.seed, STREAM_MODEL])
    width = max(4, len(str(n_jobs)))
    rows = [["job", "origin", "release", "deadline", "work_h", "checkpoint_gb", "model", "class",
             "philly_submit", "philly_duration_s"]]
    work_total = 0.0
    for j in range(n_jobs):
        c = CLASSES[int(cls[j])]
        m = by_class[c].iloc[int(model_rng.integers(len(by_class[c])))]
        dur = float(chosen["duration"][j])
        units = int(units_all[j])
        work_total += units / 1e4
        deadline = ""
        if p.slack > 0:
            due = int(release[j]) + math.ceil(p.slack * units / 1e4 * 3600 / slot_s - 1e-9)
            if due < n_slots:
                deadline = (start + timedelta(seconds=due * slot_s)).isoformat()
        rows.append([f"j{j + 1:0{width}d}", site_list[int(origin[j])],
                     (start + timedelta(seconds=int(release[j]) * slot_s)).isoformat(), deadline,
                     _num(units / 1e4), _num(float(m["gb"]), 2), str(m["model"]), c,
                     str(chosen["submit"][j]), _num(dur, 3)])
    facts = {"philly_first": first, "philly_last": last, "pool": len(pool),
             "work_h": work_total}
    return rows, facts


def carbon_rows(data: SourceData, regions: list[str], site_list: list[str], start: datetime,
                n_slots: int, slot_minutes: int) -> list[list[str]]:
    """Rows of carbon.csv: per slot, each site's zone's direct carbon intensity (g/kWh) at the
    same UTC instant shifted by whole days to the same date in :data:`CARBON_YEAR` (29 February
    to 28 February), the hour's value for every slot in it."""
    day = start.date()
    same = day.replace(year=CARBON_YEAR, day=min(day.day, 28 if day.month == 2 else day.day))
    shift = datetime(same.year, same.month, same.day) - datetime(day.year, day.month, day.day)
    first_hour = datetime(CARBON_YEAR, 1, 1, tzinfo=timezone.utc)
    rows = [["time", *site_list]]
    for t in range(n_slots):
        when = start + timedelta(minutes=t * slot_minutes)
        hour = int(((when + shift) - first_hour).total_seconds() // 3600) % 8760
        rows.append([when.isoformat(), *(_num(float(data.carbon[REGION_ZONE[r]][hour]), 2)
                                         for r in regions)])
    return rows


def region_wan_gbps(data: SourceData, region: str) -> float:
    """A site's WAN capacity (Gbps): the highest median throughput measured from or to its
    region, rounded to the Mb/s."""
    best = max((bps for (a, b), bps in data.link_bps.items() if region in (a, b)), default=0.0)
    return round(best / 1e9, 3)


def make_links(data: SourceData, regions: list[str], site_list: list[str]) -> list[list[str]]:
    """Rows of links.csv: every ordered site pair whose regions have measurements."""
    rows = [["src", "dst", "gbps"]]
    for a, ra in enumerate(regions):
        for b, rb in enumerate(regions):
            bps = data.link_bps.get((ra, rb)) if a != b else None
            if bps is not None and round(bps / 1e9, 3) > 0:
                rows.append([site_list[a], site_list[b], _num(bps / 1e9, 3)])
    return rows


def _build(p: BuildParams, out_dir: Path, sources: Path, file: str, *,
           preset: str | None = None) -> Path:
    from milp.instance import describe, load_instance

    p = check_params(p, file)
    data = load_sources(sources)
    days = instance_days(p)
    for i, d in enumerate(days):
        if not data.caiso_first <= d <= data.caiso_last:
            raise InputError(file, f"{d} is outside the CAISO data ({data.caiso_first} .. "
                                   f"{data.caiso_last})", field="day" if i == 0 else "days")
        if d not in data.caiso_days:
            raise InputError(file, f"{d} is not in the CAISO report (no rows that day)",
                             field="day" if i == 0 else "days")
    tz = _tz()
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=tz)
    start = start.astimezone(timezone(start.utcoffset()))   # fixed offset, e.g. -07:00
    n_slots = p.days * 1440 // p.slot_minutes
    fuels = site_fuels(p.sites, p.solar_share)
    names = site_names(fuels)
    regions = list(REGIONS[:p.sites])
    kw, picks = renewable_profiles(data, p, fuels, file)
    job_rows, facts = make_jobs(data, p, start, names, file)
    link_rows = make_links(data, regions, names)

    site_rows = [["site", "gpus", "wan_gbps", "fuel", "source_day", "region"]]
    for k, name in enumerate(names):
        wan = region_wan_gbps(data, regions[k])
        site_rows.append([name, str(p.gpus_per_site), _num(wan, 3) if wan > 0 else "", fuels[k],
                          ";".join(d.isoformat() for d in picks[k]), regions[k]])
    ren_rows = [["time", *names]]
    for t in range(n_slots):
        ren_rows.append([(start + timedelta(minutes=t * p.slot_minutes)).isoformat(),
                         *(_num(v) for v in kw[:, t])])

    files = {
        "instance.toml": _toml(p, start, n_slots, facts, picks, fuels),
        "sites.csv": _csv(site_rows),
        "renewable.csv": _csv(ren_rows),
        "links.csv": _csv(link_rows),
        "jobs.csv": _csv(job_rows),
        "carbon.csv": _csv(carbon_rows(data, regions, names, start, n_slots, p.slot_minutes)),
    }
    with staged_dir(out_dir) as stage:         # the six files, checked, or nothing
        for fname, text in files.items():
            (stage / fname).write_bytes(text.encode("utf-8"))
        inst = load_instance(stage)
        (stage / "README.md").write_bytes(
            _readme(p, inst, describe(inst), facts, picks, fuels, regions, names, preset
                    ).encode("utf-8"))
    return out_dir


def _params_text(p: BuildParams) -> str:
    mix = "/".join(_num(x, 4) for x in p.class_mix)
    return (f"day={p.day} days={p.days} sites={p.sites} gpus_per_site={p.gpus_per_site} "
            f"jobs={p.jobs} class_mix(A/B/C)={mix} seed={p.seed} slot_minutes={p.slot_minutes} "
            f"peak_cover={_num(p.peak_cover)} solar_share={_num(p.solar_share)} "
            f"min_job_s={_num(p.min_job_s)} max_work_h={_num(p.max_work_h)} "
            f"fit_share={_num(p.fit_share)}"
            + (f" slack={_num(p.slack)}" if p.slack else "")
            + (f" origin_sites={p.origin_sites}" if p.origin_sites else "")
            + (f" origin_load={_num(p.origin_load)}" if p.origin_load else "")
            + (f" last_release_h={_num(p.last_release_h)}" if p.last_release_h < 24 else ""))


def _day_range(a: date, b: date) -> str:
    return a.isoformat() if a == b else f"{a} .. {b}"


def _toml(p: BuildParams, start: datetime, n_slots: int, facts: dict, picks: list[list[date]],
          fuels: list[str]) -> str:
    all_days = sorted({d for ds in picks for d in ds})
    desc = (f"Built by milp build-instance from real data ({_params_text(p)}). Renewable power: "
            f"CAISO wind and solar curtailment (Source: California ISO, via "
            f"grgmiller/CAISO_curtailment) of {_day_range(all_days[0], all_days[-1])}, "
            f"{fuels.count('SOLR')} solar- and {fuels.count('WIND')} wind-shaped sites. Jobs: "
            f"Microsoft Philly trace (Jeon et al., ATC'19) single-GPU jobs submitted "
            f"{_day_range(facts['philly_first'], facts['philly_last'])}. Links: Skyplane "
            f"inter-region throughput (2022). Checkpoints: mixed-precision Adam state of public "
            f"models. See instances/README.md.")
    return (
        "# Built by `milp build-instance` from real data: see README.md beside this file.\n"
        f'name = "{p.name}"\n'
        f'description = "{desc}"\n'
        f'start = "{start.isoformat()}"\n'
        f"slot_minutes = {p.slot_minutes}\n"
        f"slots = {n_slots}\n"
        "\n[migration]          # the study's values\n"
        f"alpha = {fz.ALPHA!r}\n"
        f"load_time_s = {_num(fz.LOAD_TIME_S)}\n"
        f"downtime_s = {fz.DOWNTIME_S!r}\n"
        f"transfer_kw = {fz.TRANSFER_KW!r}\n"
        "\n[defaults]\n"
        f"compute_kw = {COMPUTE_KW!r}            # one running single-GPU job\n"
        f"window_threshold_kw = {COMPUTE_KW!r}   # a slot is in a renewable window from this "
        "power on\n")


def origin_load(inst) -> np.ndarray:
    """Per site: the work (GPU-h) of the jobs that originate there over the GPU-hours the site
    offers over the horizon (GPUs × horizon h); a share, 1.0 = 100 %."""
    work = np.bincount(inst.origin, weights=inst.work_h, minlength=inst.n_sites)
    return work / (np.asarray(inst.gpus, dtype=float) * inst.n_slots * inst.slot_h)


def _h(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _readme(p: BuildParams, inst, facts_d: dict, facts: dict, picks: list[list[date]],
            fuels: list[str], regions: list[str], names: list[str], preset: str | None) -> str:
    cap_h = p.sites * p.gpus_per_site * inst.n_slots * inst.slot_h
    c = facts_d["jobs_per_class"]
    w_mean, w_min, w_max = (facts_d["window_h_mean"], facts_d["window_h_min"],
                            facts_d["window_h_max"])
    lo, hi = fz.STUDY_WINDOWS_H
    if w_mean is None:
        cmp = "no renewable window at all"
    else:
        inside = sum(lo <= (e - s) * inst.slot_h <= hi
                     for n in range(inst.n_sites) for s, e in inst.windows(n))
        cmp = (f"{inside} of {facts_d['windows']} windows lie inside the study's "
               f"{lo:g}–{hi:g} h; the mean is "
               + ("inside" if lo <= w_mean <= hi else "outside") + " that range")
    target = p.peak_cover * p.gpus_per_site * COMPUTE_KW
    lines = [
        f"# {p.name} — built from real data",
        "",
        (f"Generated by `milp build-instance --all` (preset `{preset}` in "
         "`instances/presets.toml`); do not edit by hand." if preset else
         "Generated by `milp build-instance` (`milp.build.build_instance`)."),
        "Every transformation is described in `instances/README.md`.",
        "",
        f"- **Horizon**: {inst.n_slots} slots of {p.slot_minutes} min from "
        f"{inst.start.isoformat()} ({p.days} day{'s' if p.days > 1 else ''}, "
        f"{', '.join(d.isoformat() for d in instance_days(p))}).",
        f"- **Parameters**: {_params_text(p)}.",
        f"- **Sites**: {p.sites} × {p.gpus_per_site} GPUs ({fuels.count('SOLR')} solar-, "
        f"{fuels.count('WIND')} wind-shaped), renewable peak {_num(target)} kW each.",
        f"- **Jobs**: {facts_d['jobs']} (class A {c['A']}, B {c['B']}, C {c['C']}), "
        f"{facts_d['work_h']:.1f} GPU-h of work = {100 * facts_d['work_h'] / cap_h:.0f} % of the "
        f"{cap_h:g} GPU-h the sites offer over the horizon; single-GPU Philly jobs submitted "
        f"{_day_range(facts['philly_first'], facts['philly_last'])} "
        f"(sampled from {facts['pool']}).",
        f"- **Energy**: renewable {facts_d['renewable_energy_kwh']:.1f} kWh, job demand "
        f"{facts_d['demand_energy_kwh']:.1f} kWh.",
        f"- **Links**: {facts_d['links']} directed, Gbps min/median/max "
        f"{facts_d['link_gbps_min']:.3f}/{facts_d['link_gbps_median']:.3f}/"
        f"{facts_d['link_gbps_max']:.3f}." if facts_d["links"] else "- **Links**: none.",
        f"- **Renewable windows** (≥ {_num(inst.window_threshold_kw)} kW): "
        f"{facts_d['windows']} windows, hours mean/median/min/max {_h(w_mean)}/"
        f"{_h(facts_d['window_h_median'])}/{_h(w_min)}/{_h(w_max)}; {cmp}.",
        "",
        "Origin load: the work of the jobs that originate at a site, in % of the GPU-hours the "
        "site offers over the horizon (above 100 % a site cannot finish its own jobs in time).",
        "",
        "| site | fuel | CAISO day(s) | cloud region | carbon zone (mean gCO₂/kWh) | GPUs | "
        "WAN Gbps | origin load | windows (h) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, name in enumerate(names):
        wins = ", ".join(f"{(e - s) * inst.slot_h:g}" for s, e in inst.windows(k)) or "–"
        wan = inst.wan_gbps[k]
        co2 = float(np.mean(inst.carbon_g_per_kwh[k])) if inst.carbon_g_per_kwh is not None \
            else float("nan")
        load = origin_load(inst)[k]
        lines.append(f"| {name} | {FUEL_NAME[fuels[k]]} | "
                     f"{', '.join(d.isoformat() for d in picks[k])} | {regions[k]} | "
                     f"{REGION_ZONE[regions[k]]} ({co2:.0f}) | "
                     f"{p.gpus_per_site} | {_num(wan, 3) if np.isfinite(wan) else '–'} | "
                     f"{100 * load:.0f} % | {wins} |")
    lines += [
        "",
        "Sources (copies in `instances/sources/`): CAISO curtailment — Source: California ISO, "
        "extracted by grgmiller/CAISO_curtailment (MIT); Microsoft Philly trace "
        "(msr-fiddle/philly-traces, Jeon et al., ATC'19, CC BY 4.0) via petuum/adaptdl "
        "(Apache-2.0); Skyplane throughput (skyplane-project/skyplane, Apache-2.0); "
        "carbon intensity — Electricity Maps 2023 hourly data (ODbL, via green-dcc); "
        "checkpoint sizes of public models (`checkpoints/models.csv`).",
        "",
    ]
    return "\n".join(lines)
