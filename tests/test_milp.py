"""The MILP on tiny instances whose optimum is worked out by hand, and on the shipped ones."""

import json
import subprocess
import sys

import pytest

from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.engine.index import build_index
from milp.engine.solve import NoPlanFound, SolveOptions, plan_milp
from milp.plan import Migration, Run
from milp.policies import POLICIES
from tests.conftest import COUNTED, HANG_GUARD, TINY, write_instance

H = 3600.0
#: To the optimum (relative gap 0), the work bounded by counts, not seconds: a test that
#: asserts "optimal" fails alike on any machine when the node limit does not suffice.
EXACT = SolveOptions(gap=0, **COUNTED)
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
    # optimum: move (5 GB at 10 Gbps = 4 s at 1.8 kW on the dark site), load and run 2 h in
    # the sun
    assert e.grid_energy_kwh == pytest.approx(1.8 * 4 / H)
    assert e.migrations == 1 and facts.status == "optimal"
    move = plan.job("j0").steps[0]
    assert isinstance(move, Migration) and (move.src, move.dst) == ("dark", "sunny")


def test_a_class_c_job_on_a_slow_link_must_not_move(tmp_path):
    inst = dark_and_sunny(tmp_path, 150, 1)  # 1210.4 s > 1080 s: outside the domain
    plan, facts, e = solve(inst)
    assert e.migrations == 0
    assert e.grid_energy_kwh == pytest.approx(2 * 0.75)
    assert facts.variables > 0 and plan.job("j0").steps == (Run("dark", 0, 2 * H),)


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
    plan, facts = plan_milp(inst, SolveOptions(gap=0, elastic=True, **COUNTED))
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
    r = subprocess.run([*CLI, "plan", str(d), "--policy", "milp", *HANG_GUARD, "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "no plan meets every deadline" in r.stderr and "--elastic" in r.stderr
    assert "GPU-h cannot be done by" in r.stderr and "no link leaves home" in r.stderr
    assert not (tmp_path / "o").exists()
    r = subprocess.run([*CLI, "plan", str(d), "--policy", "milp", "--elastic", *HANG_GUARD,
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    # one GPU for 2 h before the deadlines: 2 of the 4 GPU-h are left, whichever job does them
    assert summary["unfinished_work_h"] == pytest.approx(2) and summary["solver"]["elastic"]


def test_sparse_sets_follow_the_domain(tmp_path):
    index = build_index(dark_and_sunny(tmp_path, 5, 10))
    # moves dark->sunny only while the job can resume inside sunny's window (12 slots): from
    # slot 0 to 10 (a move in slot 11 would resume in slot 12, after the window); sunny->dark
    # never (no window there)
    assert set(zip(index.moves.src.tolist(), index.moves.dst.tolist())) == {(0, 1)}
    assert sorted(index.moves.slot.tolist()) == list(range(11))
    index = build_index(dark_and_sunny(tmp_path / "c", 150, 1))
    assert len(index.moves) == 0 and index.fixed_jobs == {0}


def test_a_one_slot_window_is_no_destination(tmp_path):
    """Moving into a window of one slot is never inside the domain: the job could only resume
    there after the window has ended (week-5site 2019-04-18, job j0048)."""
    inst = load_instance(write_instance(
        tmp_path, sites={"dark": 1, "sunny": 1},
        renewable={"dark": [0] * 8, "sunny": [3] + [0] * 7},
        jobs=[{"job": "j", "origin": "dark", "release_h": 0, "work_h": 1, "checkpoint_gb": 1}],
        links=[("dark", "sunny", 100)]))
    index = build_index(inst)
    assert len(index.moves) == 0 and index.fixed_jobs == {0}


def split_sun(tmp, toml_extra=""):
    """One site, 1 GPU: sun (3 kW) in slots 0-1 and 4-5, dark in 2-3 and 6-7; a 1 h job due
    at 2 h (8 slots of 15 min)."""
    return load_instance(write_instance(
        tmp, sites={"home": 1}, renewable={"home": [3, 3, 0, 0, 3, 3, 0, 0]},
        jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 1, "checkpoint_gb": 5,
               "deadline_h": 2}], toml_extra=toml_extra))


def steps_of(plan, job):
    """(site, start, end, restore) of a job's runs, times rounded to the microsecond."""
    return [(s.site, round(s.start_s, 6), round(s.end_s, 6), round(s.restore_s, 6))
            for s in plan.job(job).steps]


def test_a_restart_pays_its_restore(tmp_path):
    """Free of caps, the optimum runs the two sunny half-hours: 30 min, a pause, then a restart
    that loads the checkpoint (10.4 s) and computes 30 min; a run ends on the slot grid unless
    it is the job's last, so the restart's last 10.4 s fall in dark slot 6: 0.75 kW × 10.4 s of
    grid."""
    inst = split_sun(tmp_path, "[execution]\nmax_restarts = 2\nmin_run_minutes = 0\n")
    plan, facts, e = solve(inst)
    assert e.grid_energy_kwh == pytest.approx(0.75 * 10.4 / H)
    assert steps_of(plan, "j") == [("home", 0, 1800, 0), ("home", 3600, 5410.4, 10.4)]
    assert (e.runs, e.restarts) == (2, 1) and facts.status == "optimal"


def test_no_restart_means_one_run_through_the_dark(tmp_path):
    """max_restarts = 0: one run of 1 h, which always covers two dark slots: 0.375 kWh."""
    inst = split_sun(tmp_path, "[execution]\nmax_restarts = 0\nmin_run_minutes = 0\n")
    _, _, e = solve(inst)
    assert e.grid_energy_kwh == pytest.approx(0.375)
    assert (e.runs, e.restarts) == (1, 0)


def test_a_minimum_run_length_rules_out_the_short_first_run(tmp_path):
    """min_run_minutes = 45: the 30-min first run is too short; the best is 45 min (one dark
    slot, 0.1875 kWh), a pause, then 15 min + the restore in the sun."""
    inst = split_sun(tmp_path, "[execution]\nmax_restarts = 2\nmin_run_minutes = 45\n")
    plan, _, e = solve(inst)
    assert e.grid_energy_kwh == pytest.approx(0.1875)
    assert steps_of(plan, "j") == [("home", 0, 2700, 0), ("home", 3600, 4510.4, 10.4)]
    assert e.short_runs == 0


def test_a_site_wan_cap_spreads_transfers_over_slots(tmp_path):
    """Two jobs leave dark site a for sunny b and c (1 GPU each) over 10 Gbps links; a's WAN
    carries 10 Gbps: the two transfers cannot share a slot, so one job leaves a slot later."""
    d = write_instance(tmp_path, sites={"a": 2, "b": 1, "c": 1},
                       renewable={"a": [0] * 16, "b": [3] * 16, "c": [3] * 16},
                       jobs=[{"job": f"j{k}", "origin": "a", "release_h": 0, "work_h": 1,
                              "checkpoint_gb": 5} for k in range(2)],
                       links=[("a", "b", 10), ("a", "c", 10)])
    (d / "sites.csv").write_text("site,gpus,wan_gbps\na,2,10\nb,1,\nc,1,\n")
    plan, _, e = solve(load_instance(d))
    moves = sorted((s for jp in plan.jobs for s in jp.steps if isinstance(s, Migration)),
                   key=lambda m: m.start_s)
    assert len(moves) == 2 and {m.dst for m in moves} == {"b", "c"}
    assert moves[1].start_s >= moves[0].start_s + 900
    assert e.grid_energy_kwh == pytest.approx(2 * 1.8 * 4 / H)


def test_greedy_plans_are_points_of_the_model_with_the_evaluators_numbers():
    """Every in-domain greedy plan of tiny-3site is a feasible point of the compact model (the
    warm start places every job) and the model's grid energy there is the evaluator's."""
    import pyomo.environ as pyo

    from milp import physics
    from milp.engine.compact import build_model, violated, warm_start
    inst = load_instance(TINY)
    index = build_index(inst)
    model = build_model(index)
    for name in ("static", "wait-awhile", "feasibility-aware"):
        plan = POLICIES[name](inst, None)
        sol = physics.solution_from_plan(inst, plan)
        assert warm_start(model, index, sol) == inst.n_jobs
        assert violated(model) == [], name
        e = evaluate(inst, plan)
        assert pyo.value(model.grid_energy) == pytest.approx(e.grid_energy_kwh, abs=1e-9)
        assert pyo.value(model.objective) == pytest.approx(physics.objective(inst, sol)[0])


@pytest.mark.parametrize("name", ["tiny-3site"])
def test_the_compact_engine_is_valid_and_never_worse_than_its_seed(name):
    """The compact model on the hand-made day (its root LP on a real 5-site day takes minutes;
    the decomposition's plans of every shipped day are tested in test_decomposition.py)."""
    inst = load_instance(TINY.parent / name)
    root_only = {**COUNTED, "node_limit": 1}     # 200 nodes take minutes on tiny-3site
    plan, facts = plan_milp(inst, SolveOptions(engine="compact", gap=0.01, **root_only))
    assert facts.engine == "compact"
    e = evaluate(inst, plan)
    assert e.valid, e.violations[:3]
    assert e.migrations_outside_domain == 0 and e.deadline_misses == 0
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh, rel=1e-6, abs=1e-9)
    assert e.grid_energy_kwh <= facts.seed_grid_energy_kwh + 1e-9
    rules = inst.execution
    assert e.restarts <= rules.max_restarts * inst.n_jobs and e.short_runs == 0


def test_the_seeds_after_the_first_are_skipped_once_the_time_is_up():
    """The greedy seeds used to be made whatever the time limit, so --time-limit could not
    hold on long horizons (feasibility-aware takes minutes at the size policy's corners). A
    deadline already passed stands in for such a day, deterministically: ``static``, the
    cheapest, is made, the others are skipped, the engine does not run, and the plan is
    static's."""
    import time

    inst = load_instance(TINY)
    plan, facts = plan_milp(inst, SolveOptions(time_limit_s=1,
                                               started=time.perf_counter() - 10))
    assert facts.seeds_skipped == ["wait-awhile", "feasibility-aware"]
    assert (facts.engine, facts.status, facts.seed_policy) == ("none", "time_limit", "static")
    e = evaluate(inst, plan)
    assert e.valid and e.deadline_misses == 0
    static = evaluate(inst, POLICIES["static"](inst, None))
    assert e.grid_energy_kwh == pytest.approx(static.grid_energy_kwh)
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh)


def test_no_seed_is_skipped_while_there_is_time():
    from milp.engine.solve import SEED_POLICIES, seeds_within
    import time

    seeds, skipped = seeds_within(load_instance(TINY), deadline=time.perf_counter() + 600)
    assert skipped == [] and {s[0] for s in seeds} <= set(SEED_POLICIES) and seeds


#: The statuses summary.json may report beside a plan (README.md, 'The MILP planner').
PLAN_STATUSES = {"optimal", "gap_reached", "stopped", "time_limit", "seed_kept", "too_large"}


@pytest.mark.parametrize("engine", ["compact", "decomposition"])
def test_compute_kw_at_the_top_of_its_range_keeps_the_seed_with_a_plan_status(tiny_copy,
                                                                              engine):
    """compute_kw = 1e12 (the largest accepted) breaks HiGHS's numerics: the compact engine
    used to end with a no-plan status (infeasible, error_no_plan) written beside the valid seed
    returned. The status now says the seed was kept. And the decomposition's best responses
    took rounding noise at that scale for improvements, sweep after sweep: a response must now
    be cheaper by a share of the job's cost (search.IMPROVES)."""
    toml = tiny_copy / "instance.toml"
    toml.write_text(toml.read_text().replace("compute_kw = 0.75 ", "compute_kw = 1e12 "))
    inst = load_instance(tiny_copy)
    assert inst.compute_kw.max() == 1e12
    plan, facts = plan_milp(inst, SolveOptions(engine=engine, **COUNTED))
    e = evaluate(inst, plan)
    assert e.valid and e.deadline_misses == 0
    assert facts.status in PLAN_STATUSES, facts.status
    assert facts.grid_energy_kwh == pytest.approx(e.grid_energy_kwh, rel=1e-9)
    if engine == "decomposition":   # rounding "improvements" cycled until the sweep limit
        assert facts.sweeps < COUNTED["max_sweeps"], facts.sweeps


@pytest.fixture
def busy_cores():
    """A busy process per usable core beside the test, as on a loaded CI machine; each is
    ended (by its own handle) after the test."""
    import os

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(len(os.sched_getaffinity(0)))]
    yield len(hogs)
    for hog in hogs:
        hog.kill()
        hog.wait()


def test_exact_results_hold_beside_a_busy_process_per_core(tmp_path, busy_cores):
    """The MILP tests' results rest on counts, not seconds: hand-checked optima and a plan's
    bytes come out the same with every core busy."""
    plan, facts, e = solve(dark_and_sunny(tmp_path / "a", 5, 10))
    assert facts.status == "optimal" and e.grid_energy_kwh == pytest.approx(1.8 * 4 / H)
    inst = split_sun(tmp_path / "b", "[execution]\nmax_restarts = 2\nmin_run_minutes = 0\n")
    plan, facts, e = solve(inst)
    assert facts.status == "optimal" and e.grid_energy_kwh == pytest.approx(0.75 * 10.4 / H)
    assert steps_of(plan, "j") == [("home", 0, 1800, 0), ("home", 3600, 5410.4, 10.4)]
    loaded, _ = plan_milp(load_instance(TINY), SolveOptions(engine="decomposition", **COUNTED))
    assert busy_cores >= 1
    assert loaded.to_json() == plan_milp(load_instance(TINY), SolveOptions(
        engine="decomposition", **COUNTED))[0].to_json()
