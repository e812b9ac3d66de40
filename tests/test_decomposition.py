"""The decomposition engine (column generation over job schedules) against the compact model,
the evaluator and hand-checked optima. Every limit here is a count (rounds, nodes, moves), and
the time limits are far above what the work needs: no result depends on machine speed."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import HealthCheck, given, settings

from milp import physics
from milp.engine.compact import build_model, violated, warm_start
from milp.engine.decomposition.columns import column_of, columns_of_solution, job_space
from milp.engine.decomposition.master import Master
from milp.engine.decomposition.pricing import price
from milp.engine.index import build_index
from milp.engine.solve import SolveOptions, choose_engine, plan_milp, seeds_of
from milp.evaluate import evaluate
from milp.instance import load_instance
from tests.conftest import COUNTED, TINY
from tests.test_physics import load_case, small_instances

def decompose(inst, **kw):
    """The decomposition, its work bounded by counts (:data:`tests.conftest.COUNTED`)."""
    return plan_milp(inst, SolveOptions(engine="decomposition", **{**COUNTED, **kw}))


def test_auto_chooses_compact_for_small_and_decomposition_for_larger():
    from tests.test_milp import split_sun
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        assert choose_engine(split_sun(Path(tmp)), SolveOptions()) == "compact"
    assert choose_engine(load_instance(TINY), SolveOptions()) == "decomposition"
    assert choose_engine(load_instance(TINY), SolveOptions(engine="compact")) == "compact"


def test_pricing_reproduces_the_masters_reduced_costs():
    """At any duals, the DP's cost of its schedule minus the job's convexity dual is the reduced
    cost the master computes from that column's coefficients (prices = rows, written twice)."""
    inst = load_instance(TINY.parent / "paper-5site")
    master = Master(inst, elastic=False)
    for _, plan, _ in seeds_of(inst):
        master.add(columns_of_solution(inst, physics.solution_from_plan(inst, plan)).values())
    master.solve_lp(60)
    d = master.duals()
    rng = np.random.default_rng(1)
    N, T = inst.n_sites, inst.n_slots
    d.gpu, d.grid = -0.05 * rng.random((N, T)), rng.random((N, T))
    d.link, d.full = -0.1 * rng.random((N, N, T)), 0.01 * rng.random((N, T))
    assert_pricing_matches_the_master(inst, master, d)


def assert_pricing_matches_the_master(inst, master, d) -> None:
    """Every job's exact DP schedule at duals ``d`` costs what the master says its reduced
    cost is (DP cost − the job's convexity dual), for more than half of the jobs."""
    checked = 0
    for j in range(inst.n_jobs):
        path = price(inst, job_space(inst, j), d, False)
        if not path.exact:
            continue
        col = column_of(inst, j, path.x, path.moves)
        assert master.reduced_cost(col, d) == pytest.approx(path.cost - d.conv[j], abs=1e-9)
        checked += 1
    assert checked > inst.n_jobs // 2


def test_pricing_reproduces_reduced_costs_with_carbon_weights_and_a_jct_row():
    """The same identity with the CO₂ objective (grid rows priced in [0, weight]) and a
    mean-JCT row whose dual charges each hour of a schedule's completion time."""
    inst = load_instance(TINY.parent / "paper-5site")
    goal = physics.Goal.of(inst, "co2", 6.0)
    master = Master(inst, elastic=False, weights=goal.weights, jct_budget_h=goal.jct_budget_h)
    for _, plan, _ in seeds_of(inst, goal):
        master.add(columns_of_solution(inst, physics.solution_from_plan(inst, plan)).values())
    master.solve_lp(60)
    d = master.duals()
    rng = np.random.default_rng(2)
    N, T = inst.n_sites, inst.n_slots
    d.gpu, d.grid = -0.05 * rng.random((N, T)), rng.random((N, T)) * goal.weights
    d.link, d.full = -0.1 * rng.random((N, N, T)), 0.01 * rng.random((N, T))
    d.jct = -0.3
    assert_pricing_matches_the_master(inst, master, d)


def _compact_point(inst, plan, facts):
    """The plan is a feasible point of the compact model with the same objective."""
    sol = physics.solution_from_plan(inst, plan)
    index = build_index(inst)
    model = build_model(index)
    assert warm_start(model, index, sol) == inst.n_jobs
    assert violated(model) == []
    assert pyo.value(model.objective) == pytest.approx(facts.objective, abs=1e-6)


def test_a_tiny_day_plan_is_valid_a_compact_point_and_within_its_bound():
    inst = load_instance(TINY)
    plan, facts = decompose(inst)
    e = evaluate(inst, plan)
    assert e.valid and e.migrations_outside_domain == 0 and e.deadline_misses == 0
    assert e.grid_energy_kwh == pytest.approx(facts.grid_energy_kwh, abs=1e-9)
    assert e.grid_energy_kwh <= facts.seed_grid_energy_kwh + 1e-9
    assert facts.bound_source == "lagrangian" and facts.bound <= facts.objective + 1e-9
    assert e.restarts <= 2 * inst.n_jobs and e.short_runs == 0
    _compact_point(inst, plan, facts)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_the_bound_never_exceeds_the_compact_optimum(case):
    """The Lagrangian bound (with rounding cuts) is a valid lower bound: on small instances the
    compact model proves the optimum, and the bound stays at or below it; the decomposition's
    plan is a point of the compact model."""
    inst = load_case(case)
    exact = SolveOptions(engine="compact", gap=0, abs_gap=0, time_limit_s=600, threads=1)
    try:
        best, best_facts = plan_milp(inst, exact)
    except Exception as e:                               # no plan meets every deadline
        assert type(e).__name__ == "NoPlanFound"
        return
    if best_facts.status != "optimal":
        return
    plan, facts = decompose(inst)
    assert facts.bound is None or facts.bound <= best_facts.objective + 1e-6
    assert facts.objective >= best_facts.objective - 1e-6
    assert evaluate(inst, plan).valid
    _compact_point(inst, plan, facts)


@pytest.mark.parametrize("name,grid_kwh", [("split", 0.75 * 10.4 / 3600)])
def test_the_decomposition_finds_the_hand_checked_optimum(tmp_path, name, grid_kwh):
    from tests.test_milp import split_sun
    inst = split_sun(tmp_path, "[execution]\nmax_restarts = 2\nmin_run_minutes = 0\n")
    plan, facts = decompose(inst, gap=0, abs_gap=0)
    assert evaluate(inst, plan).grid_energy_kwh == pytest.approx(grid_kwh)


@pytest.mark.parametrize("name", ["paper-5site", "week-5site/2019-04-18"])
def test_shipped_days_never_worse_than_the_seed(name):
    inst = load_instance(TINY.parent / name)
    plan, facts = decompose(inst, max_rounds=15, search_moves=5, max_dives=0)
    e = evaluate(inst, plan)
    assert e.valid and e.deadline_misses == 0 and e.migrations_outside_domain == 0
    assert e.grid_energy_kwh <= facts.seed_grid_energy_kwh + 1e-9
    assert facts.iterations <= 15 and facts.columns >= inst.n_jobs


def test_elastic_plans_say_what_is_left(tmp_path):
    from tests.conftest import write_instance
    inst = load_instance(write_instance(
        tmp_path, sites={"home": 1}, renewable={"home": [0] * 16},
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 2,
               "checkpoint_gb": 5, "deadline_h": 2} for k in range(2)]))
    plan, facts = decompose(inst, elastic=True)
    # one GPU for the 2 h before both deadlines: 2 of the 4 GPU-h are left, on one job
    assert sum(plan.info["unfinished_gpu_h"].values()) == pytest.approx(2)
    assert len(plan.info["unfinished_gpu_h"]) == 1 and evaluate(inst, plan).valid


SHIPPED = sorted(p.parent for p in TINY.parent.rglob("instance.toml"))
#: just enough work to reach a plan of the engine's own: one pricing round, a pool MIP of one
#: node, one best-response sweep — counts, so the test does not depend on machine speed
QUICK = dict(max_rounds=1, node_limit=1, search_moves=0, max_sweeps=1, max_dives=0)


@pytest.mark.parametrize("directory", SHIPPED,
                         ids=[str(p.relative_to(TINY.parent)) for p in SHIPPED])
def test_plans_on_every_shipped_instance_respect_the_rules(directory):
    """The decomposition's plan of every shipped instance is valid — caps on restarts and short
    runs, WAN, restores — inside the domain, on time, and never worse than its seed."""
    inst = load_instance(directory)
    plan, facts = decompose(inst, **QUICK)
    e = evaluate(inst, plan)
    assert e.valid, e.violations[:3]
    assert e.short_runs == 0 and e.migrations_outside_domain == 0 and e.deadline_misses == 0
    assert e.grid_energy_kwh <= facts.seed_grid_energy_kwh + 1e-9
