"""Figures (matplotlib, written to PNG without a display)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from milp import feasibility as fz  # noqa: E402
from milp.files import write_atomic  # noqa: E402

REGION_COLOURS = {"feasible": "#4caf50", "marginal": "#ffb300", "infeasible": "#e53935"}


def phase_diagram_png(grid: pd.DataFrame, windows_h, path: str | Path, *, alpha: float,
                      load_time_s: float, downtime_s: float) -> Path:
    """Draw :func:`milp.feasibility.phase_diagram` output: size × bandwidth, coloured by region.

    One boundary line ``8·S/B + T_load + T_down = α·W`` per window; class limits at 10 and
    100 GB.
    """
    sizes = np.unique(grid["checkpoint_gb"])
    bands = np.unique(grid["bandwidth_gbps"])
    codes = {r: i for i, r in enumerate(REGION_COLOURS)}
    z = (grid.pivot(index="checkpoint_gb", columns="bandwidth_gbps", values="region")
         .loc[sizes, bands].map(codes.get).to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
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
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in REGION_COLOURS.values()]
    ax.legend(handles, list(REGION_COLOURS), loc="upper left", fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Render to PNG in memory, then write atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
