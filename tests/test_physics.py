"""The slot rules (milp/physics.py) shared by every planner, checked against the independent
evaluator and the compact model on random small instances (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyomo.environ as pyo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milp import physics
from milp.engine.compact import build_model, violated, warm_start
from milp.engine.index import build_index
from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.policies import POLICIES
from tests.conftest import write_instance


@st.composite
def small_instances(draw):
    """2-3 sites with random renewable windows, links and WAN caps; 1-5 jobs; random caps."""
    n_sites = draw(st.integers(2, 3))
    slots = draw(st.integers(8, 24))
    names = [f"s{i}" for i in range(n_sites)]
    sites = {s: draw(st.integers(1, 3)) for s in names}
    renewable = {}
    for s in names:
        levels = [draw(st.sampled_from([0, 0.5, 1, 3])) for _ in range(4)]
        renewable[s] = [levels[min(3, k * 4 // slots)] for k in range(slots)]
    links = [(a, b, draw(st.sampled_from([1, 5, 10, 40]))) for a in names for b in names
             if a != b and draw(st.booleans())]
    jobs = []
    for k in range(draw(st.integers(1, 5))):
        release = draw(st.integers(0, slots - 2))
        room_h = (slots - release) * 0.25
        work = round(draw(st.floats(0.1, max(0.1, room_h * 0.6))), 3)
        late = draw(st.booleans())
        jobs.append({"job": f"j{k}", "origin": draw(st.sampled_from(names)),
                     "release_h": release * 0.25, "work_h": work,
                     "checkpoint_gb": draw(st.sampled_from([0.5, 5, 40, 150])),
                     "deadline_h": None if late else slots * 0.25})
    cap = draw(st.sampled_from(['0', '1', '2', '"none"']))
    min_run = draw(st.sampled_from([0, 15, 30, 45]))
    wan = {s: draw(st.sampled_from(["", "6", "40"])) for s in names}
    return dict(sites=sites, renewable=renewable, links=links, jobs=jobs, slots=slots,
                toml_extra=f"[execution]\nmax_restarts = {cap}\nmin_run_minutes = {min_run}\n",
                wan=wan)


def load_case(case) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        d = write_instance(Path(tmp), sites=case["sites"], renewable=case["renewable"],
                           jobs=case["jobs"], links=case["links"], slots=case["slots"],
                           toml_extra=case["toml_extra"])
        rows = ["site,gpus,wan_gbps"] + [f"{s},{g},{case['wan'][s]}"
                                          for s, g in case["sites"].items()]
        (d / "sites.csv").write_text("\n".join(rows) + "\n")
        return load_instance(d)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_greedy_plans_obey_the_rules_and_are_points_of_the_model(case):
    """Every greedy plan is valid (caps, WAN, restores included); each plan of static,
    wait-awhile and feasibility-aware that meets its deadlines is a feasible point of the compact
    MILP — the warm start places every job — where the model's grid energy is the evaluator's
    and its objective the physics'. (energy-only ignores the domain, so the MILP does not hold
    its plans: it may queue moves past alpha × the window.)"""
    inst = load_case(case)
    index = build_index(inst)
    model = build_model(index)
    for name, policy in POLICIES.items():
        plan = policy(inst, None)
        e = evaluate(inst, plan)
        assert e.valid, (name, e.violations[:3])
        if e.deadline_misses or name == "energy-only":
            continue
        assert e.migrations_outside_domain == 0, name
        sol = physics.solution_from_plan(inst, plan)
        assert warm_start(model, index, sol) == inst.n_jobs, name
        assert violated(model) == [], name
        assert pyo.value(model.grid_energy) == pytest.approx(e.grid_energy_kwh, abs=1e-7), name
        assert pyo.value(model.objective) == pytest.approx(physics.objective(inst, sol)[0],
                                                           abs=1e-7), name


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_a_plan_survives_the_round_trip_through_slots(case):
    """plan → slot schedule → plan gives the same steps (the physics writes plans one way)."""
    inst = load_case(case)
    for name in ("wait-awhile", "feasibility-aware"):
        plan = POLICIES[name](inst, None)
        again = physics.plan_from_solution(inst, physics.solution_from_plan(inst, plan), name)
        for a, b in zip(plan.jobs, again.jobs):
            assert len(a.steps) == len(b.steps)
            for s, t in zip(a.steps, b.steps):
                assert type(s) is type(t)
                assert s.start_s == pytest.approx(t.start_s, abs=1e-6)
                assert getattr(s, "end_s", 0) == pytest.approx(getattr(t, "end_s", 0), abs=1e-6)
                assert getattr(s, "restore_s", 0) == getattr(t, "restore_s", 0)


def test_restore_and_occupancy_by_hand():
    """One job, 15-min slots: a first run needs no restore; a run after a pause does (10.4 s of
    a 900 s slot); a run that does not fill its slot ends there."""
    import numpy as np

    from milp.instance import ExecutionRules, Instance, MigrationParams, ObjectiveWeights
    inst = Instance(
        name="hand", start=__import__("datetime").datetime.fromisoformat(
            "2024-06-01T00:00:00+00:00"), slot_minutes=15, n_slots=8,
        migration=MigrationParams(), objective=ObjectiveWeights(),
        execution=ExecutionRules(min_run_minutes=15), default_compute_kw=0.75,
        window_threshold_kw=0.75,
        sites=("a",), gpus=np.array([1]), idle_kw=np.array([0.0]),
        wan_gbps=np.array([np.inf]), renewable_kw=np.zeros((1, 8)),
        link_gbps=np.zeros((1, 1)), jobs=("j",), origin=np.array([0]),
        release_slot=np.array([0]), deadline_slot=np.array([8]), work_h=np.array([1.0]),
        checkpoint_gb=np.array([1.0]), compute_kw=np.array([[0.75]]))
    sigma = 10.4 / 900
    sol = physics.Solution({(0, 0, 0): 1.0, (0, 0, 1): 0.5, (0, 0, 3): 1 - sigma,
                            (0, 0, 4): 1.0, (0, 0, 5): 0.5 + sigma})
    runs = physics.runs_of(inst, sol)[0]
    assert [(r.first, r.last, r.restore, r.restart) for r in runs] == [
        (0, 1, False, False), (3, 5, True, True)]
    assert runs[1].last_occupancy == pytest.approx(0.5 + sigma)
    plan = physics.plan_from_solution(inst, sol, "hand")
    assert [(s.start_s, round(s.end_s, 6), s.restore_s) for s in plan.jobs[0].steps] == [
        (0.0, 1350.0, 0.0), (2700.0, round(4500 + (0.5 + sigma) * 900, 6), 10.4)]
    assert evaluate(inst, plan).valid


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_every_compact_plan_is_valid_with_the_evaluators_numbers(case):
    """Whatever the solver returns within its limit is a valid plan (caps, WAN, restores,
    domain) whose grid energy the evaluator reproduces: model and referee agree on the rules."""
    from milp.engine.solve import NoPlanFound, SolveOptions, plan_milp
    inst = load_case(case)
    try:
        plan, facts = plan_milp(inst, SolveOptions(time_limit_s=10, elastic=True))
    except NoPlanFound:
        return
    e = evaluate(inst, plan)
    assert e.valid, e.violations[:3]
    assert e.migrations_outside_domain == 0
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh, abs=1e-7)
