"""Sweeps on Dask (milp.sweep): a local cluster gives the serial results, a dead worker's cell is
retried, cells resume and are computed again when their options change, Slurm workers through
dask-jobqueue; and milp bench's bugs of issue 16."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from milp import sweep
from milp.sweep import Cell, Where
from tests.conftest import ROOT, TINY

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]
PAPER = ROOT / "instances" / "paper-5site"
GREEDY = "static,wait-awhile,energy-only,feasibility-aware"


def bench(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "bench", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def results(out: Path) -> pd.DataFrame:
    """results.csv without the wall times (the only thing that differs between two runs of the
    deterministic policies)."""
    return pd.read_csv(out / "results.csv").drop(columns=["wall_s"])


# ---- a real local cluster ------------------------------------------------------------------

def test_a_local_cluster_of_two_processes_gives_the_serial_results(tmp_path):
    serial = bench(TINY, PAPER, "--policies", GREEDY, "--out", tmp_path / "serial")
    assert serial.returncode == 0, serial.stderr
    dask = bench(TINY, PAPER, "--policies", GREEDY, "--out", tmp_path / "dask", "--workers", 2)
    assert dask.returncode == 0, dask.stderr
    pd.testing.assert_frame_equal(results(tmp_path / "serial"), results(tmp_path / "dask"))
    assert len(results(tmp_path / "dask")) == 8
    ran = [json.loads(p.read_text())["sweep"] for p in
           (tmp_path / "dask" / "cells").rglob("summary.json")]
    assert len(ran) == 8 and all(r["worker"].startswith("tcp://") for r in ran)
    assert len({r["pid"] for r in ran} - {os.getpid()}) == 2      # both worker processes
    for name in ("serial", "dask"):                                # the plans are the same too
        assert (tmp_path / name / "cells" / "paper-5site" / "wait-awhile" / "plan.json").is_file()
    for cell in ("tiny-3site/energy-only", "paper-5site/feasibility-aware"):
        a = (tmp_path / "serial" / "cells" / cell / "plan.json").read_text()
        assert a == (tmp_path / "dask" / "cells" / cell / "plan.json").read_text()
    # not a terminal: a progress line per finished cell
    assert dask.stderr.count("bench  done in") == 8, dask.stderr


def die_once(marker: str, progress=None):
    """A cell whose first run kills its worker process outright (as the OOM killer would)."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(9)
    return {"options": {}, "value": 42, "pid": os.getpid()}, {"note.txt": "survived\n"}


def fine(value: int, progress=None):
    return {"options": {}, "value": value}, {}


def test_a_worker_that_dies_mid_cell_loses_only_that_cell(tmp_path, caplog):
    cells = [Cell("dies", tmp_path / "cells" / "dies", die_once, (str(tmp_path / "marker"),)),
             *(Cell(f"fine-{k}", tmp_path / "cells" / f"fine-{k}", fine, (k,)) for k in range(3)),
             Cell("broken", tmp_path / "cells" / "broken", flaky, (str(tmp_path), 0))]
    with caplog.at_level(logging.WARNING, logger="milp.sweep"):
        with pytest.raises(sweep.SweepFailed) as failed:
            sweep.run(cells, Where(workers=2))
    out = failed.value.outcome
    assert out.retried == {"dies": 1}
    assert out.failed == {"broken": "RuntimeError: the node went away"}   # an error: not retried
    assert sorted(out.computed) == ["dies", "fine-0", "fine-1", "fine-2"]
    summary = json.loads((tmp_path / "cells" / "dies" / "summary.json").read_text())
    assert summary["value"] == 42 and summary["sweep"]["retries"] == 1
    assert summary["pid"] != int((tmp_path / "marker").read_text())    # another process
    assert (tmp_path / "cells" / "dies" / "note.txt").read_text() == "survived\n"
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("dies: its worker died while running it") and "runs again" in m
               for m in said), said
    assert not any(m.startswith(("fine-", "broken: its worker")) for m in said)


# ---- Slurm workers through dask-jobqueue ------------------------------------------------------

def test_slurm_workers_started_by_sbatch_finish_the_cells(slurm, tmp_path):
    if not slurm.slurmd_started:
        pytest.skip(f"slurmd did not start, no job can run: {slurm.slurmd_problem}")
    out = tmp_path / "bench"
    r = bench(TINY, "--policies", "static,feasibility-aware,energy-only", "--out", out,
              "--slurm", "--slurm-partition", "city", "--slurm-cores", 1, "--slurm-memory",
              "1GB", "--slurm-walltime", "00:20:00", "--slurm-interface", "lo", env=slurm.env)
    assert r.returncode == 0, r.stderr[-3000:]
    ran = {p.parent.name: json.loads(p.read_text())["sweep"]
           for p in (out / "cells").rglob("summary.json")}
    assert len(ran) == 3
    jobs = {r["slurm_job"] for r in ran.values()}
    assert None not in jobs and all(r["worker"].startswith("tcp://127.0.0.1:")
                                    for r in ran.values())                                # every cell ran in a Slurm job
    for job in jobs:
        shown = slurm.show_job(job)
        assert shown["JobName"] == "milp-sweep" and shown["Partition"] == "city"
        log = (out / "slurm-logs" / f"milp-sweep-{job}.err").read_text()
        assert "Start Nanny at: 'tcp://127.0.0.1:" in log, log      # the loopback, as asked
    serial = bench(TINY, "--policies", "static,feasibility-aware,energy-only", "--out",
                   tmp_path / "serial")
    assert serial.returncode == 0, serial.stderr
    pd.testing.assert_frame_equal(results(out), results(tmp_path / "serial"))


# ---- resuming, options, milp bench's bugs --------------------------------------------------

def flaky(marker: str, value: int, progress=None):
    """A cell that fails while ``marker`` exists (a crash mid-sweep)."""
    if os.path.exists(marker):
        raise RuntimeError("the node went away")
    return {"options": {"v": value}, "value": value}, {"data.txt": f"{value}\n"}


def test_a_sweep_resumes_after_a_failed_cell_and_recomputes_changed_options(tmp_path, caplog):
    marker = tmp_path / "fail"
    marker.write_text("")
    cells = [Cell(f"c{k}", tmp_path / f"c{k}", flaky,
                  (str(marker) if k == 1 else str(tmp_path / "never"), k), {"v": k})
             for k in range(3)]
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "data.txt").write_text("half written by a cancelled run")
    with pytest.raises(sweep.SweepFailed, match="c1: RuntimeError: the node went away"):
        sweep.run(cells)
    assert not (tmp_path / "c1" / "summary.json").exists()          # nothing half-made
    assert json.loads((tmp_path / "c2" / "summary.json").read_text())["value"] == 2
    marker.unlink()
    out = sweep.run(cells)
    assert out.computed == ["c1"] and out.kept == ["c0", "c2"]
    assert (tmp_path / "c1" / "data.txt").read_text() == "1\n"
    changed = [cells[0], Cell("c1", tmp_path / "c1", flaky, (str(marker), 5), {"v": 5})]
    marker.write_text("")                                             # would fail if run
    with caplog.at_level(logging.INFO, logger="milp.sweep"):
        with pytest.raises(sweep.SweepFailed):
            sweep.run(changed)
    assert "c1: computed again: its options differ (v 1 -> 5)" in caplog.messages


def test_bench_milp_alone_and_a_changed_time_limit(tmp_path, caplog):
    from milp.bench import run_bench

    out = tmp_path / "b"
    run_bench([TINY], ["milp"], out, {"time_limit_s": 2.0})   # issue 16: KeyError, greedy minimum
    assert "not measured (no greedy policy in this run)" in (out / "results.md").read_text()
    summary = out / "cells" / "tiny-3site" / "milp" / "summary.json"
    used = json.loads(summary.read_text())["options"]
    assert used["time_limit_s"] == 2 and used["threads"] == 1       # one thread per MILP cell
    with caplog.at_level(logging.INFO, logger="milp.sweep"):
        run_bench([TINY], ["milp"], out, {"time_limit_s": 1.0})
    assert ("tiny-3site / milp: computed again: its options differ (time_limit_s 2.0 -> 1.0)"
            in caplog.messages), caplog.messages
    assert json.loads(summary.read_text())["options"]["time_limit_s"] == 1
    assert "time_limit_s 1" in (out / "results.md").read_text()


def test_bench_where_options_are_checked(tmp_path):
    from tests.conftest import run_cli

    for args, said in ((["--workers", 0], "error: --workers: 0 is not a whole number"),
                       (["--workers", 2, "--slurm"], "error: --slurm: give one of"),
                       (["--slurm-cores", 2], "error: --slurm-cores: needs --slurm"),
                       (["--scheduler", "nowhere"], "error: --scheduler: 'nowhere' is not")):
        r = run_cli("bench", TINY, "--out", tmp_path / "b", *args)
        assert r.exit_code == 2 and r.error.startswith(said), r.error
    assert not (tmp_path / "b").exists()                    # refused before anything ran


def test_the_progress_of_a_sweep_is_a_bar_on_a_terminal():
    from milp.progress import describe

    event = {"phase": "bench", "cell": "d / milp", "cells_done": 3, "cells_total": 12,
             "status": "done in 1.0 s", "finished": True}
    assert describe(event, bar=True).startswith("[#####---------------] 3/12  [d / milp]")
    assert describe(event).startswith("[3/12 cells]  [d / milp]")


def test_a_cell_is_computed_again_when_its_instance_changes(tmp_path, caplog):
    """The stale-cell bug's other half: a cell made from other instance files (or another plan,
    for the replays) is computed again; the instance's README does not count."""
    import shutil

    from milp.bench import run_bench

    day = tmp_path / "tiny-3site"
    shutil.copytree(TINY, day)
    out = tmp_path / "b"
    run_bench([day], ["static"], out)
    summary = out / "cells" / "tiny-3site" / "static" / "summary.json"
    made = json.loads(summary.read_text())["inputs"]
    assert made == sweep.fingerprint(day)
    (day / "README.md").write_text("notes that change nothing\n")
    with caplog.at_level(logging.INFO, logger="milp.sweep"):
        run_bench([day], ["static"], out)
    assert not any("computed again" in m for m in caplog.messages), caplog.messages
    jobs = (day / "jobs.csv").read_text().splitlines()
    fields = jobs[1].split(",")
    col = jobs[0].split(",").index("work_h")
    fields[col] = str(float(fields[col]) / 2)
    (day / "jobs.csv").write_text("\n".join([jobs[0], ",".join(fields), *jobs[2:]]) + "\n")
    with caplog.at_level(logging.INFO, logger="milp.sweep"):
        run_bench([day], ["static"], out)
    assert ("tiny-3site / static: computed again: its inputs changed (instance or plan files)"
            in caplog.messages), caplog.messages
    assert json.loads(summary.read_text())["inputs"] == sweep.fingerprint(day) != made


def test_bench_names_the_instance_folder_of_a_mistake(tmp_path):
    """Issue 19: with many instances, the one line names the folder, not just ``jobs.csv``."""
    import shutil

    from tests.conftest import run_cli

    bad = tmp_path / "days" / "bad"
    shutil.copytree(TINY, bad)
    rows = (bad / "jobs.csv").read_text().splitlines()
    rows[1] = "," + rows[1].split(",", 1)[1]
    (bad / "jobs.csv").write_text("\n".join(rows) + "\n")
    r = run_cli("bench", TINY, bad, "--policies", "static", "--out", tmp_path / "out")
    assert r.exit_code == 2
    assert f"{bad / 'jobs.csv'} line 2, field 'job'" in r.error, r.error
    assert not (tmp_path / "out").exists()
