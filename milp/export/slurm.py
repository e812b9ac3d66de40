"""Slurm export: one ``sbatch`` script per step and a ``submit.sh`` that submits them in order.

Layout of the output folder::

    submit.sh            submits every step with sbatch --parsable; arguments go to every call
    jobs/<step>.sbatch   one script per step (run or transfer)
    steps.csv            the steps, as ``milp export csv`` writes them

Each script starts with a ``# milp-step`` line that repeats the plan's numbers exactly (job,
step, kind, site, begin, end, seconds), so nothing is lost to Slurm's one-minute rounding.
``submit.sh`` gives each step ``--begin`` (its planned start, converted to the submitting
machine's time zone, which is how sbatch reads it), ``--dependency=afterok:`` on the job's
previous step, ``--time`` (the planned length, rounded up to whole minutes) and the site's
partition (or cluster) from the site map. ``./submit.sh --hold`` submits everything held.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

from milp.errors import InputError
from milp.export import DEFAULT_COMMAND, DEFAULT_TRANSFER
from milp.export.commands import fill, step_values
from milp.export.steps import Step, iso, steps_frame
from milp.export.targets import SiteMap, word
from milp.plan import Plan

def minutes(seconds: float) -> int:
    """Slurm's --time in whole minutes: the planned length rounded up, at least 1."""
    return max(1, math.ceil(seconds / 60 - 1e-9))


def script(step: Step, plan: Plan, sites: SiteMap, command: str, transfer: str) -> str:
    """The sbatch script of one step."""
    t = sites[step.site]
    if not word(t.partition):
        raise InputError("--site-map", f"site {step.site!r} cannot be a Slurm partition name; "
                         f"set sites.\"{step.site}\".partition", field=f"sites.{step.site}")
    values = step_values(step, sites)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={slug(step.name)}",
             f"#SBATCH --partition={t.partition}"]
    if t.cluster:
        lines.append(f"#SBATCH --clusters={t.cluster}")
    lines += [f"#SBATCH --time={minutes(step.seconds)}", "#SBATCH --ntasks=1",
              "#SBATCH --output=logs/%x.%j.out"]
    if step.kind == "run" and t.gres:
        lines.append(f"#SBATCH --gres={t.gres}")
    lines += [f"#SBATCH {opt}" for opt in t.sbatch]
    lines += [
        "# milp-step " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (
            ("job", step.job), ("step", step.index), ("kind", step.kind), ("site", step.site),
            ("dst", step.dst or "-"), ("begin", iso(step.begin)), ("end", iso(step.end)),
            ("seconds", repr(step.seconds)))),
        f"# plan: {shlex.quote(plan.policy)} for instance {shlex.quote(plan.instance)}; "
        + (f"compute until {iso(step.end)}" if step.kind == "run" else
           f"send {step.checkpoint_gb:g} GB ({step.checkpoint_bytes} bytes), planned "
           f"{step.seconds:.6g} s"),
        *(f"export MILP_{k.upper()}={shlex.quote(v)}" for k, v in values.items()),
    ]
    if step.kind == "transfer":
        lines.append(f"export MILP_BYTES={step.checkpoint_bytes}")
    lines.append(fill(command if step.kind == "run" else transfer, values,
                      "--command" if step.kind == "run" else "--transfer"))
    return "\n".join(lines) + "\n"


def slug(name: str) -> str:
    """A step name as Slurm job names and file names take it (no spaces or shell syntax)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def file_name(step: Step) -> str:
    return slug(step.name) + ".sbatch"


def submit_script(steps: list[Step], plan: Plan, names: dict[str, str]) -> str:
    """``submit.sh``: submit every step in order of planned start (a job's steps in order)."""
    order = sorted(range(len(steps)), key=lambda i: (steps[i].begin, steps[i].job,
                                                      steps[i].index))
    var = {steps[i].name: f"s{n}" for n, i in enumerate(order)}
    n_runs = sum(s.kind == "run" for s in steps)
    lines = [
        "#!/usr/bin/env bash",
        f"# Submit plan {shlex.quote(plan.policy)} of instance {shlex.quote(plan.instance)} to "
        f"Slurm: {len(steps)} "
        f"steps ({n_runs} runs, {len(steps) - n_runs} transfers) of {len(plan.jobs)} jobs.",
        "# Every step begins at its planned time and waits for its job's previous step.",
        "# Arguments go to every sbatch call, e.g.  ./submit.sh --hold",
        "# Writes submitted.csv (step,slurm_job_id).",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "mkdir -p logs",
        "# a planned start (Unix time) in this machine's time zone, as sbatch reads --begin",
        'at() { date -d "@$1" +%Y-%m-%dT%H:%M:%S; }',
        '# sbatch --parsable prints "id" or "id;cluster"',
        'submit() { local id; id=$(sbatch --parsable "$@"); echo "${id%%;*}"; }',
        "echo step,slurm_job_id > submitted.csv",
    ]
    for i in order:
        s = steps[i]
        v = var[s.name]
        dep = f" --dependency=afterok:${var[s.after]}" if s.after else ""
        lines.append(f'{v}=$(submit "$@" --begin="$(at {math.ceil(s.begin.timestamp())})"{dep} '
                     f"jobs/{names[s.name]})")
        lines.append(f"echo {shlex.quote(_csv_cell(s.name))},${v} >> submitted.csv")
    lines.append(f'echo "submitted {len(steps)} steps; job ids in submitted.csv"')
    return "\n".join(lines) + "\n"


def _csv_cell(text: str) -> str:
    """A CSV field: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"') else text


def export_slurm(plan: Plan, steps: list[Step], out: Path, sites: SiteMap,
                 command: str = DEFAULT_COMMAND, transfer: str = DEFAULT_TRANSFER) -> int:
    """Write the scripts of every step, ``submit.sh`` and ``steps.csv`` into ``out`` (a staging
    folder). Returns the number of scripts."""
    names = {s.name: file_name(s) for s in steps}
    if len(set(names.values())) < len(names):
        raise InputError("plan.json", "two steps map to the same script name; job ids differ "
                         "only in characters Slurm cannot take", field="jobs")
    jobs = out / "jobs"
    jobs.mkdir(parents=True)
    for s in steps:
        (jobs / names[s.name]).write_text(script(s, plan, sites, command, transfer),
                                          encoding="utf-8")
    submit = out / "submit.sh"
    submit.write_text(submit_script(steps, plan, names), encoding="utf-8")
    submit.chmod(0o755)
    (out / "steps.csv").write_text(steps_frame(steps).to_csv(index=False), encoding="utf-8")
    return len(steps)
