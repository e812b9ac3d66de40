"""The compact model's size, per family, on two shipped days: a change here is a change of the
formulation, so it must be deliberate. Each entry says why the family exists (and since which
change); update the numbers only with the reason.

The previous round's model had o, x, m, g and flow, leave, run, link, gpus, work, grid only
(tiny-3site: 1 096 triples, 358 moves), with shares placed by McNaughton's rule inside a slot.
"""

from collections import Counter

import pyomo.environ as pyo
import pytest

from milp.engine.compact import build_model
from milp.engine.index import build_index
from milp.instance import load_instance
from tests.conftest import TINY

VARIABLES = {
    "tiny-3site": {
        "o": 1096, "x": 1096, "m": 358, "g": 260,        # location, shares, moves, grid
        "y": 1096,      # runs hold a GPU for whole slots; runs on the slot grid (execution rules)
        "z": 1096,      # a run starts (restores and restarts are charged per run)
        "q": 1096,      # that run restores (every run but a job's first)
        "S": 584,       # the job ran or moved before (first-run exemption)
        "A": 1096,      # moved here, not run yet: resume inside the window (domain)
        "R": 584,       # runs later: only a job's last slot may be partial (exact pricing)
        "later": 584,   # a run starts later: min_run_minutes exempts a job's last run
        "hh": 1096, "rs": 1096,                          # ran here this stay / restart: cap
    },
    "paper-5site": {
        "o": 11529, "x": 11529, "m": 18868, "g": 432, "y": 11529, "z": 11529, "q": 11529,
        "S": 2845, "A": 11529, "R": 2845, "later": 2845, "hh": 11529, "rs": 11529,
        "u": 680,       # a link in use next to a site whose WAN could be exceeded (site WAN)
    },
}

CONSTRAINTS = {
    "tiny-3site": {
        "flow": 1072, "leave": 358, "run": 1096, "link": 90, "gpus": 148, "work": 10,
        "grid": 260,                                    # the previous round's families
        "arrived": 1096, "leave_after_run": 354, "resume_in_window": 358,   # domain: resume
        "share": 1096, "start": 1096, "start_runs": 1096, "start_after_gap": 1073,  # runs
        "runs_later_stays": 574, "runs_later": 574, "full": 1096,   # runs on the slot grid
        "started_at_release": 10, "started_stays": 574, "started_by_run": 574,
        "started_by_move": 285, "started_only_if": 574,             # first run: no restore
        "restore": 1096, "restore_at_start": 1096, "restore_once_started": 1096,  # q = z·S
        "later_stays": 574, "later_by_start": 574, "min_run": 1096,  # min_run_minutes
        "ran_here": 1073, "ran_here_stays": 1073, "restart": 1096, "restarts": 10,  # cap
    },
    "paper-5site": {
        "flow": 11494, "leave": 8893, "run": 11529, "link": 680, "gpus": 315, "work": 60,
        "grid": 432, "arrived": 11529, "leave_after_run": 8855, "resume_in_window": 18868,
        "share": 11529, "start": 11529, "start_runs": 11529, "start_after_gap": 11282,
        "runs_later_stays": 2785, "runs_later": 2785, "full": 11529, "started_at_release": 60,
        "started_stays": 2785, "started_by_run": 2785, "started_by_move": 2319,
        "started_only_if": 2785, "restore": 11529, "restore_at_start": 11529,
        "restore_once_started": 11529, "later_stays": 2785, "later_by_start": 2785,
        "min_run": 11529, "ran_here": 11282, "ran_here_stays": 11282, "restart": 11529,
        "restarts": 60,
        "link_used": 19052, "site_wan": 216,            # site WAN capacity (execution rules)
    },
}


@pytest.mark.parametrize("name", ["tiny-3site", "paper-5site"])
def test_compact_model_size_per_family(name):
    model = build_model(build_index(load_instance(TINY.parent / name)))
    variables = Counter(v.parent_component().name
                        for v in model.component_data_objects(pyo.Var))
    constraints = Counter(c.parent_component().name
                          for c in model.component_data_objects(pyo.Constraint, active=True))
    assert dict(variables) == VARIABLES[name]
    assert dict(constraints) == CONSTRAINTS[name]
