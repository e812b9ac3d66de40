"""Why jobs cannot meet their deadlines: one line per job, in words an operator can act on."""

from __future__ import annotations

import numpy as np

from milp.instance import Instance
from milp.engine.index import build_index


def explain_unfinished(inst: Instance, unfinished_gpu_h: dict[str, float]) -> list[str]:
    """For each job with work the best plan cannot finish by its deadline, the binding reason:
    the GPU time its reachable sites offer between release and deadline against what the jobs
    there need by then, and whether any move is inside the feasibility domain."""
    index = build_index(inst, with_moves=False)
    reach: dict[int, set[int]] = {j: {int(inst.origin[j])} for j in range(inst.n_jobs)}
    for (j, n, _t) in index.occ:
        reach[j].add(n)
    lines = []
    for job, short in sorted(unfinished_gpu_h.items(), key=lambda kv: -kv[1]):
        j = inst.job_index_map[job]
        r, d = int(inst.release_slot[j]), int(inst.deadline_slot[j])
        sites = sorted(reach[j])
        offer = float(sum(inst.gpus[n] for n in sites) * (d - r) * inst.slot_h)
        others = [k for k in range(inst.n_jobs) if k != j and int(inst.origin[k]) in sites
                  and inst.release_slot[k] < d and inst.deadline_slot[k] > r]
        need = float(sum(min(inst.work_h[k], (min(d, inst.deadline_slot[k])
                                              - max(r, inst.release_slot[k])) * inst.slot_h)
                         for k in others)) + float(inst.work_h[j])
        names = ", ".join(inst.sites[n] for n in sites)
        why = (f"its sites ({names}) offer {offer:.3g} GPU-h between release and deadline, "
               f"and {len(others) + 1} jobs there need {need:.3g} GPU-h of it")
        if j in index.fixed_jobs:
            why += "; " + stuck_reason(inst, j)
        lines.append(f"job {job}: {short:.3g} of {inst.work_h[j]:.3g} GPU-h cannot be done by "
                     f"{inst.time_of(d * inst.slot_s).isoformat(timespec='minutes')}: {why}")
    return lines


def stuck_reason(inst: Instance, j: int) -> str:
    """Why job j can never leave its origin before its deadline, with the numbers: no link,
    no renewable window ahead at any destination, or no link fast enough for α·W of one."""
    o, r, d = int(inst.origin[j]), int(inst.release_slot[j]), int(inst.deadline_slot[j])
    links = inst.link_gbps[o]
    if not np.any(links > 0):
        return f"it cannot move: no link leaves {inst.sites[o]}"
    budget_s = inst.migration.alpha * inst.remaining_window_slots[:, r:d].max(
        axis=1, initial=0) * inst.slot_s
    budget_s = np.where(links > 0, budget_s, 0.0)     # only sites it has a link to
    budget_s[o] = 0.0
    if budget_s.max() <= 0:
        return ("it cannot move: no site it links to has a renewable window before its "
                "deadline, so no move is inside the feasibility domain")
    fastest = float(links.max())
    need = float(inst.transfer_s(j, o, int(np.argmax(links)))) + inst.migration.stop_s
    return (f"it cannot move: its {inst.checkpoint_gb[j]:g} GB checkpoint needs {need:.4g} s "
            f"even over the fastest link ({fastest:g} Gbps), more than "
            f"alpha x window = {budget_s.max():.4g} s of any window it can reach before its "
            f"deadline (link too slow for any feasible move)")
