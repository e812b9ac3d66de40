"""A plan's power per site and slot: ``timeseries.csv`` and ``timeseries.parquet``.

One row per site × slot (sites in instance order, then slots), the numbers behind the report's
site timeline, for tools that read time series (PyPSA-style energy models, pandas, Arrow):

| column | meaning |
|---|---|
| ``time`` | start of the slot (ISO 8601 with offset in CSV, a timezone-aware timestamp in Parquet) |
| ``slot``, ``site`` | slot index from 0, site name |
| ``load_kw`` | mean power the site draws in the slot: compute + transfer + idle (kW) |
| ``compute_kw``, ``transfer_kw``, ``idle_kw`` | its parts: jobs running (restores included), checkpoints being sent from the site, the site's idle power |
| ``renewable_kw`` | renewable power available (the instance's forecast) |
| ``renewable_used_kw``, ``grid_kw`` | the load covered by renewable power and by the grid |
| ``transfers_out``, ``transfers_in`` | checkpoints whose transfer from / to the site starts in the slot |

Energies come from the evaluator's arrays (``load_kwh``, ``grid_kwh``, ``renewable_used_kwh``,
``migration_kwh``, kWh per site and slot) divided by the slot length; nothing is recomputed.
Powers are rounded to the milliwatt (1e-6 kW), times are on the slot grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from milp.evaluate import Evaluation
from milp.instance import Instance
from milp.plan import Migration, Plan

COLUMNS = ("time", "slot", "site", "load_kw", "compute_kw", "transfer_kw", "idle_kw",
           "renewable_kw", "renewable_used_kw", "grid_kw", "transfers_out", "transfers_in")
#: The files :func:`write_timeseries` writes.
FILES = ("timeseries.csv", "timeseries.parquet")


def timeseries_frame(inst: Instance, plan: Plan, evaluation: Evaluation) -> pd.DataFrame:
    """One row per site × slot, columns :data:`COLUMNS` (see the module docstring);
    ``evaluation`` is the evaluator's of ``plan`` on ``inst``."""
    h = inst.slot_h
    idle = np.repeat(inst.idle_kw[:, None], inst.n_slots, axis=1).astype(float)
    load = evaluation.load_kwh / h
    transfer = evaluation.migration_kwh / h
    out = np.zeros((inst.n_sites, inst.n_slots), dtype=int)
    into = np.zeros((inst.n_sites, inst.n_slots), dtype=int)
    for jp in plan.jobs:
        for s in jp.steps:
            if isinstance(s, Migration):
                t = int(s.start_s // inst.slot_s)
                src, dst = inst.site_index_map.get(s.src), inst.site_index_map.get(s.dst)
                if 0 <= t < inst.n_slots:
                    if src is not None:
                        out[src, t] += 1
                    if dst is not None:
                        into[dst, t] += 1
    times = pd.DatetimeIndex([pd.Timestamp(t) for t in inst.slot_times()])
    powers = {"load_kw": load, "compute_kw": np.maximum(load - transfer - idle, 0.0),
              "transfer_kw": transfer, "idle_kw": idle, "renewable_kw": inst.renewable_kw,
              "renewable_used_kw": evaluation.renewable_used_kwh / h,
              "grid_kw": evaluation.grid_kwh / h}
    frame = pd.DataFrame({
        "time": pd.DatetimeIndex(list(times) * inst.n_sites, tz=times.tz),
        "slot": np.tile(np.arange(inst.n_slots), inst.n_sites),
        "site": np.repeat(np.array(inst.sites, dtype=object), inst.n_slots),
        **{k: np.round(np.asarray(v, dtype=float).ravel(), 6) for k, v in powers.items()},
        "transfers_out": out.ravel(), "transfers_in": into.ravel()})
    return frame[list(COLUMNS)]


def site_slot(frame: pd.DataFrame, column: str, inst: Instance) -> np.ndarray:
    """A column of :func:`timeseries_frame` as a [site, slot] array."""
    return frame[column].to_numpy(dtype=float).reshape(inst.n_sites, inst.n_slots)


def write_timeseries(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """``timeseries.csv`` (times ISO 8601 with offset) and ``timeseries.parquet`` into
    ``folder`` (a staging folder)."""
    csv = frame.assign(time=[t.isoformat() for t in frame["time"]])
    (folder / FILES[0]).write_text(csv.to_csv(index=False), encoding="utf-8")
    frame.to_parquet(folder / FILES[1], index=False)
    return [folder / name for name in FILES]
