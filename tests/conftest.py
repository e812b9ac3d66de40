"""Shared test helpers: write small instance folders from Python literals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instances" / "tiny-3site"
#: The shipped MILP plan of paper-5site, and every plan shipped under solutions/.
GOLDEN_PLAN = ROOT / "solutions" / "paper-5site" / "plan.json"
SHIPPED_PLANS = sorted((ROOT / "solutions").rglob("*plan.json"))
START = "2024-06-01T00:00:00+00:00"
#: MILP options whose every limit is a count — column-generation rounds, branch-and-bound nodes
#: (HiGHS's mip_max_nodes), search moves, best-response sweeps, dives — on one thread, so that
#: what a solve reaches does not depend on the machine's speed or load; the time limit is far
#: above what the work needs and only guards against a hang (README.md, 'Reliability').
COUNTED = dict(time_limit_s=600, max_rounds=60, node_limit=200, search_moves=20,
               max_sweeps=100, max_dives=1, threads=1)
#: The command line takes no count limits: its tests of the MILP run tiny days (a proof of
#: infeasibility, a 2-job optimum) with a time limit far above what they need, only a guard
#: against a hang.
HANG_GUARD = ["--time-limit", "600", "--threads", "1"]


def iso(hours: float, start: str = START) -> str:
    """ISO time ``hours`` after ``start``."""
    return (datetime.fromisoformat(start) + timedelta(hours=hours)).isoformat()


def write_instance(directory: Path, *, sites: dict[str, int], renewable: dict[str, list[float]],
                   jobs: list[dict], links: list[tuple[str, str, float]] = (),
                   slots: int | None = None, slot_minutes: float = 15, toml_extra: str = "",
                   name: str = "test", idle_kw: dict[str, float] | None = None) -> Path:
    """Write an instance folder. ``jobs`` rows: job, origin, release_h, work_h, checkpoint_gb
    and optionally deadline_h (hours from start) and compute_kw."""
    directory.mkdir(parents=True, exist_ok=True)
    slots = slots or len(next(iter(renewable.values())))
    (directory / "instance.toml").write_text(
        f'name = "{name}"\nstart = "{START}"\nslot_minutes = {slot_minutes}\nslots = {slots}\n'
        + toml_extra)
    idle = idle_kw or {}
    (directory / "sites.csv").write_text(
        "site,gpus,idle_kw\n" + "".join(f"{s},{g},{idle.get(s, 0)}\n" for s, g in sites.items()))
    names = list(sites)
    rows = [",".join(["time", *names])]
    for k in range(slots):
        rows.append(",".join([iso(k * slot_minutes / 60), *(f"{renewable[s][k]:g}" for s in names)]))
    (directory / "renewable.csv").write_text("\n".join(rows) + "\n")
    (directory / "links.csv").write_text(
        "src,dst,gbps\n" + "".join(f"{a},{b},{g}\n" for a, b, g in links))
    has_kw = any("compute_kw" in j for j in jobs)
    head = "job,origin,release,deadline,work_h,checkpoint_gb" + (",compute_kw" if has_kw else "")
    lines = [head]
    for j in jobs:
        deadline = iso(j["deadline_h"]) if j.get("deadline_h") is not None else ""
        row = [j["job"], j["origin"], iso(j["release_h"]), deadline, f"{j['work_h']:g}",
               f"{j['checkpoint_gb']:g}"]
        if has_kw:
            row.append(f"{j['compute_kw']:g}" if "compute_kw" in j else "")
        lines.append(",".join(row))
    (directory / "jobs.csv").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="session")
def moving_plan(tmp_path_factory) -> Path:
    """A plan with migrations: energy-only on tiny-3site (it moves jobs to the sun)."""
    from milp.instance import load_instance
    from milp.plan import Run
    from milp.policies import POLICIES

    plan = POLICIES["energy-only"](load_instance(TINY), None)
    assert any(not isinstance(s, Run) for jp in plan.jobs for s in jp.steps)
    return plan.save(tmp_path_factory.mktemp("plan") / "plan.json")


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped tiny-3site instance."""
    import shutil
    dst = tmp_path / "tiny"
    shutil.copytree(TINY, dst)
    return dst


@dataclass
class CliResult:
    exit_code: int
    output: str
    error: str  #: the one line main() prints on stderr for a user mistake ("" otherwise)


def run_cli(*args) -> CliResult:
    """Run ``milp ARGS`` in-process as :func:`milp.cli.main` does: a user mistake
    (InputError) is exit 2 with one ``error:`` line; any other exception propagates."""
    from typer.testing import CliRunner

    from milp.cli import app
    from milp.errors import InputError

    r = CliRunner().invoke(app, [str(a) for a in args])
    if isinstance(r.exception, InputError):
        return CliResult(2, r.output, f"error: {r.exception}")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return CliResult(r.exit_code, r.output, "")


#: Slurm partitions of the test cluster: one per site of the shipped instances the tests export.
SLURM_PARTITIONS = sorted({"s01-solar", "s02-solar", "s03-wind", "s04-solar", "s05-wind",
                           "solar", "wind", "city"})


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real Slurm (slurmctld, slurmd, munge on localhost; tests/slurm_cluster.py), one
    partition per site. Skips, saying why, where Slurm is not installed (.ci/install-slurm.sh
    installs it) or does not start."""
    from tests.slurm_cluster import SlurmUnavailable, start_cluster

    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"), SLURM_PARTITIONS, gpus=8)
    except SlurmUnavailable as e:
        pytest.skip(f"Slurm not available: {e}")
    yield cluster
    cluster.stop()


def branching_day(tmp_path: Path) -> Path:
    """Three sites with staggered windows, six jobs of classes A/B/C due at 4 h (16 slots): a
    day the compact engine solves to optimality in about a second, branching."""
    return write_instance(
        tmp_path / "inst", sites={"a": 2, "b": 1, "c": 1},
        renewable={"a": [0, 0, 1, 2, 2, 1, 0, 0] * 2, "b": [1, 2, 2, 1, 0, 0, 0, 0] * 2,
                   "c": [0, 0, 0, 0, 1, 2, 2, 1] * 2},
        links=[(x, y, 10) for x in "abc" for y in "abc" if x != y],
        jobs=[{"job": f"j{k}", "origin": "abc"[k % 3], "release_h": k * 0.25,
               "work_h": 0.5 + 0.25 * (k % 3), "checkpoint_gb": [5, 40, 150][k % 3],
               "deadline_h": 4} for k in range(6)])
