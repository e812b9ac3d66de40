"""The MILP on tiny instances whose optimum is worked out by hand, and on the shipped ones."""

import json
import subprocess
import sys

import pytest

from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.model import build_index
from milp.plan import Migration, Run
from milp.policies import POLICIES
from milp.solve import NoPlanFound, SolveOptions, plan_milp
from tests.conftest import TINY, write_instance

H = 3600.0
EXACT = SolveOptions(time_limit_s=60, gap=0)
CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


def solve(inst, options=EXACT):
    plan, facts = plan_milp(inst, options)
    e = evaluate(inst, plan)
    assert e.valid, e.violations
    assert e.migrations_outside_domain == 0
    # the evaluator reproduces the solver's grid energy (shared rules, not shared code)
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh, rel=1e-6, abs=1e-9)
    return plan, facts, e


def dark_and_sunny(tmp, checkpoint_gb, gbps, jobs=1, sunny_gpus=1, **kw):
    """'dark' (origin, never renewable) and 'sunny' (3 kW for the first 3 h); 2 h jobs released
    at 0; 32 slots of 15 min. 0.1 × 3 h = 1080 s of disruption allowed at 'sunny' at 00:00."""
    return load_instance(write_instance(
        tmp, sites={"dark": 1, "sunny": sunny_gpus},
        renewable={"dark": [0] * 32, "sunny": [3] * 12 + [0] * 20},
        jobs=[{"job": f"j{k}", "origin": "dark", "release_h": 0, "work_h": 2,
               "checkpoint_gb": checkpoint_gb, **kw} for k in range(jobs)],
        links=[("dark", "sunny", gbps), ("sunny", "dark", gbps)]))


def test_a_job_migrates_to_catch_the_sunny_window(tmp_path):
    plan, facts, e = solve(dark_and_sunny(tmp_path, 5, 10))
    # optimum: move (5 GB at 10 Gbps = 4 s at 1.8 kW on the dark site), run 2 h in the sun
    assert e.grid_energy_kwh == pytest.approx(1.8 * 4 / H)
    assert e.migrations == 1 and facts.status == "optimal"
    move = plan.job("j0").steps[0]
    assert isinstance(move, Migration) and (move.src, move.dst) == ("dark", "sunny")


def test_a_class_c_job_on_a_slow_link_must_not_move(tmp_path):
    inst = dark_and_sunny(tmp_path, 150, 1)  # 1210.4 s > 1080 s: outside the domain
    plan, facts, e = solve(inst)
    assert e.migrations == 0
    assert e.grid_energy_kwh == pytest.approx(2 * 0.75)
    assert facts.binaries == 0  # no move is possible, so nothing is integer


def test_two_transfers_are_serialised_by_the_link(tmp_path):
    inst = dark_and_sunny(tmp_path, 50, 10, jobs=2, sunny_gpus=2)
    inst_gpus = inst.gpus.tolist()
    assert inst_gpus == [1, 2]
    plan, _, e = solve(inst)
    moves = sorted((s for jp in plan.jobs for s in jp.steps if isinstance(s, Migration)),
                   key=lambda m: m.start_s)
    assert len(moves) == 2
    # 40 s each on one 10 Gbps link: the second starts when the first ends
    assert moves[1].start_s >= moves[0].start_s + 40 - 1e-6
    # optimum: both move (2 × 40 s × 1.8 kW on the dark site), all compute in the sun
    assert e.grid_energy_kwh == pytest.approx(2 * 1.8 * 40 / H)


def test_a_deadline_forces_grid_energy(tmp_path):
    """Home is dark for 4 h, then sunny; the job is due after 2 h: 1.5 kWh of grid, no less."""
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 16 + [3] * 16},
        jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 2, "checkpoint_gb": 5,
               "deadline_h": 2}]))
    plan, _, e = solve(inst)
    assert e.grid_energy_kwh == pytest.approx(1.5)
    assert plan.job("j").steps == (Run("home", 0, 2 * H),)


def test_waiting_for_the_sun_beats_running_now(tmp_path):
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 16 + [3] * 16},
        jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 2, "checkpoint_gb": 5}]))
    plan, _, e = solve(inst)
    assert e.grid_energy_kwh == pytest.approx(0)
    # earliest green start, by the completion tie-breaker
    assert plan.job("j").steps == (Run("home", 4 * H, 6 * H),)


def test_partial_renewable_is_shared_across_gpus(tmp_path):
    """2 GPUs, 0.75 kW of sun for 4 h, two 1 h jobs of 0.75 kW: running both at once would
    draw grid power; the optimum runs them one after the other, all green."""
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 2}, renewable={"home": [0.75] * 16},
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 1,
               "checkpoint_gb": 5} for k in range(2)]))
    _, _, e = solve(inst)
    assert e.grid_energy_kwh == pytest.approx(0)


def test_infeasible_deadlines_raise_and_elastic_plans_anyway(tmp_path):
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 16},
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 2,
               "checkpoint_gb": 5, "deadline_h": 2} for k in range(2)]))
    with pytest.raises(NoPlanFound) as err:
        plan_milp(inst, EXACT)
    assert err.value.facts.status == "infeasible"
    plan, facts = plan_milp(inst, SolveOptions(time_limit_s=30, gap=0, elastic=True))
    e = evaluate(inst, plan)
    assert e.valid and facts.elastic
    # one job done, the other cannot start before its deadline: 2 GPU-h unfinished
    assert sum(plan.info["unfinished_gpu_h"].values()) == pytest.approx(2)
    assert e.grid_energy_kwh == pytest.approx(1.5)


def test_cli_explains_infeasibility(tmp_path):
    d = write_instance(
        tmp_path / "inst", sites={"home": 1}, renewable={"home": [0] * 16},
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 2,
               "checkpoint_gb": 5, "deadline_h": 2} for k in range(2)])
    r = subprocess.run([*CLI, "plan", str(d), "--policy", "milp", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "no plan meets every deadline" in r.stderr and "--elastic" in r.stderr
    assert "job j1: 2 of 2 GPU-h cannot be done by" in r.stderr or \
        "job j0: 2 of 2 GPU-h cannot be done by" in r.stderr
    assert not (tmp_path / "o").exists()
    r = subprocess.run([*CLI, "plan", str(d), "--policy", "milp", "--elastic", "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["unfinished_jobs"] == 1 and summary["solver"]["elastic"] is True


def test_sparse_sets_follow_the_domain(tmp_path):
    index = build_index(dark_and_sunny(tmp_path, 5, 10))
    # moves dark->sunny only while sunny has a window (12 slots); sunny->dark never (no window)
    assert {(mv.src, mv.dst) for mv in index.moves} == {(0, 1)}
    assert sorted(mv.slot for mv in index.moves) == list(range(12))
    index = build_index(dark_and_sunny(tmp_path / "c", 150, 1))
    assert index.moves == [] and index.fixed_jobs == {0}


@pytest.fixture(scope="module")
def tiny_results():
    inst = load_instance(TINY)
    plan, facts = plan_milp(inst, SolveOptions(time_limit_s=60))
    return inst, plan, facts


def test_milp_on_the_shipped_instance_beats_every_greedy(tiny_results):
    inst, plan, facts = tiny_results
    e = evaluate(inst, plan)
    assert e.valid and e.migrations_outside_domain == 0 and e.deadline_misses == 0
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh, rel=1e-6)
    for name, policy in POLICIES.items():
        assert e.grid_energy_kwh <= evaluate(inst, policy(inst, None)).grid_energy_kwh, name
    assert facts.warm_start_accepted is True and facts.seed_policy in ("feasibility-aware",
                                                                        "wait-awhile")
    assert facts.improved is True


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from milp.model import mcnaughton  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda g: st.tuples(st.just(g), st.lists(
    st.floats(0.001, 1.0), min_size=1, max_size=10).filter(lambda xs: sum(xs) <= g))))
def test_mcnaughton_packs_any_feasible_slot(case):
    gpus, shares = case
    pieces = mcnaughton(list(enumerate(shares)), 900.0, 900.0)
    for j, share in enumerate(shares):
        mine = sorted((a, b) for k, a, b in pieces if k == j)
        assert sum(b - a for a, b in mine) == pytest.approx(share * 900)
        assert all(mine[i][1] <= mine[i + 1][0] + 1e-6 for i in range(len(mine) - 1))
        assert all(900 - 1e-6 <= a and b <= 1800 + 1e-6 for a, b in mine)
    events = sorted([(a, 1) for _, a, _ in pieces] + [(b, -1) for _, _, b in pieces],
                    key=lambda e: (round(e[0], 6), e[1]))
    level = 0
    for _, d in events:
        level += d
        assert level <= gpus


SHIPPED = sorted(p.parent for p in (TINY.parent).rglob("instance.toml"))


@pytest.mark.parametrize("directory", SHIPPED, ids=[str(p.relative_to(TINY.parent)) for p in SHIPPED])
def test_milp_is_valid_and_beats_every_greedy_on_every_shipped_instance(directory):
    inst = load_instance(directory)
    plan, facts = plan_milp(inst, SolveOptions(time_limit_s=8, gap=0.01))
    e = evaluate(inst, plan)
    assert e.valid, e.violations[:3]
    assert e.migrations_outside_domain == 0 and e.deadline_misses == 0
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh, rel=1e-6, abs=1e-9)
    for name, policy in POLICIES.items():
        greedy = evaluate(inst, policy(inst, None)).grid_energy_kwh
        assert e.grid_energy_kwh <= greedy + 1e-9, name


def test_a_job_whose_moves_the_background_blocks_stays_at_its_origin(tmp_path):
    from milp.model import Background
    inst = dark_and_sunny(tmp_path, 5, 10)
    bg = Background.empty(inst)
    bg.link_busy.update((0, 1, t) for t in range(inst.n_slots))
    index = build_index(inst, jobs=[0], background=bg)
    assert index.moves == [] and index.fixed_jobs == {0}
    assert {n for (_, n, _) in index.occ} == {0}


def test_elastic_without_the_whole_model_returns_the_seed(tmp_path):
    inst = dark_and_sunny(tmp_path, 5, 10)
    plan, facts = plan_milp(inst, SolveOptions(time_limit_s=5, elastic=True,
                                               full_model_max_vars=1))
    assert facts.status == "neighbourhood_only" and evaluate(inst, plan).valid
    assert plan.info["unfinished_gpu_h"] == {}
