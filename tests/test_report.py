"""milp report: what the page says, not only that files exist — the headline's numbers are the
evaluator's, every migration and every run is in the tables and the run sheet, per-site totals
add up to the evaluator's, shares are percentages, every mark of a figure has a key, axes show
clock times and their labels do not overlap; a plan of another instance is refused."""

import html
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from milp.evaluate import METRICS, evaluate
from milp.instance import load_instance
from milp.plan import JobPlan, Migration, Plan, Run
from milp.policies import POLICIES
from milp.report import (METRIC_LABELS, REPORT_FILES, build_report, headline, make_report,
                         runsheet_frame, signed)
from tests.conftest import TINY

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


@pytest.fixture(scope="module")
def inst():
    return load_instance(TINY)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_report_content_on_the_tiny_instance(tmp_path, inst, policy):
    plan = POLICIES[policy](inst, None)
    page = make_report(inst, [(policy, plan)], tmp_path).read_text()
    figures = ["timeline.png", "gantt-1.png", "phase.png"]
    for name in figures:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    for name in REPORT_FILES:
        assert (tmp_path / name).is_file(), name
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
        assert row.transfer_s == pytest.approx(8 * row.checkpoint_gb / row.link_gbps, abs=1e-3)
        assert row.breakeven_s == pytest.approx(1.8 * row.transfer_s / 0.75, abs=1e-3)
    # the share of the window a move takes is a percentage
    outside = (moves.window_share_pct > 100 * inst.migration.alpha).sum()
    assert outside == e.migrations_outside_domain
    if len(moves):
        assert "share of window left (%)" in page
    # every metric is named in words with its unit, never by its key
    for key in METRICS:
        words, unit = METRIC_LABELS[key]
        assert html.escape(f"{words} ({unit})" if unit else words) in page
        if "_" in key:
            assert f"<td>{key}</td>" not in page


def test_headline_is_the_evaluators_numbers_against_static(tmp_path, inst):
    plans = [(name, POLICIES[name](inst, None)) for name in ("feasibility-aware", "static")]
    page = make_report(inst, plans, tmp_path).read_text()
    e, s = (evaluate(inst, p) for _, p in plans)
    pct = 100 * (e.grid_energy_kwh / s.grid_energy_kwh - 1)
    kwh = f"{e.grid_energy_kwh:.1f}" if e.grid_energy_kwh >= 10 else f"{e.grid_energy_kwh:.3g}"
    expected = (f"feasibility-aware: {kwh} kWh grid, {signed(pct, 2)} % "
                f"against static, mean JCT {signed(e.mean_jct_h - s.mean_jct_h, 2, 'h')}")
    assert expected in html.unescape(page)
    assert "the static plan given (static)" in page
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0)
    assert float(summary.loc["grid_energy_kwh vs static", "feasibility-aware"]) == \
        pytest.approx(e.grid_energy_kwh - s.grid_energy_kwh)
    assert float(summary.loc["grid_energy_kwh vs static (%)", "feasibility-aware"]) == \
        pytest.approx(pct)
    assert float(summary.loc["mean_jct_h vs static", "feasibility-aware"]) == \
        pytest.approx(e.mean_jct_h - s.mean_jct_h)


def test_headline_words_and_signs():
    assert signed(-66.6, 2) == "\u221267" and signed(2.94, 2, "h") == "+2.9 h"
    assert signed(0.0) == "±0"


def test_without_a_static_plan_the_report_evaluates_static_and_says_so(tmp_path, inst):
    plan = POLICIES["wait-awhile"](inst, None)
    rep = build_report(inst, [("wait-awhile", plan)])
    static = evaluate(inst, POLICIES["static"](inst, None))
    assert rep.reference.evaluation.grid_energy_kwh == pytest.approx(static.grid_energy_kwh)
    assert "no static plan was given" in rep.reference_note
    assert list(rep.summary.columns) == ["wait-awhile", "static (reference)"]
    page = make_report(inst, [("wait-awhile", plan)], tmp_path).read_text()
    assert "no static plan was given" in page
    assert headline(rep.plans[0], rep.reference) in html.unescape(page)


def test_compare_shows_the_difference_against_static(tmp_path, inst):
    plans = [(name, POLICIES[name](inst, None)) for name in ("wait-awhile", "static")]
    page = make_report(inst, plans, tmp_path).read_text()
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0)
    grids = [evaluate(inst, p).grid_energy_kwh for _, p in plans]
    assert float(summary.loc["grid_energy_kwh vs static", "wait-awhile"]) == \
        pytest.approx(grids[0] - grids[1])
    delta = signed(grids[0] - grids[1], 3)          # signed, beside the value, and in %
    assert delta in html.unescape(page) and "wait-awhile" in page


def test_site_totals_are_the_evaluators_energy(tmp_path, inst):
    plan = POLICIES["energy-only"](inst, None)
    make_report(inst, [("energy-only", plan)], tmp_path)
    e = evaluate(inst, plan)
    totals = pd.read_csv(tmp_path / "site_totals.csv").set_index("site")
    assert list(totals.index) == [*inst.sites, "total"]
    for n, site in enumerate(inst.sites):
        assert totals.loc[site, "grid_kwh"] == pytest.approx(e.grid_kwh[n].sum(), abs=1e-5)
        assert totals.loc[site, "load_kwh"] == pytest.approx(e.load_kwh[n].sum(), abs=1e-5)
        assert totals.loc[site, "renewable_available_kwh"] == pytest.approx(
            inst.renewable_kw[n].sum() * inst.slot_h, abs=1e-5)
    assert totals.loc["total", "grid_kwh"] == pytest.approx(e.grid_energy_kwh, abs=1e-5)
    assert totals.loc["total", "transfer_kwh"] == pytest.approx(e.migration_energy_kwh,
                                                                abs=1e-5)
    assert totals.grid_share_pct.iloc[:-1].sum() == pytest.approx(100.0)
    assert totals.loc["total", "checkpoints_sent"] == e.migrations


def test_timeseries_of_the_report_are_the_evaluators_arrays(tmp_path, inst):
    plan = POLICIES["energy-only"](inst, None)
    make_report(inst, [("energy-only", plan)], tmp_path)
    e = evaluate(inst, plan)
    for name in ("timeseries.csv", "timeseries.parquet"):
        ts = pd.read_csv(tmp_path / name) if name.endswith("csv") else \
            pd.read_parquet(tmp_path / name)
        assert len(ts) == inst.n_sites * inst.n_slots
        grid = ts.grid_kw.to_numpy().reshape(inst.n_sites, inst.n_slots)
        assert np.allclose(grid * inst.slot_h, e.grid_kwh, atol=1e-6)
        assert ts.transfers_out.sum() == ts.transfers_in.sum() == e.migrations


def test_run_sheet_has_every_step_at_its_site_and_time(tmp_path, inst):
    plan = POLICIES["energy-only"](inst, None)
    page = html.unescape(make_report(inst, [("energy-only", plan)], tmp_path).read_text())
    sheet = pd.read_csv(tmp_path / "runsheet.csv", keep_default_na=False)
    assert list(sheet.columns) == ["time", "site", "action", "job", "other_site", "seconds",
                                   "restore_s", "checkpoint_gb", "last_step"]
    times = pd.to_datetime(sheet.time)
    assert times.is_monotonic_increasing
    runs = [(jp.job, s) for jp in plan.jobs for s in jp.steps if isinstance(s, Run)]
    moves = [(jp.job, s) for jp in plan.jobs for s in jp.steps if isinstance(s, Migration)]
    assert (sheet.action == "start").sum() == len(runs) == (sheet.action == "stop").sum()
    assert (sheet.action == "send").sum() == len(moves) == (sheet.action == "receive").sum()
    for job, s in runs:
        t = inst.time_of(round(s.start_s, 3)).isoformat(timespec="milliseconds")
        row = sheet[(sheet.job == job) & (sheet.action == "start") & (sheet.time == t)]
        assert row.site.tolist() == [s.site]
        assert float(row.restore_s.iloc[0]) == pytest.approx(s.restore_s, abs=1e-3)
        assert f"start {job} for " in page
    for job, s in moves:
        t = inst.time_of(s.start_s).isoformat(timespec="milliseconds")
        sent = sheet[(sheet.job == job) & (sheet.action == "send") & (sheet.time == t)]
        assert sent.site.tolist() == [s.src] and sent.other_site.tolist() == [s.dst]
        assert f"send {job} to {s.dst} ({s.checkpoint_gb:g} GB" in page
        assert f"receive {job} from {s.src}" in page
    for site in inst.sites:
        assert f"<h3>{site}</h3>" in page


def test_run_sheet_words_times_and_restores(inst):
    """A hand-made chain: one run, a move, a run that restores: the sheet says it in the
    operator's words, at the instance's clock, seconds to the millisecond."""
    plan = Plan("tiny-3site", "2024-06-01T00:00:00-07:00", 15, "hand", (JobPlan("j01", (
        Run("city", 0.0, 1800.0),
        Migration("city", "solar", 1800.0, 5.0, 4.0000000001, 14.4),
        Run("solar", 2700.0, 2700.0 + 10.4 + 3600 * 3.5, restore_s=10.4))),),)
    sheet = runsheet_frame(inst, plan)
    assert sheet.action.tolist() == ["start", "stop", "send", "receive", "start", "stop"]
    assert sheet.time.tolist()[:4] == ["2024-06-01T00:00:00.000-07:00",
                                       "2024-06-01T00:30:00.000-07:00",
                                       "2024-06-01T00:30:00.000-07:00",
                                       "2024-06-01T00:30:04.000-07:00"]
    assert sheet.seconds.iloc[2] == 4.0                       # rounded to the millisecond
    assert sheet.restore_s.iloc[4] == 10.4 and sheet.last_step.iloc[-1]
    rep = build_report(inst, [("hand", plan)])
    from milp.report import _runsheet_html
    text = html.unescape(_runsheet_html(rep))
    assert "<td>00:30</td><td>stop j01, send j01 to solar (5 GB, 4 s)</td>" in text
    assert "<td>00:30:04</td><td>receive j01 from city</td>" in text
    assert "<td>00:45</td><td>start j01 for 3 h 30 min (restore 10.4 s)</td>" in text


# ---- figures: keys, clock times, readable labels ---------------------------------------------

@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures a report draws, kept open (by name of the file) to inspect."""
    import milp.figures

    figures = {}
    real = milp.figures._save

    def keep(fig, path, layout=True):
        if layout:
            fig.tight_layout()
        fig.canvas.draw()
        figures[path.name] = fig
        return real(fig, path, layout=False)
    monkeypatch.setattr(milp.figures, "_save", keep)
    return figures


def legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def overlapping(labels) -> bool:
    boxes = [t.get_window_extent() for t in labels if t.get_text() and t.get_visible()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_every_mark_has_a_key_and_axes_show_clock_times(tmp_path, inst, drawn):
    plan = POLICIES["energy-only"](inst, None)
    make_report(inst, [("energy-only", plan)], tmp_path)
    gantt = legend_texts(drawn["gantt-1.png"])
    assert {"release", "deadline", "migration (disruption s)"} <= set(gantt)
    assert {f"runs at {s}" for s in inst.sites} <= set(gantt)
    timeline = " | ".join(legend_texts(drawn["timeline.png"]))
    for mark in ("migration transfer", "jobs running", "idle power", "grid power",
                 "renewable power available", "renewable window"):
        assert mark in timeline
    phase = " | ".join(legend_texts(drawn["phase.png"]))
    for mark in ("feasible", "marginal", "infeasible", "boundary", "class limits", "a job"):
        assert mark in phase
    for name in ("gantt-1.png", "timeline.png"):
        ax = drawn[name].axes[-1]
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks[:3] == ["00:00", "02:00", "04:00"], ticks       # tiny starts at midnight
        assert "UTC-07:00" in ax.get_xlabel()
    for fig in drawn.values():                       # no crowded tick labels anywhere
        for ax in fig.axes:
            assert not overlapping(ax.get_xticklabels()), ax.get_title()
            assert not overlapping(ax.get_yticklabels()), ax.get_title()


def test_clock_ticks_on_whole_hours_and_days():
    from dataclasses import replace
    from datetime import datetime

    from milp.figures import clock_ticks

    inst = load_instance(TINY)
    late = replace(inst, start=datetime.fromisoformat("2024-06-01T06:30:00+02:00"))
    ticks, labels = clock_ticks(late)
    assert ticks[0] == pytest.approx(1.5) and labels[0] == "08:00"     # every 2 h
    assert all(lab.endswith(":00") for lab in labels)
    ticks, labels = clock_ticks(late, hours=72)      # several days: midnight names the day
    assert "Jun 02\n00:00" in labels and len(labels) <= 13


# ---- the command ---------------------------------------------------------------------------

def test_gantt_pages_beyond_100_jobs_and_cli(tmp_path):
    d = TINY.parent / "scale-10x200"
    out = tmp_path / "plan"
    subprocess.run([*CLI, "plan", str(d), "--policy", "static", "--out", str(out), "--quiet"],
                   check=True)
    r = subprocess.run([*CLI, "report", str(d), str(out / "plan.json"), "--out",
                        str(tmp_path / "rep")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("static: ") and "(the reference)" in r.stdout
    assert sorted(p.name for p in (tmp_path / "rep").glob("gantt-*.png")) == \
        ["gantt-1.png", "gantt-2.png"]
    r = subprocess.run([*CLI, "report", str(d), str(tmp_path / "missing.json"), "--out",
                        str(tmp_path / "rep2")], capture_output=True, text=True)
    assert r.returncode == 2 and "file is missing" in r.stderr


def test_a_plan_naming_an_unknown_site_or_job_is_one_line(tmp_path):
    """It used to be a KeyError traceback, after a figure had been written into --out."""
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
