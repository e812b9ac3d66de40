"""A plan, shown: PNG figures, tables and one self-contained ``report.html`` (images embedded).

``milp report DIR PLAN [--compare PLAN2 ...] --out REPORT_DIR`` writes

- ``report.html`` — all of it on one page that opens from disk without a network: a
  **headline** per plan ("MILP: 26.6 kWh grid, −67 % against static, mean JCT +2.9 h"), the
  summary table, per-site totals, the figures, the **run sheet** per site and the migrations;
- ``timeline.png`` — per site: load stacked as compute, migration transfer and idle power, the
  renewable power available, grid power hatched, renewable windows marked; clock times;
- ``gantt-<page>.png`` — one row per job (100 per page): runs coloured by site, migrations as
  arrows with their disruption seconds, release and deadline marks; clock times;
- ``phase.png`` — the phase diagram for the instance's alpha and window lengths, each job a dot
  (its checkpoint, the fastest link from its origin);
- ``summary.csv`` — every evaluator metric per plan, and the change of grid energy and mean JCT
  against ``static`` (kWh, h and %);
- ``site_totals.csv`` — per site: renewable available, load, renewable used, grid, transfer
  energy (kWh), shares (%), checkpoints sent and received, runs started;
- ``runsheet.csv`` — what happens at each site and when: ``start`` / ``stop`` a job's run,
  ``send`` / ``receive`` its checkpoint (times to the millisecond);
- ``migrations.csv`` — one row per migration;
- ``timeseries.csv``, ``timeseries.parquet`` — power per site and slot (:mod:`milp.timeseries`).

Every metric comes from the evaluator (:func:`milp.evaluate.evaluate`): energies from its
arrays, changes against ``static`` from its totals. The reference is the ``static`` plan among
those given, or, when none is, the ``static`` policy's plan of the instance, evaluated for the
report (and said so). The run sheet and the migrations are the plan's steps
(:func:`milp.export.steps.plan_steps`, as every export), not metrics.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from milp import feasibility as fz
from milp.evaluate import METRICS, Evaluation, evaluate
from milp.files import write_atomic
from milp.instance import Instance
from milp.plan import Migration, Plan
from milp.timeseries import site_slot, timeseries_frame, write_timeseries

GANTT_PAGE = 100
#: Rows of one site's run sheet shown in report.html (runsheet.csv has them all).
RUNSHEET_ROWS = 400
#: The files a report always writes (and ``gantt-<page>.png``, one per :data:`GANTT_PAGE` jobs).
REPORT_FILES = ("timeline.png", "phase.png", "migrations.csv", "summary.csv", "site_totals.csv",
                "runsheet.csv", "timeseries.csv", "timeseries.parquet", "report.html")

#: How the report names each evaluator metric (:data:`milp.evaluate.METRICS`): words, unit.
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "valid": ("physically valid", ""),
    "violations": ("violations", ""),
    "grid_energy_kwh": ("grid energy", "kWh"),
    "grid_co2_kg": ("grid CO₂ (none without carbon.csv)", "kg"),
    "renewable_energy_kwh": ("renewable energy used", "kWh"),
    "total_energy_kwh": ("total energy", "kWh"),
    "migrations": ("migrations", ""),
    "migrations_outside_domain": ("migrations outside the feasibility domain", ""),
    "migration_energy_kwh": ("migration energy", "kWh"),
    "migration_overhead_pct": ("migration overhead", "% of job time"),
    "mean_jct_h": ("mean job completion time", "h"),
    "p95_jct_h": ("95th percentile job completion time", "h"),
    "deadline_misses": ("deadline misses", "jobs"),
    "unfinished_jobs": ("unfinished jobs", ""),
    "unfinished_work_h": ("unfinished work", "GPU-h"),
    "lost_work_h": ("lost work", "GPU-h"),
    "runs": ("runs", ""),
    "restarts": ("restarts", ""),
    "max_runs_per_job": ("most runs of one job", ""),
    "short_runs": ("short runs", ""),
}
MINUS = "\u2212"

#: Columns of ``runsheet.csv``.
RUNSHEET_COLUMNS = ("time", "site", "action", "job", "other_site", "seconds", "restore_s",
                    "checkpoint_gb", "last_step")
#: Order of actions at one instant at one site: a GPU is freed before another run starts.
_ACTION_ORDER = {"stop": 0, "send": 1, "receive": 2, "start": 3}


@dataclass(frozen=True)
class Scored:
    """A plan of the report, its label and its evaluation."""

    label: str
    plan: Plan
    evaluation: Evaluation


@dataclass(frozen=True)
class Report:
    """Everything :func:`write_report` puts on the page, computed once (:func:`build_report`)."""

    inst: Instance
    plans: list[Scored]            #: the plan shown first, then those of --compare
    reference: Scored              #: ``static``: given, or computed for the report
    reference_note: str            #: where the reference comes from
    headlines: list[str]           #: one per plan
    summary: pd.DataFrame          #: every metric (rows) per plan (columns) + changes
    site_totals: pd.DataFrame
    runsheet: pd.DataFrame
    migrations: pd.DataFrame
    timeseries: pd.DataFrame
    pareto: pd.DataFrame | None = None     #: ``milp pareto``'s pareto.csv (``--pareto``)
    pareto_png: bytes | None = None        #: ... and its pareto.png


# ---- numbers ---------------------------------------------------------------------------------

def signed(x: float, digits: int = 3, unit: str = "") -> str:
    """``+2.9 h``, ``−67 %`` (a true minus sign), ``±0``; ``unit`` after a space."""
    text = f"{abs(x):.{digits}g}"
    if "e" in text:                                  # 2e+02 -> 200
        text = f"{abs(x):.0f}"
    sign = "±" if float(text) == 0 else "+" if x > 0 else MINUS
    return f"{sign}{text}" + (f" {unit}" if unit else "")


def change_pct(value: float, reference: float) -> float | None:
    """Change of ``value`` against ``reference`` in % (None when the reference is 0)."""
    return 100.0 * (value / reference - 1.0) if reference else None


def display_name(label: str) -> str:
    return "MILP" if label == "milp" else label


def _kwh(x: float) -> str:
    """Energy for a headline: one decimal from 10 kWh, else three significant digits."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def headline(s: Scored, ref: Scored) -> str:
    """``MILP: 26.6 kWh grid, −67 % against static, mean JCT +2.9 h``: the evaluator's grid
    energy, its change against the reference, and the change of mean completion time."""
    e, r = s.evaluation, ref.evaluation
    name = display_name(s.label)
    if s is ref:
        return (f"{name}: {_kwh(e.grid_energy_kwh)} kWh grid (the reference), mean JCT "
                f"{e.mean_jct_h:.3g} h")
    pct = change_pct(e.grid_energy_kwh, r.grid_energy_kwh)
    versus = f"{signed(pct, 2)} % against static" if pct is not None else \
        "static uses no grid energy"
    text = (f"{name}: {_kwh(e.grid_energy_kwh)} kWh grid, {versus}, mean JCT "
            f"{signed(e.mean_jct_h - r.mean_jct_h, 2, 'h')}")
    if e.unfinished_jobs:
        text += f" ({e.unfinished_jobs} jobs unfinished)"
    return text


# ---- tables ----------------------------------------------------------------------------------

def migrations_table(inst: Instance, plan: Plan) -> pd.DataFrame:
    """One row per migration: job, class, src → dst, start (to the millisecond), GB, link
    Gbps, transfer and disruption seconds, the share of the destination's remaining window it
    takes (%), energy breakeven seconds."""
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
                "start": _iso_ms(inst, s.start_s),
                "checkpoint_gb": s.checkpoint_gb,
                "link_gbps": float(inst.link_gbps[src, dst]) if None not in (src, dst) else 0.0,
                "transfer_s": round(s.transfer_s, 3), "disruption_s": round(s.disruption_s, 3),
                "window_share_pct": 100.0 * s.disruption_s / window if window > 0
                else float("inf"),
                "breakeven_s": round(float(fz.breakeven_s(
                    s.transfer_s, inst.migration.transfer_kw, kw)), 3)})
    return pd.DataFrame(rows, columns=["job", "class", "src", "dst", "start", "checkpoint_gb",
                                       "link_gbps", "transfer_s", "disruption_s",
                                       "window_share_pct", "breakeven_s"])


def summary_table(plans: list[Scored], ref: Scored) -> pd.DataFrame:
    """Every evaluator metric (rows) per plan (columns; the reference too when it was
    computed for the report), then the change of grid energy and mean JCT against static,
    in kWh / h and in %."""
    columns = {}
    for s in plans + ([ref] if ref not in plans else []):
        m = s.evaluation.metrics()
        m["violations"] = len(m["violations"])
        columns[s.label if ref in plans or s is not ref else f"{s.label} (reference)"] = m
    df = pd.DataFrame(columns).loc[list(METRICS)]
    base = ref.evaluation
    for key in ("grid_energy_kwh", "mean_jct_h"):
        values = [float(df.loc[key, c]) for c in df.columns]
        df.loc[f"{key} vs static"] = [v - getattr(base, key) for v in values]
        df.loc[f"{key} vs static (%)"] = [change_pct(v, getattr(base, key)) for v in values]
    return df


def runsheet_frame(inst: Instance, plan: Plan) -> pd.DataFrame:
    """What each site does and when, one row per action, in time order (then site, then
    ``stop``, ``send``, ``receive``, ``start``): ``start`` a job's run (``seconds``: its
    length, ``restore_s``: its first seconds loading the checkpoint), ``stop`` it
    (``last_step``: the job's last), ``send`` a checkpoint to ``other_site`` (``seconds``: the
    transfer, ``checkpoint_gb``), ``receive`` it from ``other_site`` when it has arrived.
    Times ISO 8601 to the millisecond; the steps are those every export runs
    (:func:`milp.export.steps.plan_steps`)."""
    from milp.export.steps import plan_steps

    rows = []
    steps = plan_steps(plan)
    last = {}
    for step in steps:
        last[step.job] = step.name
    for step in steps:
        if step.kind == "run":
            rows.append((step.start_s, step.site, "start", step.job, "", step.seconds,
                         step.restore_s, 0.0, False))
            rows.append((step.end_s, step.site, "stop", step.job, "", None, None, 0.0,
                         last[step.job] == step.name))
        else:
            rows.append((step.start_s, step.site, "send", step.job, step.dst, step.seconds,
                         None, step.checkpoint_gb, False))
            rows.append((step.end_s, step.dst, "receive", step.job, step.site, None, None,
                         step.checkpoint_gb, False))
    rows.sort(key=lambda r: (round(r[0], 3), inst.site_index_map.get(r[1], -1),
                             _ACTION_ORDER[r[2]], r[3]))
    frame = pd.DataFrame(rows, columns=["time_s", *RUNSHEET_COLUMNS[1:]])
    frame.insert(0, "time", [_iso_ms(inst, t) for t in frame["time_s"]])
    for key in ("seconds", "restore_s"):
        frame[key] = frame[key].astype(float).round(3)
    return frame.drop(columns="time_s")[list(RUNSHEET_COLUMNS)]


def site_totals(inst: Instance, series: pd.DataFrame, runsheet: pd.DataFrame) -> pd.DataFrame:
    """Per site and in total: renewable available, load, renewable used, grid and transfer
    energy (kWh, from the evaluator's arrays via :func:`milp.timeseries.timeseries_frame`),
    the share of the load covered by renewable power and the site's share of the grid energy
    (%), checkpoints sent and received, runs started."""
    h = inst.slot_h
    kwh = {key: site_slot(series, f"{key}_kw", inst).sum(axis=1) * h
           for key in ("renewable", "load", "renewable_used", "grid", "transfer")}
    counts = {a: runsheet[runsheet.action == a].groupby("site").size()
              for a in ("send", "receive", "start")}
    df = pd.DataFrame({
        "site": list(inst.sites), "gpus": inst.gpus.astype(int),
        "renewable_available_kwh": kwh["renewable"], "load_kwh": kwh["load"],
        "renewable_used_kwh": kwh["renewable_used"], "grid_kwh": kwh["grid"],
        "transfer_kwh": kwh["transfer"],
        "checkpoints_sent": [int(counts["send"].get(s, 0)) for s in inst.sites],
        "checkpoints_received": [int(counts["receive"].get(s, 0)) for s in inst.sites],
        "runs_started": [int(counts["start"].get(s, 0)) for s in inst.sites]})
    total = df.drop(columns="site").sum()
    df = pd.concat([df, pd.DataFrame([{"site": "total", **total.to_dict()}])],
                   ignore_index=True)
    counts_columns = ["gpus", "checkpoints_sent", "checkpoints_received", "runs_started"]
    df[counts_columns] = df[counts_columns].astype(int)
    df["renewable_share_pct"] = np.where(df.load_kwh > 0, 100.0 * df.renewable_used_kwh
                                         / df.load_kwh.where(df.load_kwh > 0, 1.0), np.nan)
    grid = float(df.grid_kwh.iloc[-1])
    df["grid_share_pct"] = 100.0 * df.grid_kwh / grid if grid > 0 else np.nan
    order = ["site", "gpus", "renewable_available_kwh", "load_kwh", "renewable_used_kwh",
             "renewable_share_pct", "grid_kwh", "grid_share_pct", "transfer_kwh",
             "checkpoints_sent", "checkpoints_received", "runs_started"]
    return df[order]


def _iso_ms(inst: Instance, seconds: float) -> str:
    """The wall-clock time ``seconds`` after the start, ISO 8601 rounded to the millisecond."""
    return inst.time_of(round(float(seconds), 3)).isoformat(timespec="milliseconds")


# ---- the report ------------------------------------------------------------------------------

def reference_of(inst: Instance, plans: list[Scored]) -> tuple[Scored, str]:
    """The ``static`` plan to compare against: the first given, else the static policy's plan
    of the instance, evaluated here."""
    for s in plans:
        if s.plan.policy == "static":
            return s, f"the static plan given ({s.label})"
    from milp.policies import POLICIES

    plan = POLICIES["static"](inst, None)
    return (Scored("static", plan, evaluate(inst, plan)),
            "no static plan was given: the static policy's plan of this instance, evaluated "
            "for this report")


def read_pareto(inst: Instance, folder: Path) -> tuple[pd.DataFrame, bytes]:
    """``milp pareto``'s output folder: its table and figure, checked to be of ``inst``."""
    from milp.errors import InputError
    from milp.pareto import COLUMNS

    for name in ("pareto.csv", "pareto.png", "summary.json"):
        if not (folder / name).is_file():
            raise InputError(str(folder / name), "missing: --pareto takes the --out folder of "
                                                 "milp pareto")
    made_for = json.loads((folder / "summary.json").read_text()).get("instance")
    if made_for != inst.name:
        raise InputError(str(folder / "summary.json"), f"the frontier is of {made_for!r}, not "
                         f"of {inst.name!r}", field="instance")
    table = pd.read_csv(folder / "pareto.csv")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(str(folder / "pareto.csv"), f"missing column(s) {', '.join(missing)}",
                         line=1)
    return table, (folder / "pareto.png").read_bytes()


def build_report(inst: Instance, plans: list[tuple[str, Plan]],
                 pareto: Path | None = None) -> Report:
    """Evaluate every plan once and compute every table of the report of ``plans[0]``
    (the others: ``--compare``); with ``pareto``, the frontier of ``milp pareto`` too."""
    scored = [Scored(label, plan, evaluate(inst, plan)) for label, plan in plans]
    ref, note = reference_of(inst, scored)
    first = scored[0]
    series = timeseries_frame(inst, first.plan, first.evaluation)
    sheet = runsheet_frame(inst, first.plan)
    return Report(inst=inst, plans=scored, reference=ref, reference_note=note,
                  headlines=[headline(s, ref) for s in scored],
                  summary=summary_table(scored, ref), site_totals=site_totals(inst, series,
                                                                              sheet),
                  runsheet=sheet, migrations=migrations_table(inst, first.plan),
                  timeseries=series, **(dict(zip(("pareto", "pareto_png"),
                                                 read_pareto(inst, pareto))) if pareto else {}))


def make_report(inst: Instance, plans: list[tuple[str, Plan]], out: Path) -> Path:
    """Write the figures, the tables and report.html for ``plans[0]`` (others: --compare)."""
    return write_report(build_report(inst, plans), out)


def write_report(report: Report, out: Path) -> Path:
    """Write every file of the report into ``out`` (a staging folder); return report.html."""
    from milp.figures import energy_stack_png, gantt_png, phase_diagram_png

    inst = report.inst
    out.mkdir(parents=True, exist_ok=True)
    first = report.plans[0]
    ts = report.timeseries
    grid = site_slot(ts, "grid_kw", inst)
    figures = [("Site timeline", energy_stack_png(
        inst, site_slot(ts, "compute_kw", inst), site_slot(ts, "transfer_kw", inst),
        site_slot(ts, "idle_kw", inst), grid, f"{inst.name}: {display_name(first.label)}",
        out / "timeline.png"))]
    for page, start in enumerate(range(0, inst.n_jobs, GANTT_PAGE), start=1):
        jobs = list(inst.jobs[start:start + GANTT_PAGE])
        figures.append((f"Jobs {start + 1}–{start + len(jobs)}", gantt_png(
            inst, first.plan, jobs, f"{inst.name}: {display_name(first.label)}, jobs "
            f"{start + 1}–{start + len(jobs)}", out / f"gantt-{page}.png")))
    figures.append(("Phase diagram of the instance's jobs", _phase(inst, out / "phase.png",
                                                                  phase_diagram_png)))
    write_atomic(out / "migrations.csv", report.migrations.to_csv(index=False))
    write_atomic(out / "summary.csv", report.summary.to_csv())
    write_atomic(out / "site_totals.csv", report.site_totals.round(6).to_csv(index=False))
    write_atomic(out / "runsheet.csv", report.runsheet.to_csv(index=False))
    write_timeseries(ts, out)
    write_atomic(out / "report.html", _html(report, figures))
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


# ---- HTML ------------------------------------------------------------------------------------

_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "td:first-child{white-space:nowrap}img{max-width:100%}.headline{font-size:1.15em;margin:0.2em 0}"
        ".note{color:#555;font-size:0.9em}h3{margin-bottom:0.2em}")


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    """An HTML table; cells are escaped; columns in ``numeric`` are right-aligned."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class='n'>{esc(str(v))}</td>" if i in numeric else f"<td>{esc(str(v))}</td>"
        for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(x: Any, digits: int = 4) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{float(x):.{digits}g}"


def _summary_html(report: Report) -> str:
    """Every metric in words with its unit; beside each plan's value that is not the
    reference's, its signed change against static (and in %)."""
    df = report.summary
    ref_col = next(c for c, s in zip(df.columns, report.plans + [report.reference])
                   if s is report.reference)
    rows = []
    for key in METRICS:
        words, unit = METRIC_LABELS[key]
        cells = [f"{words} ({unit})" if unit else words]
        for col in df.columns:
            value, base = df.loc[key, col], df.loc[key, ref_col]
            text = _number(value)
            delta = 0.0 if isinstance(value, (bool, np.bool_)) or key == "valid" or \
                value is None or base is None else float(value) - float(base)
            if col != ref_col and delta != 0:
                pct = change_pct(float(value), float(base))
                text += f" ({signed(delta, 3)}" + (f", {signed(pct, 2)} %" if pct is not None
                                                    else "") + ")"
            cells.append(text)
        rows.append(cells)
    headers = ["metric", *[display_name(c) for c in df.columns]]
    return _table(headers, rows, numeric=set(range(1, len(headers))))


def _runsheet_html(report: Report) -> str:
    """Per site, one row per instant: what to do then, in words."""
    from milp.figures import utc_offset

    inst, sheet = report.inst, report.runsheet
    multi_day = inst.time_of(inst.horizon_s - 1).date() != inst.start.date()
    parts = [f"<p class='note'>Times on the instance's clock ({utc_offset(inst)}). "
             "A run's restore is its first seconds loading the checkpoint (GPU held, no "
             "work). <code>runsheet.csv</code> has every row.</p>"]
    for site in inst.sites:
        mine = sheet[sheet.site == site]
        rows = []
        for time, group in mine.groupby("time", sort=False):
            t = pd.Timestamp(time)
            clock = t.strftime("%b %d %H:%M" if multi_day else "%H:%M")
            if t.second or t.microsecond:
                clock += t.strftime(":%S")
            rows.append([clock, ", ".join(_action_words(r) for r in group.itertuples())])
        parts.append(f"<h3>{html.escape(site)}</h3>")
        if not rows:
            parts.append("<p class='note'>Nothing happens here.</p>")
            continue
        parts.append(_table(["time", f"at {site}"], rows[:RUNSHEET_ROWS]))
        if len(rows) > RUNSHEET_ROWS:
            parts.append(f"<p class='note'>… and {len(rows) - RUNSHEET_ROWS} more instants "
                         "(runsheet.csv).</p>")
    return "\n".join(parts)


def _action_words(r) -> str:
    if r.action == "start":
        text = f"start {r.job} for {_duration(r.seconds)}"
        return text + (f" (restore {r.restore_s:g} s)" if r.restore_s else "")
    if r.action == "stop":
        return f"stop {r.job}" + (" (its last step)" if r.last_step else "")
    if r.action == "send":
        return f"send {r.job} to {r.other_site} ({r.checkpoint_gb:g} GB, {r.seconds:.3g} s)"
    return f"receive {r.job} from {r.other_site}"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{seconds / 60:.3g} min"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes % 60 else f"{minutes // 60} h"


def _site_totals_html(df: pd.DataFrame) -> str:
    headers = ["site", "GPUs", "renewable available (kWh)", "load (kWh)",
               "renewable used (kWh)", "load from renewable (%)", "grid (kWh)",
               "share of grid (%)", "transfers (kWh)", "checkpoints sent",
               "checkpoints received", "runs started"]
    rows = [[_number(v, 4) for v in row] for row in df.itertuples(index=False)]
    return _table(headers, rows, numeric=set(range(1, len(headers))))


def _migrations_html(moves: pd.DataFrame) -> str:
    if not len(moves):
        return "<p>No migrations.</p>"
    headers = ["job", "class", "from", "to", "start", "checkpoint (GB)", "link (Gbps)",
               "transfer (s)", "disruption (s)", "share of window left (%)", "breakeven (s)"]
    rows = [[_number(v) for v in row] for row in moves.itertuples(index=False)]
    return _table(headers, rows, numeric=set(range(5, len(headers))))


def _html(report: Report, figures) -> str:
    from milp.run import versions

    esc = html.escape
    inst, first = report.inst, report.plans[0]
    v = versions()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(inst.name)}: "
             f"{esc(display_name(first.label))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{esc(inst.name)}: {esc(display_name(first.label))}</h1>",
             f"<p>{inst.n_sites} sites, {inst.n_jobs} jobs, {inst.n_slots} slots of "
             f"{inst.slot_minutes:g} min from {esc(inst.start.isoformat())}.</p>"]
    parts += [f"<p class='headline'><b>{esc(h)}</b></p>" for h in report.headlines]
    parts += [f"<p class='note'>Against static: {esc(report.reference_note)}. Every number "
              "comes from the evaluator; JCT is job completion time.</p>",
              "<h2>Summary</h2>", _summary_html(report),
              f"<h2>Per site ({esc(display_name(first.label))})</h2>",
              _site_totals_html(report.site_totals)]
    if first.evaluation.violations:
        parts += ["<h2>Violations</h2><ul>"] + [f"<li>{esc(x)}</li>"
                                                for x in first.evaluation.violations]
        parts += ["</ul>"]
    for title, path in figures:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts += [f"<h2>{esc(title)}</h2>", f"<img alt='{esc(title)}' "
                  f"src='data:image/png;base64,{data}'>"]
    if report.pareto is not None:
        data = base64.b64encode(report.pareto_png).decode("ascii")
        cols = ["policy", "bound_mean_jct_h", "mean_jct_h", "grid_energy_kwh", "grid_co2_kg",
                "jct_vs_static_pct", "grid_vs_static_pct", "status", "gap"]
        parts += ["<h2>Trade-off: grid energy against mean JCT (milp pareto)</h2>",
                  "<img alt='frontier' src='data:image/png;base64," + data + "'>",
                  _table(cols, [[_number(None if pd.isna(v) else v) if not isinstance(v, str)
                                 else v for v in row] for row in
                                report.pareto[cols].itertuples(index=False)],
                         numeric=set(range(1, len(cols) - 2)))]
    parts += [f"<h2>Run sheet per site ({esc(display_name(first.label))})</h2>",
              _runsheet_html(report),
              f"<h2>Migrations ({len(report.migrations)})</h2>",
              _migrations_html(report.migrations),
              f"<p class='note'>Made by milp {esc(v['milp'])} (HiGHS {esc(v['highs'])}, Pyomo "
              f"{esc(v['pyomo'])}, Python {esc(v['python'])}).</p>", "</body></html>"]
    return "\n".join(parts)
