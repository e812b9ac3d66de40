"""`milp pareto`: the frontier of grid energy against mean JCT, read off evaluator-scored plans."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from milp import pareto
from milp.cli import app
from milp.engine.solve import SolveOptions
from milp.evaluate import evaluate
from milp.instance import load_instance
from tests.conftest import run_cli, write_instance
from tests.test_tradeoff import dark_then_sun

#: To the optimum, bounded by a node count; 600 s only guards against a hang.
QUICK = SolveOptions(time_limit_s=600, threads=1, engine="compact", gap=0, abs_gap=0,
                     node_limit=500)


def test_ascending_bounds():
    assert pareto.ascending_bounds(4.0, 5.0, 3) == [4.0, 4.5, 5.0]
    assert pareto.ascending_bounds(4.0, 5.0, 1) == [4.0]
    assert pareto.ascending_bounds(4.0, 3.0, 4) == [4.0]     # the MILP is already faster
    with pytest.raises(ValueError):
        pareto.ascending_bounds(4.0, 5.0, 0)


def test_the_frontier_of_one_job_by_hand(tmp_path):
    """dark_then_sun: static finishes at 1 h with 0.75 kWh, the unconstrained plan at 5 h with
    none; in between the frontier is 0.75·(5 − H) from H = 4 h (tests/test_tradeoff.py)."""
    inst = dark_then_sun(tmp_path)
    front = pareto.trace(inst, 5, QUICK)
    assert front.static_jct_h == pytest.approx(1.0)
    assert front.bounds_h[0] == pytest.approx(1.0) and front.bounds_h[-1] == pytest.approx(5.0)
    for h, s in front.points():
        assert s.evaluation.valid and s.jct_h <= h + 1e-9          # the ε-constraint holds
        assert s.evaluation.grid_energy_kwh == pytest.approx(
            min(0.75, max(0.0, 0.75 * (5 - h))), abs=1e-9)


def frontier_properties(front: pareto.Frontier) -> None:
    """Objective never increases as the bound grows; no dominated point; no greedy policy below
    the frontier at its own JCT."""
    costs = [s.cost(front.objective) for _, s in front.points()]
    assert all(b <= a + 1e-9 for a, b in zip(costs, costs[1:]))
    kept = front.nondominated()
    for a in kept:
        for b in kept:
            assert not pareto._dominates(a, b, front.objective)
    for name, e in front.greedy.items():
        best = front.best_within(e.mean_jct_h)
        if best is not None and e.unfinished_jobs == 0:
            assert best.cost(front.objective) <= e.grid_energy_kwh + 1e-6, name


def two_sites_busy_origin(tmp):
    """Two 1-GPU sites: `a` dark and busy (3 jobs of 1 h at 0), `b` sunny from 2 h on."""
    return load_instance(write_instance(
        tmp, sites={"a": 1, "b": 1},
        renewable={"a": [0] * 24, "b": [0] * 8 + [3] * 16},
        jobs=[{"job": f"j{k}", "origin": "a", "release_h": 0, "work_h": 1, "checkpoint_gb": 2}
              for k in range(3)]))


def test_frontier_properties_on_a_queue(tmp_path):
    inst = two_sites_busy_origin(tmp_path)
    front = pareto.trace(inst, 4, QUICK)
    frontier_properties(front)
    for s in front.solved:
        assert s.plan is not None and evaluate(inst, s.plan).valid
        if s.bound_h is not None:
            assert s.jct_h <= s.bound_h + 1e-9


def test_pareto_command_writes_table_figure_and_plans(tmp_path):
    d = write_instance(tmp_path / "i", sites={"home": 1}, renewable={"home": [0] * 16 + [3] * 8},
                       jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 1,
                              "checkpoint_gb": 5}])
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["pareto", str(d), "--out", str(out), "--points", "3",
                                 "--engine", "compact", "--gap", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "pareto.csv")))
    milp = [r for r in rows if r["policy"] == "milp"]
    assert {r["policy"] for r in rows} >= {"milp", "static", "energy-only"}
    assert [float(r["grid_energy_kwh"]) for r in milp] == sorted(
        (float(r["grid_energy_kwh"]) for r in milp), reverse=True)
    assert float(milp[0]["mean_jct_h"]) == pytest.approx(1.0)        # static's JCT, 0.75 kWh
    assert float(milp[-1]["grid_energy_kwh"]) == pytest.approx(0.0, abs=1e-9)
    for r in milp:
        assert (out / r["plan"]).is_file()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, words", [
    (["--points", "0"], "--points"),
    (["--objective", "co2"], "carbon.csv"),
    (["--engine", "magic"], "unknown engine"),
])
def test_pareto_bad_options(tmp_path, args, words):
    d = write_instance(tmp_path / "i", sites={"a": 1}, renewable={"a": [0] * 4},
                       jobs=[{"job": "j", "origin": "a", "release_h": 0, "work_h": 0.25,
                              "checkpoint_gb": 1}])
    r = run_cli("pareto", d, "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and words in r.output + r.error
    assert not (tmp_path / "o").exists()


def test_report_includes_the_frontier_of_its_instance_only(tmp_path):
    d = write_instance(tmp_path / "i", sites={"home": 1}, renewable={"home": [0] * 16 + [3] * 8},
                       jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 1,
                              "checkpoint_gb": 5}])
    front = tmp_path / "front"
    assert run_cli("pareto", d, "--out", front, "--points", "2", "--engine", "compact",
                   "--gap", "0", "--quiet").exit_code == 0
    r = run_cli("report", d, front / "plans" / "point-1.json", "--pareto", front,
                "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output + r.error
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Trade-off: grid energy against mean JCT" in page and page.count("data:image") >= 4
    other = write_instance(tmp_path / "o", sites={"home": 1}, renewable={"home": [0] * 24},
                           jobs=[{"job": "j", "origin": "home", "release_h": 0, "work_h": 1,
                                  "checkpoint_gb": 5}], name="other")
    assert run_cli("plan", other, "--policy", "static", "--out", tmp_path / "op",
                   "--quiet").exit_code == 0
    r = run_cli("report", other, tmp_path / "op" / "plan.json", "--pareto", front,
                "--out", tmp_path / "rep2")
    assert r.exit_code == 2 and "not of 'other'" in r.error
    assert not (tmp_path / "rep2").exists()
