"""Real-data instance builder (milp/build.py): shipped instances, determinism, units by hand."""

from __future__ import annotations

import csv
import hashlib
import math
import statistics
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from milp import build as B
from milp.errors import InputError
from milp.instance import describe, load_instance

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = ROOT / "instances"
SOURCES = INSTANCES / "sources"
PAPER = INSTANCES / "paper-5site"

SHIPPED = sorted(p.parent for p in INSTANCES.rglob("instance.toml")
                 if SOURCES not in p.parents)
FIVE_SITE = [PAPER, *sorted((INSTANCES / "week-5site").glob("*/"))]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def caiso_hourly(day: date, fuel: str) -> dict[int, int]:
    """Hour-ending -> summed curtailed MWh of one fuel on one day, straight from the CSV."""
    out: dict[int, int] = {}
    for r in read_csv(SOURCES / "caiso_curtailment" / "curtail_report.csv"):
        if (int(r["year"]), int(r["month"]), int(r["day"])) == (day.year, day.month, day.day) \
                and r["fuel_type"] == fuel:
            out[int(r["hour"])] = out.get(int(r["hour"]), 0) + int(r["curtailed_MWh"])
    return out


def kw_table(d: Path) -> dict[str, list[float]]:
    rows = read_csv(d / "renewable.csv")
    return {s: [float(r[s]) for r in rows] for s in rows[0] if s != "time"}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rebuilt")
    B.build_all(out)
    return out


def params(**kw) -> B.BuildParams:
    base = dict(name="t", day="2019-04-21", sites=5, jobs=40, seed=3)
    base.update(kw)
    return B.BuildParams(**base)


# ---- shipped instances -------------------------------------------------------------------

def test_shipped_instances_are_there():
    names = {p.relative_to(INSTANCES).as_posix() for p in SHIPPED}
    week = {f"week-5site/2019-04-{d}" for d in range(15, 22)}
    contention = {f"contention-5site/2019-04-{d}" for d in range(15, 22)}
    assert {"tiny-3site", "paper-5site", "scale-10x200", "scale-20x500", "scale-50x2000",
            *week, *contention} <= names


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.relative_to(INSTANCES).as_posix())
def test_every_instance_folder_loads(folder):
    inst = load_instance(folder)
    assert inst.n_jobs > 0 and inst.n_sites > 0


def test_rebuild_reproduces_shipped_files_byte_for_byte(rebuilt):
    built = sorted(p.parent for p in rebuilt.rglob("instance.toml"))
    shipped = {p.relative_to(INSTANCES) for p in SHIPPED} - {Path("tiny-3site")}
    assert {p.relative_to(rebuilt) for p in built} == shipped
    for b in built:
        s = INSTANCES / b.relative_to(rebuilt)
        assert sorted(f.name for f in s.iterdir()) == sorted(f.name for f in b.iterdir())
        for f in b.iterdir():
            assert (s / f.name).read_bytes() == f.read_bytes(), f"{s / f.name} differs"


def test_source_copies_match_their_checksums():
    lines = (SOURCES / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 8 + 15        # 14 Electricity Maps zones and their MIT licence
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((SOURCES / name).read_bytes()).hexdigest() == digest, name
    for folder in ("caiso_curtailment", "philly_jobs", "skyplane_wan", "checkpoints",
                   "electricitymaps_hourly"):
        assert (SOURCES / folder / "SOURCE.md").is_file()


def test_presets_expand_as_documented():
    presets = B.load_presets()
    assert [p.name for p in presets["paper-5site"]] == ["paper-5site"]
    week = presets["week-5site"]
    assert [p.day for p in week] == [f"2019-04-{d}" for d in range(15, 22)]
    assert len({p.seed for p in week}) == 7
    paper = presets["paper-5site"][0]
    for p in week:
        assert (p.sites, p.gpus_per_site, p.jobs, p.class_mix, p.slot_minutes) == \
            (paper.sites, paper.gpus_per_site, paper.jobs, paper.class_mix, paper.slot_minutes)


# ---- determinism -------------------------------------------------------------------------

def test_same_params_give_identical_bytes(tmp_path):
    a = B.build_instance(params(), tmp_path / "a")
    b = B.build_instance(params(), tmp_path / "b")
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes()


def test_other_seed_gives_other_jobs(tmp_path):
    a = read_csv(B.build_instance(params(seed=3), tmp_path / "a") / "jobs.csv")
    b = read_csv(B.build_instance(params(seed=4), tmp_path / "b") / "jobs.csv")
    key = lambda r: (r["philly_submit"], r["philly_duration_s"], r["model"], r["origin"])  # noqa
    assert [key(r) for r in a] != [key(r) for r in b]


# ---- renewable profiles ------------------------------------------------------------------

def test_renewable_value_by_hand_15_min():
    # s01-solar copies CAISO solar curtailment of 2019-04-21. Summed rows (MWh = mean MW):
    # hour-ending 10: 40+2953 = 2993; 11: 19+4243+0 = 4262; 12: 81+3694 = 3775; 13: 393+2731 =
    # 3124. Slot centres lie between hour centres (hour-ending h is centred at h-0.5 o'clock):
    # slot 42 (10:30-10:45, centre 10:37.5) = 4262 - 0.125*(4262-3775) = 4201.125, the day's peak;
    # slot 48 (12:00-12:15, centre 12:07.5) = 3775 - 0.625*(3775-3124) = 3368.125.
    # Peak scaled to 1.0 * 8 GPUs * 0.75 kW = 6 kW: 3368.125 / 4201.125 * 6 = 4.81033... kW.
    h = caiso_hourly(date(2019, 4, 21), "SOLR")
    assert (h[10], h[11], h[12], h[13]) == (2993, 4262, 3775, 3124)
    kw = kw_table(PAPER)["s01-solar"]
    assert read_csv(PAPER / "sites.csv")[0]["source_day"] == "2019-04-21"
    assert kw[48] == pytest.approx(4.8103, abs=1e-12)
    assert kw[48] == round(3368.125 / 4201.125 * 6, 4)
    assert kw[42] == 6.0 and max(kw) == 6.0


def test_renewable_hourly_slots_hit_hour_centres(tmp_path):
    d = B.build_instance(params(slot_minutes=60, sites=1, solar_share=1.0), tmp_path / "h")
    kw = kw_table(d)["s01-solar"]
    h = caiso_hourly(date(2019, 4, 21), "SOLR")
    peak = max(h.values())                      # 4262 MWh, hour-ending 11
    for slot in range(24):                      # slot k = hour-ending k+1
        assert kw[slot] == round(h.get(slot + 1, 0) / peak * 6, 4)
    assert kw[12] == 4.3979                     # 3124 / 4262 * 6


def test_linear_interpolation_between_hour_centres():
    # A made-up day: curtailment 0 except 100 MWh in hour-ending 13 (12:00-13:00, centre 12:30).
    days = {date(2019, 4, 21): np.zeros(24)}
    days[date(2019, 4, 21)][12] = 100.0
    data = B.SourceData(hourly={"SOLR": days, "WIND": {}}, caiso_days=frozenset(days),
                        caiso_first=date(2019, 4, 21), caiso_last=date(2019, 4, 21),
                        philly=None, philly_first=None, philly_last=None, link_bps={},
                        models=None, carbon={})
    p = B.check_params(params(sites=1, gpus_per_site=4, peak_cover=0.5, solar_share=1.0))
    kw, picks = B.renewable_profiles(data, p, ["SOLR"])
    assert picks == [[date(2019, 4, 21)]]
    # centres 11:37.5, 11:52.5 | 12:07.5, 12:22.5 | 12:37.5, 12:52.5, 13:07.5, 13:22.5
    # peak at 12:22.5 / 12:37.5 = 7/8 of 100, scaled to 0.5 * 4 * 0.75 = 1.5 kW
    expect = np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 7 * 1.5
    assert np.allclose(kw[0, 46:54], np.round(expect, 4), rtol=0, atol=1e-12)
    assert kw[0, :46].sum() == 0 and kw[0, 54:].sum() == 0


@pytest.mark.parametrize("folder", [PAPER, INSTANCES / "scale-50x2000"], ids=lambda p: p.name)
def test_peak_scaling(folder):
    p = {q.name: q for qs in B.load_presets().values() for q in qs}[folder.name]
    for site, kw in kw_table(folder).items():
        assert max(kw) == round(p.peak_cover * p.gpus_per_site * 0.75, 4), site
        assert min(kw) >= 0


def test_peak_scaling_other_cover(tmp_path):
    d = B.build_instance(params(peak_cover=0.7, gpus_per_site=3), tmp_path / "p")
    for kw in kw_table(d).values():
        assert max(kw) == round(0.7 * 3 * 0.75, 4)


def test_sites_fuels_and_source_days():
    data = B.load_sources()
    sites = read_csv(INSTANCES / "scale-20x500" / "sites.csv")
    assert sum(s["fuel"] == "SOLR" for s in sites) == round(0.6 * 20)
    kw = kw_table(INSTANCES / "scale-20x500")
    assert len({tuple(v) for v in kw.values()}) == len(sites)        # no two sites alike
    for fuel in ("SOLR", "WIND"):
        days = [date.fromisoformat(s["source_day"]) for s in sites if s["fuel"] == fuel]
        assert len(set(days)) == len(days)
        assert days == B.source_days(data, fuel, date(2019, 4, 21), len(days))
        for d in days:
            assert data.hourly[fuel][d].sum() > 0 and not B.is_dst_change(d)
            assert abs((d - date(2019, 4, 21)).days) <= 30                # same season
    assert B.site_fuels(5, 0.6) == ["SOLR", "SOLR", "WIND", "SOLR", "WIND"]
    # Days without wind curtailment are skipped: 2019-04-18 and -19 have none.
    assert B.source_days(data, "WIND", date(2019, 4, 19), 2) == [date(2019, 4, 20),
                                                                date(2019, 4, 21)]


def test_start_is_local_midnight_with_offset(tmp_path):
    inst = load_instance(PAPER)
    assert inst.start.isoformat() == "2019-04-21T00:00:00-07:00"
    d = B.build_instance(params(day="2018-12-01", jobs=10), tmp_path / "w")
    assert load_instance(d).start.isoformat() == "2018-12-01T00:00:00-08:00"


def test_two_day_instance(tmp_path):
    d = B.build_instance(params(days=2, jobs=80), tmp_path / "two")
    inst = load_instance(d)
    assert inst.n_slots == 192
    days = read_csv(d / "sites.csv")[0]["source_day"].split(";")
    assert days == ["2019-04-21", "2019-04-22"]
    assert (inst.release_slot >= 96).any() and (inst.release_slot < 96).any()


# ---- links -------------------------------------------------------------------------------

def test_link_gbps_is_the_skyplane_median():
    rows = read_csv(SOURCES / "skyplane_wan" / "throughput.csv")
    sites = {s["site"]: s["region"] for s in read_csv(PAPER / "sites.csv")}
    links = read_csv(PAPER / "links.csv")
    assert len(links) == 20                                        # 5 x 4, both directions
    for link in links:
        src, dst = sites[link["src"]], sites[link["dst"]]
        vals = [float(r["throughput_received"]) for r in rows
                if (r["src_region"], r["dst_region"]) == (src, dst)]
        assert float(link["gbps"]) == round(statistics.median(vals) / 1e9, 3)
    # aws:us-west-1 -> azure:westus is AWS-egress-capped, the reverse is not
    one = {(r["src"], r["dst"]): float(r["gbps"]) for r in links}
    assert one["s01-solar", "s02-solar"] == 4.781 and one["s02-solar", "s01-solar"] == 9.557
    assert [s for s in sites.values()] == list(B.REGIONS[:5])


# ---- jobs --------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", [PAPER, INSTANCES / "scale-50x2000"], ids=lambda p: p.name)
def test_checkpoints_come_from_models_csv(folder):
    models = {r["model"]: r for r in read_csv(SOURCES / "checkpoints" / "models.csv")}
    jobs = read_csv(folder / "jobs.csv")
    for j in jobs:
        m = models[j["model"]]
        assert float(j["checkpoint_gb"]) == float(m["mixed_adam_gb"])
        assert j["class"] == m["class"]
    assert {j["class"] for j in jobs} == {"A", "B", "C"}
    inst = load_instance(folder)
    assert list(inst.job_class) == [j["class"] for j in jobs]


@pytest.mark.parametrize("folder", [PAPER, INSTANCES / "scale-50x2000"], ids=lambda p: p.name)
def test_jobs_from_philly(folder):
    p = {q.name: q for qs in B.load_presets().values() for q in qs}[folder.name]
    inst = load_instance(folder)
    jobs = read_csv(folder / "jobs.csv")
    horizon_end = inst.start + timedelta(seconds=inst.horizon_s)
    for j in jobs:
        submit = datetime.fromisoformat(j["philly_submit"])
        release = datetime.fromisoformat(j["release"])
        tod = submit - submit.replace(hour=0, minute=0, second=0)
        assert release == inst.start + timedelta(minutes=tod.total_seconds() // 900 * 15)
        dur = float(j["philly_duration_s"])
        assert dur >= p.min_job_s
        fit_h = p.fit_share * (horizon_end - release).total_seconds() / 3600
        expect = max(1, math.floor(min(dur / 3600, p.max_work_h, fit_h) * 1e4 + 1e-6)) / 1e4
        assert float(j["work_h"]) == pytest.approx(expect, abs=1e-12)
        assert j["deadline"] == ""
    assert len({j["origin"] for j in jobs}) == inst.n_sites
    assert [j["release"] for j in jobs] == sorted(j["release"] for j in jobs)


def test_class_mix_with_many_jobs(tmp_path):
    d = B.build_instance(params(jobs=3000, sites=2, class_mix=(0.2, 0.3, 0.5), seed=2),
                         tmp_path / "mix")
    classes = [j["class"] for j in read_csv(d / "jobs.csv")]
    for c, share in zip("ABC", (0.2, 0.3, 0.5)):
        assert classes.count(c) / len(classes) == pytest.approx(share, abs=0.03)
    big = [j["class"] for j in read_csv(INSTANCES / "scale-50x2000" / "jobs.csv")]
    for c, share in zip("ABC", (0.5, 0.35, 0.15)):
        assert big.count(c) / len(big) == pytest.approx(share, abs=0.03)


def test_class_mix_zero_share(tmp_path):
    d = B.build_instance(params(class_mix=(1.0, 0.0, 0.0)), tmp_path / "a")
    assert {j["class"] for j in read_csv(d / "jobs.csv")} == {"A"}


# ---- windows and load --------------------------------------------------------------------

@pytest.mark.parametrize("folder", FIVE_SITE, ids=lambda p: p.relative_to(INSTANCES).as_posix())
def test_window_statistics_of_5_site_instances(folder):
    # Documented in instances/README.md: mean window 2-12 h, every site has a window.
    inst = load_instance(folder)
    facts = describe(inst)
    assert 2.0 <= facts["window_h_mean"] <= 12.0
    assert facts["window_h_max"] <= 24.0
    assert all(inst.windows(n) for n in range(inst.n_sites))


@pytest.mark.parametrize("name", ["scale-10x200", "scale-20x500", "scale-50x2000"])
def test_scale_instances_load_is_a_realistic_share(name):
    facts = describe(load_instance(INSTANCES / name))
    share = facts["work_h"] / (facts["gpus"] * 24)
    assert 0.3 <= share <= 0.7


# ---- bad parameters ----------------------------------------------------------------------

@pytest.mark.parametrize("kw, field, words", [
    (dict(day="2019-02-30"), "day", "not a calendar day"),
    (dict(day="April 21"), "day", "not a day YYYY-MM-DD"),
    (dict(day="2019-03-10"), "day", "daylight-saving"),
    (dict(day="2019-11-02", days=2), "days", "daylight-saving"),
    (dict(day="2020-01-01"), "day", "outside the CAISO data"),
    (dict(day="2016-06-29"), "day", "outside the CAISO data"),
    (dict(day="2019-04-30"), "day", "not in the CAISO report"),
    (dict(class_mix=(0.5, 0.5, 0.5)), "class_mix", "add up to 1"),
    (dict(class_mix=(0.5, 0.5)), "class_mix", "three numbers"),
    (dict(class_mix=(1.5, -0.5, 0.0)), "class_mix", ">= 0"),
    (dict(jobs=10_000), "jobs", "too few Philly jobs"),
    (dict(jobs=200_000), "jobs", "from 1 to 10000"),                       # size policy
    (dict(days=8, slot_minutes=5), "days", "an instance has at most 2016"),
    (dict(slot_minutes=1, jobs=3000), "jobs", "3000 jobs over 1440 slots: at most 2777"),
    (dict(sites=64), "sites", "63 cloud regions"),
    (dict(sites=0), "sites", "whole number"),
    (dict(gpus_per_site=2.5), "gpus_per_site", "whole number"),
    (dict(slot_minutes=7), "slot_minutes", "divide a day"),
    (dict(peak_cover=0), "peak_cover", "> 0"),
    (dict(solar_share=1.5), "solar_share", "<= 1"),
    (dict(min_job_s=1e8), "min_job_s", "no Philly single-GPU job"),
    (dict(slack=0.5), "slack", "from 1 to 1e4"),
    (dict(origin_sites=6), "origin_sites", "from 0 (every site) to sites=5"),
    (dict(origin_load=-1), "origin_load", "share > 0"),
    (dict(origin_load=5.0, jobs=40), "origin_load", "raise jobs"),
    (dict(last_release_h=0), "last_release_h", "> 0 and <= 24"),
])
def test_bad_params_raise_input_error(tmp_path, kw, field, words):
    with pytest.raises(InputError) as e:
        B.build_instance(params(**kw), tmp_path / "bad")
    assert e.value.file == "build-instance" and e.value.field == field
    assert words in e.value.message and "\n" not in str(e.value)
    assert not (tmp_path / "bad" / "jobs.csv").exists()


def test_bad_preset_file(tmp_path):
    f = tmp_path / "presets.toml"
    f.write_text('[p]\nday = "2019-04-21"\nclass_mix = [0.6, 0.6, 0.2]\n')
    with pytest.raises(InputError) as e:
        B.load_presets(f)
    assert e.value.file == str(f) and e.value.field == "class_mix" and "'p'" in e.value.message
    f.write_text('[p]\nday = "2019-03-10"\n')
    with pytest.raises(InputError, match="daylight-saving") as e:
        B.load_presets(f)
    assert e.value.field == "day"
    f.write_text('[p]\nday = "2019-04-21"\ncolour = 3\n')
    with pytest.raises(InputError, match="unknown parameter") as e:
        B.load_presets(f)
    assert e.value.field == "colour"
    f.write_text('[p]\ndays = 2\n')
    with pytest.raises(InputError, match="required") as e:
        B.load_presets(f)
    f.write_text('[p]\nday = 2019-04-21\njobs = 10000\nseed = 3\n')  # unquoted TOML date is fine
    assert B.load_presets(f)["p"][0].day == "2019-04-21"
    with pytest.raises(InputError, match="too few Philly jobs") as e:
        B.build_preset("p", tmp_path / "out", presets=f)
    assert e.value.file == str(f) and e.value.field == "jobs"
    with pytest.raises(InputError, match="unknown preset") as e:
        B.build_preset("nope", tmp_path / "out", presets=f)
    assert e.value.field == "name"


def test_missing_source_data(tmp_path):
    with pytest.raises(InputError, match="source data file is missing"):
        B.build_instance(params(), tmp_path / "x", sources=tmp_path / "nowhere")


# ---- carbon, deadlines, days with queues -------------------------------------------------

def test_carbon_is_the_zone_hour_of_2023_at_the_same_utc_instant():
    # paper-5site slot 0 = 2019-04-21 00:00 PDT = 07:00 UTC -> 2023-04-21 07:00 UTC in the
    # US-CAL-CISO file (every site of the five is a US-west region, zone US-CAL-CISO); slot 5
    # (01:15 PDT) is in the hour from 08:00 UTC.
    src = {r["Datetime (UTC)"]: float(r["Carbon Intensity gCO₂eq/kWh (direct)"])
           for r in read_csv(SOURCES / "electricitymaps_hourly" / "US-CAL-CISO_2023_hourly.csv")}
    rows = read_csv(PAPER / "carbon.csv")
    assert rows[0]["time"] == "2019-04-21T00:00:00-07:00"
    assert float(rows[0]["s03-wind"]) == src["2023-04-21 07:00:00"]
    assert float(rows[5]["s01-solar"]) == src["2023-04-21 08:00:00"]
    assert float(rows[95]["s05-wind"]) == src["2023-04-22 06:00:00"]
    assert load_instance(PAPER).carbon_g_per_kwh.shape == (5, 96)


def test_every_region_has_a_carbon_zone_file():
    zones = {p.name.split("_")[0] for p in (SOURCES / "electricitymaps_hourly").glob("*.csv")}
    assert set(B.REGIONS) == set(B.REGION_ZONE) and set(B.REGION_ZONE.values()) <= zones


def test_slack_sets_deadlines_by_hand(tmp_path):
    d = B.build_instance(params(slack=2.0), tmp_path / "s")
    inst = load_instance(d)
    for j, r in enumerate(read_csv(d / "jobs.csv")):
        due = inst.release_slot[j] + math.ceil(2.0 * float(r["work_h"]) / 0.25 - 1e-9)
        assert inst.deadline_slot[j] == min(due, inst.n_slots)
        assert (r["deadline"] == "") == (due >= inst.n_slots)


def test_origin_sites_load_and_last_release(tmp_path):
    d = B.build_instance(params(origin_sites=2, origin_load=0.75, jobs=400,
                                last_release_h=18.0), tmp_path / "c")
    inst = load_instance(d)
    assert set(inst.origin) == {0, 1}
    load = B.origin_load(inst)
    # sampled until the work reaches 75 % of 2 sites x 8 GPUs x 24 h; the last job overshoots
    total = float(inst.work_h.sum())
    assert 0.75 * 2 * 8 * 24 <= total < 0.75 * 2 * 8 * 24 + max(inst.work_h)
    assert abs(load[0] - load[1]) <= max(inst.work_h) / (8 * 24)     # balanced by the builder
    assert (inst.release_slot < 18 * 4).all() and inst.n_jobs < 400


@pytest.mark.parametrize("folder", sorted((INSTANCES / "contention-5site").glob("*/")),
                         ids=lambda p: p.name)
def test_contention_days_load_their_origins(folder):
    load = B.origin_load(load_instance(folder))
    assert (load[:2] >= 0.6).all() and (load[2:] == 0).all()


def test_build_instance_builds_a_range_of_days_in_one_call(tmp_path):
    """``--days FROM..TO --every 7``: one instance per week into OUT/<day>/, seeds 1, 2, ...;
    the daylight-saving change day (2018-03-11, a Sunday) is left out, saying so."""
    import subprocess
    import sys

    out = tmp_path / "year"
    cmd = [sys.executable, "-c", "from milp.cli import main; main()", "build-instance",
           "--out", str(out), "--sites", "2", "--jobs", "10"]
    r = subprocess.run([*cmd, "--days", "2018-02-25..2018-03-18", "--every", "7"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "left out 2018-03-11: a daylight-saving change day\n"
    assert sorted(p.name for p in out.iterdir()) == ["2018-02-25", "2018-03-04", "2018-03-18"]
    seeds = []
    for d in ("2018-02-25", "2018-03-04", "2018-03-18"):
        toml = (out / d / "instance.toml").read_text()
        assert f'name = "year-{d}"' in toml and f"day={d} days=1 " in toml
        seeds.append(toml.split(" seed=")[1].split()[0])
    assert seeds == ["1", "2", "3"]
    for bad, said in ((["--days", "2018-03-04..2018-03-01"], "error: --days: '2018-03-04..2018"
                       "-03-01': the range ends before it starts"),
                      (["--days", "2018-03-04..", ], "error: --days: '2018-03-04..' is neither"),
                      (["--days", "2", "--every", "7"], "error: --every: needs --days FROM..TO"),
                      (["--days", "2018-03-01..2018-03-02", "--day", "2018-03-01"],
                       "error: --day: give the days as --days FROM..TO")):
        r = subprocess.run([*cmd, *bad], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith(said), r.stderr
