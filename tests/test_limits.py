"""The size policy (milp/limits.py, README 'Size policy'): inputs beyond the limits are refused
with one line naming the file (and the line where the limit is crossed) before they are read
whole; the shipped instances are well inside; and the costs that used to grow with the square
of an input's size (a CSV header's duplicate check, looking jobs up in a plan) grow linearly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from milp import limits
from milp.errors import InputError
from milp.instance import load_instance
from milp.plan import JobPlan, Plan, Run
from tests.conftest import ROOT, TINY, run_cli
from tests.test_hostile import run_main


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no room on disk (a hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# ---- the limits themselves ----------------------------------------------------------------

def test_shipped_instances_are_well_inside_the_limits():
    for toml in (ROOT / "instances").rglob("instance.toml"):
        inst = load_instance(toml.parent)
        assert inst.n_sites * 4 <= limits.MAX_SITES, toml
        assert inst.n_jobs * 4 <= limits.max_jobs(inst.n_slots), toml
        assert inst.n_slots * 4 <= limits.MAX_SLOTS, toml
        for f in toml.parent.iterdir():
            assert f.stat().st_size * 100 <= limits.MAX_FILE_BYTES, f
    for plan in (ROOT / "solutions").rglob("*plan.json"):
        assert plan.stat().st_size * 100 <= limits.MAX_FILE_BYTES


def test_max_jobs_keeps_jobs_times_slots_bounded():
    assert limits.max_jobs(96) == limits.MAX_JOBS
    for slots in (1, 96, 400, 401, 1000, limits.MAX_SLOTS):
        assert limits.max_jobs(slots) * slots <= limits.MAX_JOB_SLOTS
        assert limits.max_jobs(slots) >= 1


# ---- instances -----------------------------------------------------------------------------

def test_too_many_slots_is_refused_before_any_csv(tiny_copy):
    toml = tiny_copy / "instance.toml"
    toml.write_text(toml.read_text().replace("slots = 96", f"slots = {limits.MAX_SLOTS + 1}"))
    (tiny_copy / "renewable.csv").unlink()           # never read
    with pytest.raises(InputError) as e:
        load_instance(tiny_copy)
    assert (e.value.file, e.value.field) == ("instance.toml", "slots")
    assert f"from 1 to {limits.MAX_SLOTS}" in e.value.message


def test_too_many_sites_is_refused_at_the_first_site_beyond(tiny_copy):
    rows = [f"s{k},1,0" for k in range(limits.MAX_SITES + 5)]
    (tiny_copy / "sites.csv").write_text("site,gpus,idle_kw\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError) as e:
        load_instance(tiny_copy)
    assert (e.value.file, e.value.line) == ("sites.csv", limits.MAX_SITES + 2)
    assert f"more than {limits.MAX_SITES} sites" in e.value.message
    assert "Size policy" in e.value.message


def test_too_many_jobs_for_the_horizon_is_refused_at_the_first_job_beyond(tiny_copy):
    jobs = (tiny_copy / "jobs.csv").read_text().splitlines()
    row = jobs[1].split(",", 1)[1]
    n = limits.max_jobs(96) + 3
    (tiny_copy / "jobs.csv").write_text(
        "\n".join([jobs[0], *(f"x{k},{row}" for k in range(n))]) + "\n")
    with pytest.raises(InputError) as e:
        load_instance(tiny_copy)
    assert (e.value.file, e.value.line) == ("jobs.csv", limits.max_jobs(96) + 2)
    assert f"more than {limits.max_jobs(96)} jobs" in e.value.message


def test_the_job_limit_shrinks_on_long_horizons(tmp_path):
    from tests.conftest import write_instance

    slots = limits.MAX_SLOTS
    allowed = limits.max_jobs(slots)
    assert allowed < limits.MAX_JOBS
    d = write_instance(tmp_path / "long", sites={"a": 1}, renewable={"a": [1.0] * slots},
                       jobs=[{"job": f"j{k}", "origin": "a", "release_h": 0, "work_h": 0.25,
                              "checkpoint_gb": 1} for k in range(allowed + 1)])
    with pytest.raises(InputError) as e:
        load_instance(d)
    assert (e.value.file, e.value.line) == ("jobs.csv", allowed + 2)
    assert f"over {slots} slots" in e.value.message


@pytest.mark.parametrize("name", ["instance.toml", "sites.csv", "renewable.csv", "links.csv",
                                  "jobs.csv"])
def test_a_file_over_the_size_limit_is_refused_unread(tiny_copy, name):
    sparse(tiny_copy / name, limits.MAX_FILE_BYTES + 1)
    code, out, err = run_main("check", tiny_copy)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {name}: is 256.0 MiB; milp reads files of at most 256 MiB")


def test_plans_states_and_site_maps_over_the_size_limit_are_refused(tmp_path):
    big = sparse(tmp_path / "big.json", limits.MAX_FILE_BYTES + 1)
    for args in (["evaluate", TINY, big], ["export", "csv", big, "--out", tmp_path / "o.csv"],
                 ["replan", TINY, "--state", big, "--policy", "static", "--out", tmp_path / "o"]):
        code, out, err = run_main(*args)
        assert code == 2 and err.startswith(f"error: {big}: is 256.0 MiB"), err
    plan = Plan("x", "2030-01-01T00:00:00+00:00", 15, "p", (JobPlan("j", (Run("s", 0, 9),)),))
    path = plan.save(tmp_path / "plan.json")
    code, _, err = run_main("export", "slurm", path, "--out", tmp_path / "s", "--site-map", big)
    assert code == 2 and err.startswith(f"error: {big}: is 256.0 MiB")
    assert not (tmp_path / "s").exists() and not (tmp_path / "o").exists()


def test_a_plan_with_too_many_jobs_is_refused_before_its_schema_check(tmp_path):
    doc = Plan("x", "2030-01-01T00:00:00+00:00", 15, "p", ()).to_dict()
    doc["jobs"] = [{"job": f"j{k}", "steps": []} for k in range(limits.MAX_JOBS + 1)]
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(InputError) as e:
        Plan.load(tmp_path / "p.json")
    assert e.value.field == "jobs" and f"more than {limits.MAX_JOBS} jobs" in e.value.message


def test_a_state_with_too_many_jobs_is_refused(tmp_path):
    state = {"schema": "milp-state", "version": 1, "at": "2024-06-01T06:00:00-07:00",
             "jobs": [{"job": "j01", "site": "city", "work_left_h": 1}] *
             (limits.MAX_JOBS + 1)}
    (tmp_path / "s.json").write_text(json.dumps(state))
    r = run_cli("replan", TINY, "--state", tmp_path / "s.json", "--policy", "static",
                "--out", tmp_path / "o")
    assert r.exit_code == 2 and "field 'jobs'" in r.error and "more than" in r.error


# ---- no cost grows with the square of an input --------------------------------------------

class Counted(str):
    """A string that counts how often it is compared for equality (class-wide)."""

    compared = 0

    def __eq__(self, other):
        Counted.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_wide_header_is_checked_for_duplicates_in_linear_time(tmp_path):
    """200 000 columns used to take minutes (each column searched for in the whole header)."""
    import milp.instance as mi

    n = 20_000
    header = [Counted(c) for c in ["site", "gpus", *(f"c{k}" for k in range(n))]]
    Counted.compared = 0
    mi._check_header("sites.csv", header, ["site", "gpus"])
    assert Counted.compared <= 10 * n          # a search per column made ~n²/2 = 2e8
    with pytest.raises(InputError, match="duplicate column"):
        mi._check_header("sites.csv", [*header, Counted("c7")], ["site"])
    (tmp_path / "sites.csv").write_text(",".join(["site", "gpus", *(f"c{k}" for k in range(n))])
                                        + "\n" + "a,1" + "," * n + "\n")
    assert mi._read_csv(tmp_path, "sites.csv", ["site", "gpus"]).shape == (1, n + 2)


def test_looking_every_job_up_in_a_plan_is_linear():
    """schedule.csv looks every job of the instance up: for 100 000 jobs, a scan per lookup
    (5e9 comparisons) did not finish in a minute."""
    n = 5_000
    ids = [Counted(f"j{k}") for k in range(n)]
    plan = Plan("x", "2030-01-01T00:00:00+00:00", 15, "p",
                tuple(JobPlan(j, (Run("s", 0, 9),)) for j in ids))
    Counted.compared = 0
    assert all(plan.job(str(j)).job == j for j in ids)
    assert plan.job("nope") is None
    assert Counted.compared <= 10 * n
