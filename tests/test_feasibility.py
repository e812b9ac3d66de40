"""The study's feasibility-domain model: pinned numbers and properties."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from milp import feasibility as fz

CLI = [sys.executable, "-c", "from milp.cli import main; main()"]


def test_study_example_40gb_at_10gbps():
    # PAPER.md: 40 GB at 10 Gbps -> 32 s transfer, breakeven 1.8*32/0.75 = 76.8 s ~ 1.3 min.
    assert fz.transfer_s(40, 10) == pytest.approx(32.0)
    assert fz.disruption_s(40, 10) == pytest.approx(32.0 + 10.0 + 0.4)
    assert fz.breakeven_s(32.0) == pytest.approx(76.8)
    assert round(fz.breakeven_s(32.0) / 60, 1) == 1.3


def test_study_parameters_are_the_defaults():
    assert (fz.ALPHA, fz.LOAD_TIME_S, fz.DOWNTIME_S, fz.TRANSFER_KW, fz.COMPUTE_KW) == \
        (0.10, 10.0, 0.4, 1.8, 0.75)


@pytest.mark.parametrize("gb,cls", [(0, "A"), (1, "A"), (9.99, "A"), (10, "B"), (40, "B"),
                                    (100, "B"), (100.01, "C"), (350, "C")])
def test_workload_classes(gb, cls):
    assert fz.workload_class(gb) == cls


def test_class_a_transfers_under_a_minute_at_study_bandwidths():
    # Class A (< 10 GB) moves in under 60 s from 2 Gbps up.
    assert fz.transfer_s(9.99, 2) < 60


def test_class_c_needs_fast_links():
    # 150 GB at 1 Gbps: 1200 s transfer > 0.1 x 2.5 h = 900 s budget; at 100 Gbps it fits.
    assert not fz.time_feasible(fz.disruption_s(150, 1), 2.5 * 3600)
    assert fz.time_feasible(fz.disruption_s(150, 100), 2.5 * 3600)


def test_time_feasibility_boundary_is_inclusive():
    w = 1000.0
    assert fz.time_feasible(100.0, w, 0.1)
    assert not fz.time_feasible(100.0 + 1e-9, w, 0.1)


def test_zero_bandwidth_never_transfers():
    assert fz.transfer_s(1, 0) == np.inf
    assert fz.transfer_s(0, 0) == np.inf


def test_windows_and_remaining_window():
    r = [0, 1, 1, 0, 1, 1, 1, 0.5]
    assert fz.windows(r, 1.0) == [(1, 3), (4, 7)]
    assert fz.remaining_window_slots(r, 1.0).tolist() == [0, 2, 1, 0, 3, 2, 1, 0]
    two = fz.remaining_window_slots(np.array([r, [1] * 8]), 1.0)
    assert two[1].tolist() == [8, 7, 6, 5, 4, 3, 2, 1]
    assert fz.windows([1, 1], 1.0) == [(0, 2)] and fz.windows([0, 0], 1.0) == []


def test_assess_gives_every_number():
    r = fz.assess(40, 10, 4)
    assert (r.transfer_s, r.disruption_s, r.breakeven_s, r.workload_class, r.feasible) == \
        (pytest.approx(32), pytest.approx(42.4), pytest.approx(76.8), "B", True)
    assert r.budget_s == pytest.approx(1440)
    # largest feasible checkpoint at 10 Gbps in a 4 h window: (1440 - 10.4) * 10 / 8 GB
    assert r.max_checkpoint_gb == pytest.approx((1440 - 10.4) * 10 / 8)


def test_phase_diagram_regions():
    # budgets: 0.1 x 2.5 h = 900 s (feasible below), 0.1 x 9.5 h = 3420 s (marginal below)
    grid = fz.phase_diagram([1, 100, 200, 1000], [1, 10], windows_h=(2.5, 9.5))
    region = {(r.checkpoint_gb, r.bandwidth_gbps): r.region for r in grid.itertuples()}
    assert region[(1, 1)] == "feasible"          # 18.4 s
    assert region[(100, 1)] == "feasible"        # 810.4 s <= 900 s
    assert region[(200, 1)] == "marginal"        # 1610.4 s
    assert region[(1000, 1)] == "infeasible"     # 8010.4 s
    assert region[(1000, 10)] == "feasible"      # 810.4 s
    assert set(grid.columns) >= {"checkpoint_gb", "bandwidth_gbps", "disruption_s", "class",
                                 "region"}


sizes = st.floats(0, 5000, allow_nan=False)
bands = st.floats(0.01, 1000, allow_nan=False)
window_h = st.floats(0.1, 24, allow_nan=False)


@given(sizes, bands, window_h)
def test_feasible_iff_below_max_checkpoint(s, b, w):
    feasible = fz.time_feasible(fz.disruption_s(s, b), w * 3600)
    limit = fz.max_checkpoint_gb(b, w * 3600)
    if abs(s - limit) > 1e-6 * max(1, limit):
        assert feasible == (s < limit)


@given(sizes, bands, bands, window_h)
def test_more_bandwidth_never_hurts(s, b1, b2, w):
    lo, hi = sorted((b1, b2))
    if fz.time_feasible(fz.disruption_s(s, lo), w * 3600):
        assert fz.time_feasible(fz.disruption_s(s, hi), w * 3600)


@given(sizes, bands, st.lists(window_h, min_size=1, max_size=4))
def test_region_orders_with_disruption(s, b, windows):
    d = fz.disruption_s(s, b)
    region = fz.phase_region(d, windows)
    assert region == ("feasible" if d <= 0.1 * min(windows) * 3600 else
                      "marginal" if d <= 0.1 * max(windows) * 3600 else "infeasible")


def test_cli_feasibility_json():
    out = subprocess.run([*CLI, "feasibility", "--checkpoint-gb", "40", "--bandwidth-gbps", "10",
                          "--window-h", "4", "--json"], capture_output=True, text=True, check=True)
    facts = json.loads(out.stdout)
    assert facts["transfer_s"] == pytest.approx(32)
    assert facts["breakeven_s"] == pytest.approx(76.8)
    assert facts["class"] == "B" and facts["feasible"] is True


def test_cli_feasibility_text_says_infeasible():
    out = subprocess.run([*CLI, "feasibility", "--checkpoint-gb", "150", "--bandwidth-gbps", "1"],
                         capture_output=True, text=True, check=True)
    assert "feasible          False" in out.stdout and "class             C" in out.stdout


def test_cli_phase_diagram_writes_png_and_csv(tmp_path):
    png = tmp_path / "pd.png"
    subprocess.run([*CLI, "phase-diagram", "--out", str(png), "--points", "20",
                    "--window-h", "3", "--window-h", "8"], check=True, capture_output=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = pd.read_csv(tmp_path / "pd.csv")
    assert len(grid) == 400
    expected = fz.phase_region(grid["disruption_s"].to_numpy(), (3, 8))
    assert (grid["region"].to_numpy() == expected).all()
    assert set(grid["region"]) == {"feasible", "marginal", "infeasible"}
