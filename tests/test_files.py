"""Outputs appear whole or not at all."""

from __future__ import annotations

import os

import pytest

from milp.files import staged_dir, write_atomic


def test_a_failure_inside_leaves_out_untouched_and_no_temporary_behind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.json").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_dir(out) as stage:
            (stage / "plan.json").write_text("new")
            (stage / "summary.json").write_text("half")
            raise RuntimeError("the evaluator failed")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == ["plan.json"]
    assert (out / "plan.json").read_text() == "old"


def test_success_replaces_earlier_outputs_and_keeps_the_users_files(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out) as stage:                       # an earlier export
        (stage / "jobs").mkdir()
        (stage / "jobs" / "stale.sbatch").write_text("stale")
    (out / "jobs" / "notes.txt").write_text("mine, in the folder milp writes")
    (out / "notes.txt").write_text("mine")
    kept = []
    with staged_dir(out, kept=kept.extend) as stage:
        (stage / "jobs").mkdir()
        (stage / "jobs" / "a.sbatch").write_text("a")
        write_atomic(stage / "submit.sh", "s")
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["a.sbatch", "notes.txt"]
    assert (out / "jobs" / "notes.txt").read_text() == "mine, in the folder milp writes"
    assert kept == [out / "jobs" / "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "submit.sh").read_text() == "s"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_folder_without_a_manifest_is_merged_never_emptied(tmp_path):
    out = tmp_path / "out"
    (out / "jobs").mkdir(parents=True)
    (out / "jobs" / "x.yaml").write_text("someone's")       # written by hand, or an old milp
    with staged_dir(out) as stage:
        (stage / "jobs").mkdir()
        (stage / "jobs" / "a.yaml").write_text("a")
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["a.yaml", "x.yaml"]


@pytest.mark.parametrize("make, name", [
    (lambda out: (out / "plan.json").mkdir(), "plan.json"),       # a folder where a file goes
    (lambda out: (out / "jobs").write_text("a file"), "jobs"),    # a file where a folder goes
    (lambda out: (out / "jobs").symlink_to(out.parent), "jobs"),  # a link where a folder goes
])
def test_an_entry_in_the_way_is_refused_and_nothing_moves(tmp_path, make, name):
    from milp.errors import InputError

    out = tmp_path / "out"
    out.mkdir()
    make(out)
    (out / "summary.json").write_text("old")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(InputError, match=name):
        with staged_dir(out) as stage:
            (stage / "plan.json").write_text("new")
            (stage / "summary.json").write_text("new")
            (stage / "jobs").mkdir()
            (stage / "jobs" / "a").write_text("a")
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "summary.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_outputs_named_in_replaces_are_files_only(tmp_path):
    out = tmp_path / "out"
    (out / "state.json").mkdir(parents=True)               # the user's folder of that name
    (out / "state.json" / "keep").write_text("k")
    with staged_dir(out, replaces=("state.json",)) as stage:
        (stage / "plan.json").write_text("p")
    assert (out / "state.json" / "keep").read_text() == "k"


@pytest.mark.parametrize("line", ["../victim", "/VICTIM", "jobs/../../victim",
                                  "./jobs/../../victim", "jobs/../link/victim", "jobs//../victim"])
def test_a_tampered_manifest_deletes_nothing_outside_the_output(tmp_path, line):
    from milp.files import MANIFEST

    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    (out / "jobs").mkdir(parents=True)
    (out / "link").symlink_to(tmp_path)
    (out / MANIFEST).write_text(line.replace("VICTIM", str(victim).lstrip("/")) + "\n")
    with staged_dir(out) as stage:
        (stage / "jobs").mkdir()
        (stage / "jobs" / "a").write_text("a")
    assert victim.read_text() == "precious"


def test_two_runs_into_one_folder_at_once_both_finish_whole(tmp_path):
    """Each process stalls while it moves its files in (every rename slowed), both at the
    same moment: without a lock, one removes or fills the folder the other is moving."""
    import multiprocessing

    out = tmp_path / "out"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_slow_commit, args=(out, tag, barrier)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    names = sorted(p.name for p in (out / "jobs").iterdir())
    assert len(names) == 20 and len({n[0] for n in names}) == 1     # one run's files, whole
    assert (out / "submit.sh").read_text() == names[0][0]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _slow_commit(out, tag, barrier) -> None:
    import os
    import time

    import milp.files

    real = os.replace

    def slow(a, b):
        time.sleep(0.02)
        real(a, b)
    milp.files.os.replace = slow
    try:
        with staged_dir(out) as stage:
            (stage / "jobs").mkdir()
            for k in range(20):
                (stage / "jobs" / f"{tag}{k}.sbatch").write_text(tag)
            (stage / "submit.sh").write_text(tag)
            barrier.wait(60)
    except BaseException as e:          # the child's traceback is the test's evidence
        import traceback
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def test_leftovers_of_killed_processes_are_swept_others_kept(tmp_path):
    import socket
    import subprocess

    from milp.files import sweep_leftovers

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    out = tmp_path / "out"
    mine_dead = tmp_path / f".out.{host}-{dead.pid}.abc123.tmp"
    mine_dead.mkdir()
    (mine_dead / "plan.json").write_text("half")
    file_dead = tmp_path / f".out.{host}-{dead.pid}.xyz.tmp"
    file_dead.write_text("half")
    alive = tmp_path / f".out.{host}-{os.getpid()}.def456.tmp"
    alive.mkdir()
    other_host = tmp_path / f".out.elsewhere.example-{dead.pid}.ghi789.tmp"
    other_host.mkdir()
    with staged_dir(out) as stage:
        (stage / "plan.json").write_text("p")
    assert not mine_dead.exists() and not file_dead.exists()
    assert alive.exists() and other_host.exists()
    assert sweep_leftovers(out) == []


def test_a_new_folder_is_created_only_on_success(tmp_path):
    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "new") as stage:
            (stage / "x").write_text("x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_folders_made_for_a_failed_output_are_removed(tmp_path):
    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "a" / "b" / "out") as stage:
            (stage / "x").write_text("x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_out_under_a_file_is_one_line(tmp_path):
    from tests.conftest import TINY, run_cli

    (tmp_path / "f").write_text("x")
    r = run_cli("plan", TINY, "--policy", "static", "--out", tmp_path / "f" / "sub")
    assert r.exit_code == 2 and "which is a file" in r.error
