"""The command line's contract, whatever the command: a mistake on the command line is one
``error:`` line and exit 2 (never the framework's box, never a traceback, whatever number an
option is given); long lists are cut; SIGTERM (what timeout, Slurm, systemd and Kubernetes send)
leaves nothing half-written, no staging folder either; and an output of two files appears whole
or not at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from milp.plan import JobPlan, Plan, Run
from milp.policies import POLICIES
from tests.conftest import HANG_GUARD, ROOT, TINY, run_cli
from tests.test_hostile import run_main


def assert_one_error(code: int, out: str, err: str, start: str = "error: ") -> None:
    assert code == 2, (code, out, err)
    assert out == "" and err.startswith(start), err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert "Traceback" not in err and "╭" not in err and "Usage:" not in err


# ---- mistakes on the command line ------------------------------------------------------------

@pytest.mark.parametrize("args, start", [
    (["plan", TINY, "--out", "o", "--bogus"], "error: --bogus: no such option of milp plan"),
    (["plan", TINY], "error: --out: milp plan needs this option"),
    (["check"], "error: DIRECTORY: milp check needs this argument"),
    (["plan", TINY, "--out", "o", "--threads", "two"], "error: --threads: "),
    (["plan", TINY, "--out", "o", "--policy"], "error: --policy: "),
    (["plan", TINY, "--out", "o", "extra"], "error: milp plan: Got unexpected extra argument"),
    (["teleport"], "error: milp: No such command 'teleport'"),
    (["export", "pdf", "p.json"], "error: milp export: No such command 'pdf'"),
    (["feasibility", "--checkpoint-gb", "1"], "error: --bandwidth-gbps: "),
])
def test_a_command_line_mistake_is_one_error_line(tmp_path, args, start):
    """It used to be typer's five-line box (Usage, a hint, a frame around the message)."""
    assert_one_error(*run_main(*[a if a != "o" else tmp_path / "o" for a in args]), start)
    assert not (tmp_path / "o").exists()


def test_help_is_still_help():
    code, out, err = run_main("plan", "--help")
    assert code == 0 and "--policy" in out and err == ""
    code, out, err = run_main()
    assert code == 2 and "plan" in out and "export" in out and err == ""


#: Every numeric option, with the arguments its command needs besides (nothing runs long: the
#: values tried are all out of range, so each command stops at its option).
NUMERIC = [
    *((["feasibility", "--checkpoint-gb", "1", "--bandwidth-gbps", "1"], o) for o in (
        "--checkpoint-gb", "--bandwidth-gbps", "--window-h", "--alpha", "--load-time-s",
        "--downtime-s", "--transfer-kw", "--compute-kw")),
    *((["phase-diagram", "--out", "OUT.png"], o) for o in (
        "--window-h", "--alpha", "--load-time-s", "--downtime-s", "--min-gb", "--max-gb",
        "--min-gbps", "--max-gbps", "--points")),
    *((["plan", TINY, "--policy", "static", "--out", "OUT"], o) for o in (
        "--time-limit", "--gap", "--threads", "--max-sites", "--seed")),
    *((["replay", TINY, "PLAN", "--out", "OUT", "--replan", "static"], o) for o in (
        "--bandwidth-factor", "--renewable-noise", "--seed", "--checkpoint-minutes",
        "--replan-every", "--time-limit")),
    (["replan", TINY, "--state", "STATE", "--policy", "static", "--out", "OUT"], "--time-limit"),
    (["export", "slurm", "PLAN", "--out", "OUT"], "--margin"),
    (["export", "kubernetes", "PLAN", "--out", "OUT"], "--margin"),
    (["export", "kubernetes", "PLAN", "--out", "OUT"], "--ttl"),
    (["bench", TINY, "--out", "OUT", "--policies", "static"], "--time-limit"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    from milp.instance import load_instance

    plan = POLICIES["static"](load_instance(TINY), None).save(d / "plan.json")
    (d / "state.json").write_text(json.dumps({
        "schema": "milp-state", "version": 1, "at": "2024-06-01T06:00:00-07:00", "jobs": []}))
    return {"PLAN": plan, "STATE": d / "state.json"}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "-1e308", "-1",
                                   "99999999999999999999999"])
@pytest.mark.parametrize("args, option", NUMERIC, ids=[f"{a[0]} {o}" for a, o in NUMERIC])
def test_no_number_given_to_an_option_is_a_traceback(tmp_path, inputs, args, option, value):
    """Every value here is out of range for every option: one line naming the option, exit 2,
    nothing written. (inf, 1e308 and -1 used to end in OverflowError, ValueError or a JSON
    error in replay, phase-diagram and feasibility.)"""
    code, out, err = run_main(*argv(args, tmp_path, inputs), option, value)
    assert_one_error(code, out, err, f"error: {option}: ")
    assert list(tmp_path.iterdir()) == []


def argv(args: list, tmp_path: Path, inputs: dict[str, Path]) -> list:
    """``args`` with OUT… as a path under ``tmp_path`` and PLAN, STATE as the inputs."""
    return [tmp_path / ("out" + a[3:]) if isinstance(a, str) and a.startswith("OUT")
            else inputs.get(a, a) if isinstance(a, str) else a for a in args]


@pytest.mark.parametrize("args", [
    ["feasibility", "--checkpoint-gb", "1e12", "--bandwidth-gbps", "0", "--alpha", "0"],
    ["feasibility", "--checkpoint-gb", "0", "--bandwidth-gbps", "1e12", "--compute-kw", "1e12"],
])
def test_the_ends_of_each_range_are_accepted(args):
    code, out, err = run_main(*args, "--json")
    assert code == 0 and err == "" and json.loads(out)["class"] in "ABC"


# ---- long lists --------------------------------------------------------------------------------

def test_evaluate_prints_at_most_20_violations_and_json_lists_them_all(tmp_path):
    """A plan with 200 014 violations used to print 200 014 lines."""
    steps = tuple(Run("mars", 60.0 * k, 60.0 * k + 30) for k in range(120))
    path = Plan("tiny-3site", "2024-06-01T00:00:00-07:00", 15, "p",
                (JobPlan("j01", steps),)).save(tmp_path / "p.json")
    code, out, err = run_main("evaluate", TINY, path)
    lines = [x for x in out.splitlines() if x.startswith("violation: ")]
    assert code == 1 and len(lines) == 21
    assert lines[-1] == "violation: ... and 100 more (--json lists them all)"
    code, out, _ = run_main("evaluate", TINY, path, "--json")
    assert code == 1 and len(json.loads(out)["violations"]) == 120


# ---- SIGTERM -----------------------------------------------------------------------------------

#: Runs milp with every write into a temporary file or staging folder stalled for 5 minutes
#: after it has happened (the first one), having created $MILP_TEST_READY: the test then sends
#: the signal while the command is half-way through its output.
STALLED = r"""
import os, pathlib, sys, time
ready = os.environ["MILP_TEST_READY"]
def stall(real):
    def write(self, *args, **kwargs):
        n = real(self, *args, **kwargs)
        if ".tmp" in str(self) and not os.path.exists(ready):
            open(ready, "w").close()
            time.sleep(300)
        return n
    return write
pathlib.Path.write_bytes = stall(pathlib.Path.write_bytes)
pathlib.Path.write_text = stall(pathlib.Path.write_text)
from milp.cli import main
sys.argv = ["milp", *sys.argv[1:]]
main()
"""

#: Every command that writes output, with its arguments (OUT: its output).
WRITERS = {
    "plan": ["plan", TINY, "--policy", "static", "--out", "OUT"],
    "replay": ["replay", TINY, "PLAN", "--out", "OUT"],
    "replan": ["replan", TINY, "--state", "STATE", "--policy", "static", "--out", "OUT"],
    "report": ["report", TINY, "PLAN", "--out", "OUT"],
    "export json": ["export", "json", "PLAN", "--out", "OUT"],
    "export csv": ["export", "csv", "PLAN", "--out", "OUT"],
    "export steps": ["export", "steps", "PLAN", "--out", "OUT"],
    "export slurm": ["export", "slurm", "PLAN", "--out", "OUT"],
    "export kubernetes": ["export", "kubernetes", "PLAN", "--out", "OUT"],
    "export argo": ["export", "argo", "PLAN", "--out", "OUT"],
    "phase-diagram": ["phase-diagram", "--points", "5", "--out", "OUT"],
    "build-instance": ["build-instance", "--out", "OUT", "--jobs", "10", "--sites", "2"],
    "bench": ["bench", TINY, "--policies", "static", "--out", "OUT"],
    "pareto": ["pareto", TINY, "--points", "1", "--time-limit", "3", "--out", "OUT"],
}


@pytest.mark.parametrize("signum", [signal.SIGTERM])
@pytest.mark.parametrize("command", WRITERS)
def test_sigterm_half_way_through_an_output_leaves_nothing(tmp_path, inputs, command, signum):
    """The default action of SIGTERM used to end the process on the spot, leaving its hidden
    staging folder (or temporary file) beside --out for good; SIGINT was clean."""
    work = tmp_path / "work"
    work.mkdir()
    out = work / ("out.png" if command == "phase-diagram" else "out")
    args = [str(out) if a == "OUT" else str(inputs.get(a, a)) for a in WRITERS[command]]
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", STALLED, *args], cwd=ROOT,
                            env={**os.environ, "MILP_TEST_READY": str(ready)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"{command} ended before writing: {proc.communicate()}")
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    left = list(work.rglob("*"))
    assert not [p for p in left if p.name.endswith(".tmp")], \
        "a staging folder or temporary file was left behind"
    if command == "bench":     # resumable: finished cells stay, and the folders of the next
        assert not [p for p in left if p.is_file()]              # (none finished here)
    else:
        assert left == []


def test_sighup_is_handled_as_sigterm(tmp_path, inputs):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", STALLED, "export", "slurm",
                             str(inputs["PLAN"]), "--out", str(tmp_path / "o")], cwd=ROOT,
                            env={**os.environ, "MILP_TEST_READY": str(ready)})
    try:
        while not ready.exists() and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]


# ---- two files, both or neither ----------------------------------------------------------------

def test_phase_diagram_writes_its_csv_only_with_its_png(tmp_path, monkeypatch):
    """It used to write the CSV first, then fail on the PNG, leaving the CSV alone."""
    import milp.figures

    def broken(*args, **kwargs):
        raise RuntimeError("the PNG cannot be drawn")
    monkeypatch.setattr(milp.figures, "phase_diagram_png", broken)
    with pytest.raises(RuntimeError):
        run_cli("phase-diagram", "--points", "5", "--out", tmp_path / "pd.png")
    assert list(tmp_path.iterdir()) == []


# ---- --json, provenance, --version -------------------------------------------------------------

#: Every command that prints results, with arguments (OUT: an output under the test's folder).
JSON_COMMANDS = {
    "check": ["check", TINY],
    "feasibility": ["feasibility", "--checkpoint-gb", "40", "--bandwidth-gbps", "10"],
    "phase-diagram": ["phase-diagram", "--points", "5", "--out", "OUT.png"],
    "evaluate": ["evaluate", TINY, "PLAN"],
    "plan": ["plan", TINY, "--policy", "static", "--out", "OUT"],
    "bench": ["bench", TINY, "--policies", "static,wait-awhile", "--out", "OUT"],
    "report": ["report", TINY, "PLAN", "--out", "OUT"],
    "build-instance": ["build-instance", "--out", "OUT", "--jobs", "10", "--sites", "2"],
    "pareto": ["pareto", TINY, "--points", "1", "--time-limit", "3", "--out", "OUT"],
    "replay": ["replay", TINY, "PLAN", "--out", "OUT", "--bandwidth-factor", "0.5"],
    "replan": ["replan", TINY, "--state", "STATE", "--policy", "static", "--out", "OUT"],
    "export json": ["export", "json", "PLAN", "--out", "OUT.json"],
    "export csv": ["export", "csv", "PLAN", "--out", "OUT.csv"],
    "export steps": ["export", "steps", "PLAN", "--out", "OUT.json"],
    "export slurm": ["export", "slurm", "PLAN", "--out", "OUT"],
    "export kubernetes": ["export", "kubernetes", "PLAN", "--out", "OUT"],
    "export argo": ["export", "argo", "PLAN", "--out", "OUT"],
}


def test_every_command_has_json():
    from typer.main import get_command

    from milp.cli import app

    def leaves(group, prefix=""):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from leaves(cmd, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", cmd
    found = dict(leaves(get_command(app)))
    assert set(found) == set(JSON_COMMANDS)
    for name, cmd in found.items():
        assert any("--json" in p.opts for p in cmd.params), name


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_json_output_is_json(tmp_path, inputs, command):
    code, out, err = run_main(*argv(JSON_COMMANDS[command], tmp_path, inputs), "--json")
    assert code == 0, (out, err)
    data = json.loads(out)
    assert data
    if command in ("plan", "replan", "replay", "pareto"):
        assert data == json.loads((tmp_path / "out" / "summary.json").read_text())
        prov = data["provenance"]
        assert {"milp", "highs", "pyomo", "python", "cores", "started", "wall_s",
                "command"} <= set(prov) and prov["command"].startswith(f"milp {command} ")
        assert "options" in data


def test_plan_summary_records_options_versions_and_writes_timeseries(tmp_path):
    from milp.evaluate import evaluate
    from milp.instance import load_instance
    from milp.plan import Plan
    import milp
    import numpy as np
    import pandas as pd

    code, out, err = run_main("plan", TINY, "--time-limit", "20", "--seed", "5", "--gap",
                              "0.02", "--out", tmp_path / "o", "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["policy"] == "milp"                                   # the default
    assert summary["options"] == {**milp.DEFAULTS, "time_limit_s": 20.0, "seed": 5,
                                  "gap": 0.02}
    prov = summary["provenance"]
    assert prov["milp"] == milp.__version__ and prov["cores"] >= 1
    assert prov["wall_s"] >= summary["wall_s"] > 0
    assert "--seed 5" in prov["command"]
    inst = load_instance(TINY)
    e = evaluate(inst, Plan.load(tmp_path / "o" / "plan.json"))
    ts = pd.read_parquet(tmp_path / "o" / "timeseries.parquet")
    assert np.allclose(ts.load_kw.to_numpy().reshape(inst.n_sites, -1) * inst.slot_h,
                       e.load_kwh, atol=1e-6)
    csv = pd.read_csv(tmp_path / "o" / "timeseries.csv")
    assert csv.time[0] == "2024-06-01T00:00:00-07:00" and len(csv) == len(ts)


def test_bench_cells_record_their_options_and_provenance(tmp_path):
    code, out, err = run_main("bench", TINY, "--policies", "static,milp", "--time-limit", "10",
                              "--engine", "decomposition", "--out", tmp_path / "b", "--quiet")
    assert code == 0, err
    cell = json.loads((tmp_path / "b" / "cells" / "tiny-3site" / "milp" / "summary.json")
                      .read_text())
    assert cell["options"]["time_limit_s"] == 10 and cell["options"]["engine"] == \
        "decomposition"
    assert cell["provenance"]["command"].startswith("milp bench ")
    md = (tmp_path / "b" / "results.md").read_text()
    assert "time_limit_s 10" in md and "engine decomposition" in md


def test_interchange_files_carry_no_float_noise(tmp_path):
    """steps.csv used to hold 479.9999999999968."""
    import pandas as pd

    steps = (Run("city", 0.0, 479.9999999999968), Run("city", 2699.9999999999995,
                                                      4500.000000000001, restore_s=10.4))
    path = Plan("tiny-3site", "2024-06-01T00:00:00-07:00", 15, "p",
                (JobPlan("j01", steps),)).save(tmp_path / "p.json")
    assert run_main("export", "csv", path, "--out", tmp_path / "s.csv")[0] == 0
    text = (tmp_path / "s.csv").read_text()
    assert "479.99" not in text and "2699.99" not in text and "4500.0000" not in text
    rows = pd.read_csv(tmp_path / "s.csv")
    assert rows.end_s.tolist() == [480.0, 4500.0] and rows.start_s.tolist() == [0.0, 2700.0]
    assert rows.end[0] == "2024-06-01T00:08:00-07:00"
    from milp.instance import load_instance
    from milp.plan import schedule_frame
    sched = schedule_frame(Plan.load(path), load_instance(TINY))
    assert set(sched.run_s.round(3)) == set(sched.run_s)


def test_json_stdout_stays_json_when_the_solver_talks(tmp_path):
    """highspy prints HiGHS's banner on descriptor 1 when the decomposition makes a model: it
    used to land in stdout, before the results."""
    # any bound ends the solve (--abs-gap), so the time limit is only a guard against a hang
    r = subprocess.run([sys.executable, "-c", "from milp.cli import main; main()", "plan",
                        str(TINY), "--engine", "decomposition", "--abs-gap", "1e6",
                        *HANG_GUARD, "--out", str(tmp_path / "o"), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["solver"]["engine"] == "decomposition"
    assert "Running HiGHS" not in r.stdout + r.stderr            # only with --verbose


# ---- out of memory -------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["milp.instance.load_instance", "milp.plan.save_schedule"])
def test_out_of_memory_is_one_line_not_a_traceback(tmp_path, monkeypatch, where):
    """A MemoryError (a huge instance on a small machine) used to end in a traceback; here it
    comes while reading the instance, or while writing the output (its staging folder goes)."""
    import importlib

    def exhausted(*args, **kwargs):
        raise MemoryError
    module, name = where.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), name, exhausted)
    for args in (["check", TINY], ["plan", TINY, "--policy", "static", "--out", tmp_path / "o"]):
        if where.endswith("save_schedule") and args[0] == "check":
            continue
        code, out, err = run_main(*args)
        assert code == 1 and "Traceback" not in err, err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: out of memory: ")
        assert err.splitlines()[-1] == errors[0] and list(tmp_path.iterdir()) == []
