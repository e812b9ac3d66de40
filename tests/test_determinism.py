"""Same instance, policy and seed: byte-identical plan.json (and schedule.csv)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import COUNTED, ROOT, branching_day, run_cli


@pytest.mark.parametrize("policy", ["static", "wait-awhile", "energy-only", "feasibility-aware"])
def test_greedy_plans_are_byte_identical(tmp_path, policy):
    inst = ROOT / "instances" / "paper-5site"
    for run in ("a", "b"):
        r = run_cli("plan", inst, "--policy", policy, "--out", tmp_path / run, "--quiet")
        assert r.exit_code == 0, r.output
    for name in ("plan.json", "schedule.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_milp_plans_are_byte_identical(tmp_path):
    """A MILP solved to its gap (not stopped by the clock) depends only on the instance and
    the seed: HiGHS is deterministic, and plan.json holds no timing. The work is bounded by
    counts (nodes, rounds), so no machine is too slow to reach the gap; plan.json is written
    as ``milp plan`` writes it (:meth:`milp.plan.Plan.save`)."""
    import milp
    from milp.instance import load_instance

    inst = load_instance(branching_day(tmp_path))
    for run in ("a", "b"):
        outcome = milp.plan(inst, "milp", seed=3, **COUNTED)
        outcome.plan.save(tmp_path / run / "plan.json")
        assert outcome.facts["solver"]["status"] in ("optimal", "gap_reached")
    a, b = (tmp_path / "a" / "plan.json").read_bytes(), (tmp_path / "b" / "plan.json").read_bytes()
    assert a == b
    assert "_s\"" not in json.dumps(json.loads(a)["info"])    # no timing in the plan
