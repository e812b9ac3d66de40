"""Greedy policies on instances whose right answer is obvious by hand."""

import json
import subprocess
import sys

import pytest

from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.plan import Migration, Plan, Run
from milp.policies import POLICIES
from tests.conftest import TINY, write_instance

H = 3600.0
CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


def dark_and_sunny(tmp, checkpoint_gb, gbps):
    """'dark' (origin, no renewable) and 'sunny' (3 kW for the first 3 h, then nothing);
    one 2 h job released at 0; 15-min slots over 8 h. Window at sunny: 3 h -> budget 1080 s."""
    return load_instance(write_instance(
        tmp, sites={"dark": 1, "sunny": 1},
        renewable={"dark": [0] * 32, "sunny": [3] * 12 + [0] * 20},
        jobs=[{"job": "j", "origin": "dark", "release_h": 0, "work_h": 2,
               "checkpoint_gb": checkpoint_gb}],
        links=[("dark", "sunny", gbps), ("sunny", "dark", gbps)]))


def moves(plan: Plan) -> list[Migration]:
    return [s for jp in plan.jobs for s in jp.steps if isinstance(s, Migration)]


@pytest.mark.parametrize("gb,gbps", [(5, 10), (150, 1)])
def test_energy_only_moves_both(tmp_path, gb, gbps):
    inst = dark_and_sunny(tmp_path, gb, gbps)
    p = POLICIES["energy-only"](inst, None)
    assert [(m.src, m.dst, m.start_s) for m in moves(p)] == [("dark", "sunny", 0.0)]
    e = evaluate(inst, p)
    assert e.valid and e.migrations == 1
    # 150 GB at 1 Gbps: disruption 1210.4 s > 0.1 x 3 h = 1080 s -> outside the domain
    assert e.migrations_outside_domain == (1 if gb == 150 else 0)


def test_feasibility_aware_moves_the_small_checkpoint(tmp_path):
    inst = dark_and_sunny(tmp_path, 5, 10)
    p = POLICIES["feasibility-aware"](inst, None)
    # it moves at 00:00 (4 s transfer), resumes at the next slot start and loads its checkpoint
    # (10.4 s) before computing 2 h
    assert p.job("j").steps == (Migration("dark", "sunny", 0.0, 5.0, 4.0, 14.4),
                                Run("sunny", 900, 900 + 10.4 + 2 * H, restore_s=10.4))
    e = evaluate(inst, p)
    # only the 4 s transfer at the dark site draws grid power: 1.8 kW x 4 s
    assert e.valid and e.grid_energy_kwh == pytest.approx(1.8 * 4 / H)


def test_feasibility_aware_keeps_class_c_on_a_slow_link(tmp_path):
    inst = dark_and_sunny(tmp_path, 150, 1)
    p = POLICIES["feasibility-aware"](inst, None)
    assert p.job("j").steps == (Run("dark", 0.0, 2 * H),)
    assert evaluate(inst, p).grid_energy_kwh == pytest.approx(1.5)


def sunny_later(tmp):
    """One site, dark for 4 h then 3 kW for 4 h; a 2 h job released at 0, no deadline."""
    return load_instance(write_instance(
        tmp, sites={"home": 1}, renewable={"home": [0] * 16 + [3] * 16},
        jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 2, "checkpoint_gb": 5}]))


def test_wait_awhile_shifts_into_the_sun_and_static_does_not(tmp_path):
    inst = sunny_later(tmp_path)
    waited = POLICIES["wait-awhile"](inst, None)
    assert waited.job("j").steps == (Run("home", 4 * H, 6 * H),)
    assert evaluate(inst, waited).grid_energy_kwh == 0
    static = POLICIES["static"](inst, None)
    assert static.job("j").steps == (Run("home", 0, 2 * H),)
    assert evaluate(inst, static).grid_energy_kwh == pytest.approx(1.5)


def test_static_never_moves_nor_waits(tmp_path):
    inst = dark_and_sunny(tmp_path, 5, 10)
    assert POLICIES["static"](inst, None).job("j").steps == (Run("dark", 0, 2 * H),)


def test_wait_awhile_respects_the_deadline(tmp_path):
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 16 + [3] * 16},
        jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 2, "checkpoint_gb": 5,
               "deadline_h": 5}]))
    # green slots before the 5 h deadline: 4-5 h only. The other hour cannot run earlier in a
    # run of its own: the restart's restore (10.4 s) would not fit before the deadline, and a
    # run that is not the last fills whole slots; so one run ends at the deadline.
    steps = POLICIES["wait-awhile"](inst, None).job("j").steps
    assert steps == (Run("home", 3 * H, 5 * H),)


def test_wait_awhile_spreads_jobs_over_capacity(tmp_path):
    """Two 1 h jobs, 1 GPU, sun for 2 h: they take the two sunny hours, not the same one."""
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 8 + [1] * 8 + [0] * 8},
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 1,
               "checkpoint_gb": 5} for k in range(2)]))
    p = POLICIES["wait-awhile"](inst, None)
    assert {p.job("j0").steps[0].start_s, p.job("j1").steps[0].start_s} == {2 * H, 3 * H}
    assert evaluate(inst, p).grid_energy_kwh == 0


def test_transfers_on_one_link_are_serialised(tmp_path):
    inst = load_instance(write_instance(
        tmp_path, sites={"dark": 2, "sunny": 2},
        renewable={"dark": [0] * 32, "sunny": [3] * 32},
        jobs=[{"job": f"j{k}", "origin": "dark", "release_h": 0, "work_h": 1,
               "checkpoint_gb": 50} for k in range(2)],
        links=[("dark", "sunny", 10)]))
    p = POLICIES["feasibility-aware"](inst, None)
    starts = sorted(m.start_s for m in moves(p))
    assert starts == [0.0, 40.0]  # 50 GB at 10 Gbps = 40 s each, one after the other
    assert [m.disruption_s for m in moves(p)] == [50.4, 50.4]
    # both resume at sunny at the start of the next slot
    assert {jp.steps[1].start_s for jp in p.jobs} == {900}
    assert evaluate(inst, p).valid


def test_a_long_move_arrives_in_a_later_slot(tmp_path):
    inst = dark_and_sunny(tmp_path, 150, 1)  # 1200 s transfer > one 900 s slot
    p = POLICIES["energy-only"](inst, None)
    # arrives at 00:20, in slot 1; resumes at the start of slot 2, loading its checkpoint
    assert p.job("j").steps == (Migration("dark", "sunny", 0.0, 150.0, 1200.0, 1210.4),
                                Run("sunny", 1800, 1800 + 10.4 + 2 * H, restore_s=10.4))


def test_a_job_that_cannot_meet_its_deadline_is_reported_not_dropped(tmp_path):
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 16},
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 2,
               "checkpoint_gb": 5, "deadline_h": 2} for k in range(2)]))
    for name, policy in POLICIES.items():
        p = policy(inst, None)
        e = evaluate(inst, p)
        assert e.valid and e.deadline_misses == 1 and e.unfinished_jobs == 0, name
        assert {jp.job for jp in p.jobs} == {"j0", "j1"}


SHIPPED = sorted(p.parent for p in TINY.parent.rglob("instance.toml"))


@pytest.mark.parametrize("directory", SHIPPED, ids=[str(p.relative_to(TINY.parent)) for p in SHIPPED])
def test_every_policy_is_valid_on_every_shipped_instance(directory):
    inst = load_instance(directory)
    for name, policy in POLICIES.items():
        e = evaluate(inst, policy(inst, None))
        assert e.valid, (name, e.violations[:3])
        if name in ("static", "wait-awhile"):
            assert e.migrations == 0, name
        if name == "feasibility-aware":
            assert e.migrations_outside_domain == 0 and e.deadline_misses == 0


def test_policies_are_deterministic():
    inst = load_instance(TINY)
    for name, policy in POLICIES.items():
        assert policy(inst, None).to_json() == policy(inst, None).to_json(), name


def test_cli_plan_writes_three_files(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([*CLI, "plan", str(TINY), "--policy", "wait-awhile", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "grid_energy_kwh" in r.stdout and "wait-awhile" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    plan = Plan.load(out / "plan.json")
    inst = load_instance(TINY)
    assert summary["policy"] == "wait-awhile" and summary["wall_s"] >= 0
    assert summary["grid_energy_kwh"] == pytest.approx(evaluate(inst, plan).grid_energy_kwh)
    rows = (out / "schedule.csv").read_text().splitlines()
    assert len(rows) == 1 + inst.n_jobs * inst.n_slots


def test_cli_plan_unknown_policy(tmp_path):
    r = subprocess.run([*CLI, "plan", str(TINY), "--policy", "magic", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: --policy: unknown policy 'magic'")
    assert not (tmp_path / "o").exists()


def test_cli_plan_refuses_a_file_as_out_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    r = subprocess.run([*CLI, "plan", str(TINY), "--out", str(tmp_path / "f")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--out must be a folder" in r.stderr and "Traceback" not in r.stderr
