"""Replay (faults and forecast error) and re-planning from a state, on hand-made instances
whose outcome can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.plan import JobPlan, Migration, Plan, Run
from milp.replay import Faults, job_table, reality, replay
from milp.state import State, JobState, load_state, remainder, replan
from tests.conftest import COUNTED, TINY, run_cli, write_instance

H = 3600.0


def hand_plan(inst, *jobs: tuple[str, tuple]) -> Plan:
    return Plan(inst.name, inst.start.isoformat(), inst.slot_minutes, "hand",
                tuple(JobPlan(j, steps) for j, steps in jobs))


# ---- a bandwidth drop pushes a planned move out of the domain ------------------------------

def two_slot_window(tmp_path: Path):
    """Job j (80 GB) at dark site a; site b sunny for two slots: α·W = 0.1 × 1800 s = 180 s.
    At 10 Gbps the move takes 64 + 10.4 = 74.4 s (inside); at 2.5 Gbps 256 + 10.4 (outside)."""
    return load_instance(write_instance(
        tmp_path / "bw", sites={"a": 1, "b": 1},
        renewable={"a": [0] * 8, "b": [5, 5, 0, 0, 0, 0, 0, 0]},
        links=[("a", "b", 10), ("b", "a", 10)],
        jobs=[{"job": "j", "origin": "a", "release_h": 0, "work_h": 0.5, "checkpoint_gb": 80}]))


def moved_plan(inst):
    """Move at 0, resume at b at the next slot start loading the checkpoint, run 30 min."""
    return hand_plan(inst, ("j", (Migration("a", "b", 0.0, 80.0, 64.0, 74.4),
                                  Run("b", 900.0, 910.4 + 0.5 * H, restore_s=10.4))))


def test_slower_link_makes_the_planned_move_leave_the_domain(tmp_path):
    inst = two_slot_window(tmp_path)
    plan = moved_plan(inst)
    assert evaluate(inst, plan).migrations_outside_domain == 0
    r = replay(inst, plan, Faults(bandwidth_factor=0.25))
    move = r.executed.jobs[0].steps[0]
    assert move.transfer_s == pytest.approx(256.0) and move.disruption_s == pytest.approx(266.4)
    assert r.actual.valid and r.actual.migrations_outside_domain == 1
    assert r.actual.unfinished_jobs == 0        # arrival at 256 s, still before 900 s
    assert r.planned.migrations_outside_domain == 0


def test_queued_transfers_delay_the_next_job(tmp_path):
    """Two 40 GB moves planned back to back on one 10 Gbps link (32 s each); at half the
    bandwidth the second waits for the first (64 s) and its job resumes later."""
    d = write_instance(
        tmp_path / "q", sites={"a": 2, "b": 2}, renewable={"a": [0] * 4, "b": [5] * 4},
        links=[("a", "b", 10)],
        jobs=[{"job": j, "origin": "a", "release_h": 0, "work_h": 0.2, "checkpoint_gb": 40}
              for j in ("j1", "j2")])
    inst = load_instance(d)
    # each job's run starts when its checkpoint arrives and loads it (10.4 s) first
    plan = hand_plan(inst, *[(j, (Migration("a", "b", 32.0 * k, 40.0, 32.0, 42.4),
                                  Run("b", 32.0 * k + 32.0, 32.0 * k + 42.4 + 0.2 * H,
                                      restore_s=10.4)))
                             for k, j in enumerate(("j1", "j2"))])
    assert evaluate(inst, plan).valid
    r = replay(inst, plan, Faults(bandwidth_factor=0.5))
    m1, m2 = r.executed.jobs[0].steps[0], r.executed.jobs[1].steps[0]
    assert (m1.start_s, m2.start_s) == (pytest.approx(0.0), pytest.approx(64.0))
    run2 = r.executed.jobs[1].steps[1]
    assert run2.start_s == pytest.approx(64.0 + 64.0)          # arrival, not the plan's 64
    assert run2.restore_s == pytest.approx(10.4)
    assert run2.end_s == pytest.approx(32.0 + 42.4 + 0.2 * H)  # the GPU is freed as planned
    assert r.actual.valid and r.actual.unfinished_jobs == 2   # both arrive late
    left = job_table(inst, r).set_index("job")["work_left_h"]
    assert left["j1"] == pytest.approx((74.4 - 42.4) / H)
    assert left["j2"] == pytest.approx((138.4 - 74.4) / H)


# ---- an outage mid-job, then a re-plan that recovers --------------------------------------

def outage_instance(tmp_path: Path):
    """Job j (2 h, 5 GB) runs at a from 0 h; a goes dark at 1 h 10 min. Checkpoints every
    30 min: the work of 1 h is kept, 10 min are lost. Site b (sunny, fast link) can take it."""
    return load_instance(write_instance(
        tmp_path / "out", sites={"a": 1, "b": 1},
        renewable={"a": [5] * 24, "b": [5] * 24}, links=[("a", "b", 10), ("b", "a", 10)],
        jobs=[{"job": "j", "origin": "a", "release_h": 0, "work_h": 2, "checkpoint_gb": 5,
               "deadline_h": 6}]))


def test_outage_mid_job_falls_back_to_the_last_checkpoint(tmp_path):
    inst = outage_instance(tmp_path)
    plan = hand_plan(inst, ("j", (Run("a", 0.0, 2 * H),)))
    r = replay(inst, plan, Faults(outages=((0, 70 * 60.0),)))
    assert r.executed.jobs[0].steps == (Run("a", 0.0, H), Run("a", H, 70 * 60.0, lost=True))
    assert r.actual.valid
    assert r.actual.lost_work_h == pytest.approx(10 / 60)
    assert r.actual.unfinished_jobs == 1 and r.actual.unfinished_work_h == pytest.approx(1.0)
    row = job_table(inst, r).iloc[0]
    assert (row["finished"], row["work_left_h"], row["lost_h"]) == (False, pytest.approx(1.0),
                                                                  pytest.approx(10 / 60))
    # the dark site draws no renewable power after 1 h 10 min
    assert r.real.renewable_kw[0, 4] == pytest.approx(5 * (10 / 15)) and \
        r.real.renewable_kw[0, 5:].sum() == 0


@pytest.mark.parametrize("policy", ["milp", "feasibility-aware"])
def test_replan_after_the_outage_recovers(tmp_path, policy):
    inst = outage_instance(tmp_path)
    plan = hand_plan(inst, ("j", (Run("a", 0.0, 2 * H),)))
    r = replay(inst, plan, Faults(outages=((0, 70 * 60.0),)), replan=policy,
               options=COUNTED)
    assert r.actual.valid and r.actual.unfinished_jobs == 0 and r.actual.deadline_misses == 0
    assert r.actual.lost_work_h == pytest.approx(10 / 60)
    steps = r.executed.jobs[0].steps
    moves = [s for s in steps if isinstance(s, Migration)]
    assert len(moves) == 1 and (moves[0].src, moves[0].dst) == ("a", "b")
    assert moves[0].start_s >= 75 * 60.0            # re-planned at the next slot boundary
    assert all(s.site == "b" for s in steps[steps.index(moves[0]) + 1:])
    assert [e["event"][:40] for e in r.events] == [
        "outage at a", f"re-plan with {policy} (outage at a): switched"[:40]]
    state = r.first_state
    assert state.at_s == 75 * 60.0 and state.down_sites == {0}
    assert state.jobs[0] == JobState(0, pytest.approx(1.0), 75 * 60.0)


def test_plan_once_and_replan_agree_without_faults(tmp_path):
    inst = load_instance(TINY)
    from milp.policies import POLICIES
    plan = POLICIES["feasibility-aware"](inst, None)
    once = replay(inst, plan, Faults())
    assert once.actual.metrics() == once.planned.metrics()
    assert once.executed.jobs == plan.jobs


def test_replanning_never_makes_the_outlook_worse_and_a_kept_plan_continues_unchanged():
    """Re-planning the static plan with static every 2 h ties at every step: the plan is kept
    and, followed in pieces, executes exactly as made. Re-planning the feasibility-aware plan
    with static switches only when the outlook is better, and ends no worse."""
    from milp.policies import POLICIES
    inst = load_instance(TINY)
    plan = POLICIES["static"](inst, None)
    r = replay(inst, plan, Faults(), replan="static", replan_every_s=2 * H)
    verdicts = [e["event"] for e in r.events]
    assert len(verdicts) == 11 and all(": kept the plan" in v for v in verdicts)
    assert r.actual.metrics() == r.planned.metrics()
    merged = {jp.job: _merge(jp.steps) for jp in r.executed.jobs}
    assert merged == {jp.job: list(jp.steps) for jp in plan.jobs}

    plan = POLICIES["feasibility-aware"](inst, None)
    r = replay(inst, plan, Faults(), replan="static", replan_every_s=2 * H)
    assert any(": switched" in e["event"] for e in r.events)
    assert r.actual.unfinished_jobs == 0
    assert r.actual.grid_energy_kwh <= r.planned.grid_energy_kwh + 1e-9


def _merge(steps):
    """Runs cut at re-plan instants, joined again."""
    out = []
    for s in steps:
        if out and isinstance(s, Run) and isinstance(out[-1], Run) and \
                out[-1].site == s.site and out[-1].lost == s.lost and \
                abs(out[-1].end_s - s.start_s) < 1e-9:
            out[-1] = Run(s.site, out[-1].start_s, s.end_s, s.lost, out[-1].restore_s)
        else:
            out.append(s)
    return out


@pytest.fixture(scope="module")
def tiny_moving():
    from milp.policies import POLICIES
    inst = load_instance(TINY)
    return inst, POLICIES["energy-only"](inst, None)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(factor=st.floats(0.05, 2.0), noise=st.floats(0, 0.8), seed=st.integers(0, 9),
       outages=st.lists(st.tuples(st.integers(0, 2), st.floats(0, 23.9)), max_size=3),
       every_min=st.sampled_from([5, 30, 120]),
       again=st.sampled_from([None, "feasibility-aware", "static"]))
def test_no_job_is_ever_lost(tiny_moving, factor, noise, seed, outages, every_min, again):
    """Whatever the faults, the executed plan is physically valid and every job of the
    instance is in the job table, finished or with its work left; done + left = work."""
    inst, plan = tiny_moving
    faults = Faults(factor, noise, seed, tuple((n, h * H) for n, h in outages), every_min * 60)
    r = replay(inst, plan, faults, replan=again)
    table = job_table(inst, r)
    assert r.actual.valid, r.actual.violations
    assert sorted(table["job"]) == sorted(inst.jobs)
    assert np.allclose(table["work_done_h"] + table["work_left_h"], inst.work_h)
    assert table["finished"].sum() == inst.n_jobs - r.actual.unfinished_jobs
    assert r.actual.lost_work_h <= len(outages) * every_min / 60 * inst.gpus.max() + 1e-9
    dark = faults.dark_from(inst.n_sites)
    for jp in r.executed.jobs:      # nothing runs at a site after it went dark
        for step in jp.steps:
            if isinstance(step, Run):
                assert step.end_s <= dark[inst.site_index_map[step.site]] + 1e-6


def test_renewable_noise_is_seeded_and_centred():
    inst = load_instance(TINY)
    a, b = reality(inst, Faults(renewable_noise=0.2, seed=1)), \
        reality(inst, Faults(renewable_noise=0.2, seed=1))
    c = reality(inst, Faults(renewable_noise=0.2, seed=2))
    assert np.array_equal(a.renewable_kw, b.renewable_kw)
    assert not np.array_equal(a.renewable_kw, c.renewable_kw)
    assert (a.renewable_kw >= 0).all()
    sunny = inst.renewable_kw > 0
    ratio = a.renewable_kw[sunny] / inst.renewable_kw[sunny]
    assert abs(ratio.mean() - 1) < 0.1 and 0.1 < ratio.std() < 0.3


# ---- the state and the remainder -----------------------------------------------------------

def test_remainder_cuts_at_the_next_slot_and_keeps_what_the_state_says(tmp_path):
    inst = load_instance(TINY)
    j = inst.job_index_map["j04"]
    state = State(at_s=3700.0, jobs={j: JobState(2, 0.5, 5000.0)}, down_sites=frozenset({0}),
                  bandwidth_factor=0.5)
    rest = remainder(inst, state)
    assert rest.offset == 5 and rest.inst.n_slots == inst.n_slots - 5
    assert rest.inst.start == inst.time_of(5 * 900)
    k = rest.inst.job_index_map["j04"]
    assert rest.inst.origin[k] == 2 and rest.inst.work_h[k] == 0.5
    assert rest.inst.release_slot[k] == 1       # ready at 5000 s -> slot 6 -> 1 after the cut
    assert rest.inst.gpus[0] == 0 and rest.inst.renewable_kw[0].sum() == 0
    assert np.allclose(rest.inst.link_gbps, inst.link_gbps * 0.5)
    assert rest.inst.renewable_kw[1, 0] == inst.renewable_kw[1, 5]
    plan, rest, local = replan(inst, state, "static")
    assert all(s.start_s >= 5 * 900 for jp in plan.jobs for s in jp.steps)
    assert evaluate(rest.inst, local).valid


def write_state(path: Path, **over) -> Path:
    base = {"schema": "milp-state", "version": 1, "instance": "tiny-3site",
            "at": "2024-06-01T06:00:00-07:00", "down_sites": [], "bandwidth_factor": 1.0,
            "jobs": [{"job": "j04", "site": "wind", "work_left_h": 0.5}]}
    path.write_text(json.dumps(base | over))
    return path


@pytest.mark.parametrize("over, field", [
    ({"jobs": [{"job": "nope", "site": "wind", "work_left_h": 0.5}]}, "jobs[0].job"),
    ({"jobs": [{"job": "j04", "site": "moon", "work_left_h": 0.5}]}, "jobs[0].site"),
    ({"jobs": [{"job": "j04", "site": "wind", "work_left_h": 99}]}, "jobs[0].work_left_h"),
    ({"jobs": [{"job": "j04", "site": "wind", "work_left_h": 0.1, "ready": "noon"}]},
     "jobs[0].ready"),
    ({"at": "2024-06-01T06:00:00"}, "at"),
    ({"at": "2099-01-01T00:00:00+00:00"}, "at"),
    ({"down_sites": ["moon"]}, "down_sites[0]"),
    ({"bandwidth_factor": -1}, "bandwidth_factor"),
    ({"version": 7}, "version"),
    ({"colour": "red"}, "colour"),
])
def test_bad_state_is_one_line_exit_2_and_writes_nothing(tmp_path, over, field):
    state = write_state(tmp_path / "s.json", **over)
    r = run_cli("replan", TINY, "--state", state, "--policy", "static", "--out", tmp_path / "o")
    assert r.exit_code == 2 and f"field '{field}'" in r.error and "\n" not in r.error
    assert not (tmp_path / "o").exists()


def test_state_times_accept_hours_and_offsets(tmp_path):
    inst = load_instance(TINY)
    st = load_state(inst, write_state(tmp_path / "s.json"), at="6.5h")
    assert st.at_s == 6.5 * H and st.jobs[inst.job_index_map["j04"]].ready_s == 6.5 * H
    assert load_state(inst, write_state(tmp_path / "s.json")).at_s == 6 * H


# ---- the commands ----------------------------------------------------------------------------

def test_replay_and_replan_commands(tmp_path):
    plan_dir = tmp_path / "plan"
    assert run_cli("plan", TINY, "--policy", "feasibility-aware", "--out", plan_dir,
                   "--quiet").exit_code == 0
    out = tmp_path / "replay"
    r = run_cli("replay", TINY, plan_dir / "plan.json", "--out", out, "--bandwidth-factor", 0.5,
                "--renewable-noise", 0.2, "--seed", 1, "--outage", "solar@10h",
                "--replan", "feasibility-aware")
    assert r.exit_code == 0, r.output
    assert "re-plan with feasibility-aware (outage at solar)" in r.output
    summary = json.loads((out / "summary.json").read_text())
    inst = load_instance(TINY)
    executed = Plan.load(out / "plan.json")
    real = reality(inst, Faults(0.5, 0.2, 1, ((inst.site_index_map["solar"], 10 * H),)))
    assert evaluate(real, executed).metrics() == summary["actual"]
    assert {"plan.json", "jobs.csv", "summary.json", "state.json"} <= {
        p.name for p in out.iterdir()}
    again = run_cli("replay", TINY, plan_dir / "plan.json", "--out", tmp_path / "again",
                    "--bandwidth-factor", 0.5, "--renewable-noise", 0.2, "--seed", 1,
                    "--outage", "solar@10h", "--replan", "feasibility-aware")
    assert again.exit_code == 0
    for name in ("plan.json", "jobs.csv", "state.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name

    r = run_cli("replan", TINY, "--state", out / "state.json", "--policy", "wait-awhile",
                "--out", tmp_path / "replan")
    assert r.exit_code == 0, r.output
    plan = Plan.load(tmp_path / "replan" / "plan.json")
    at = load_state(inst, out / "state.json").at_s
    assert plan.policy == "replan:wait-awhile"
    assert min(s.start_s for jp in plan.jobs for s in jp.steps) >= at


@pytest.mark.parametrize("args, needle", [
    (["--outage", "moon@3h"], "--outage"),
    (["--outage", "solar"], "--outage"),
    (["--outage", "solar@99h"], "outside the horizon"),
    (["--outage", "solar@2024-06-01T03:00:00"], "no UTC offset"),
    (["--outage", "solar@noon"], "not an ISO 8601 time"),
    (["--replan", "magic"], "--replan"),
    (["--plan-of-another-instance"], "is not a valid plan of tiny-3site"),
])
def test_bad_replay_options_are_refused_before_anything_is_written(tmp_path, args, needle):
    plan = hand_plan(load_instance(TINY), ("j01", ()))
    if args == ["--plan-of-another-instance"]:
        plan, args = hand_plan(load_instance(TINY), ("j01", (Run("mars", 0.0, 60.0),))), []
    path = plan.save(tmp_path / "p.json")
    r = run_cli("replay", TINY, path, "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and needle in r.error
    assert not (tmp_path / "o").exists()


# ---- edge cases a review found ---------------------------------------------------------------

def test_an_outage_at_time_zero_is_handled(tmp_path):
    inst = outage_instance(tmp_path)
    plan = hand_plan(inst, ("j", (Run("a", 0.0, 2 * H),)))
    r = replay(inst, plan, Faults(outages=((0, 0.0),)), replan="milp",
               options=COUNTED)
    assert any("re-plan with milp (outage at a)" in e["event"] for e in r.events)
    assert r.first_state.at_s == 0 and r.first_state.down_sites == {0}
    assert r.actual.unfinished_jobs == 0 and r.actual.lost_work_h == 0


def test_an_outage_in_the_last_slot_is_not_planned_for_before_it_happens(tmp_path):
    inst = outage_instance(tmp_path)          # 24 slots of 15 min: the last starts at 5:45
    plan = hand_plan(inst, ("j", (Run("a", 0.0, 2 * H),)))
    r = replay(inst, plan, Faults(outages=((0, 5.9 * H),)), replan="static")
    assert [e["event"] for e in r.events] == ["outage at a"] and r.first_state is None
    state = write_state(tmp_path / "s.json", at="2024-06-01T23:50:00-07:00")
    out = run_cli("replan", TINY, "--state", state, "--policy", "static", "--out", tmp_path / "o")
    assert out.exit_code == 2 and "no slot starts after this time" in out.error


def test_cuts_at_replan_instants_are_not_checkpoints(tmp_path):
    """Runs cut at re-plan instants (the plan kept) lose as much at an outage as one run."""
    inst = outage_instance(tmp_path)
    plan = hand_plan(inst, ("j", (Run("a", 0.0, 2 * H),)))
    faults = Faults(outages=((0, 1.5 * H),), checkpoint_every_s=H)
    once = replay(inst, plan, faults)
    kept = replay(inst, plan, faults, replan="static", replan_every_s=0.25 * H)
    assert once.actual.lost_work_h == pytest.approx(0.5)
    assert kept.actual.lost_work_h == pytest.approx(0.5)
    assert kept.actual.valid


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(0, 24), max_size=6), factor=st.floats(0.02, 1.5),
       outages=st.lists(st.tuples(st.integers(0, 2), st.floats(0, 23.9)), max_size=2),
       every_min=st.sampled_from([7, 30, 90]))
def test_following_a_plan_in_pieces_is_following_it_at_once(tiny_moving, cuts, factor,
                                                            outages, every_min):
    """Stopping at re-plan instants and going on with the same plan changes nothing: runs cut
    there are not checkpoints, and moves the link could not send yet are sent later."""
    from milp.replay import _Executor
    inst, plan = tiny_moving
    faults = Faults(factor, 0.0, 0, tuple((n, h * H) for n, h in outages), every_min * 60)
    gbps, dark = inst.link_gbps * factor, faults.dark_from(inst.n_sites)
    whole = _Executor(inst, gbps, dark, faults.checkpoint_every_s)
    whole.follow(plan, float("inf"))
    pieces = _Executor(inst, gbps, dark, faults.checkpoint_every_s)
    for t in sorted(cuts):
        pieces.follow(plan, max(t * H, pieces.now))
    pieces.follow(plan, float("inf"))
    for a, b in zip(whole.jobs, pieces.jobs):
        assert _merge(a.steps) == pytest.approx(_merge(b.steps)) or \
            _merge(a.steps) == _merge(b.steps)
        assert a.done_s == pytest.approx(b.done_s)


def test_a_move_into_a_site_that_goes_dark_before_arrival_fails(tmp_path):
    inst = two_slot_window(tmp_path)
    plan = moved_plan(inst)
    r = replay(inst, plan, Faults(outages=((1, 20.0),)))     # b dark 20 s into the transfer
    assert r.executed.jobs[0].steps == ()
    assert r.actual.valid and r.actual.unfinished_jobs == 1


def test_a_rerun_does_not_keep_a_stale_state_file(tmp_path):
    plan_dir = tmp_path / "plan"
    assert run_cli("plan", TINY, "--policy", "static", "--out", plan_dir, "--quiet").exit_code == 0
    out = tmp_path / "r"
    assert run_cli("replay", TINY, plan_dir / "plan.json", "--out", out, "--outage",
                   "wind@5h").exit_code == 0
    assert (out / "state.json").exists()
    assert run_cli("replay", TINY, plan_dir / "plan.json", "--out", out).exit_code == 0
    assert not (out / "state.json").exists()


def test_replan_every_needs_a_policy(tmp_path):
    plan = hand_plan(load_instance(TINY), ("j01", ())).save(tmp_path / "p.json")
    r = run_cli("replay", TINY, plan, "--out", tmp_path / "o", "--replan-every", 1)
    assert r.exit_code == 2 and "--replan-every" in r.error


@pytest.mark.parametrize("over, needle", [
    ({"jobs": [{"job": ["j04"], "site": "wind", "work_left_h": 0.5}]}, "unknown job"),
    ({"version": True}, "version"),
])
def test_more_bad_states(tmp_path, over, needle):
    state = write_state(tmp_path / "s.json", **over)
    r = run_cli("replan", TINY, "--state", state, "--policy", "static", "--out", tmp_path / "o")
    assert r.exit_code == 2 and needle in r.error


def test_at_before_the_states_own_time_is_refused(tmp_path):
    state = write_state(tmp_path / "s.json")
    r = run_cli("replan", TINY, "--state", state, "--at", "2h", "--policy", "static",
                "--out", tmp_path / "o")
    assert r.exit_code == 2 and "before the state's own time" in r.error


# ---- issue 19 ---------------------------------------------------------------------------------

def test_the_remainder_leaves_out_a_job_ready_after_the_last_slot_starts():
    """Its release used to be clamped to the last slot, so a plan ran it from 23:45 on a
    checkpoint that arrives at 23:55."""
    inst = load_instance(TINY)
    j4, j5 = inst.job_index_map["j04"], inst.job_index_map["j05"]
    state = State(at_s=23 * H + 40 * 60, jobs={j4: JobState(1, 0.1, 23 * H + 55 * 60),
                                               j5: JobState(1, 0.1, 23 * H + 40 * 60)})
    plan, rest, local = replan(inst, state, "static")
    assert "j04" not in rest.inst.jobs and rest.late == {j4: state.jobs[j4]}
    assert rest.inst.release_slot[rest.inst.job_index_map["j05"]] == 0
    assert all(s.start_s >= 23 * H + 55 * 60 for s in plan.job("j04").steps) \
        if plan.job("j04") else True
    assert plan.job("j05").steps and evaluate(rest.inst, local).valid


def test_a_checkpoint_ready_after_the_last_slot_starts_is_not_run_before_it_arrives(tmp_path):
    """The release used to be clamped to the last slot: the job ran from 23:45 on a
    checkpoint arriving at 23:55."""
    state = write_state(tmp_path / "s.json", at="2024-06-01T23:40:00-07:00", jobs=[
        {"job": "j04", "site": "wind", "work_left_h": 0.1, "ready": "2024-06-01T23:55:00-07:00"},
        {"job": "j05", "site": "wind", "work_left_h": 0.1}])
    out = tmp_path / "o"
    r = run_cli("replan", TINY, "--state", state, "--policy", "static", "--out", out)
    assert r.exit_code == 0, r.output
    plan = Plan.load(out / "plan.json")
    ready = 23 * H + 55 * 60
    for jp in plan.jobs:
        assert jp.job != "j04" or all(s.start_s >= ready for s in jp.steps)
    assert plan.job("j05").steps                       # ready at 23:40: runs in the last slot
    summary = json.loads((out / "summary.json").read_text())
    assert [x["job"] for x in summary["ready_after_last_slot"]] == ["j04"]
    assert summary["ready_after_last_slot"][0]["work_left_h"] == 0.1
    assert "unfinished: job j04 at wind, 0.1 GPU-h left: its checkpoint is ready at " \
           "2024-06-01T23:55:00.000-07:00, after the last slot starts" in r.output
    inst = load_instance(TINY)
    rest = remainder(inst, load_state(inst, state))
    assert "j04" not in rest.inst.jobs and list(rest.late) == [inst.job_index_map["j04"]]


@pytest.mark.parametrize("args, option", [
    (["--seed", "-1"], "--seed"), (["--seed", str(2**31)], "--seed"),
    (["--bandwidth-factor", "inf"], "--bandwidth-factor"),
    (["--bandwidth-factor", "0"], "--bandwidth-factor"),
    (["--bandwidth-factor", "nan"], "--bandwidth-factor"),
    (["--renewable-noise", "1e308"], "--renewable-noise"),
    (["--renewable-noise", "inf"], "--renewable-noise"),
    (["--checkpoint-minutes", "inf"], "--checkpoint-minutes"),
    (["--replan", "static", "--replan-every", "1e308"], "--replan-every"),
    (["--time-limit", "inf"], "--time-limit"),
])
def test_replay_options_out_of_range_are_one_line_and_write_nothing(tmp_path, args, option):
    from tests.test_hostile import run_main

    plan = hand_plan(load_instance(TINY), ("j01", (Run("city", 0.0, 3600.0),)))
    path = plan.save(tmp_path / "p.json")
    code, out, err = run_main("replay", TINY, path, "--out", tmp_path / "o", *args)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {option}: ") and "is not a" in err
    assert not (tmp_path / "o").exists()
