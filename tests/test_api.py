"""The Python API (README.md, "Python API"): milp.plan -> Outcome(plan, evaluation, facts),
Instance.from_frames, Plan.to_frame, one set of defaults, a plan of another instance refused,
__all__ and py.typed."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import milp
from milp.errors import InputError
from milp.evaluate import evaluate
from milp.instance import Instance, load_instance
from milp.plan import FRAME_COLUMNS, Plan, Run, check_matches
from milp.policies import POLICIES
from tests.conftest import COUNTED, ROOT, TINY, write_instance


@pytest.fixture(scope="module")
def inst():
    return load_instance(TINY)


def tiny_frames() -> dict:
    """tiny-3site's files read with pandas as a user would, and its settings."""
    frames = {k: pd.read_csv(TINY / f"{k}.csv") for k in ("sites", "renewable", "links", "jobs")}
    return {**frames, **tomllib.loads((TINY / "instance.toml").read_text())}


# ---- milp.plan -----------------------------------------------------------------------------

def test_plan_greedy_outcome_is_the_evaluators(inst):
    outcome = milp.plan(inst, "feasibility-aware")
    assert isinstance(outcome, milp.Outcome)
    e = evaluate(inst, outcome.plan)
    assert outcome.evaluation.metrics() == e.metrics()
    assert outcome.plan.to_dict() == POLICIES["feasibility-aware"](inst, None).to_dict()
    facts = outcome.facts
    assert facts["instance"] == "tiny-3site" and facts["policy"] == "feasibility-aware"
    assert facts["options"] == {} and "solver" not in facts and facts["wall_s"] >= 0
    summary = outcome.summary()
    assert list(summary)[:3] == ["instance", "policy", "wall_s"]
    assert {k: summary[k] for k in milp.METRICS} == e.metrics()
    json.dumps(summary, allow_nan=False)                       # summary.json as it is written


def test_plan_milp_passes_options_through_and_reports_progress(inst):
    events = []
    outcome = milp.plan(inst, engine="decomposition", seed=3, progress=events.append,
                        **COUNTED)
    facts = outcome.facts
    assert facts["policy"] == "milp"                                  # the default policy
    assert facts["options"] == {**milp.DEFAULTS, **COUNTED, "engine": "decomposition",
                                "seed": 3}
    assert facts["solver"]["engine"] == "decomposition"
    assert facts["solver"]["grid_energy_kwh"] == pytest.approx(
        outcome.evaluation.grid_energy_kwh, rel=1e-6)
    phases = [e["phase"] for e in events]
    assert phases[0] == "seeds" and phases[-1] == "done" and "lp" in phases
    assert all(e["elapsed_s"] >= 0 for e in events)
    assert events[-1]["incumbent"] == pytest.approx(facts["solver"]["objective"])
    prov = facts["provenance"]
    for key in ("milp", "highs", "pyomo", "python", "cores", "started", "wall_s"):
        assert prov[key] not in (None, "")
    assert prov["milp"] == milp.__version__ and prov["wall_s"] >= facts["wall_s"]


def test_plan_refuses_unknown_policies_and_options(inst):
    with pytest.raises(ValueError, match="unknown policy 'magic'"):
        milp.plan(inst, "magic")
    with pytest.raises(TypeError, match="unknown MILP option"):
        milp.plan(inst, "milp", time_limit=5)
    with pytest.raises(TypeError, match="takes no options"):
        milp.plan(inst, "static", gap=0.1)
    with pytest.raises(ValueError, match="unknown engine"):
        milp.plan(inst, "milp", engine="fast")


def test_no_plan_is_an_exception_that_says_why(tmp_path):
    from tests.test_explain import crowded

    d = crowded(tmp_path, [5] * 16, [])
    with pytest.raises(milp.NoPlan) as caught:
        milp.plan(load_instance(d), **COUNTED)
    e = caught.value
    assert e.status == "infeasible" and e.explained
    assert len(e.reasons) == 1 and "it cannot move: no link leaves home" in e.reasons[0]


def test_one_set_of_defaults_everywhere():
    """The API's defaults are the engine's, and every command offers them as its defaults."""
    from typer.main import get_command

    from milp.cli import app
    from milp.engine.solve import SolveOptions

    engine = SolveOptions()
    for key, value in milp.DEFAULTS.items():
        assert getattr(engine, key) == value, key
    commands = get_command(app).commands
    names = {"time_limit_s": "time_limit", "gap": "gap", "abs_gap": "abs_gap",
             "engine": "engine", "threads": "threads"}
    for command in ("plan", "bench", "replay", "replan"):
        params = {p.name: p for p in commands[command].params}
        for key, name in names.items():
            assert params[name].default == milp.DEFAULTS[key], (command, name)
    for command in ("plan", "replan"):
        params = {p.name: p for p in commands[command].params}
        assert params["policy"].default == milp.DEFAULT_POLICY == "milp"
        assert params["seed"].default == milp.DEFAULTS["seed"]


# ---- instances from frames -----------------------------------------------------------------

def test_from_frames_is_the_folder(inst):
    other = Instance.from_frames(**tiny_frames())
    for f in dataclasses.fields(Instance):
        a, b = getattr(inst, f.name), getattr(other, f.name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), f.name
        elif f.name != "extra":
            assert a == b, f.name


def test_from_frames_defaults_and_datetime_index(inst):
    frames = tiny_frames()
    renewable = frames["renewable"].assign(time=pd.to_datetime(frames["renewable"]["time"]))
    other = Instance.from_frames(sites=frames["sites"], renewable=renewable.set_index("time"),
                                 jobs=frames["jobs"], name="from-frames")
    assert other.start == inst.start and other.n_slots == inst.n_slots
    assert other.link_gbps.sum() == 0                          # no links given: none
    assert milp.plan(other, "static").evaluation.valid


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["jobs"].loc.__setitem__((2, "release"), "2024-06-01T06:07:00-07:00"),
     "jobs row 2, field 'release': '2024-06-01T06:07:00-07:00' is not on the 15-minute slot "
     "grid"),
    (lambda f: f["sites"].loc.__setitem__((1, "gpus"), -3),
     "sites row 1, field 'gpus': '-3' must be > 0"),
    (lambda f: f.__setitem__("sites", f["sites"].drop(columns="gpus")),
     "sites header, field 'gpus': column is missing"),
    (lambda f: f["migration"].__setitem__("alpha", 3),
     "settings, field 'migration.alpha': must be <= 1, got 3"),
])
def test_from_frames_mistakes_name_frame_row_and_column(edit, message):
    frames = tiny_frames()
    edit(frames)
    with pytest.raises(InputError) as caught:
        Instance.from_frames(**frames)
    assert str(caught.value) == message


# ---- plans as frames, plans of other instances ----------------------------------------------

def test_plan_to_frame_has_every_step(inst):
    plan = POLICIES["energy-only"](inst, None)
    df = plan.to_frame()
    steps = [(jp.job, k, s) for jp in plan.jobs for k, s in enumerate(jp.steps)]
    assert len(df) == len(steps) and list(df.columns) == list(FRAME_COLUMNS)
    for row, (job, k, s) in zip(df.itertuples(), steps):
        assert (row.job, row.step) == (job, k)
        assert row.start == pd.Timestamp(inst.time_of(s.start_s))
        if isinstance(s, Run):
            assert (row.kind, row.site, row.end_s) == ("run", s.site, s.end_s)
        else:
            assert (row.kind, row.src, row.dst, row.transfer_s) == ("migration", s.src, s.dst,
                                                                    s.transfer_s)
    assert str(df.start.dt.tz) == "UTC-07:00"


@pytest.mark.parametrize("change, field", [
    ({"instance": "paper-5site"}, "instance"),
    ({"start": "2024-06-02T00:00:00-07:00"}, "start"),
    ({"slot_minutes": 5}, "slot_minutes"),
])
def test_a_plan_of_another_instance_is_refused_by_name_start_or_slot(inst, change, field):
    plan = dataclasses.replace(POLICIES["static"](inst, None), **change)
    with pytest.raises(InputError) as caught:
        check_matches(plan, inst, "p.json")
    assert str(caught.value).startswith(f"p.json, field '{field}': ")
    with pytest.raises(InputError):
        milp.evaluate(inst, plan)
    same = dataclasses.replace(plan, instance=inst.name, start="2024-06-01T07:00:00+00:00",
                               slot_minutes=15)
    check_matches(same, inst)                         # the same instant, another offset


def test_a_plan_of_another_instance_is_one_line_for_every_command(tmp_path):
    """evaluate used to print 60+ violations and exit 1; report exited 0 with an empty
    Gantt."""
    from tests.test_cli import assert_one_error
    from tests.test_hostile import run_main

    paper = ROOT / "solutions" / "paper-5site" / "plan.json"
    for args in (["evaluate", TINY, paper], ["report", TINY, paper, "--out", tmp_path / "r"],
                 ["report", TINY, POLICIES["static"](load_instance(TINY), None).save(
                     tmp_path / "s.json"), "--compare", paper, "--out", tmp_path / "r"],
                 ["replay", TINY, paper, "--out", tmp_path / "r"]):
        code, out, err = run_main(*args)
        assert_one_error(code, out, err, f"error: {paper}, field 'instance': is a plan for "
                         f"instance 'paper-5site', not 'tiny-3site'")
        assert not (tmp_path / "r").exists()


# ---- the package ---------------------------------------------------------------------------

def test_public_names_and_typed_marker():
    for name in milp.__all__:
        assert getattr(milp, name) is not None, name
    assert callable(milp.plan) and milp.plan.__module__ == "milp"
    assert callable(milp.evaluate) and milp.evaluate.__module__ == "milp"
    import importlib
    assert importlib.import_module("milp.evaluate").evaluate is not milp.evaluate
    assert callable(milp.evaluate)                             # still the function
    from milp.plan import Plan as P                            # the submodule is still there
    assert P is milp.Plan and sys.modules["milp.plan"].Plan is P
    assert (Path(milp.__file__).parent / "py.typed").is_file()


def test_version_is_one_place():
    from importlib import metadata

    assert metadata.version("milp-green-planner") == milp.__version__
    r = subprocess.run([sys.executable, "-c", "from milp.cli import main; main()",
                        "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(f"milp {milp.__version__} (HiGHS ")
    assert "Pyomo" in r.stdout and "Python" in r.stdout


def test_api_and_cli_make_the_same_plan(tmp_path):
    d = write_instance(tmp_path / "inst", sites={"a": 1, "b": 1},
                       renewable={"a": [0, 0, 1, 1] * 2, "b": [1, 1, 0, 0] * 2},
                       links=[("a", "b", 10), ("b", "a", 10)],
                       jobs=[{"job": "j0", "origin": "a", "release_h": 0, "work_h": 0.5,
                              "checkpoint_gb": 1}])
    outcome = milp.plan(load_instance(d), "wait-awhile")
    from tests.conftest import run_cli
    assert run_cli("plan", d, "--policy", "wait-awhile", "--out", tmp_path / "o",
                   "--quiet").exit_code == 0
    assert Plan.load(tmp_path / "o" / "plan.json") == outcome.plan


def test_replan_and_replay_as_functions(tmp_path, inst):
    """milp replan and milp replay are milp.run.replan / milp.run.replay plus files."""
    from milp.replay import Faults
    from milp.run import replan, replay
    from milp.state import load_state

    plan = POLICIES["static"](inst, None)
    done = replay(inst, plan, Faults(outages=((2, 6 * 3600.0),)), source="static.json")
    summary = done.summary()
    assert summary["faults"]["outages"] == ["city@2024-06-01T06:00:00-07:00"]
    assert summary["actual"] == done.result.actual.metrics() and summary["options"] == {}
    assert summary["plan"] == "static.json" and "provenance" in summary
    assert done.result.first_state is not None
    done.result.first_state.save(inst, tmp_path / "state.json")
    again = replan(inst, load_state(inst, tmp_path / "state.json"), "milp", time_limit_s=10)
    s = again.summary()
    assert s["policy"] == "milp" and s["options"]["elastic"] and s["options"]["time_limit_s"] == 10
    assert {k: s[k] for k in milp.METRICS} == evaluate(again.rest.inst, again.local).metrics()
    with pytest.raises(InputError, match="is a plan for instance"):
        replay(inst, dataclasses.replace(plan, instance="x"), Faults())
