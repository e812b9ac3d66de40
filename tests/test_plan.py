"""Plan files: plan.json round trip, schema checks, schedule.csv."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milp.errors import InputError
from milp.instance import load_instance
from milp.plan import SCHEDULE_COLUMNS, JobPlan, Migration, Plan, Run, schedule_frame, schema
from tests.conftest import TINY

H = 3600.0
secs = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1,
                max_size=8).filter(str.isprintable)
runs = st.builds(Run, names, secs, secs)
migrations = st.builds(Migration, names, names, secs, secs, secs, secs)
plans = st.builds(
    Plan, names, st.just("2024-06-01T00:00:00+00:00"), st.sampled_from([5, 15, 60, 7.5]), names,
    st.lists(st.builds(JobPlan, names, st.lists(runs | migrations, max_size=4).map(tuple)),
             max_size=4).map(tuple),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3))


@given(plans)
def test_load_of_save_is_identity(p):
    assert Plan.from_dict(json.loads(p.to_json())) == p


def test_save_and_load_files(tmp_path):
    p = Plan("x", "2024-06-01T00:00:00+00:00", 15, "hand",
             (JobPlan("j", (Run("a", 0, 0.1 + 0.2), Migration("a", "b", 1 / 3, 5, 4, 14.4))),))
    path = p.save(tmp_path / "plan.json")
    assert Plan.load(path) == p
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("jobs"), None),
    (lambda d: d.update(version=0), "version"),
    (lambda d: d["jobs"][0]["steps"][0].update(kind="teleport"), "jobs[0].steps[0]"),
    (lambda d: d["jobs"][0]["steps"][0].update(start_s=-1), "jobs[0].steps[0]"),
    (lambda d: d["jobs"][0].update(extra=1), "jobs[0]"),
])
def test_schema_violations_are_input_errors(mutate, field):
    d = Plan("x", "2024-06-01T00:00:00+00:00", 15, "p",
             (JobPlan("j", (Run("a", 0, 10),)),)).to_dict()
    mutate(d)
    with pytest.raises(InputError) as e:
        Plan.from_dict(d, "p.json")
    assert e.value.file == "p.json" and (e.value.field or "").startswith(field or "")
    assert (e.value.field is None) == (field is None)


def test_newer_schema_version_is_refused_clearly():
    d = Plan("x", "t", 15, "p", ()).to_dict() | {"version": 4}
    with pytest.raises(InputError, match="newer than this milp reads"):
        Plan.from_dict(d)


def test_bad_json_names_the_line(tmp_path):
    (tmp_path / "p.json").write_text('{\n "schema": \n}')
    with pytest.raises(InputError) as e:
        Plan.load(tmp_path / "p.json")
    assert e.value.line == 3 and "invalid JSON" in str(e.value)


@pytest.mark.parametrize("version, n_fields", [(1, 8 + 4 + 7), (2, 8 + 5 + 7), (3, 8 + 6 + 7)])
def test_schema_documents_every_field(version, n_fields):
    s = schema(version)
    fields = [*s["properties"].items(), *s["$defs"]["run"]["properties"].items(),
              *s["$defs"]["migration"]["properties"].items()]
    assert len(fields) == n_fields
    assert [k for k, v in fields if not v.get("description")] == []


def test_version_1_plans_are_read_and_cannot_hold_lost_runs():
    v1 = {"schema": "milp-plan", "version": 1, "instance": "x", "start": "t", "slot_minutes": 15,
          "policy": "p", "jobs": [{"job": "a", "steps": [
              {"kind": "run", "site": "s", "start_s": 0, "end_s": 10}]}]}
    plan = Plan.from_dict(v1)
    assert plan.to_dict()["version"] == 3 and plan.jobs[0].steps[0] == Run("s", 0, 10)
    v1["jobs"][0]["steps"][0]["lost"] = True
    with pytest.raises(InputError, match="lost"):
        Plan.from_dict(v1)
    lost = Plan("x", "t", 15, "p", (JobPlan("a", (Run("s", 0, 10, lost=True),)),))
    assert Plan.from_dict(json.loads(lost.to_json())) == lost


def test_version_2_plans_hold_no_restores_and_version_3_round_trips_them():
    v2 = Plan("x", "t", 15, "p", (JobPlan("a", (Run("s", 0, 10), Run("s", 20, 40))),)).to_dict()
    v2["version"] = 2
    v2["jobs"][0]["steps"][1]["restore_s"] = 10.4
    with pytest.raises(InputError, match="restore_s"):
        Plan.from_dict(v2)
    v3 = Plan("x", "t", 15, "p", (JobPlan("a", (Run("s", 0, 10), Run("s", 20, 40, restore_s=10.4))),))
    assert v3.to_dict()["jobs"][0]["steps"][0] == {"kind": "run", "site": "s", "start_s": 0,
                                                  "end_s": 10}
    assert Plan.from_dict(json.loads(v3.to_json())) == v3


def test_schedule_rows_and_states():
    inst = load_instance(TINY)
    j = inst.job_index_map["j04"]  # wind, released 00:00
    p = Plan(inst.name, inst.start.isoformat(), 15, "hand", (JobPlan("j04", (
        Run("wind", 0, 1800), Migration("wind", "solar", 1800, 2, 1.6, 12.0),
        Run("solar", 1812, 1812 + 2 * H))),))
    df = schedule_frame(p, inst)
    assert list(df.columns) == SCHEDULE_COLUMNS
    assert len(df) == inst.n_jobs * inst.n_slots
    mine = df[df.job == "j04"].set_index("slot")
    assert mine.loc[0, ["site", "state", "run_s"]].tolist() == ["wind", "running", 900.0]
    assert mine.loc[2, ["site", "state", "run_s", "migration_s"]].tolist() == \
        ["solar", "migrating", 900 - 12.0, 12.0]
    last = int((1812 + 2 * H) // 900)
    assert mine.loc[last, "state"] == "running" and mine.loc[last + 1, "state"] == "ended"
    assert mine["run_s"].sum() == pytest.approx(1800 + 2 * H)
    other = df[df.job == "j02"].set_index("slot")  # released 06:00, not in the plan
    assert other.loc[23, "state"] == "pending" and other.loc[24, "state"] == "waiting"
    assert (other["site"] == "city").all()
    assert j == 3


def test_nan_and_infinity_are_refused(tmp_path):
    p = Plan("x", "2024-06-01T00:00:00+00:00", 15, "p", (JobPlan("j", (Run("a", 0, 10),)),))
    text = p.to_json().replace('"end_s": 10', '"end_s": NaN')
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(InputError, match="NaN is not a number a plan may hold"):
        Plan.load(tmp_path / "p.json")
    d = p.to_dict()
    d["jobs"][0]["steps"][0]["end_s"] = float("inf")
    with pytest.raises(InputError) as e:
        Plan.from_dict(d)
    assert e.value.field in ("jobs[0].steps[0]", "jobs[0].steps[0].end_s")


@pytest.mark.parametrize("where, field", [("job", "jobs[0].job"), ("site", "jobs[0].steps[0].site"),
                                          ("instance", "instance")])
def test_names_with_line_breaks_are_refused(where, field):
    d = Plan("x", "t", 15, "p", (JobPlan("a", (Run("s", 0, 10),)),)).to_dict()
    bad = "a\ntouch /tmp/pwned #"
    if where == "job":
        d["jobs"][0]["job"] = bad
    elif where == "site":
        d["jobs"][0]["steps"][0]["site"] = bad
    else:
        d["instance"] = bad
    with pytest.raises(InputError) as e:
        Plan.from_dict(d)
    assert e.value.field == field and "not printable" in str(e.value)


@pytest.mark.parametrize("version", [2.0, True, "2"])
def test_a_version_that_is_not_a_whole_number_is_refused(version):
    d = Plan("x", "t", 15, "p", ()).to_dict() | {"version": version}
    with pytest.raises(InputError) as e:
        Plan.from_dict(d)
    assert e.value.field == "version"


def test_deeply_nested_json_is_refused(tmp_path):
    (tmp_path / "p.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        Plan.load(tmp_path / "p.json")


# ---- numbers too large to compute with ------------------------------------------------------

@pytest.mark.parametrize("field, text", [("slot_minutes", "1" + "0" * 400),
                                         ("slot_minutes", "-" + "9" * 30),
                                         ("slot_minutes", "1e999"),
                                         ("end_s", "9" * 5000)])
def test_numbers_too_large_to_compute_with_are_one_line(tmp_path, field, text):
    """A JSON integer beyond a float's range used to reach the evaluator (OverflowError);
    5000 digits, Python's own limit for int()."""
    from tests.test_hostile import run_main

    p = Plan("tiny-3site", "2024-06-01T00:00:00-07:00", 15, "p",
             (JobPlan("j01", (Run("city", 0, 1800),)),))
    raw = p.to_json().replace('"slot_minutes": 15', f'"slot_minutes": {text}') \
        if field == "slot_minutes" else p.to_json().replace('"end_s": 1800', f'"end_s": {text}')
    (tmp_path / "p.json").write_text(raw)
    for args in (["evaluate", TINY, tmp_path / "p.json"],
                 ["export", "csv", tmp_path / "p.json", "--out", tmp_path / "o.csv"]):
        code, out, err = run_main(*args)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"error: {tmp_path / 'p.json'}: holds ")
    assert not (tmp_path / "o.csv").exists()


def test_huge_numbers_in_a_state_are_one_line(tmp_path):
    from tests.test_hostile import run_main

    (tmp_path / "s.json").write_text(
        '{"schema": "milp-state", "version": 1, "at": "2024-06-01T06:00:00-07:00", "jobs": '
        '[{"job": "j01", "site": "city", "work_left_h": 1' + "0" * 400 + '}]}')
    code, out, err = run_main("replan", TINY, "--state", tmp_path / "s.json", "--policy",
                              "static", "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "401 digits" in err
    assert not (tmp_path / "o").exists()


# ---- what a plan must be, whatever the instance (checked before any export) -----------------

def _one_job(*steps) -> Plan:
    return Plan("x", "2030-01-01T00:00:00+00:00", 15, "p", (JobPlan("j", tuple(steps)),))


@pytest.mark.parametrize("steps, field, words", [
    ((Run("a", 50_000, 0),), "jobs[0].steps[0].end_s", "not after it starts"),
    ((Run("a", 10, 10),), "jobs[0].steps[0].end_s", "not after it starts"),
    ((Run("a", 3600, 7200), Run("a", 0, 1800)), "jobs[0].steps[1].start_s", "time order"),
    ((Run("a", 0, 1800), Migration("a", "b", 1000, 1, 1, 11.4)), "jobs[0].steps[1].start_s",
     "time order"),
    ((Migration("a", "b", 0, 40, 32, 42.4), Run("b", 20, 900, restore_s=10.4)),
     "jobs[0].steps[1].start_s", "before its previous step ends (32 s)"),
    ((Run("a", 0, 1800), Migration("b", "c", 1800, 1, 1, 11.4)), "jobs[0].steps[1].src",
     "migrates from 'b', but the job is at 'a'"),
    ((Migration("a", "b", 0, 1, 1, 11.4), Run("a", 900, 1800)), "jobs[0].steps[1].site",
     "runs at 'a', but the job is at 'b'"),
    ((Run("a", 0, 1800), Run("b", 1800, 3600)), "jobs[0].steps[1].site", "job is at 'a'"),
    ((Migration("a", "a", 0, 1, 1, 11.4),), "jobs[0].steps[0].dst", "to itself"),
    ((Migration("a", "b", 0, 1, 20, 11.4),), "jobs[0].steps[0].disruption_s",
     "shorter than its transfer"),
    ((Run("a", 0, 100, restore_s=101),), "jobs[0].steps[0].restore_s", "longer than the run"),
])
def test_impossible_chains_are_refused_naming_job_and_step(steps, field, words):
    from milp.plan import check_chains

    with pytest.raises(InputError) as e:
        check_chains(_one_job(*steps), "p.json")
    assert (e.value.file, e.value.field) == ("p.json", field) and words in e.value.message
    assert "job 'j'" in e.value.message


def test_a_job_listed_twice_is_refused():
    from milp.plan import check_chains

    plan = Plan("x", "t", 15, "p", (JobPlan("j", ()), JobPlan("k", ()), JobPlan("j", ())))
    with pytest.raises(InputError, match=r"listed twice \(also jobs\[0\]\)"):
        check_chains(plan)


def test_every_plan_milp_makes_passes_the_chain_check(moving_plan):
    """Every policy's plans, executed replays (lost runs, re-plans), and every plan shipped or
    committed: the check refuses only what no instance can make valid."""
    from milp.plan import check_chains
    from milp.policies import POLICIES
    from milp.replay import Faults, replay
    from tests.conftest import ROOT

    inst = load_instance(TINY)
    for name, policy in POLICIES.items():
        check_chains(policy(inst, None), name)
    r = replay(inst, Plan.load(moving_plan), Faults(0.3, 0.1, 1, ((1, 5 * H),), 600),
               replan="feasibility-aware", replan_every_s=3 * H)
    assert any(s.lost for jp in r.executed.jobs for s in jp.steps if isinstance(s, Run))
    check_chains(r.executed, "replayed")
    shipped = [*(ROOT / "solutions").rglob("*plan.json"),
               *(ROOT / "benchmarks").rglob("plan.json")]
    assert len(shipped) > 20
    for path in shipped:
        check_chains(Plan.load(path), str(path))
