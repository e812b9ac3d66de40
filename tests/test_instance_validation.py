"""The instance loader's validation and the CLI's error contract.

Every bad input must raise :class:`InputError` naming the file, the line (1 = the CSV header,
2 = the first data row; None for instance.toml and whole-file problems) and the field.
Most cases start from a writable copy of tiny-3site and change one file with a string edit.
tiny-3site line numbers: sites.csv solar 2, wind 3, city 4; links.csv solar->wind 2 ...
wind->city 6, city->wind 7; jobs.csv j01 2 ... j10 11; renewable.csv slot k on line k + 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from milp.errors import InputError
from milp.instance import load_instance
from tests.conftest import ROOT, TINY, write_instance

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]
T0 = "2024-06-01T00:00:00-07:00"  # tiny-3site's start


def at(hhmm: str, day: int = 1) -> str:
    """A tiny-3site time on 2024-06-0<day> at ``hh:mm`` (UTC-7)."""
    return f"2024-06-0{day}T{hhmm}:00-07:00"


# ---- edits ------------------------------------------------------------------------------

def sub(old: str, new: str):
    """Replace the first ``old`` (which must be present) by ``new``."""
    def edit(text: str) -> str:
        assert old in text, f"test setup: {old!r} not in file"
        return text.replace(old, new, 1)
    return edit


def header(col: str, new: str):
    """Rename column ``col`` of the header line to ``new``."""
    def edit(text: str) -> str:
        head, rest = text.split("\n", 1)
        cols = head.split(",")
        assert col in cols, f"test setup: no column {col!r}"
        cols[cols.index(col)] = new
        return ",".join(cols) + "\n" + rest
    return edit


def drop_line(n: int):
    """Remove file line ``n`` (1-based)."""
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        del lines[n - 1]
        return "".join(lines)
    return edit


def swap_lines(a: int, b: int):
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
        return "".join(lines)
    return edit


def append(row: str):
    return lambda text: text + row + "\n"


def replace_all(new: str):
    return lambda text: new


def non_utf8(old: bytes, new: bytes):
    """Byte-level edit (marker for apply_edit)."""
    return ("bytes", old, new)


DELETE = "delete"


def apply_edit(directory: Path, name: str, edit) -> None:
    path = directory / name
    if edit == DELETE:
        path.unlink()
    elif isinstance(edit, tuple) and edit[0] == "bytes":
        raw = path.read_bytes()
        assert edit[1] in raw, "test setup: bytes not in file"
        path.write_bytes(raw.replace(edit[1], edit[2], 1))
    else:
        path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")


def load_error(directory: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_instance(directory)
    return info.value


# ---- 1. the shipped instance ----------------------------------------------------------------

def test_execution_rules_and_site_wan(tiny_copy):
    """Defaults of [execution]; "none" lifts the restart cap; an empty wan_gbps is no limit."""
    inst = load_instance(tiny_copy)
    assert (inst.execution.max_restarts, inst.execution.min_run_minutes) == (2, 30.0)
    assert np.isinf(inst.wan_gbps).all()
    toml = tiny_copy / "instance.toml"
    toml.write_text(toml.read_text() + '\n[execution]\nmax_restarts = "none"\n'
                    'min_run_minutes = 0\n')
    (tiny_copy / "sites.csv").write_text("site,gpus,wan_gbps\nsolar,4,12.5\nwind,2,\ncity,4,1\n")
    inst = load_instance(tiny_copy)
    assert (inst.execution.max_restarts, inst.execution.min_run_s) == (None, 0.0)
    assert inst.wan_gbps[0] == 12.5 and np.isinf(inst.wan_gbps[1]) and inst.wan_gbps[2] == 1


def test_tiny_loads_with_hand_checked_facts():
    inst = load_instance(TINY)
    assert inst.name == "tiny-3site"
    assert inst.start.isoformat() == T0
    assert (inst.n_sites, inst.n_jobs, inst.n_slots) == (3, 10, 96)
    assert inst.slot_minutes == 15.0 and inst.slot_s == 900.0
    assert inst.sites == ("solar", "wind", "city")
    assert inst.gpus.tolist() == [4, 2, 4]
    assert inst.idle_kw.tolist() == [0.0, 0.0, 0.0]
    assert inst.renewable_kw.shape == (3, 96)
    # slot 0 (00:00) and slot 32 (08:00) of renewable.csv
    assert inst.renewable_kw[:, 0].tolist() == [0.0, 2.25, 0.4]
    assert inst.renewable_kw[:, 32].tolist() == [3.0, 0.0, 0.4]
    s = inst.site_index_map
    assert inst.link_gbps[s["solar"], s["wind"]] == 10.0
    assert inst.link_gbps[s["wind"], s["city"]] == 1.0
    assert inst.link_gbps[s["city"], s["city"]] == 0.0      # no link to itself
    assert int((inst.link_gbps > 0).sum()) == 6
    j = inst.job_index_map
    assert inst.jobs[0] == "j01" and inst.jobs[-1] == "j10"
    assert inst.origin[j["j04"]] == s["wind"]
    assert (inst.release_slot[j["j02"]], inst.deadline_slot[j["j02"]]) == (24, 96)  # 06:00, ""
    assert (inst.release_slot[j["j04"]], inst.deadline_slot[j["j04"]]) == (0, 48)   # 00-12:00
    assert (inst.release_slot[j["j08"]], inst.deadline_slot[j["j08"]]) == (48, 72)  # 12-18:00
    assert inst.deadline_s[j["j01"]] == 96 * 900.0
    assert inst.work_h.sum() == 38.0 and inst.checkpoint_gb[j["j03"]] == 150.0
    assert inst.compute_kw.shape == (10, 3) and np.all(inst.compute_kw == 0.75)
    assert inst.default_compute_kw == 0.75 and inst.window_threshold_kw == 0.75
    assert inst.migration.alpha == 0.10 and inst.migration.load_time_s == 10.0
    assert inst.migration.downtime_s == 0.4 and inst.migration.transfer_kw == 1.8
    classes = inst.job_class.tolist()
    assert {c: classes.count(c) for c in "ABC"} == {"A": 4, "B": 4, "C": 2}
    assert dict(inst.extra) == {}


@pytest.mark.parametrize("array", ["gpus", "idle_kw", "renewable_kw", "link_gbps", "origin",
                                   "release_slot", "deadline_slot", "work_h", "checkpoint_gb",
                                   "compute_kw"])
def test_arrays_are_read_only(array):
    a = getattr(load_instance(TINY), array)
    with pytest.raises(ValueError, match="read-only"):
        a[(0,) * a.ndim] = 1


def test_not_a_directory(tmp_path):
    missing = tmp_path / "nowhere"
    e = load_error(missing)
    assert (e.file, e.line, e.field) == (str(missing), None, None)
    assert "not a directory" in str(e)


# ---- 2. one bad file at a time --------------------------------------------------------------
# (id, file, edit, expected file, line, field, message fragment)

TOML, SITES, REN, LINKS, JOBS = "instance.toml", "sites.csv", "renewable.csv", "links.csv", \
    "jobs.csv"

CASES = [
    # -- missing files
    *[(f"missing-{f}", f, DELETE, f, None, None, "file is missing")
      for f in (TOML, SITES, REN, LINKS, JOBS)],
    # -- instance.toml
    ("toml-invalid", TOML, sub('name = "tiny-3site"', 'name = "tiny-3site'),
     TOML, None, None, "invalid TOML"),
    ("toml-not-utf8", TOML, non_utf8(b"hand-checkable", b"hand-\xffcheckable"),
     TOML, None, None, "not UTF-8"),
    ("toml-no-name", TOML, sub('name = "tiny-3site"\n', ""), TOML, None, "name",
     "required key is missing"),
    ("toml-no-start", TOML, sub(f'start = "{T0}"\n', ""), TOML, None, "start",
     "required key is missing"),
    ("toml-no-slots", TOML, sub("slots = 96\n", ""), TOML, None, "slots",
     "required key is missing"),
    ("toml-empty-name", TOML, sub('"tiny-3site"', '"  "'), TOML, None, "name", "non-empty"),
    ("toml-number-name", TOML, sub('"tiny-3site"', "3"), TOML, None, "name", "non-empty"),
    ("toml-unknown-top", TOML, sub("slots = 96\n", "slots = 96\ncolour = 'red'\n"),
     TOML, None, "colour", "unknown key"),
    ("toml-unknown-migration", TOML, sub("transfer_kw = 1.8", "transfer_kw = 1.8\nspeed = 3"),
     TOML, None, "migration.speed", "unknown key"),
    ("toml-unknown-defaults", TOML, sub("[defaults]", "[defaults]\nidle = 1"),
     TOML, None, "defaults.idle", "unknown key"),
    ("toml-migration-not-table", TOML,
     lambda t: "migration = 3\n" + sub("[migration]", "[x]")(t),
     TOML, None, "migration", "must be a table"),
    ("toml-start-no-offset", TOML, sub(T0, "2024-06-01T00:00:00"), TOML, None, "start",
     "no UTC offset"),
    ("toml-start-native-local", TOML, sub(f'"{T0}"', "2024-06-01T00:00:00"), TOML, None,
     "start", "no UTC offset"),
    ("toml-start-date-only", TOML, sub(f'"{T0}"', "2024-06-01"), TOML, None, "start",
     "must be an ISO 8601 time"),
    ("toml-start-not-iso", TOML, sub(T0, "yesterday"), TOML, None, "start",
     "is not an ISO 8601 time"),
    ("toml-alpha-negative", TOML, sub("alpha = 0.10", "alpha = -0.1"), TOML, None,
     "migration.alpha", "must be > 0"),
    ("toml-alpha-zero", TOML, sub("alpha = 0.10", "alpha = 0"), TOML, None,
     "migration.alpha", "must be > 0"),
    ("toml-alpha-above-1", TOML, sub("alpha = 0.10", "alpha = 1.5"), TOML, None,
     "migration.alpha", "must be <= 1"),
    ("toml-alpha-nan", TOML, sub("alpha = 0.10", "alpha = nan"), TOML, None,
     "migration.alpha", "must be a finite number"),
    ("toml-load-inf", TOML, sub("load_time_s = 10", "load_time_s = inf"), TOML, None,
     "migration.load_time_s", "must be a finite number"),
    ("toml-downtime-negative", TOML, sub("downtime_s = 0.4", "downtime_s = -1"), TOML, None,
     "migration.downtime_s", "must be >= 0"),
    ("toml-transfer-huge", TOML, sub("transfer_kw = 1.8", "transfer_kw = 1e300"), TOML, None,
     "migration.transfer_kw", "must be <= 1e+12"),
    ("toml-string-number", TOML, sub("slot_minutes = 15", 'slot_minutes = "15"'), TOML, None,
     "slot_minutes", "must be a finite number, got '15'"),
    ("toml-string-load", TOML, sub("load_time_s = 10", 'load_time_s = "10"'), TOML, None,
     "migration.load_time_s", "must be a finite number"),
    ("toml-bool-number", TOML, sub("downtime_s = 0.4", "downtime_s = true"), TOML, None,
     "migration.downtime_s", "must be a finite number"),
    ("toml-slot-minutes-zero", TOML, sub("slot_minutes = 15", "slot_minutes = 0"), TOML, None,
     "slot_minutes", "must be > 0"),
    ("toml-compute-kw-zero", TOML, sub("compute_kw = 0.75", "compute_kw = 0"), TOML, None,
     "defaults.compute_kw", "must be > 0"),
    ("toml-slots-bool", TOML, sub("slots = 96", "slots = true"), TOML, None, "slots",
     "whole number of slots"),
    ("toml-slots-float", TOML, sub("slots = 96", "slots = 96.0"), TOML, None, "slots",
     "whole number of slots"),
    ("toml-slots-string", TOML, sub("slots = 96", 'slots = "96"'), TOML, None, "slots",
     "whole number of slots"),
    ("toml-slots-zero", TOML, sub("slots = 96", "slots = 0"), TOML, None, "slots",
     "whole number of slots"),
    ("toml-slots-too-many", TOML, sub("slots = 96", "slots = 100001"), TOML, None, "slots",
     "whole number of slots"),
    ("toml-max-restarts-negative", TOML, sub("slots = 96\n", "slots = 96\n[execution]\n"
                                              "max_restarts = -1\n"), TOML, None,
     "execution.max_restarts", "whole number from 0 to 1000000"),
    ("toml-max-restarts-float", TOML, sub("slots = 96\n", "slots = 96\n[execution]\n"
                                           "max_restarts = 1.5\n"), TOML, None,
     "execution.max_restarts", "whole number"),
    ("toml-max-restarts-word", TOML, sub("slots = 96\n", "slots = 96\n[execution]\n"
                                          "max_restarts = \"many\"\n"), TOML, None,
     "execution.max_restarts", "or \"none\" for no cap"),
    ("toml-min-run-negative", TOML, sub("slots = 96\n", "slots = 96\n[execution]\n"
                                         "min_run_minutes = -5\n"), TOML, None,
     "execution.min_run_minutes", "must be >= 0"),
    ("toml-min-run-past-horizon", TOML, sub("slots = 96\n", "slots = 96\n[execution]\n"
                                             "min_run_minutes = 1500\n"), TOML, None,
     "execution.min_run_minutes", "must be <= 1440"),
    ("toml-unknown-execution", TOML, sub("slots = 96\n", "slots = 96\n[execution]\n"
                                          "max_pauses = 1\n"), TOML, None,
     "execution.max_pauses", "unknown key"),
    # -- sites.csv
    ("sites-no-site-col", SITES, header("site", "name"), SITES, 1, "site", "column is missing"),
    ("sites-no-gpus-col", SITES, header("gpus", "gpu"), SITES, 1, "gpus", "column is missing"),
    ("sites-dup-column", SITES, header("idle_kw", "gpus"), SITES, 1, "gpus",
     "duplicate column"),
    ("sites-unnamed-column", SITES, header("idle_kw", " "), SITES, 1, None,
     "column 3 has no name"),
    ("sites-dup-id", SITES, sub("city,4,0", "wind,4,0"), SITES, 4, "site",
     "duplicate id 'wind'"),
    ("sites-time-reserved", SITES, sub("wind,2,0", "time,2,0"), SITES, 3, "site", "reserved"),
    ("sites-gpus-zero", SITES, sub("wind,2,", "wind,0,"), SITES, 3, "gpus", "'0' must be > 0"),
    ("sites-gpus-fraction", SITES, sub("wind,2,", "wind,2.5,"), SITES, 3, "gpus",
     "'2.5' must be a whole number"),
    ("sites-gpus-negative", SITES, sub("wind,2,", "wind,-2,"), SITES, 3, "gpus",
     "'-2' must be > 0"),
    ("sites-gpus-nan", SITES, sub("wind,2,", "wind,NaN,"), SITES, 3, "gpus",
     "'NaN' is not a finite number"),
    ("sites-gpus-inf", SITES, sub("wind,2,", "wind,inf,"), SITES, 3, "gpus",
     "'inf' is not a finite number"),
    ("sites-gpus-word", SITES, sub("wind,2,", "wind,two,"), SITES, 3, "gpus",
     "'two' is not a finite number"),
    ("sites-gpus-huge", SITES, sub("wind,2,", "wind,1e300,"), SITES, 3, "gpus",
     "'1e300' is implausibly large"),
    ("sites-gpus-empty", SITES, sub("wind,2,", "wind, ,"), SITES, 3, "gpus",
     "value is missing"),
    ("sites-idle-negative", SITES, sub("city,4,0", "city,4,-0.5"), SITES, 4, "idle_kw",
     "'-0.5' must be >= 0"),
    ("sites-wan-zero", SITES,
     lambda t: t.replace("idle_kw\n", "idle_kw,wan_gbps\n").replace(",0\n", ",0,0\n"),
     SITES, 2, "wan_gbps", "'0' must be > 0"),
    ("sites-wan-word", SITES,
     lambda t: t.replace("idle_kw\n", "idle_kw,wan_gbps\n").replace(",0\n", ",0,fast\n"),
     SITES, 2, "wan_gbps", "'fast' is not a finite number"),
    ("sites-compute-kw-zero", SITES,
     lambda t: t.replace("idle_kw\n", "idle_kw,compute_kw\n").replace(",0\n", ",0,1\n")
     .replace("wind,2,0,1", "wind,2,0,0"), SITES, 3, "compute_kw", "'0' must be > 0"),
    ("sites-empty-file", SITES, replace_all(""), SITES, 1, None, "file is empty"),
    ("sites-blank-file", SITES, replace_all(" \n\n"), SITES, 1, None, "file is empty"),
    ("sites-header-only", SITES, replace_all("site,gpus,idle_kw\n"), SITES, 2, None,
     "no data rows"),
    ("sites-truncated-row", SITES, sub("wind,2,0", "wind"), SITES, 3, "gpus",
     "value is missing"),
    ("sites-too-many-fields", SITES, sub("wind,2,0", "wind,2,0,9"), SITES, 3, None,
     "4 fields where the header has 3"),
    ("sites-not-utf8", SITES, non_utf8(b"city", b"c\xefty"), SITES, 4, None,
     "not UTF-8 text (bad byte 0xef)"),
    # -- renewable.csv
    ("ren-no-time-col", REN, header("time", "when"), REN, 1, "time", "column is missing"),
    ("ren-no-site-col", REN, header("city", "town"), REN, 1, "city", "column is missing"),
    ("ren-negative", REN, sub(f"{at('08:00')},3,", f"{at('08:00')},-3,"), REN, 34, "solar",
     "'-3' must be >= 0"),
    ("ren-nan", REN, sub(f"{at('08:00')},3,0,0.4", f"{at('08:00')},3,0,nan"), REN, 34,
     "city", "'nan' is not a finite number"),
    ("ren-inf", REN, sub(f"{at('08:00')},3,0,", f"{at('08:00')},3,inf,"), REN, 34, "wind",
     "'inf' is not a finite number"),
    ("ren-word", REN, sub(f"{at('08:00')},3,", f"{at('08:00')},sun,"), REN, 34, "solar",
     "'sun' is not a finite number"),
    ("ren-huge", REN, sub(f"{at('08:00')},3,", f"{at('08:00')},1e300,"), REN, 34, "solar",
     "implausibly large"),
    ("ren-empty-cell", REN, sub(f"{at('08:00')},3,", f"{at('08:00')},,"), REN, 34, "solar",
     "value is missing"),
    ("ren-missing-row", REN, drop_line(12), REN, 12, "time",
     "expected the time of slot 10"),
    ("ren-wrong-order", REN, swap_lines(12, 13), REN, 12, "time",
     "expected the time of slot 10"),
    ("ren-too-few-rows", REN, drop_line(97), REN, 96, None,
     "95 rows where instance.toml has 96 slots"),
    ("ren-too-many-rows", REN, append(f"{at('00:00', 2)},0,0,0"), REN, 98, None,
     "97 rows where instance.toml has 96 slots"),
    ("ren-row-past-horizon", REN, append(f"{at('00:15', 2)},0,0,0"), REN, 98, "time",
     "outside the horizon"),
    ("ren-time-no-offset", REN, sub(f"{T0},", "2024-06-01T00:00:00,"), REN, 2, "time",
     "has no UTC offset"),
    ("ren-time-off-grid", REN, sub(at("00:15"), at("00:07")), REN, 3, "time",
     "not on the 15-minute slot grid"),
    ("ren-time-not-iso", REN, sub(at("00:15"), "quarter past"), REN, 3, "time",
     "is not an ISO 8601 time"),
    # -- links.csv
    *[(f"links-no-{c}-col", LINKS, header(c, c + "x"), LINKS, 1, c, "column is missing")
      for c in ("src", "dst", "gbps")],
    ("links-unknown-src", LINKS, sub("wind,city,1", "mars,city,1"), LINKS, 6, "src",
     "unknown site 'mars'"),
    ("links-unknown-dst", LINKS, sub("wind,city,1", "wind,moon,1"), LINKS, 6, "dst",
     "unknown site 'moon'"),
    ("links-duplicate", LINKS, append("solar,wind,5"), LINKS, 8, "dst",
     "duplicate link solar->wind"),
    ("links-to-itself", LINKS, append("city,city,5"), LINKS, 8, "dst",
     "link from 'city' to itself"),
    ("links-gbps-zero", LINKS, sub("wind,city,1", "wind,city,0"), LINKS, 6, "gbps",
     "'0' must be > 0"),
    ("links-gbps-negative", LINKS, sub("wind,city,1", "wind,city,-1"), LINKS, 6, "gbps",
     "'-1' must be > 0"),
    ("links-gbps-nan", LINKS, sub("wind,city,1", "wind,city,nan"), LINKS, 6, "gbps",
     "is not a finite number"),
    ("links-gbps-inf", LINKS, sub("wind,city,1", "wind,city,inf"), LINKS, 6, "gbps",
     "'inf' is not a finite number"),
    ("links-gbps-word", LINKS, sub("wind,city,1", "wind,city,fast"), LINKS, 6, "gbps",
     "'fast' is not a finite number"),
    ("links-gbps-huge", LINKS, sub("wind,city,1", "wind,city,1e300"), LINKS, 6, "gbps",
     "'1e300' is implausibly large"),
    ("links-truncated", LINKS, sub("wind,city,1", "wind,city"), LINKS, 6, "gbps",
     "value is missing"),
    ("links-too-many-fields", LINKS, sub("wind,city,1", "wind,city,1,x"), LINKS, 6, None,
     "4 fields where the header has 3"),
    ("links-empty-file", LINKS, replace_all(""), LINKS, 1, None, "file is empty"),
    # -- jobs.csv
    *[(f"jobs-no-{c}-col", JOBS, header(c, c + "x"), JOBS, 1, c, "column is missing")
      for c in ("job", "origin", "release", "deadline", "work_h", "checkpoint_gb")],
    ("jobs-unknown-origin", JOBS, sub("j05,wind,", "j05,moon,"), JOBS, 6, "origin",
     "unknown site 'moon'"),
    ("jobs-dup-id", JOBS, sub("j10,", "j03,"), JOBS, 11, "job", "duplicate id 'j03'"),
    ("jobs-empty-id", JOBS, sub("j10,", ","), JOBS, 11, "job", "value is missing"),
    ("jobs-work-zero", JOBS, sub("j05,wind,2024-06-01T01:00:00-07:00,,2,",
                                 "j05,wind,2024-06-01T01:00:00-07:00,,0,"),
     JOBS, 6, "work_h", "'0' must be > 0"),
    ("jobs-work-negative", JOBS, sub(",,2,25", ",,-2,25"), JOBS, 6, "work_h",
     "'-2' must be > 0"),
    ("jobs-work-nan", JOBS, sub(",,2,25", ",,NaN,25"), JOBS, 6, "work_h",
     "'NaN' is not a finite number"),
    ("jobs-work-inf", JOBS, sub(",,2,25", ",,inf,25"), JOBS, 6, "work_h",
     "'inf' is not a finite number"),
    ("jobs-work-word", JOBS, sub(",,2,25", ",,2h,25"), JOBS, 6, "work_h",
     "'2h' is not a finite number"),
    ("jobs-work-huge", JOBS, sub(",,2,25", ",,1e300,25"), JOBS, 6, "work_h",
     "'1e300' is implausibly large"),
    ("jobs-ckpt-negative", JOBS, sub(",,2,25", ",,2,-25"), JOBS, 6, "checkpoint_gb",
     "'-25' must be >= 0"),
    ("jobs-ckpt-nan", JOBS, sub(",,2,25", ",,2,nan"), JOBS, 6, "checkpoint_gb",
     "is not a finite number"),
    ("jobs-ckpt-inf", JOBS, sub(",,2,25", ",,2,Infinity"), JOBS, 6, "checkpoint_gb",
     "'Infinity' is not a finite number"),
    ("jobs-ckpt-word", JOBS, sub(",,2,25", ",,2,25GB"), JOBS, 6, "checkpoint_gb",
     "'25GB' is not a finite number"),
    ("jobs-ckpt-huge", JOBS, sub(",,2,25", ",,2,1e300"), JOBS, 6, "checkpoint_gb",
     "'1e300' is implausibly large"),
    ("jobs-ckpt-empty", JOBS, sub(",,2,25", ",,2,"), JOBS, 6, "checkpoint_gb",
     "value is missing"),
    ("jobs-compute-kw-zero", JOBS,
     lambda t: t.replace("checkpoint_gb\n", "checkpoint_gb,compute_kw\n")
     .replace(",,2,25\n", ",,2,25,0\n"), JOBS, 6, "compute_kw", "'0' must be > 0"),
    ("jobs-release-no-offset", JOBS, sub(at("06:00"), "2024-06-01T06:00:00"), JOBS, 3,
     "release", "has no UTC offset"),
    ("jobs-release-off-grid", JOBS, sub(at("06:00"), at("06:07")), JOBS, 3, "release",
     "not on the 15-minute slot grid"),
    ("jobs-release-not-iso", JOBS, sub(at("06:00"), "6am"), JOBS, 3, "release",
     "is not an ISO 8601 time"),
    ("jobs-release-empty", JOBS, sub(f"j02,city,{at('06:00')}", "j02,city,"), JOBS, 3,
     "release", "value is missing"),
    ("jobs-release-after-horizon", JOBS, sub(at("06:00"), at("06:00", 2)), JOBS, 3,
     "release", "outside the horizon"),
    ("jobs-release-before-start", JOBS, sub(f"j02,city,{at('06:00')}",
                                            "j02,city,2024-05-31T23:00:00-07:00"),
     JOBS, 3, "release", "outside the horizon"),
    ("jobs-release-at-end", JOBS, sub(at("06:00"), at("00:00", 2)), JOBS, 3, "release",
     "release is at the end of the horizon"),
    ("jobs-deadline-before-release", JOBS, sub(at("18:00"), at("11:00")), JOBS, 9,
     "deadline", "deadline is not after release"),
    ("jobs-deadline-equals-release", JOBS, sub(at("18:00"), at("12:00")), JOBS, 9,
     "deadline", "deadline is not after release"),
    ("jobs-deadline-after-horizon", JOBS, sub(at("18:00"), at("01:00", 2)), JOBS, 9,
     "deadline", "outside the horizon"),
    ("jobs-deadline-off-grid", JOBS, sub(at("18:00"), at("17:59")), JOBS, 9, "deadline",
     "not on the 15-minute slot grid"),
    ("jobs-deadline-no-offset", JOBS, sub(at("18:00"), "2024-06-01T18:00:00"), JOBS, 9,
     "deadline", "has no UTC offset"),
    # j08: 12:00-18:00 = 6 h; j10: from 14:00 to the end of the day = 10 h
    ("jobs-work-does-not-fit", JOBS, sub(f"{at('18:00')},2,1", f"{at('18:00')},6.25,1"),
     JOBS, 9, "work_h", "6.25 h of work cannot fit between release and deadline (6 h)"),
    ("jobs-work-past-horizon", JOBS, sub(",,6,60", ",,10.5,60"), JOBS, 11, "work_h",
     "10.5 h of work cannot fit between release and deadline (10 h)"),
    ("jobs-empty-file", JOBS, replace_all(""), JOBS, 1, None, "file is empty"),
    ("jobs-header-only", JOBS,
     replace_all("job,origin,release,deadline,work_h,checkpoint_gb\n"), JOBS, 2, None,
     "no data rows"),
    ("jobs-header-and-blank-lines", JOBS,
     replace_all("job,origin,release,deadline,work_h,checkpoint_gb\n\n,,,,,\n"), JOBS, 3,
     "job", "value is missing"),  # a row of bare commas is a row, not a blank line
    ("jobs-truncated-row", JOBS, sub(f"j03,city,{at('08:00')},,6,150", f"j03,city,{at('08:00')}"),
     JOBS, 4, "work_h", "value is missing"),
    ("jobs-truncated-to-id", JOBS, sub(f"j03,city,{at('08:00')},,6,150", "j03,city"),
     JOBS, 4, "release", "value is missing"),
    ("jobs-too-many-fields", JOBS, sub(f"j02,city,{at('06:00')},,3,40",
                                       f"j02,city,{at('06:00')},,3,40,x"),
     JOBS, 3, None, "7 fields where the header has 6"),
    ("jobs-blank-line-keeps-numbering", JOBS,
     lambda t: sub("j02,", "\nj02,")(t).replace(",,3,40", ",,-3,40"), JOBS, 4, "work_h",
     "'-3' must be > 0"),
    ("jobs-not-utf8", JOBS, non_utf8(b"j05", b"j\xff5"), JOBS, 6, None,
     "not UTF-8 text (bad byte 0xff)"),
]


@pytest.mark.parametrize("name, edit, file, line, field, message",
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_names_file_line_field(tiny_copy, name, edit, file, line, field, message):
    apply_edit(tiny_copy, name, edit)
    e = load_error(tiny_copy)
    assert (e.file, e.line, e.field) == (file, line, field), str(e)
    assert message in e.message
    text = str(e)
    assert text.startswith(file)
    assert (f" line {line}" in text) == (line is not None)
    assert (f"field '{field}'" in text) == (field is not None)


# Once bugs: an extra field on the first data row; a TOML integer beyond float range.

def test_too_many_fields_on_first_data_row(tiny_copy):
    apply_edit(tiny_copy, JOBS, sub(",,4,5\n", ",,4,5,x\n"))
    e = load_error(tiny_copy)
    assert (e.file, e.line, e.field) == (JOBS, 2, None)
    assert "7 fields where the header has 6" in e.message


def test_toml_integer_beyond_float_range(tiny_copy):
    apply_edit(tiny_copy, TOML, sub("load_time_s = 10", "load_time_s = 1" + "0" * 400))
    e = load_error(tiny_copy)
    assert (e.file, e.line, e.field) == (TOML, None, "migration.load_time_s")


# ---- accepted variations ----------------------------------------------------------------------

def test_extra_columns_are_kept(tiny_copy):
    def add_columns(text: str) -> str:
        head, first, *rest = text.splitlines()
        return "\n".join([head + ",owner,prio", first + ",ann,1", *(r + ",," for r in rest)])
    apply_edit(tiny_copy, JOBS, add_columns)
    apply_edit(tiny_copy, SITES, lambda t: t.replace("idle_kw\n", "idle_kw,region\n")
               .replace("solar,4,0\n", "solar,4,0,south\n").replace("wind,2,0\n", "wind,2,0,\n")
               .replace("city,4,0\n", "city,4,0,north\n"))
    inst = load_instance(tiny_copy)
    jobs_extra = inst.extra["jobs.csv"]
    assert list(jobs_extra.columns) == ["owner", "prio"]
    assert list(jobs_extra.index) == list(inst.jobs)
    assert jobs_extra.loc["j01"].tolist() == ["ann", "1"]
    assert jobs_extra.loc["j02"].tolist() == ["", ""]
    assert inst.extra["sites.csv"]["region"].to_dict() == {"solar": "south", "wind": "",
                                                           "city": "north"}
    assert inst.n_jobs == 10 and inst.work_h.sum() == 38.0   # the known columns are unchanged


def test_header_only_links_means_no_links(tiny_copy):
    (tiny_copy / LINKS).write_text("src,dst,gbps\n")
    inst = load_instance(tiny_copy)
    assert inst.link_gbps.shape == (3, 3) and not inst.link_gbps.any()
    assert inst.transfer_s(0, 0, 1) == float("inf")


def test_crlf_bom_blank_lines_and_spaces_are_accepted(tiny_copy):
    jobs = (tiny_copy / JOBS).read_text()
    (tiny_copy / JOBS).write_text("\ufeff" + jobs.replace(",", " , ").replace("\n", "\r\n")
                                  + "\r\n\r\n")
    inst = load_instance(tiny_copy)
    ref = load_instance(TINY)
    assert inst.jobs == ref.jobs
    assert inst.release_slot.tolist() == ref.release_slot.tolist()
    assert inst.deadline_slot.tolist() == ref.deadline_slot.tolist()


def test_work_exactly_filling_the_window_is_accepted(tiny_copy):
    apply_edit(tiny_copy, JOBS, sub(f"{at('18:00')},2,1", f"{at('18:00')},6,1"))  # j08: 6 h
    assert load_instance(tiny_copy).work_h[7] == 6.0


def test_times_with_another_offset_map_to_the_same_slot(tiny_copy):
    apply_edit(tiny_copy, JOBS, sub(at("06:00"), "2024-06-01T13:00:00Z"))  # = 06:00-07:00
    assert load_instance(tiny_copy).release_slot[1] == 24


def _two_site(tmp: Path, jobs, toml_extra="", site_kw=None) -> Path:
    d = write_instance(tmp, sites={"a": 1, "b": 2}, renewable={"a": [0] * 8, "b": [1] * 8},
                       jobs=jobs, slot_minutes=60, toml_extra=toml_extra)
    if site_kw is not None:
        (d / SITES).write_text("site,gpus,idle_kw,compute_kw\n"
                               f"a,1,0,{site_kw.get('a', '')}\nb,2,0,{site_kw.get('b', '')}\n")
    return d


def test_compute_kw_precedence_job_over_site_over_default(tmp_path):
    jobs = [{"job": "own", "origin": "a", "release_h": 0, "work_h": 1, "checkpoint_gb": 1,
             "compute_kw": 2.0},
            {"job": "inherit", "origin": "a", "release_h": 0, "work_h": 1, "checkpoint_gb": 1}]
    inst = load_instance(_two_site(tmp_path, jobs, "[defaults]\ncompute_kw = 0.5\n",
                                   site_kw={"b": 1.25}))
    assert inst.default_compute_kw == 0.5
    assert inst.compute_kw.tolist() == [[2.0, 2.0],     # job value wins everywhere
                                        [0.5, 1.25]]   # site b's value, else [defaults]
    assert inst.window_threshold_kw == 0.5             # threshold defaults to compute_kw


def test_compute_kw_study_default_without_defaults_table(tmp_path):
    jobs = [{"job": "j", "origin": "b", "release_h": 2, "work_h": 3, "checkpoint_gb": 1}]
    inst = load_instance(_two_site(tmp_path, jobs))
    assert inst.compute_kw.tolist() == [[0.75, 0.75]]
    assert inst.migration.alpha == 0.10 and inst.migration.load_time_s == 10.0
    # empty deadline = end of horizon (8 one-hour slots)
    assert (inst.release_slot[0], inst.deadline_slot[0]) == (2, 8)
    assert inst.deadline_s[0] == 8 * 3600.0
    assert not inst.link_gbps.any()                       # write_instance wrote no links


# ---- 3. CLI contract -------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


@pytest.mark.parametrize("name, edit, file, field", [
    pytest.param(SITES, sub("wind,2,", "wind,2.5,"), SITES, "gpus", id="gpus-fraction"),
    pytest.param(JOBS, sub("j05,wind,", "j05,moon,"), JOBS, "origin", id="unknown-origin"),
    pytest.param(TOML, sub("alpha = 0.10", "alpha = 1.5"), TOML, "migration.alpha",
                 id="alpha-above-1"),
    pytest.param(REN, drop_line(12), REN, "time", id="renewable-missing-row"),
])
def test_cli_check_bad_instance_is_one_line_exit_2(tiny_copy, name, edit, file, field):
    apply_edit(tiny_copy, name, edit)
    r = run_cli("check", tiny_copy)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and r.stderr.endswith("\n"), r.stderr
    assert lines[0].startswith(f"error: {file}")
    assert f"field '{field}'" in lines[0]


def test_cli_check_good_instance():
    r = run_cli("check", TINY)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "instance   tiny-3site: valid" in r.stdout
    assert "jobs       10 (class A 4, B 4, C 2)" in r.stdout
    assert "sites      3 with 10 GPUs" in r.stdout


def test_cli_check_json():
    r = run_cli("check", "--json", TINY)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    assert {"jobs_per_class", "renewable_energy_kwh", "demand_energy_kwh",
            "windows"} <= facts.keys()
    assert facts["jobs_per_class"] == {"A": 4, "B": 4, "C": 2}
    # 3 sites x 96 slots of 0.25 h; demand = sum(work_h) x 0.75 kW = 38 x 0.75
    inst = load_instance(TINY)
    assert facts["renewable_energy_kwh"] == pytest.approx(inst.renewable_kw.sum() * 0.25)
    assert facts["renewable_energy_kwh"] == pytest.approx(53.85)
    assert facts["demand_energy_kwh"] == pytest.approx(28.5)
    assert facts["windows"] == 3


def test_line_numbers_count_physical_lines_after_a_multiline_field(tiny_copy):
    (tiny_copy / SITES).write_text('site,gpus,idle_kw,note\nsolar,4,0,"two\nlines"\nwind,-2,0,x\n'
                                   'city,4,0,\n')
    e = load_error(tiny_copy)
    assert (e.file, e.line, e.field) == (SITES, 4, "gpus")


def test_carriage_return_only_line_endings_are_read(tiny_copy):
    text = (tiny_copy / SITES).read_text()
    (tiny_copy / SITES).write_text(text.replace("\n", "\r"))
    assert load_instance(tiny_copy).gpus.tolist() == [4, 2, 4]


def test_a_dst_day_in_wall_clock_times_is_reported_where_the_clock_jumps(tiny_copy):
    """A fall-back day (2024-11-03, Los Angeles) written as local wall-clock times: after
    01:45-07:00 comes 02:00-08:00, four slots ahead of 02:00-07:00. The error used to name the
    last lines (the rows that run past the horizon), 85 lines below the mistake."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/Los_Angeles")
    toml = tiny_copy / "instance.toml"
    toml.write_text(toml.read_text().replace("2024-06-01T00:00:00-07:00",
                                             "2024-11-03T00:00:00-07:00"))
    jobs = tiny_copy / "jobs.csv"
    jobs.write_text(jobs.read_text().replace("2024-06-01T", "2024-11-03T"))
    rows = (tiny_copy / "renewable.csv").read_text().splitlines()
    out = [rows[0]]
    for k, row in enumerate(rows[1:]):
        wall = (datetime(2024, 11, 3) + timedelta(minutes=15 * k)).replace(tzinfo=tz)
        out.append(",".join([wall.isoformat(), *row.split(",")[1:]]))
    (tiny_copy / "renewable.csv").write_text("\n".join(out) + "\n")
    e = load_error(tiny_copy)
    assert (e.file, e.line, e.field) == ("renewable.csv", 10, "time"), str(e)
    assert "expected the time of slot 8 (2024-11-03T02:00-0700), found that of slot 12" in \
        e.message


def test_a_negative_value_where_0_is_refused_too_says_so(tiny_copy):
    """'must be >= 0' used to be said of values where 0 is refused as well."""
    jobs = tiny_copy / "jobs.csv"
    jobs.write_text(jobs.read_text().replace(",,2,25", ",,-2,25"))
    e = load_error(tiny_copy)
    assert e.field == "work_h" and e.message == "'-2' must be > 0"
