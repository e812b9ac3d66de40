"""Figures (matplotlib, written to PNG without a display)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from milp import feasibility as fz  # noqa: E402
from milp.files import write_atomic  # noqa: E402

REGION_COLOURS = {"feasible": "#4caf50", "marginal": "#ffb300", "infeasible": "#e53935"}


def phase_diagram_png(grid: pd.DataFrame, windows_h, path: str | Path, *, alpha: float,
                      load_time_s: float, downtime_s: float,
                      points: pd.DataFrame | None = None) -> Path:
    """Draw :func:`milp.feasibility.phase_diagram` output: size × bandwidth, coloured by region.

    One boundary line ``8·S/B + T_load + T_down = α·W`` per window; class limits at 10 and
    100 GB.
    """
    sizes = np.unique(grid["checkpoint_gb"])
    bands = np.unique(grid["bandwidth_gbps"])
    codes = {r: i for i, r in enumerate(REGION_COLOURS)}
    z = (grid.pivot(index="checkpoint_gb", columns="bandwidth_gbps", values="region")
         .loc[sizes, bands].map(codes.get).to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(10, 5), dpi=120)
    ax.pcolormesh(bands, sizes, z, cmap=ListedColormap(list(REGION_COLOURS.values())),
                  vmin=-0.5, vmax=len(codes) - 0.5, shading="nearest", alpha=0.55)
    for w in sorted(set(float(x) for x in windows_h)):
        s_max = fz.max_checkpoint_gb(bands, w * 3600.0, alpha, load_time_s, downtime_s)
        ax.plot(bands, np.where(s_max > 0, s_max, np.nan), color="black", lw=1.2)
        i = len(bands) // 8
        if s_max[i] > 0:
            ax.annotate(f"W = {w:g} h", (bands[i], s_max[i]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    for gb, label in ((fz.CLASS_A_MAX_GB, "A | B"), (fz.CLASS_B_MAX_GB, "B | C")):
        ax.axhline(gb, color="#555", ls="--", lw=0.8)
        ax.annotate(label, (bands[-1], gb), ha="right", va="bottom", fontsize=8, color="#555")
    ax.set(xscale="log", yscale="log", xlim=(bands[0], bands[-1]), ylim=(sizes[0], sizes[-1]),
           xlabel="WAN bandwidth (Gbps)",
           ylabel="checkpoint size (GB)",
           title=f"Feasibility domain: disruption ≤ {alpha:g} × window "
                 f"({', '.join(f'{w:g}' for w in windows_h)} h)")
    for axis in (ax.xaxis, ax.yaxis):             # 1, 2, 5, 10, 20, ...: no crowded labels
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in REGION_COLOURS.values()]
    labels = [f"{r}: fits α·W for every window" if r == "feasible" else
              f"{r}: only for the longer windows" if r == "marginal" else
              f"{r}: for no window" for r in REGION_COLOURS]
    handles += [Line2D([], [], color="black", lw=1.2), Line2D([], [], color="#555", ls="--",
                                                              lw=0.8)]
    labels += ["boundary 8·S/B + load + downtime = α·W", "class limits A | B | C (10, 100 GB)"]
    if points is not None and len(points):
        handles.append(ax.scatter(points["bandwidth_gbps"], points["checkpoint_gb"], s=14,
                                  color="black", zorder=3))
        labels.append("a job (its checkpoint, fastest link from its origin)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8,
              borderaxespad=0)
    return _save(fig, path)


def bars_png(df: pd.DataFrame, column: str, label: str, path: str | Path) -> Path:
    """Grouped bars: one group per instance, one bar per policy, of ``column``."""
    pivot = df.pivot(index="instance", columns="policy", values=column)
    pivot = pivot[[p for p in dict.fromkeys(df.policy)]]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(pivot) + 3), 4), dpi=110)
    width = 0.8 / max(1, pivot.shape[1])
    x = np.arange(len(pivot))
    for i, policy in enumerate(pivot.columns):
        ax.bar(x + i * width - 0.4 + width / 2, pivot[policy], width, label=policy)
    ax.set_xticks(x, [str(i) for i in pivot.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
    return _save(fig, path)


def monthly_png(df: pd.DataFrame, column: str, label: str, path: str | Path,
                title: str = "") -> Path:
    """One line per policy of ``column`` averaged over each month's instances (``df``: one row
    per instance × policy with ``month`` 1..12 and ``policy``)."""
    mean = df.groupby(["month", "policy"], sort=False)[column].mean().unstack("policy")
    mean = mean.sort_index()[[p for p in dict.fromkeys(df.policy)]]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for policy in mean.columns:
        ax.plot(mean.index, mean[policy], marker="o", label=policy)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    ax.set_xticks(range(1, 13), months)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(label)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def timeline_png(inst, load_kw: np.ndarray, moves: np.ndarray, title: str,
                 path: str | Path) -> Path:
    """Per site: renewable power available and the plan's load (kW) over the day; arrows mark
    migrations into the site (at their start)."""
    hours = np.arange(inst.n_slots) * inst.slot_h
    fig, axes = plt.subplots(inst.n_sites, 1, figsize=(8, 1.4 * inst.n_sites + 0.6), dpi=110,
                             sharex=True, squeeze=False)
    for n, ax in enumerate(axes[:, 0]):
        ax.fill_between(hours, inst.renewable_kw[n], step="post", alpha=0.3, color="#4caf50",
                        label="renewable kW")
        ax.step(hours, load_kw[n], where="post", color="#1e3a8a", lw=1.2, label="load kW")
        mine = moves[moves[:, 0] == n][:, 1] / 3600.0 if len(moves) else []
        ax.plot(mine, np.full(len(mine), ax.get_ylim()[1] * 0.9), "v", color="#e53935", ms=4,
                label="migration in")
        ax.set_ylabel(inst.sites[n], fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3)
    axes[0, 0].set_title(title)
    clock_axis(axes[-1, 0], inst)
    return _save(fig, path)


def _site_colours(n_sites: int):
    return plt.get_cmap("tab10" if n_sites <= 10 else "tab20").colors


def energy_stack_png(inst, compute_kw, transfer_kw, idle_kw, grid_kw, title: str,
                     path: str | Path) -> Path:
    """Per site: load stacked as compute, migration transfer and idle power (kW), renewable
    power available as a line, grid power hatched (the load above the renewable line),
    renewable windows marked on top."""
    hours = np.arange(inst.n_slots + 1) * inst.slot_h
    fig, axes = plt.subplots(inst.n_sites, 1, figsize=(11, 1.5 * inst.n_sites + 1.0), dpi=110,
                             sharex=True, squeeze=False)
    for n, ax in enumerate(axes[:, 0]):
        stack = np.vstack([idle_kw[n], compute_kw[n], transfer_kw[n]])
        ax.stairs(stack.sum(0), hours, fill=True, color="#ffb300", label="migration transfer")
        ax.stairs(stack[:2].sum(0), hours, fill=True, color="#1e88e5", label="compute")
        ax.stairs(stack[0], hours, fill=True, color="#9e9e9e", label="idle")
        top = stack.sum(0)
        ax.stairs(top, hours, baseline=top - grid_kw[n], fill=True, facecolor="none",
                  edgecolor="#b71c1c", hatch="////", lw=0, label="grid")
        ax.stairs(inst.renewable_kw[n], hours, color="#2e7d32", lw=1.4, label="renewable")
        for s, e in inst.windows(n):
            ax.axvspan(s * inst.slot_h, e * inst.slot_h, ymin=0.96, color="#2e7d32", alpha=0.8)
        ax.set_ylabel(f"{inst.sites[n]}\nkW", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#2e7d32", alpha=0.8))
    labels.append(f"renewable window (≥ {inst.window_threshold_kw:g} kW)")
    labels = [{"renewable": "renewable power available", "grid": "grid power (load above "
               "renewable)", "idle": "idle power", "compute": "jobs running (restores "
               "included)"}.get(x, x) for x in labels]
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=3,
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    axes[0, 0].set_title(title, pad=4)
    clock_axis(axes[-1, 0], inst)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (1.5 * inst.n_sites + 1.0)))
    return _save(fig, path, layout=False)


def gantt_png(inst, plan, jobs: list[str], title: str, path: str | Path) -> Path:
    """One row per job: runs coloured by site, migrations as arrows labelled with their
    disruption seconds, release (|) and deadline (▼) ticks."""
    from milp.plan import Migration
    fig, ax = plt.subplots(figsize=(12, 0.22 * len(jobs) + 1.6), dpi=110)
    colours = _site_colours(inst.n_sites)
    for row, job in enumerate(jobs):
        j = inst.job_index_map[job]
        jp = plan.job(job)
        for s in jp.steps if jp else ():
            if isinstance(s, Migration):
                x0, x1 = s.start_s / 3600, s.end_s / 3600
                ax.annotate("", (max(x1, x0 + 0.05), row), (x0, row),
                            arrowprops=dict(arrowstyle="->", color="black", lw=0.8))
                ax.text(x0, row - 0.35, f"{s.disruption_s:.0f}s", fontsize=5)
            else:
                colour = colours[inst.site_index_map[s.site] % len(colours)]
                ax.barh(row, (s.end_s - s.start_s) / 3600, left=s.start_s / 3600, height=0.6,
                        color=colour)
        ax.plot(inst.release_s[j] / 3600, row, "|", color="black", ms=6)
        if inst.deadline_slot[j] < inst.n_slots:
            ax.plot(inst.deadline_s[j] / 3600, row, "v", color="#e53935", ms=4)
    ax.set_yticks(range(len(jobs)), jobs, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, inst.horizon_s / 3600)
    clock_axis(ax, inst)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[n % len(colours)])
               for n in range(inst.n_sites)]
    labels = [f"runs at {site}" for site in inst.sites]
    handles += [Line2D([], [], color="black", marker="|", ls="", ms=8),
                Line2D([], [], color="#e53935", marker="v", ls="", ms=5),
                Line2D([], [], color="black", marker=">", ls="-", lw=0.8, ms=4)]
    labels += ["release", "deadline", "migration (disruption s)"]
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
              borderaxespad=0)
    ax.set_title(title)
    return _save(fig, path)


def clock_ticks(inst, hours: float | None = None) -> tuple[np.ndarray, list[str]]:
    """Ticks (hours from the instance's start) on whole clock hours of the instance's UTC
    offset, every 1, 2, 3, 4, 6, 12 or 24 h (at most 13), and their labels ``HH:MM``; on a
    horizon over more than one day, midnight ticks also name the day (``Jun 02``)."""
    hours = inst.horizon_s / 3600.0 if hours is None else hours
    step = next((s for s in (1, 2, 3, 4, 6, 12, 24) if hours / s <= 12), 24 * math.ceil(
        hours / 24 / 12))
    start = inst.start
    into = start.hour + start.minute / 60 + start.second / 3600
    first = (-into) % step
    ticks = np.arange(first, hours + 1e-9, step)
    days = hours + into > 24
    labels = []
    for h in ticks:
        t = inst.time_of(h * 3600.0)
        labels.append(t.strftime("%b %d\n%H:%M") if days and t.hour == 0 and t.minute == 0
                      else t.strftime("%H:%M"))
    return ticks, labels


def utc_offset(inst) -> str:
    """The instance's UTC offset as ``UTC-07:00``."""
    text = inst.start.strftime("%z")
    return f"UTC{text[:3]}:{text[3:]}" if text else "UTC"


def clock_axis(ax, inst) -> None:
    """Label an x axis in hours from the instance's start with clock times
    (:func:`clock_ticks`) and say the time zone."""
    ticks, labels = clock_ticks(inst)
    ax.set_xticks(ticks, labels)
    ax.set_xlabel(f"time ({utc_offset(inst)}, the instance's clock)")


def _save(fig, path: str | Path, layout: bool = True) -> Path:
    """Render to PNG in memory, then write atomically."""
    buf = io.BytesIO()
    if layout:
        fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())


def pareto_png(frontier: pd.DataFrame, greedy: pd.DataFrame, static_jct_h: float, ylabel: str,
               title: str, path: str | Path) -> Path:
    """The frontier (mean JCT h × objective) as a staircase of its plans, the greedy policies as
    labelled points on the same axes, and the static plan's mean JCT as a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    x, y = frontier["mean_jct_h"].to_numpy(), frontier["cost"].to_numpy()
    if len(x):
        xs = np.append(x, max(x[-1], greedy["mean_jct_h"].max()) * 1.05)
        ax.step(xs, np.append(y, y[-1]), where="post", color="#1565c0", lw=1.5,
                label="MILP frontier: least cost at mean JCT ≤ x")
        ax.plot(x, y, "o", color="#1565c0", ms=6)
    for _, row in greedy.iterrows():
        ax.plot(row["mean_jct_h"], row["cost"], "s", ms=7, label=row["policy"])
    ax.axvline(static_jct_h, color="grey", ls="--", lw=1, label="static's mean JCT")
    ax.set_xlabel("mean job completion time from release (h)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
