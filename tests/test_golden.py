"""Golden plans: the committed reference plans still score exactly as recorded."""

import json

import pytest

from milp.evaluate import evaluate
from milp.instance import load_instance
from milp.plan import Plan
from tests.conftest import ROOT

GOLDEN = ROOT / "solutions" / "paper-5site"


def test_the_reference_milp_plan_scores_as_recorded():
    inst = load_instance(ROOT / "instances" / "paper-5site")
    recorded = json.loads((GOLDEN / "summary.json").read_text())
    metrics = evaluate(inst, Plan.load(GOLDEN / "plan.json")).metrics()
    for key, value in metrics.items():
        if isinstance(value, float):
            assert value == pytest.approx(recorded[key], rel=1e-9, abs=1e-12), key
        else:
            assert value == recorded[key], key
    assert metrics["valid"] and metrics["migrations_outside_domain"] == 0
    assert metrics["grid_energy_kwh"] == pytest.approx(recorded["solver"]["grid_energy_kwh"],
                                                       rel=1e-6)
