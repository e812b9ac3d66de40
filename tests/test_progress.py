"""Solver progress for people (milp/progress.py and the commands): events throttled (a fake
clock, never the machine's speed), one line rewritten in place on a terminal, log lines
elsewhere, HiGHS's branch-and-bound log read as events, --verbose and --quiet."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import subprocess
import sys

import pytest

from milp.progress import (PYOMO_HIGHS, LogProgress, ProgressLine, Throttle, describe,
                           highs_event, highs_log)
from tests.conftest import TINY, branching_day

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_describe_says_it_in_units():
    line = describe({"phase": "mip", "elapsed_s": 12.34, "incumbent": 15.95, "bound": 15.7,
                     "gap": 0.016, "iteration": 34, "columns": 3210})
    assert line == "  12.3 s  mip  plan 15.95 kWh  bound 15.7 kWh  gap 1.6 %  round 34  " \
                   "3210 schedules"
    assert describe({"phase": "static", "elapsed_s": 0.5, "done": 24, "total": 96}) == \
        "   0.5 s  static  24/96 (25 %)"
    assert "bound" not in describe({"phase": "compact", "elapsed_s": 1, "incumbent": 3.0,
                                    "bound": float("-inf"), "gap": None})
    assert describe({"phase": "bench", "elapsed_s": 1, "cell": "tiny / milp"}).startswith(
        "[tiny / milp]")


def test_throttle_lets_through_first_new_phases_done_and_one_per_interval():
    clock = Clock()
    throttle = Throttle(1.0, clock)
    passed = []
    for k in range(1000):                           # 1000 events in 0.5 s: one shown
        clock.now = k * 0.0005
        if throttle({"phase": "lp"}):
            passed.append(("lp", clock.now))
    assert passed == [("lp", 0.0)]
    clock.now = 0.6
    assert throttle({"phase": "mip"})               # a new phase, at once
    assert not throttle({"phase": "lp"})            # a phase seen before waits its turn
    clock.now = 1.7
    assert throttle({"phase": "lp"})
    clock.now = 1.8
    assert throttle({"phase": "done"}) and throttle({"phase": "done"})


def test_a_terminal_gets_one_line_rewritten_in_place():
    clock = Clock()
    stream = io.StringIO()
    line = ProgressLine(stream, terminal=True, clock=clock)
    for k in range(500):                            # 500 events in 1 s: 5 or 6 updates
        clock.now = k * 0.002
        line({"phase": "lp", "elapsed_s": clock.now, "incumbent": 10 - k * 0.01})
    text = stream.getvalue()
    assert "\n" not in text
    assert 5 <= text.count("\r\x1b[K") <= 6
    line.close()
    assert stream.getvalue().endswith("\r\x1b[K")   # erased, nothing left behind


def test_elsewhere_throttled_log_lines(caplog):
    clock = Clock()
    line = ProgressLine(io.StringIO(), terminal=False, clock=clock)
    with caplog.at_level(logging.INFO, logger="milp.progress"):
        for k in range(2000):                       # 20 s of events, 10 per second
            clock.now = k * 0.01
            line({"phase": "lp" if k else "seeds", "elapsed_s": clock.now})
        line({"phase": "done", "elapsed_s": clock.now})
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4                       # seeds, lp at once, lp 10 s later, done
    assert "seeds" in messages[0] and "done" in messages[-1]
    verbose = ProgressLine(io.StringIO(), terminal=False, verbose=True, clock=clock)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="milp.progress"):
        for k in range(2000):
            clock.now = 100 + k * 0.01
            verbose({"phase": "lp", "elapsed_s": clock.now})
    assert 19 <= len(caplog.records) <= 21          # one per second with --verbose


# ---- HiGHS's log -----------------------------------------------------------------------------

#: Rows of HiGHS 1.16's branch-and-bound table, as it logs them.
ROWS = [
    ("         0       0         0   0.00%   0               6.739761883      100.00%        "
     "0      0      0         0     2.8s", (6.739761883, 0.0, 1.0)),
    (" C       0       0         0   0.00%   0.3259278644    5.267519711       93.81%     "
     "5258    422      2      7185     5.6s", (5.267519711, 0.3259278644, 0.9381)),
    ("         0       0         0   0.00%   -inf            inf                  inf        "
     "0      0      0         0     0.0s", (None, None, None)),
    ("         1       0         1 100.00%   0.0005625       0.0005625          0.00%        "
     "0      0      0       492     0.2s", (0.0005625, 0.0005625, 0.0)),
]


@pytest.mark.parametrize("row, expected", ROWS)
def test_highs_rows_are_read(row, expected):
    event = highs_event(row)
    got = (event["incumbent"], event["bound"], event["gap"])
    assert got == pytest.approx(expected) if expected[0] is not None else got == expected


@pytest.mark.parametrize("line", [
    "Src  Proc. InQueue |  Leaves   Expl. | BestBound       BestSol              Gap |   Cuts",
    "  Timing            16.26", "MIP has 22249 rows; 11138 cols; 68343 nonzeros", "",
    "Solving report", "  Gap               91.28% (tolerance: 1%)"])
def test_other_highs_lines_are_not_events(line):
    assert highs_event(line) is None


def test_highs_log_turns_lines_into_events_and_restores_the_logger(caplog):
    logger = logging.getLogger(PYOMO_HIGHS)
    before = (logger.level, logger.propagate, list(logger.handlers))
    events = []
    with caplog.at_level(logging.DEBUG, logger="milp.highs"):
        with highs_log(events.append, started=0.0):
            for row, _ in ROWS[:2]:
                logger.info(row)
            logger.info("Presolving model")
        assert [r.name for r in caplog.records] == []     # no echo unless asked
        with highs_log(events.append, started=0.0, echo=True):
            logger.info("Presolving model")
        assert [r.getMessage() for r in caplog.records] == ["Presolving model"]
    assert [e["phase"] for e in events] == ["compact", "compact"]
    assert events[1]["source"] == "highs" and events[1]["bound"] == pytest.approx(0.3259278644)
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def small(tmp_path):
    """A day the compact engine solves to optimality in about a second, branching."""
    return branching_day(tmp_path)


def test_the_compact_engines_progress_comes_from_highs(tmp_path):
    import milp
    from milp.instance import load_instance

    events = []
    outcome = milp.plan(load_instance(small(tmp_path)), engine="compact", gap=0, abs_gap=0,
                        progress=events.append)
    highs = [e for e in events if e.get("source") == "highs"]
    assert highs, [e["phase"] for e in events]
    last = highs[-1]
    assert last["incumbent"] == pytest.approx(outcome.facts["solver"]["objective"], rel=1e-6)
    assert events[-1]["phase"] == "done"


def test_library_default_is_quiet_log_lines(caplog):
    line = LogProgress(every_s=10, clock=Clock())
    with caplog.at_level(logging.INFO, logger="milp.progress"):
        line({"phase": "seeds", "elapsed_s": 0})
        line({"phase": "seeds", "elapsed_s": 0})
    assert len(caplog.records) == 1


# ---- the commands ------------------------------------------------------------------------------

def test_plan_logs_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    d = small(tmp_path)
    r = subprocess.run([*CLI, "plan", str(d), "--engine", "compact", "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "milp: solving the MILP for test (time limit 60 s" in lines[0]
    assert any("milp.progress:" in x and " seeds " in x for x in lines)
    assert any("milp.progress:" in x and " done  plan " in x and "gap" in x for x in lines)
    assert "\r" not in r.stderr and "Traceback" not in r.stderr
    assert r.stdout.splitlines()[0].startswith("instance")           # results on stdout

    r = subprocess.run([*CLI, "plan", str(d), "--engine", "compact", "--out",
                        str(tmp_path / "q"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""

    r = subprocess.run([*CLI, "plan", str(d), "--engine", "compact", "--out",
                        str(tmp_path / "v"), "--verbose"], capture_output=True, text=True)
    assert r.returncode == 0
    highs = [x for x in r.stderr.splitlines() if "milp.highs:" in x]
    assert any("Running HiGHS" in x for x in highs) and any("BestBound" in x for x in highs)


def test_plan_on_a_terminal_updates_one_line(tmp_path):
    """stderr a pseudo-terminal: the progress line is rewritten in place (carriage return,
    erase) and erased before the next message; stdout (a pipe) holds only the results."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, "plan", str(TINY), "--policy", "static", "--out",
                             str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=slave,
                            env={**os.environ, "COLUMNS": "120"})
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:                                 # the terminal closed: done
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert "\r\x1b[K" in err and "static" in err
    assert "\r\x1b[Kmilp: tiny-3site: valid plan in " in err  # the line erased first
    assert "milp.progress:" not in err                  # not log lines on a terminal
    assert out.decode().startswith("instance")
