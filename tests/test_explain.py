"""When no plan meets every deadline, `milp plan` names each job and its binding reason."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import HANG_GUARD, write_instance

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


def crowded(tmp_path, far_sun: list[float], links, gb: float = 200):
    """Two 2-hour jobs on one GPU at `home`, both due in 3 h: one must leave for `far` (a move
    costs its first slot, so it can still finish there by 2 h 15 min)."""
    return write_instance(
        tmp_path / "inst", sites={"home": 1, "far": 2},
        renewable={"home": [0] * 16, "far": far_sun}, links=links,
        jobs=[{"job": f"j{k}", "origin": "home", "release_h": 0, "work_h": 2,
               "checkpoint_gb": gb, "deadline_h": 3} for k in range(2)])


@pytest.mark.parametrize("sun, links, reason", [
    ([5] * 4 + [0] * 12, [("home", "far", 1)],
     "its 200 GB checkpoint needs 1610 s even over the fastest link (1 Gbps), more than "
     "alpha x window = 360 s of any window it can reach before its deadline (link too slow "
     "for any feasible move)"),
    ([5] * 16, [], "it cannot move: no link leaves home"),
    ([0] * 16, [("home", "far", 100)], "no site it links to has a renewable window before its "
     "deadline"),
])
def test_plan_names_the_binding_reason(tmp_path, sun, links, reason):
    d = crowded(tmp_path, sun, links)
    r = subprocess.run([*CLI, "plan", str(d), "--policy", "milp", *HANG_GUARD,
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert "error: no plan meets every deadline:" in lines
    job_lines = [x for x in lines if x.strip().startswith("job j")]
    assert len(job_lines) == 1
    assert "1 of 2 GPU-h cannot be done by 2024-06-01T03:00" in job_lines[0]
    assert "its sites (home) offer 3 GPU-h between release and deadline, and 2 jobs there " \
           "need 4 GPU-h of it" in job_lines[0]
    assert reason in job_lines[0]
    assert lines[-1].startswith("Rerun with --elastic")
    assert len(lines) <= 25 and not (tmp_path / "o").exists()


def test_a_fast_link_makes_it_feasible(tmp_path):
    """Control: the same day with a 100 Gbps link and a long window has a plan."""
    d = crowded(tmp_path, [5] * 16, [("home", "far", 100)], gb=5)
    r = subprocess.run([*CLI, "plan", str(d), "--policy", "milp", *HANG_GUARD,
                        "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
