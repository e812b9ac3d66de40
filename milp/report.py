"""A plan, shown: PNG figures and one self-contained ``report.html`` (images embedded).

``milp report DIR PLAN [--compare PLAN2 ...] --out REPORT_DIR`` writes

- ``timeline.png`` — per site: load stacked as compute, migration transfer and idle power, the
  renewable power available, grid power shaded, renewable windows marked;
- ``gantt-<page>.png`` — one row per job (100 per page): runs coloured by site, migrations as
  arrows with their disruption seconds, release and deadline ticks;
- ``phase.png`` — the phase diagram for the instance's alpha and window lengths, each job a dot
  (its checkpoint, the fastest link from its origin);
- ``migrations.csv`` and ``summary.csv`` — the two tables of the report;
- ``report.html`` — all of it on one page that opens from disk without a network.

Every number comes from the evaluator (:func:`milp.evaluate.evaluate`) or from the instance.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from milp import feasibility as fz
from milp.evaluate import METRICS, evaluate
from milp.files import write_atomic
from milp.instance import Instance
from milp.plan import Migration, Plan

GANTT_PAGE = 100
#: The files a report always writes (and ``gantt-<page>.png``, one per :data:`GANTT_PAGE` jobs).
REPORT_FILES = ("timeline.png", "phase.png", "migrations.csv", "summary.csv", "report.html")


def migrations_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    """One row per migration: job, class, src → dst, GB, link Gbps, transfer and disruption
    seconds, share of the destination's remaining window it uses, energy breakeven seconds."""
    rows = []
    for jp in plan.jobs:
        j = inst.job_index_map.get(jp.job)
        for s in jp.steps:
            if j is None or not isinstance(s, Migration):
                continue
            src, dst = inst.site_index_map.get(s.src), inst.site_index_map.get(s.dst)
            window = inst.remaining_window_s(dst, s.start_s) if dst is not None else 0.0
            kw = float(inst.compute_kw[j, dst]) if dst is not None else inst.default_compute_kw
            rows.append({
                "job": jp.job, "class": str(inst.job_class[j]), "src": s.src, "dst": s.dst,
                "start": inst.time_of(s.start_s).isoformat(timespec="seconds"),
                "checkpoint_gb": s.checkpoint_gb,
                "link_gbps": float(inst.link_gbps[src, dst]) if None not in (src, dst) else 0.0,
                "transfer_s": s.transfer_s, "disruption_s": s.disruption_s,
                "window_share": s.disruption_s / window if window > 0 else float("inf"),
                "breakeven_s": fz.breakeven_s(s.transfer_s, inst.migration.transfer_kw, kw)})
    return pd.DataFrame(rows, columns=["job", "class", "src", "dst", "start", "checkpoint_gb",
                                       "link_gbps", "transfer_s", "disruption_s",
                                       "window_share", "breakeven_s"])


def summary_table(inst: Instance, plans: list[tuple[str, Plan]]) -> pd.DataFrame:
    """Every evaluator metric (rows) per plan (columns); with several plans, the change of grid
    energy and mean JCT against the first."""
    columns = {}
    for label, plan in plans:
        m = evaluate(inst, plan).metrics()
        m["violations"] = len(m["violations"])
        columns[label] = m
    df = pd.DataFrame(columns).loc[list(METRICS)]
    if len(plans) > 1:
        first = df.columns[0]
        for name, key in (("grid_energy_kwh vs first", "grid_energy_kwh"),
                          ("mean_jct_h vs first", "mean_jct_h")):
            df.loc[name] = [float(df.loc[key, c]) - float(df.loc[key, first]) for c in df.columns]
    return df


def make_report(inst: Instance, plans: list[tuple[str, Plan]], out: Path) -> Path:
    """Write the figures, the tables and report.html for ``plans[0]`` (others: --compare)."""
    from milp.figures import energy_stack_png, gantt_png, phase_diagram_png

    out.mkdir(parents=True, exist_ok=True)
    label, plan = plans[0]
    e = evaluate(inst, plan)
    h = inst.slot_h
    idle = np.repeat(inst.idle_kw[:, None], inst.n_slots, axis=1)
    compute = e.load_kwh / h - e.migration_kwh / h - idle
    figures = [("Site timeline", energy_stack_png(
        inst, np.maximum(compute, 0), e.migration_kwh / h, idle, e.grid_kwh / h,
        f"{inst.name}: {label}", out / "timeline.png"))]
    for page, first in enumerate(range(0, inst.n_jobs, GANTT_PAGE), start=1):
        jobs = list(inst.jobs[first:first + GANTT_PAGE])
        figures.append((f"Jobs {first + 1}–{first + len(jobs)}", gantt_png(
            inst, plan, jobs, f"{inst.name}: {label}, jobs {first + 1}–{first + len(jobs)}",
            out / f"gantt-{page}.png")))
    figures.append(("Phase diagram of the instance's jobs", _phase(inst, out / "phase.png",
                                                                  phase_diagram_png)))
    moves = migrations_table(inst, plan)
    summary = summary_table(inst, plans)
    write_atomic(out / "migrations.csv", moves.to_csv(index=False))
    write_atomic(out / "summary.csv", summary.to_csv())
    write_atomic(out / "report.html", _html(inst, label, figures, moves, summary, e.violations))
    return out / "report.html"


def _phase(inst: Instance, path: Path, draw) -> Path:
    lengths = [(e - s) * inst.slot_h for n in range(inst.n_sites) for s, e in inst.windows(n)]
    windows = (min(lengths), max(lengths)) if lengths else fz.STUDY_WINDOWS_H
    fastest = inst.link_gbps.max(axis=1)[inst.origin]
    points = pd.DataFrame({"checkpoint_gb": inst.checkpoint_gb, "bandwidth_gbps": fastest})
    points = points[(points.bandwidth_gbps > 0) & (points.checkpoint_gb > 0)]
    gb = points.checkpoint_gb if len(points) else pd.Series([1.0, 1000.0])
    gbps = points.bandwidth_gbps if len(points) else pd.Series([0.1, 100.0])
    grid = fz.phase_diagram(np.geomspace(max(gb.min() / 3, 0.05), gb.max() * 3, 100),
                            np.geomspace(max(gbps.min() / 3, 0.01), gbps.max() * 3, 100),
                            windows, alpha=inst.migration.alpha,
                            load_time_s=inst.migration.load_time_s,
                            downtime_s=inst.migration.downtime_s)
    return draw(grid, windows, path, alpha=inst.migration.alpha,
                load_time_s=inst.migration.load_time_s, downtime_s=inst.migration.downtime_s,
                points=points)


def _html(inst: Instance, label: str, figures, moves: pd.DataFrame, summary: pd.DataFrame,
          violations: list[str]) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(inst.name)}: "
             f"{esc(label)}</title><style>body{{font-family:sans-serif;margin:2em;max-width:"
             "1100px}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>{esc(inst.name)}: {esc(label)}</h1>",
             f"<p>{inst.n_sites} sites, {inst.n_jobs} jobs, {inst.n_slots} slots of "
             f"{inst.slot_minutes:g} min from {esc(inst.start.isoformat())}.</p>",
             "<h2>Summary</h2>", summary.to_html(float_format=lambda x: f"{x:.6g}")]
    if violations:
        parts += ["<h2>Violations</h2><ul>"] + [f"<li>{esc(v)}</li>" for v in violations]
        parts += ["</ul>"]
    for title, path in figures:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts += [f"<h2>{esc(title)}</h2>", f"<img alt='{esc(title)}' "
                  f"src='data:image/png;base64,{data}'>"]
    parts += [f"<h2>Migrations ({len(moves)})</h2>",
              moves.to_html(index=False, float_format=lambda x: f"{x:.6g}")
              if len(moves) else "<p>No migrations.</p>", "</body></html>"]
    return "\n".join(parts)
