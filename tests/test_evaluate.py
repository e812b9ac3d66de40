"""The evaluator on hand-made plans whose numbers are computed by hand in the comments."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milp.evaluate import METRICS, evaluate
from milp.instance import load_instance
from milp.plan import JobPlan, Migration, Plan, Run
from tests.conftest import write_instance

H = 3600.0
CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


def two_sites(tmp: Path, jobs, *, b_renewable=(1, 1, 1, 1), gpus_b=1, gbps=10.0, **kw):
    """Sites a (dark, 1 GPU) and b (renewable b_renewable kW, gpus_b GPUs); 4 one-hour slots;
    links a<->b at ``gbps``. Window threshold = compute_kw = 0.75 kW."""
    return load_instance(write_instance(
        tmp, sites={"a": 1, "b": gpus_b}, renewable={"a": [0, 0, 0, 0], "b": list(b_renewable)},
        jobs=jobs, links=[("a", "b", gbps), ("b", "a", gbps)], slot_minutes=60, **kw))


def job(name="j1", origin="a", release_h=0, work_h=2, checkpoint_gb=5, **kw):
    return {"job": name, "origin": origin, "release_h": release_h, "work_h": work_h,
            "checkpoint_gb": checkpoint_gb, **kw}


def plan(inst, *jobs):
    return Plan(inst.name, inst.start.isoformat(), inst.slot_minutes, "hand",
                tuple(JobPlan(j, tuple(steps)) for j, steps in jobs))


def mig(src, dst, start, gb=5.0, transfer=4.0, extra=10.4):
    return Migration(src, dst, start, gb, transfer, transfer + extra)


def test_static_run_on_dark_site(tmp_path):
    inst = two_sites(tmp_path, [job()])
    e = evaluate(inst, plan(inst, ("j1", [Run("a", 0, 2 * H)])))
    assert e.valid and e.violations == []
    # 2 h x 0.75 kW on a site with no renewable: all grid.
    assert e.grid_energy_kwh == pytest.approx(1.5)
    assert e.renewable_energy_kwh == pytest.approx(0)
    assert e.total_energy_kwh == pytest.approx(1.5)
    assert (e.mean_jct_h, e.p95_jct_h, e.migrations, e.deadline_misses) == (2, 2, 0, 0)
    assert e.load_kwh[0].tolist() == pytest.approx([0.75, 0.75, 0, 0])


def restored(site, start, end):
    """A run that loads the checkpoint first (load 10 s + downtime 0.4 s)."""
    return Run(site, start, end, restore_s=10.4)


def test_migration_to_sunny_site(tmp_path):
    inst = two_sites(tmp_path, [job()])
    # 5 GB at 10 Gbps: 4 s transfer, disruption 4 + 10 + 0.4 = 14.4 s. The run at b starts on
    # arrival (4 s) with the restore (10.4 s), then computes 2 h: it ends at 14.4 s + 2 h.
    e = evaluate(inst, plan(inst, ("j1", [mig("a", "b", 0), restored("b", 4, 14.4 + 2 * H)])))
    assert e.valid, e.violations
    # transfer: 1.8 kW x 4 s at a (dark) = 0.002 kWh of grid; the run at b (restore included)
    # fits b's 1 kW of renewable power.
    assert e.migration_energy_kwh == pytest.approx(0.002)
    assert e.grid_energy_kwh == pytest.approx(0.002)
    assert e.total_energy_kwh == pytest.approx(0.002 + 0.75 * (2 * H + 10.4) / H)
    assert e.load_kwh[1].tolist() == pytest.approx(
        [0.75 * (H - 4) / H, 0.75, 0.75 * 14.4 / H, 0])
    assert e.migrations == 1 and e.migrations_outside_domain == 0
    assert e.mean_jct_h == pytest.approx((2 * H + 14.4) / H)
    assert e.migration_overhead_pct == pytest.approx(100 * 14.4 / (2 * H + 14.4))


def test_transfer_crossing_a_slot_boundary_is_split_exactly(tmp_path):
    inst = two_sites(tmp_path, [job(work_h=1)])
    # transfer [3598, 3602): 2 s in slot 0 and 2 s in slot 1, both at the source a.
    e = evaluate(inst, plan(inst, ("j1", [mig("a", "b", H - 2), restored("b", H + 2, 2 * H + 12.4)])))
    assert e.valid, e.violations
    assert e.migration_kwh[0, :2].tolist() == pytest.approx([1.8 * 2 / H, 1.8 * 2 / H])
    assert e.migration_kwh[1].sum() == 0
    assert e.completion_s[0] == pytest.approx(2 * H + 12.4)


def test_grid_energy_when_renewable_is_short(tmp_path):
    inst = two_sites(tmp_path, [job(origin="b")], b_renewable=(0.5, 0.5, 0, 0))
    e = evaluate(inst, plan(inst, ("j1", [Run("b", 0, 2 * H)])))
    # per slot: load 0.75, renewable 0.5 -> grid 0.25 each.
    assert e.grid_energy_kwh == pytest.approx(0.5)
    assert e.renewable_energy_kwh == pytest.approx(1.0)


def test_idle_power_counts_in_every_slot(tmp_path):
    inst = two_sites(tmp_path, [job(origin="b")], b_renewable=(1, 1, 1, 1),
                     idle_kw={"a": 0.1, "b": 0.5})
    e = evaluate(inst, plan(inst, ("j1", [Run("b", 0, 2 * H)])))
    # a: 4 x 0.1 kWh grid; b: slots 0-1 load 1.25 vs 1 -> 0.25 grid each, slots 2-3 0.5 green.
    assert e.grid_energy_kwh == pytest.approx(0.4 + 0.5)
    assert e.total_energy_kwh == pytest.approx(0.4 + 2.5 + 1.0)


def test_two_transfers_sharing_a_link(tmp_path):
    inst = two_sites(tmp_path, [job("j1"), job("j2", origin="a", release_h=0)], gpus_b=2)
    # Both 5 GB on the 10 Gbps link at once: each may take 8 s (5 Gbps each), not 4 s.
    shared = plan(inst, ("j1", [mig("a", "b", 0, transfer=8), restored("b", 8, 18.4 + 2 * H)]),
                  ("j2", [mig("a", "b", 0, transfer=8), restored("b", 8, 18.4 + 2 * H)]))
    e = evaluate(inst, shared)
    assert e.valid, e.violations
    assert e.migration_energy_kwh == pytest.approx(2 * 1.8 * 8 / H)
    greedy = plan(inst, ("j1", [mig("a", "b", 0), restored("b", 4, 14.4 + 2 * H)]),
                  ("j2", [mig("a", "b", 0), restored("b", 4, 14.4 + 2 * H)]))
    e = evaluate(inst, greedy)
    assert not e.valid
    assert e.violations == ["link a->b: transfers need 20 Gbps at 2024-06-01T00:00:00+00:00 "
                            "but it has 10 Gbps"]
    serial = plan(inst, ("j1", [mig("a", "b", 0), restored("b", 4, 14.4 + 2 * H)]),
                  ("j2", [mig("a", "b", 4), restored("b", 8, 18.4 + 2 * H)]))
    assert evaluate(inst, serial).valid


def test_gpu_capacity(tmp_path):
    inst = two_sites(tmp_path, [job("j1", origin="b", work_h=1), job("j2", origin="b", work_h=1)])
    both = plan(inst, ("j1", [Run("b", 0, H)]), ("j2", [Run("b", 1800, 1800 + H)]))
    e = evaluate(inst, both)
    assert e.violations == ["site 'b': 2 jobs hold GPUs at once at 2024-06-01T00:30:00+00:00 "
                            "but it has 1 GPUs"]
    back_to_back = plan(inst, ("j1", [Run("b", 0, H)]), ("j2", [Run("b", H, 2 * H)]))
    assert evaluate(inst, back_to_back).valid


def test_deadline_miss_unfinished_and_censored_jct(tmp_path):
    inst = two_sites(tmp_path, [job("j1", deadline_h=2), job("j2", release_h=1, work_h=1)])
    # j1 pauses 100 s and restarts (restore 10.4 s): done at 7310.4 s > deadline 7200 s;
    # j2 never planned.
    p = plan(inst, ("j1", [Run("a", 0, H), restored("a", H + 100, 2 * H + 110.4)]))
    e = evaluate(inst, p)
    assert e.valid
    assert (e.deadline_misses, e.unfinished_jobs, e.unfinished_work_h) == (2, 1, 1.0)
    assert (e.runs, e.restarts, e.max_runs_per_job, e.short_runs) == (2, 1, 2, 0)
    jct = [(2 * H + 110.4) / H, 3.0]  # j2 censored at the horizon end (4 h) - release (1 h)
    assert e.mean_jct_h == pytest.approx(np.mean(jct))
    assert e.p95_jct_h == pytest.approx(np.percentile(jct, 95))


def test_migration_outside_the_domain_is_counted_not_forbidden(tmp_path):
    # b's window is slots 0-1 (2 h); at t = 1 h, 1 h is left: budget 0.1 x 3600 = 360 s.
    inst = two_sites(tmp_path, [job(checkpoint_gb=500, work_h=1)], b_renewable=(1, 1, 0, 0))
    transfer = 8 * 500 / 10  # 400 s -> disruption 410.4 s > 360 s
    p = plan(inst, ("j1", [mig("a", "b", H, gb=500, transfer=transfer),
                           restored("b", H + transfer, 2 * H + transfer + 10.4)]))
    e = evaluate(inst, p)
    assert e.valid and e.migrations_outside_domain == 1
    # Moving at t = 0 (2 h left, budget 720 s) is inside.
    p = plan(inst, ("j1", [mig("a", "b", 0, gb=500, transfer=transfer),
                           restored("b", transfer, H + transfer + 10.4)]))
    assert evaluate(inst, p).migrations_outside_domain == 0
    # ... but not when the job resumes at b only after the window has ended (2 h).
    p = plan(inst, ("j1", [mig("a", "b", 0, gb=500, transfer=transfer),
                           restored("b", 2 * H, 3 * H + 10.4)]))
    assert evaluate(inst, p).migrations_outside_domain == 1
    # Moving to b when it has no window left is outside.
    p = plan(inst, ("j1", [mig("a", "b", 2 * H), restored("b", 2 * H + 4, 3 * H + 14.4)]))
    assert evaluate(inst, p).migrations_outside_domain == 1


@pytest.mark.parametrize("steps,expected", [
    ([Run("a", -10, 100)], "before the job's release"),
    ([Run("b", 0, H)], "runs at 'b' but the job is at 'a'"),
    ([Run("x", 0, H)], "runs at unknown site 'x'"),
    ([Run("a", 0, 3 * H)], "more than the job's remaining work"),
    ([Run("a", 0, H), Run("a", 1800, 2 * H)], "before the previous step ends"),
    ([Run("a", 0, 2 * H), Run("a", 2 * H, 3 * H)], "comes after the job's work is done"),
    ([Run("a", 100, 100)], "ends (100 s) before it starts"),
    ([mig("a", "b", 0, transfer=1)], "faster than the link allows"),
    ([Migration("a", "b", 0, 5, 4, 5)], "shorter than transfer + load + downtime"),
    ([mig("b", "a", 0)], "migrates from 'b' but the job is at 'a'"),
    ([mig("a", "a", 0)], "no link a->a"),
    ([mig("a", "b", 0, gb=6, transfer=4.8)], "moves 6 GB but the job's checkpoint is 5 GB"),
    ([mig("a", "b", 4 * H - 2)], "transfer ends past the horizon"),
    ([mig("a", "b", 0), Run("b", 4, 14.4 + H)], "resumes after a migration without loading"),
    ([mig("a", "b", 0), restored("b", 2, 14.4 + H)], "before the previous step ends"),
    ([Run("a", 0, H), Run("a", H + 60, 2 * H)], "resumes after a pause without loading"),
    ([Run("a", 0, H, restore_s=2 * H)], "is longer than the run"),
])
def test_violations(tmp_path, steps, expected):
    inst = two_sites(tmp_path, [job()])
    e = evaluate(inst, plan(inst, ("j1", steps)))
    assert not e.valid
    assert any(expected in v for v in e.violations), e.violations
    assert e.violations[0].startswith("job 'j1' step ")


def test_plan_level_violations(tmp_path):
    inst = two_sites(tmp_path, [job()])
    p = Plan("other", inst.start.isoformat(), 30, "hand",
             (JobPlan("j1"), JobPlan("j1"), JobPlan("ghost")))
    v = evaluate(inst, p).violations
    assert v == ["plan is for instance 'other', not 'test'",
                 "plan has 30-minute slots, instance 60", "job 'j1' is planned twice",
                 "job 'ghost' is not in the instance"]


def test_no_link_between_sites(tmp_path):
    inst = load_instance(write_instance(
        tmp_path, sites={"a": 1, "b": 1}, renewable={"a": [0] * 4, "b": [1] * 4},
        jobs=[job()], slot_minutes=60))
    e = evaluate(inst, plan(inst, ("j1", [mig("a", "b", 0)])))
    assert e.violations == ["job 'j1' step 1: no link a->b"]


def test_metric_names_are_the_public_contract(tmp_path):
    inst = two_sites(tmp_path, [job()])
    assert list(evaluate(inst, plan(inst)).metrics()) == list(METRICS)


def test_cli_evaluate_exit_codes(tmp_path):
    inst_dir = tmp_path / "inst"
    inst = two_sites(inst_dir, [job()])
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    plan(inst, ("j1", [Run("a", 0, 2 * H)])).save(good)
    plan(inst, ("j1", [Run("b", 0, 2 * H)])).save(bad)
    r = subprocess.run([*CLI, "evaluate", str(inst_dir), str(good), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    metrics = json.loads(r.stdout)
    assert list(metrics) == list(METRICS) and metrics["grid_energy_kwh"] == pytest.approx(1.5)
    r = subprocess.run([*CLI, "evaluate", str(inst_dir), str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "violation: job 'j1' step 1: runs at 'b'" in r.stdout
    bad.write_text('{"schema": "milp-plan", "version": 1}')
    r = subprocess.run([*CLI, "evaluate", str(inst_dir), str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "bad.json" in r.stderr


# ---- properties ---------------------------------------------------------------------------

@st.composite
def instance_and_plan(draw):
    n_sites = draw(st.integers(1, 3))
    slots = draw(st.integers(1, 8))
    sites = {f"s{i}": draw(st.integers(1, 3)) for i in range(n_sites)}
    power = st.floats(0, 5, allow_nan=False).map(lambda x: round(x, 3))
    renewable = {s: [draw(power) for _ in range(slots)] for s in sites}
    links = [(a, b, draw(st.floats(0.5, 20))) for a in sites for b in sites
             if a != b and draw(st.booleans())]
    jobs, steps_of = [], {}
    horizon = slots * H
    for k in range(draw(st.integers(1, 5))):
        origin = draw(st.sampled_from(sorted(sites)))
        release = draw(st.integers(0, slots - 1))
        work = draw(st.floats(0.1, slots - release)).__round__(3) or 0.1
        jobs.append(job(f"j{k}", origin, release, work, draw(st.floats(0, 200))))
        steps = []
        for _ in range(draw(st.integers(0, 4))):
            t0 = draw(st.floats(0, horizon))
            if draw(st.booleans()):
                steps.append(Run(draw(st.sampled_from(sorted(sites))), t0,
                                 t0 + draw(st.floats(0, 2 * H))))
            else:
                src, dst = draw(st.sampled_from(sorted(sites))), draw(st.sampled_from(sorted(sites)))
                tr = draw(st.floats(0, 3 * H))
                steps.append(Migration(src, dst, t0, draw(st.floats(0, 200)), tr,
                                       tr + draw(st.floats(0, 30))))
        steps_of[f"j{k}"] = steps
    return sites, renewable, links, jobs, slots, steps_of


def load_case(case):
    """The drawn instance, loaded through the real loader (hourly slots)."""
    sites, renewable, links, jobs, _, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        return load_instance(write_instance(Path(tmp), sites=sites, renewable=renewable,
                                            jobs=jobs, links=links, slot_minutes=60))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance_and_plan())
def test_energy_is_never_negative_and_balances(case):
    inst = load_case(case)
    e = evaluate(inst, plan(inst, *case[-1].items()))
    for arr in (e.load_kwh, e.grid_kwh, e.renewable_used_kwh, e.migration_kwh):
        assert (arr >= -1e-12).all()
    np.testing.assert_allclose(e.renewable_used_kwh + e.grid_kwh, e.load_kwh, atol=1e-9)
    assert (e.renewable_used_kwh <= inst.renewable_kw * inst.slot_h + 1e-9).all()
    assert e.total_energy_kwh == pytest.approx(e.grid_energy_kwh + e.renewable_energy_kwh)
    assert e.grid_energy_kwh >= -1e-12 and e.migration_energy_kwh >= -1e-12
    assert 0 <= e.unfinished_jobs <= e.deadline_misses <= inst.n_jobs
    assert e.valid == (not e.violations)
    json.dumps(e.metrics(), allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(instance_and_plan())
def test_valid_run_only_plans_use_exactly_their_run_energy(case):
    """A plan of whole runs at the origin: energy = sum of run hours × 0.75 kW."""
    inst, jobs = load_case(case), case[3]
    steps = {j["job"]: [Run(j["origin"], j["release_h"] * H, (j["release_h"] + j["work_h"]) * H)]
             for j in jobs}
    e = evaluate(inst, plan(inst, *steps.items()))
    assert e.total_energy_kwh == pytest.approx(0.75 * sum(j["work_h"] for j in jobs))
    assert e.unfinished_jobs == 0


def test_a_plan_for_another_start_is_flagged(tmp_path):
    inst = two_sites(tmp_path, [job()])
    p = Plan(inst.name, "2024-06-02T00:00:00+00:00", inst.slot_minutes, "hand", ())
    assert evaluate(inst, p).violations == [
        "plan starts at 2024-06-02T00:00:00+00:00, instance at 2024-06-01T00:00:00+00:00"]


def test_a_restart_is_charged_like_the_resume_half_of_a_migration(tmp_path):
    """A pause and a resume at the same site: the second run holds the GPU and draws power for
    its 10.4 s restore without progress; continuing a run without a pause costs nothing."""
    inst = two_sites(tmp_path, [job(origin="b", work_h=1)], b_renewable=(0, 0, 0, 0))
    e = evaluate(inst, plan(inst, ("j1", [Run("b", 0, 1800), restored("b", H, H + 1810.4)])))
    assert e.valid, e.violations
    assert e.total_energy_kwh == pytest.approx(0.75 * (H + 10.4) / H)
    assert e.completion_s[0] == pytest.approx(H + 1810.4)
    assert (e.runs, e.restarts) == (2, 1)
    pieces = plan(inst, ("j1", [Run("b", 0, 1800), Run("b", 1800, H)]))
    e = evaluate(inst, pieces)
    assert e.valid and (e.runs, e.restarts) == (1, 0)
    assert e.total_energy_kwh == pytest.approx(0.75)


def test_caps_on_restarts_and_short_runs(tmp_path):
    inst = two_sites(tmp_path, [job(origin="b", work_h=2)],
                     toml_extra="[execution]\nmax_restarts = 1\nmin_run_minutes = 45\n")
    three = plan(inst, ("j1", [Run("b", 0, 2700), restored("b", H, H + 2710.4),
                               restored("b", 2 * H, 2 * H + 1810.4)]))
    e = evaluate(inst, three)
    assert e.violations == [
        "job 'j1': 2 restarts (runs after a pause at the same site), more than max_restarts = 1"]
    assert (e.runs, e.restarts, e.max_runs_per_job, e.short_runs) == (3, 2, 3, 0)
    short = plan(inst, ("j1", [Run("b", 0, 1800), restored("b", H, 2.5 * H + 10.4)]))
    e = evaluate(inst, short)
    assert e.violations == ["job 'j1': 1 run(s) before its last shorter than min_run_minutes = "
                            "45 (shortest 30 min)"]
    assert e.short_runs == 1
    last_short = plan(inst, ("j1", [Run("b", 0, 1.5 * H), restored("b", 2 * H, 2.5 * H + 10.4)]))
    assert evaluate(inst, last_short).valid


def test_site_wan_is_shared_by_transfers_in_and_out(tmp_path):
    """a sends to b and c at 10 Gbps each at once: 20 Gbps through a, over its 15 Gbps WAN."""
    d = write_instance(tmp_path, sites={"a": 2, "b": 1, "c": 1},
                       renewable={"a": [0] * 4, "b": [1] * 4, "c": [1] * 4},
                       jobs=[job("j1"), job("j2")], slot_minutes=60,
                       links=[("a", "b", 10), ("a", "c", 10)])
    (d / "sites.csv").write_text("site,gpus,wan_gbps\na,2,15\nb,1,\nc,1,\n")
    inst = load_instance(d)
    both = plan(inst, ("j1", [mig("a", "b", 0), restored("b", 4, 14.4 + 2 * H)]),
                ("j2", [mig("a", "c", 0), restored("c", 4, 14.4 + 2 * H)]))
    assert evaluate(inst, both).violations == [
        "site 'a': transfers in and out need 20 Gbps at 2024-06-01T00:00:00+00:00 but its WAN "
        "has 15 Gbps"]
    one_after_the_other = plan(
        inst, ("j1", [mig("a", "b", 0), restored("b", 4, 14.4 + 2 * H)]),
        ("j2", [mig("a", "c", 4), restored("c", 8, 18.4 + 2 * H)]))
    assert evaluate(inst, one_after_the_other).valid


def test_loading_a_checkpoint_onto_a_full_site_is_flagged(tmp_path):
    """b's only GPU runs j2 until 1 h; j1's checkpoint arrives at 4 s and loads at once."""
    inst = two_sites(tmp_path, [job("j1", work_h=1), job("j2", origin="b", work_h=1)])
    p = plan(inst, ("j1", [mig("a", "b", 0), restored("b", 4, H + 14.4)]),
             ("j2", [Run("b", 0, H)]))
    assert evaluate(inst, p).violations == [
        "site 'b': 2 jobs hold GPUs at once at 2024-06-01T00:00:04+00:00 but it has 1 GPUs (a "
        "checkpoint is loading onto a full site)"]
