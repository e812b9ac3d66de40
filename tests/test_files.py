"""Outputs appear whole or not at all."""

from __future__ import annotations

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


def test_success_replaces_entries_whole_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    (out / "jobs").mkdir(parents=True)
    (out / "jobs" / "stale.sbatch").write_text("stale")
    (out / "notes.txt").write_text("mine")
    with staged_dir(out) as stage:
        (stage / "jobs").mkdir()
        (stage / "jobs" / "a.sbatch").write_text("a")
        write_atomic(stage / "submit.sh", "s")
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["a.sbatch"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "submit.sh").read_text() == "s"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


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
