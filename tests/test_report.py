"""milp report: figures present, every migration in the table, numbers equal the evaluator's."""

import subprocess
import sys

import pandas as pd
import pytest

from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.plan import Migration
from milp.policies import POLICIES
from milp.report import make_report
from tests.conftest import TINY

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


@pytest.mark.parametrize("policy", list(POLICIES))
def test_report_content_on_the_tiny_instance(tmp_path, policy):
    inst = load_instance(TINY)
    plan = POLICIES[policy](inst, None)
    page = make_report(inst, [(policy, plan)], tmp_path).read_text()
    figures = ["timeline.png", "gantt-1.png", "phase.png"]
    for name in figures:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert page.count("src='data:image/png;base64,") == len(figures)
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from a network
    moves = pd.read_csv(tmp_path / "migrations.csv")
    expected = [(jp.job, s.src, s.dst) for jp in plan.jobs for s in jp.steps
                if isinstance(s, Migration)]
    assert list(zip(moves.job, moves.src, moves.dst)) == expected
    e = evaluate(inst, plan)
    assert len(moves) == e.migrations
    for job, src, dst in expected:
        assert f"<td>{job}</td>" in page and f"<td>{src}</td>" in page and f"<td>{dst}</td>" in page
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0)[policy]
    for key in ("grid_energy_kwh", "renewable_energy_kwh", "mean_jct_h", "migrations"):
        assert float(summary[key]) == pytest.approx(e.metrics()[key])
    for row in moves.itertuples():  # the study's model, for each move
        assert row.transfer_s == pytest.approx(8 * row.checkpoint_gb / row.link_gbps)
        assert row.breakeven_s == pytest.approx(1.8 * row.transfer_s / 0.75)
    outside = (moves.window_share > inst.migration.alpha).sum()
    assert outside == e.migrations_outside_domain


def test_compare_shows_the_difference(tmp_path):
    inst = load_instance(TINY)
    plans = [(name, POLICIES[name](inst, None)) for name in ("static", "wait-awhile")]
    page = make_report(inst, plans, tmp_path).read_text()
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0)
    grids = [evaluate(inst, p).grid_energy_kwh for _, p in plans]
    assert float(summary.loc["grid_energy_kwh vs first", "wait-awhile"]) == \
        pytest.approx(grids[1] - grids[0])
    assert "grid_energy_kwh vs first" in page and "wait-awhile" in page


def test_gantt_pages_beyond_100_jobs_and_cli(tmp_path):
    d = TINY.parent / "scale-10x200"
    out = tmp_path / "plan"
    subprocess.run([*CLI, "plan", str(d), "--policy", "static", "--out", str(out), "--quiet"],
                   check=True)
    r = subprocess.run([*CLI, "report", str(d), str(out / "plan.json"), "--out",
                        str(tmp_path / "rep")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "rep").glob("gantt-*.png")) == \
        ["gantt-1.png", "gantt-2.png"]
    r = subprocess.run([*CLI, "report", str(d), str(tmp_path / "missing.json"), "--out",
                        str(tmp_path / "rep2")], capture_output=True, text=True)
    assert r.returncode == 2 and "file is missing" in r.stderr


def test_a_plan_naming_an_unknown_site_or_job_is_one_line(tmp_path):
    """It used to be a KeyError traceback, after a figure had been written into --out."""
    from milp.plan import JobPlan, Plan, Run
    from tests.test_hostile import run_main

    for job, site, words in (("j01", "mars", "site 'mars' is not a site of instance"),
                             ("j99", "city", "job 'j99' is not a job of instance")):
        path = Plan("tiny-3site", "2024-06-01T00:00:00-07:00", 15, "p",
                    (JobPlan(job, (Run(site, 0.0, 1800.0),)),)).save(tmp_path / "p.json")
        code, out, err = run_main("report", TINY, path, "--out", tmp_path / "rep")
        assert code == 2 and out == "" and err.count("\n") == 1 and words in err, err
        assert not (tmp_path / "rep").exists()


def test_a_report_that_fails_half_way_leaves_nothing(tmp_path, monkeypatch):
    """report used to write straight into --out: the figures made before a failure stayed."""
    import milp.report
    from tests.conftest import run_cli

    plan = POLICIES["static"](load_instance(TINY), None).save(tmp_path / "plan.json")
    monkeypatch.setattr(milp.report, "_html", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_cli("report", TINY, plan, "--out", tmp_path / "rep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
