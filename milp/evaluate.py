"""The one evaluator: checks a plan's physics against an instance and computes every metric.

It is independent of every policy: it reads only the :class:`~milp.instance.Instance` and the
:class:`~milp.plan.Plan`, in exact seconds (migration times are never rounded to slots).

Accounting rules (README.md, "How plans are scored"):

- A job holds one GPU of a site while it runs there, and draws its ``compute_kw`` (kW). A run
  that does not continue the job's previous step at the same site without a pause begins with
  a **restore** of at least ``load_time_s + downtime_s`` (its ``restore_s``: the checkpoint
  loads, the GPU is held and powered, no work is done) — every run but a job's very first (and
  that one too when the job resumes from a checkpoint). A run after a pause at the same site
  is a **restart**; a plan over ``max_restarts`` per job, or with a run shorter than
  ``min_run_minutes`` that is not its job's last, breaks the execution rules (a violation).
- A migration's checkpoint occupies the link src→dst at rate ``8·checkpoint_gb / transfer_s``
  Gbps during ``[start_s, start_s + transfer_s)`` and draws ``transfer_kw`` at the **source**
  site meanwhile (``E_mig = P_transfer · T_transfer``, as in the study); the job's next step may
  start when it has arrived, and its next run restores it. ``disruption_s`` must be at least
  transfer + load + downtime. A move is inside the feasibility domain when its disruption fits
  ``alpha`` × the window left at the destination when it starts **and** the job resumes there —
  its next step is a run at the destination — before that window ends.
- Each site draws ``idle_kw`` in every slot.
- Energy is netted per site and slot: ``load_kwh[n,t]`` is the energy above, split exactly at
  slot boundaries; ``grid = max(0, load − renewable_kw·slot_h)``, ``renewable_used = load − grid``.
  With ``carbon.csv``, ``grid_co2_kg = Σ grid × carbon_g_per_kwh / 1000`` (None without it).
- Concurrent transfers on one link share it: their rates may not add up to more than its Gbps;
  all transfers into and out of a site share its ``wan_gbps``.
- A ``lost`` run (an executed plan's work undone by a fault, ``milp replay``) holds its GPU
  and draws power like any run but adds no work; ``lost_work_h`` sums them.
- Job completion is the instant its cumulated run time reaches ``work_h``. JCT = completion −
  release; an unfinished job counts as completing at the end of the horizon (a lower bound).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from milp.instance import Instance
from milp.plan import Migration, Plan, Run

#: Slack for comparing times (s): below a tenth of a millisecond, two instants are the same
#: (solvers return shares of a slot to ~1e-9, i.e. ~1e-6 s of a 15-minute slot).
EPS_S = 1e-4
#: Relative slack for comparing rates, sizes and energies.
EPS_REL = 1e-9

METRICS = ("valid", "violations", "grid_energy_kwh", "grid_co2_kg", "renewable_energy_kwh",
           "total_energy_kwh",
           "migrations", "migrations_outside_domain", "migration_energy_kwh",
           "migration_overhead_pct", "mean_jct_h", "p95_jct_h", "deadline_misses",
           "unfinished_jobs", "unfinished_work_h", "lost_work_h", "runs", "restarts",
           "max_runs_per_job", "short_runs")


@dataclass
class Evaluation:
    """What a plan achieves. ``metrics()`` gives the public, JSON-able numbers.

    Arrays: ``load_kwh``, ``grid_kwh``, ``renewable_used_kwh``, ``migration_kwh`` are
    [site, slot]; ``completion_s``, ``jct_h``, ``work_done_h``, ``lost_h`` are [job] (NaN
    completion if unfinished).
    """

    valid: bool
    violations: list[str]
    grid_energy_kwh: float
    grid_co2_kg: float | None      #: CO₂ of the grid energy (kg); None without carbon.csv
    renewable_energy_kwh: float
    total_energy_kwh: float
    migrations: int
    migrations_outside_domain: int
    migration_energy_kwh: float
    migration_overhead_pct: float
    mean_jct_h: float
    p95_jct_h: float
    deadline_misses: int
    unfinished_jobs: int
    unfinished_work_h: float
    lost_work_h: float
    runs: int                  #: runs (a run continued without a pause at its site is one)
    restarts: int              #: runs after a pause at the same site
    max_runs_per_job: int
    short_runs: int            #: runs shorter than min_run_minutes that are not a job's last
    load_kwh: np.ndarray = field(repr=False)
    grid_kwh: np.ndarray = field(repr=False)
    renewable_used_kwh: np.ndarray = field(repr=False)
    migration_kwh: np.ndarray = field(repr=False)
    completion_s: np.ndarray = field(repr=False)
    jct_h: np.ndarray = field(repr=False)
    work_done_h: np.ndarray = field(repr=False)
    lost_h: np.ndarray = field(repr=False)

    def metrics(self) -> dict[str, Any]:
        """The evaluator's metrics under their public names (the keys of ``--json``)."""
        d = asdict(self)
        return {k: d[k] for k in METRICS}


@dataclass
class _Segments:
    """Flat arrays of timed segments: where, when, and with what weight (kW or Gbps)."""

    where: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)

    def add(self, where: int, start: float, end: float, weight: float) -> None:
        self.where.append(where)
        self.start.append(start)
        self.end.append(end)
        self.weight.append(weight)

    def arrays(self):
        return (np.asarray(self.where, dtype=int), np.asarray(self.start, dtype=float),
                np.asarray(self.end, dtype=float), np.asarray(self.weight, dtype=float))


def evaluate(inst: Instance, plan: Plan) -> Evaluation:
    """Check ``plan`` against ``inst`` and score it (energies kWh, times h, overhead %)."""
    v: list[str] = []
    if plan.instance != inst.name:
        v.append(f"plan is for instance {plan.instance!r}, not {inst.name!r}")
    if _instant(plan.start) != inst.start:
        v.append(f"plan starts at {plan.start}, instance at {inst.start.isoformat()}")
    if abs(plan.slot_minutes - inst.slot_minutes) > EPS_REL:
        v.append(f"plan has {plan.slot_minutes:g}-minute slots, instance "
                 f"{inst.slot_minutes:g}")
    steps_of: dict[str, tuple] = {}
    for jp in plan.jobs:
        if jp.job not in inst.job_index_map:
            v.append(f"job {jp.job!r} is not in the instance")
        elif jp.job in steps_of:
            v.append(f"job {jp.job!r} is planned twice")
        else:
            steps_of[jp.job] = jp.steps

    runs, transfers, restores = _Segments(), _Segments(), _Segments()
    link_of: list[tuple[int, int]] = []
    completion = np.full(inst.n_jobs, np.nan)
    done_h = np.zeros(inst.n_jobs)
    disrupted_s = np.zeros(inst.n_jobs)
    lost_s = np.zeros(inst.n_jobs)
    n_mig = outside = n_runs = n_restarts = most_runs = n_short = 0
    for j, job in enumerate(inst.jobs):
        trace = _walk_job(inst, j, steps_of.get(job, ()), v)
        for site, s0, s1, restore in trace["runs"]:
            runs.add(site, s0, s1, inst.compute_kw[j, site])
            if restore > 0:
                restores.add(site, s0, s0 + restore, 1.0)
        for src, dst, s0, s1, gbps in trace["transfers"]:
            link_of.append((src, dst))
            transfers.add(len(link_of) - 1, s0, s1, gbps)
        completion[j], done_h[j] = trace["completion_s"], trace["done_h"]
        disrupted_s[j] = trace["disruption_s"]
        lost_s[j] = trace["lost_s"]
        n_mig += trace["migrations"]
        outside += trace["outside"]
        lengths = trace["run_lengths_s"]
        n_runs += len(lengths)
        n_restarts += trace["restarts"]
        most_runs = max(most_runs, len(lengths))
        n_short += _execution_rules(inst, j, trace["restarts"], lengths, v)

    v += _gpu_overloads(inst, runs, restores)
    v += _link_overloads(inst, transfers, link_of)
    v += _site_overloads(inst, transfers, link_of)

    # ---- energy, per site and slot -------------------------------------------------------
    r_site, r0, r1, r_kw = runs.arrays()
    compute_kwh = _spread(r_site, r0, r1, r_kw, inst) / 3600.0
    t_id, t0, t1, _ = transfers.arrays()
    t_src = np.array([link_of[i][0] for i in t_id], dtype=int)
    migration_kwh = _spread(t_src, t0, t1, np.full(len(t_id), inst.migration.transfer_kw),
                            inst) / 3600.0
    idle_kwh = np.repeat(inst.idle_kw[:, None] * inst.slot_h, inst.n_slots, axis=1)
    load = compute_kwh + migration_kwh + idle_kwh
    grid = np.maximum(0.0, load - inst.renewable_kw * inst.slot_h)
    used = load - grid

    # ---- time metrics --------------------------------------------------------------------
    finished = ~np.isnan(completion)
    end_s = np.where(finished, completion, inst.horizon_s)
    jct_h = (end_s - inst.release_s) / 3600.0
    missed = ~finished | (completion > inst.deadline_s + EPS_S)
    busy_s = float((end_s - inst.release_s).sum())
    return Evaluation(
        valid=not v, violations=v,
        grid_energy_kwh=float(grid.sum()),
        grid_co2_kg=float((grid * inst.carbon_g_per_kwh).sum()) / 1000.0
        if inst.carbon_g_per_kwh is not None else None,
        renewable_energy_kwh=float(used.sum()),
        total_energy_kwh=float(load.sum()), migrations=n_mig,
        migrations_outside_domain=outside, migration_energy_kwh=float(migration_kwh.sum()),
        migration_overhead_pct=100.0 * float(disrupted_s.sum()) / busy_s if busy_s > 0 else 0.0,
        mean_jct_h=float(jct_h.mean()) if inst.n_jobs else 0.0,
        p95_jct_h=float(np.percentile(jct_h, 95)) if inst.n_jobs else 0.0,
        deadline_misses=int(missed.sum()), unfinished_jobs=int((~finished).sum()),
        unfinished_work_h=float(np.maximum(inst.work_h - done_h, 0.0)[~finished].sum()),
        lost_work_h=float(lost_s.sum()) / 3600.0, runs=n_runs, restarts=n_restarts,
        max_runs_per_job=most_runs, short_runs=n_short,
        load_kwh=load, grid_kwh=grid, renewable_used_kwh=used, migration_kwh=migration_kwh,
        completion_s=completion, jct_h=jct_h, work_done_h=done_h, lost_h=lost_s / 3600.0)


def _walk_job(inst: Instance, j: int, steps: tuple, v: list[str]) -> dict[str, Any]:
    """Follow one job's steps in order; append violations; return its segments and facts."""
    job = inst.jobs[j]
    release, horizon = float(inst.release_s[j]), inst.horizon_s
    work_s = float(inst.work_h[j]) * 3600.0
    m = inst.migration
    here, clock, done_s = int(inst.origin[j]), release, 0.0
    prev: Run | Migration | None = None
    moves: list[tuple[int, float, float, float, int]] = []  # dst, start, disruption, window, step
    out: dict[str, Any] = {"runs": [], "transfers": [], "completion_s": np.nan, "done_h": 0.0,
                           "disruption_s": 0.0, "migrations": 0, "outside": 0, "lost_s": 0.0,
                           "restarts": 0, "run_lengths_s": [], "resumes": {}}

    def bad(step_no: int, what: str) -> None:
        v.append(f"job {job!r} step {step_no}: {what}")

    for k, step in enumerate(steps, start=1):
        start = float(step.start_s)
        if start < release - EPS_S:
            bad(k, f"starts at {_clock(inst, start)}, before the job's release "
                f"{_clock(inst, release)}")
        elif start < clock - EPS_S:
            bad(k, f"starts at {_clock(inst, start)}, before the previous step ends "
                f"({_clock(inst, clock)})")
        if done_s >= work_s - EPS_S:
            bad(k, "comes after the job's work is done")
        if isinstance(step, Run):
            site = _site(inst, step.site)
            if site is None:
                bad(k, f"runs at unknown site {step.site!r}")
                continue
            if site != here:
                bad(k, f"runs at {step.site!r} but the job is at {inst.sites[here]!r}")
            if step.end_s <= start:
                bad(k, f"run ends ({step.end_s:g} s) before it starts ({start:g} s)")
                continue
            if step.end_s > horizon + EPS_S:
                bad(k, f"runs past the end of the horizon ({_clock(inst, step.end_s)})")
            length = step.end_s - start
            goes_on = isinstance(prev, Run) and prev.site == step.site and \
                abs(prev.end_s - start) <= EPS_S
            need = 0.0 if goes_on or (prev is None and not inst.from_checkpoint[j]) \
                else m.stop_s
            if step.restore_s < need - EPS_S:
                why = "after a migration" if isinstance(prev, Migration) else \
                    "after a pause" if prev is not None else "from its checkpoint"
                bad(k, f"resumes {why} without loading its checkpoint (restore_s "
                    f"{step.restore_s:g} s < load + downtime {need:g} s)")
            if step.restore_s > length + EPS_S:
                bad(k, f"restore of {step.restore_s:g} s is longer than the run ({length:g} s)")
            if isinstance(prev, Migration) and prev.dst == step.site:
                out["resumes"].setdefault(len(moves) - 1, start)
            if goes_on:
                out["run_lengths_s"][-1] += length
            else:
                out["run_lengths_s"].append(length)
                if isinstance(prev, Run) and prev.site == step.site:
                    out["restarts"] += 1
            out["runs"].append((site, start, float(step.end_s), float(step.restore_s)))
            clock = float(step.end_s)
            prev = step
            computing = max(0.0, length - step.restore_s)
            if step.lost:
                out["lost_s"] += computing
                continue
            if np.isnan(out["completion_s"]) and done_s + computing >= work_s - EPS_S:
                out["completion_s"] = start + step.restore_s + (work_s - done_s)
            if done_s + computing > work_s + EPS_S:
                bad(k, f"runs {done_s + computing - work_s:.6g} s more than the job's remaining "
                    f"work")
            done_s += computing
        else:
            src, dst = _site(inst, step.src), _site(inst, step.dst)
            if src is None or dst is None:
                bad(k, f"migrates between unknown sites {step.src!r}->{step.dst!r}")
                continue
            out["migrations"] += 1
            out["disruption_s"] += step.disruption_s
            clock = start + step.transfer_s
            prev = step
            if src != here:
                bad(k, f"migrates from {step.src!r} but the job is at {inst.sites[here]!r}")
            here = dst
            gbps = inst.link_gbps[src, dst]
            if src == dst or gbps <= 0:
                bad(k, f"no link {step.src}->{step.dst}")
                out["outside"] += 1
                continue
            if abs(step.checkpoint_gb - inst.checkpoint_gb[j]) > EPS_REL * max(
                    1.0, inst.checkpoint_gb[j]):
                bad(k, f"moves {step.checkpoint_gb:g} GB but the job's checkpoint is "
                    f"{inst.checkpoint_gb[j]:g} GB")
            alone_s = float(inst.transfer_s(j, src, dst))
            if step.transfer_s < alone_s * (1 - EPS_REL) - EPS_S:
                bad(k, f"transfer of {step.transfer_s:g} s is faster than the link allows "
                    f"({alone_s:g} s at {gbps:g} Gbps)")
            least = step.transfer_s + m.load_time_s + m.downtime_s
            if step.disruption_s < least - EPS_S:
                bad(k, f"disruption {step.disruption_s:g} s is shorter than transfer + load + "
                    f"downtime ({least:g} s)")
            if clock > horizon + EPS_S:
                bad(k, f"transfer ends past the horizon ({_clock(inst, clock)})")
            moves.append((dst, start, float(step.disruption_s),
                          inst.remaining_window_s(dst, start), k))
            if step.transfer_s > 0:
                rate = 8.0 * inst.checkpoint_gb[j] / step.transfer_s
                out["transfers"].append((src, dst, start, start + step.transfer_s, rate))
    for i, (dst, start, disruption, window_s, _) in enumerate(moves):
        resume = out["resumes"].get(i)     # the start of its next run, there (None: no run)
        if disruption > m.alpha * window_s + EPS_S or resume is None or \
                resume >= start + window_s - EPS_S:
            out["outside"] += 1
    out["done_h"] = done_s / 3600.0
    return out


def _execution_rules(inst: Instance, j: int, restarts: int, lengths: list[float],
                     v: list[str]) -> int:
    """Check one job's restarts and run lengths against ``[execution]``; return its runs
    shorter than ``min_run_minutes`` that are not its last."""
    rules = inst.execution
    job = inst.jobs[j]
    if rules.max_restarts is not None and restarts > rules.max_restarts:
        v.append(f"job {job!r}: {restarts} restarts (runs after a pause at the same site), "
                 f"more than max_restarts = {rules.max_restarts}")
    short = [x for x in lengths[:-1] if x < rules.min_run_s - EPS_S]
    if short:
        v.append(f"job {job!r}: {len(short)} run(s) before its last shorter than "
                 f"min_run_minutes = {rules.min_run_minutes:g} (shortest {min(short) / 60:.3g} "
                 f"min)")
    return len(short)


def _site(inst: Instance, name: str) -> int | None:
    return inst.site_index_map.get(name)


def _clock(inst: Instance, seconds: float) -> str:
    """A time for messages: ISO wall clock, to the second (raw seconds if out of range)."""
    try:
        return inst.time_of(seconds).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        return f"{seconds:g} s"


def _instant(iso: str):
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def _spread(where: np.ndarray, start: np.ndarray, end: np.ndarray, weight: np.ndarray,
            inst: Instance) -> np.ndarray:
    """Sum ``weight × seconds`` of each segment into the [site, slot] cells it overlaps.

    Segments are clipped to the horizon and split exactly at slot boundaries.
    """
    out = np.zeros((inst.n_sites, inst.n_slots + 2))
    if where.size == 0:
        return out[:, :inst.n_slots]
    dt = inst.slot_s
    s = np.clip(start, 0.0, inst.horizon_s)
    e = np.clip(end, 0.0, inst.horizon_s)
    a = np.minimum((s // dt).astype(int), inst.n_slots - 1)
    b = np.minimum((e // dt).astype(int), inst.n_slots)
    same = a == b
    np.add.at(out, (where[same], a[same]), weight[same] * (e - s)[same])
    x = ~same
    np.add.at(out, (where[x], a[x]), weight[x] * ((a[x] + 1) * dt - s[x]))
    np.add.at(out, (where[x], b[x]), weight[x] * (e[x] - b[x] * dt))
    full = np.zeros_like(out)  # whole slots a+1 .. b-1, by a difference array
    np.add.at(full, (where[x], a[x] + 1), weight[x] * dt)
    np.add.at(full, (where[x], b[x]), -weight[x] * dt)
    out += np.cumsum(full, axis=1)
    return out[:, :inst.n_slots]


def _first_overload(start: np.ndarray, end: np.ndarray, weight: np.ndarray,
                    capacity: float) -> tuple[float, float] | None:
    """First instant the summed weight of open segments exceeds ``capacity``: (time, level).

    Segments are half-open: one ending when another starts do not overlap.
    """
    t = np.concatenate([start, end])
    w = np.concatenate([weight, -weight])
    order = np.lexsort((w, np.round(t / EPS_S)))
    level = np.cumsum(w[order])
    over = np.flatnonzero(level > capacity * (1 + EPS_REL) + EPS_REL)
    return (float(t[order][over[0]]), float(level[over[0]])) if over.size else None


def _gpu_overloads(inst: Instance, runs: _Segments, restores: _Segments) -> list[str]:
    """Sites with more runs (restores included) at some instant than GPUs."""
    site, s, e, _ = runs.arrays()
    r_site, r0, r1, _ = restores.arrays()
    out = []
    for n in range(inst.n_sites):
        mine = site == n
        hit = _first_overload(s[mine], e[mine], np.ones(mine.sum()), float(inst.gpus[n]))
        if hit:
            loading = np.any((r_site == n) & (r0 <= hit[0] + EPS_S) & (r1 > hit[0] + EPS_S))
            out.append(f"site {inst.sites[n]!r}: {hit[1]:g} jobs hold GPUs at once at "
                       f"{_clock(inst, hit[0])} but it has {inst.gpus[n]} GPUs"
                       + (" (a checkpoint is loading onto a full site)" if loading else ""))
    return out


def _link_overloads(inst: Instance, transfers: _Segments, link_of: list) -> list[str]:
    ids, s, e, rate = transfers.arrays()
    links = np.array(link_of, dtype=int).reshape(-1, 2)
    out = []
    for src, dst in sorted(set(map(tuple, links.tolist()))):
        mine = (links[ids, 0] == src) & (links[ids, 1] == dst)
        cap = float(inst.link_gbps[src, dst])
        hit = _first_overload(s[mine], e[mine], rate[mine], cap)
        if hit:
            out.append(f"link {inst.sites[src]}->{inst.sites[dst]}: transfers need "
                       f"{hit[1]:.6g} Gbps at {_clock(inst, hit[0])} but it has {cap:g} Gbps")
    return out


def _site_overloads(inst: Instance, transfers: _Segments, link_of: list) -> list[str]:
    """Sites whose transfers in and out need more than their WAN capacity at some instant."""
    ids, s, e, rate = transfers.arrays()
    links = np.array(link_of, dtype=int).reshape(-1, 2)
    out = []
    for n in np.flatnonzero(np.isfinite(inst.wan_gbps)).tolist():
        mine = (links[ids, 0] == n) | (links[ids, 1] == n)
        cap = float(inst.wan_gbps[n])
        hit = _first_overload(s[mine], e[mine], rate[mine], cap)
        if hit:
            out.append(f"site {inst.sites[n]!r}: transfers in and out need {hit[1]:.6g} Gbps "
                       f"at {_clock(inst, hit[0])} but its WAN has {cap:g} Gbps")
    return out
