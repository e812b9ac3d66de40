"""Slurm export: one ``sbatch`` script per step, ``submit.sh`` that submits them in order and
``cancel.sh`` that cancels what is left.

Layout of the output folder::

    submit.sh            submits every step with sbatch --parsable; arguments go to every call
    cancel.sh            cancels every submitted step still pending or running
    jobs/<step>.sbatch   one script per step (run or transfer)
    steps.csv, steps.json  the steps (:mod:`milp.export.steps`)

Every job is named ``<plan id>.<step>`` and carries ``--comment=milp-plan=<plan id>``, so two
plans never share a name and ``squeue``/``sacct`` can group by plan. Each script starts with a
``# milp-step`` line that repeats the plan's numbers exactly (plan, job, step, kind, site, begin,
end, seconds), so nothing is lost to Slurm's one-minute rounding.

``submit.sh`` gives each step ``--begin=now+<seconds>`` (computed at submission from the planned
start's Unix time with ``date +%s`` only, so it works with BSD/macOS tools and in any time zone,
plus one second because sbatch's clock (``time()``) can lag ``date``'s by a fraction of a second:
a step never begins earlier than planned, at most a second or two later), ``--dependency=afterok:`` on the job's previous
step and records the ids in ``submitted.csv``. Every script has ``--kill-on-invalid-dep=yes``: a
step that fails, times out or is cancelled cancels the rest of its job's chain at once, instead
of leaving it pending forever. ``--time`` is the planned length plus a margin (:func:`limit_s`);
run steps get a signal ``margin`` seconds before the limit (``--signal=B:USR1@<margin>``), which
the script passes on to the command's processes so that they can checkpoint before they are
killed.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from pathlib import Path

from milp.errors import InputError
from milp.export import DEFAULT_COMMAND, DEFAULT_MARGIN_S, DEFAULT_SIGNAL, DEFAULT_TRANSFER
from milp.export.commands import fill, step_values
from milp.export.steps import Schedule, Step, iso, write_steps
from milp.export.targets import SiteMap, word

#: Signals ``--signal`` may name (without ``SIG``): those a program can catch to checkpoint.
SIGNALS = ("USR1", "USR2", "TERM", "INT", "HUP", "URG", "ALRM", "CONT", "QUIT", "WINCH")
#: Slurm sends ``--signal`` up to this many seconds earlier than asked (its event resolution):
#: the time limit of a signalled step has this much more, so the signal never comes before the
#: planned length is up.
SIGNAL_JITTER_S = 60
#: Largest ``@sig_time`` sbatch takes (16 bits).
MAX_SIGNAL_S = 65535


def check_slurm_options(margin: float, signal: str | None) -> str | None:
    """Refuse a negative or non-finite ``--margin`` and an unknown ``--signal``; returns the
    signal's name without ``SIG`` (``None`` for ``none`` or a zero margin: no signal)."""
    if not math.isfinite(margin) or margin < 0:
        raise InputError("--margin", f"{margin!r} is not a number of seconds >= 0")
    if signal is None or signal.lower() == "none":
        return None
    name = signal.upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise InputError("--signal", f"{signal!r} is not a signal a job can catch (one of "
                         f"{', '.join(SIGNALS)}, or none)")
    if margin > MAX_SIGNAL_S:
        raise InputError("--margin", f"{margin:g} s is more than Slurm's --signal takes "
                         f"({MAX_SIGNAL_S} s); use a smaller margin or --signal none")
    return name if margin >= 1 else None


def minutes(seconds: float) -> int:
    """Slurm's --time in whole minutes: ``seconds`` rounded up, at least 1."""
    return max(1, math.ceil(seconds / 60 - 1e-9))


def limit_s(step: Step, margin: float, signal: str | None) -> float:
    """The seconds ``--time`` must cover: the planned length plus ``margin``, plus
    :data:`SIGNAL_JITTER_S` when the step is signalled (before rounding up to minutes)."""
    return step.seconds + margin + (SIGNAL_JITTER_S if signal else 0)


def signalled(step: Step, signal: str | None) -> str | None:
    """The signal a step gets before its limit: run steps only (a transfer's rsync would take
    SIGUSR1 as an error and stop)."""
    return signal if step.kind == "run" else None


def script(step: Step, sched: Schedule, sites: SiteMap, command: str, transfer: str,
           margin: float = DEFAULT_MARGIN_S, signal: str | None = DEFAULT_SIGNAL) -> str:
    """The sbatch script of one step."""
    t = sites[step.site]
    if not word(t.partition):
        raise InputError("--site-map", f"site {step.site!r} cannot be a Slurm partition name; "
                         f"set sites.\"{step.site}\".partition", field=f"sites.{step.site}")
    plan = sched.plan
    sig = signalled(step, signal)
    values = step_values(step, sites)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name(sched, step)}",
             f"#SBATCH --comment=milp-plan={sched.plan_id}",
             f"#SBATCH --partition={t.partition}"]
    if t.cluster:
        lines.append(f"#SBATCH --clusters={t.cluster}")
    lines += [f"#SBATCH --time={minutes(limit_s(step, margin, sig))}",
              "#SBATCH --kill-on-invalid-dep=yes"]
    if sig:
        lines.append(f"#SBATCH --signal=B:{sig}@{math.floor(margin)}")
    lines += ["#SBATCH --ntasks=1", "#SBATCH --output=logs/%x.%j.out"]
    if step.kind == "run" and t.gres:
        lines.append(f"#SBATCH --gres={t.gres}")
    lines += [f"#SBATCH {opt}" for opt in t.sbatch]
    lines += [
        "# milp-step " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (
            ("plan", sched.plan_id), ("job", step.job), ("step", step.index),
            ("kind", step.kind), ("site", step.site), ("dst", step.dst or "-"),
            ("begin", iso(step.begin)), ("end", iso(step.end)), ("seconds", repr(step.seconds)))),
        f"# plan: {shlex.quote(plan.policy)} for instance {shlex.quote(plan.instance)}; "
        + (f"compute until {iso(step.end)}" if step.kind == "run" else
           f"send {step.checkpoint_gb:g} GB ({step.checkpoint_bytes} bytes), planned "
           f"{step.seconds:.6g} s"),
        *(f"export MILP_{k.upper()}={shlex.quote(v)}" for k, v in values.items()),
    ]
    if step.kind == "transfer":
        lines.append(f"export MILP_BYTES={step.checkpoint_bytes}")
    text = fill(command if step.kind == "run" else transfer, values,
                "--command" if step.kind == "run" else "--transfer")
    lines += _forwarding(text, sig, margin) if sig else [text]
    return "\n".join(lines) + "\n"


def _forwarding(command: str, signal: str, margin: float) -> list[str]:
    """Run ``command`` in a process group of its own and pass ``signal`` on to it.

    Slurm signals only the batch shell (``B:``), and a shell defers a trap until its foreground
    command ends, so the command runs in the background while this shell waits. A signal can
    interrupt ``wait`` at any moment, even as the command ends, which makes the status ``wait``
    returns unreliable: the command's status goes through a file instead, written by a
    subshell that survives the signal (``trap :``; the command itself gets the default action
    back, so that it may trap the signal itself)."""
    return [
        f"# Slurm sends SIG{signal} to this shell {math.floor(margin)} s before the time limit "
        f"(not before the planned",
        "# length is up): pass it on to every process of the command, so that it can "
        "checkpoint before the end.",
        'milp_status=$(mktemp) || exit 1',
        f"trap 'kill -s {signal} -- \"-$milp_pid\" 2>/dev/null' {signal}",
        "set -m   # the command gets a process group of its own",
        "{",
        f"trap : {signal}",
        "(",
        command,
        ")",
        'echo $? > "$milp_status"',
        "} &",
        "milp_pid=$!",
        "set +m",
        '# wait returns early when the signal comes: wait until the command has ended',
        'while kill -0 "$milp_pid" 2>/dev/null; do wait "$milp_pid"; done',
        'milp_rc=$(cat "$milp_status"); rm -f "$milp_status"',
        'exit "${milp_rc:-1}"',
    ]


#: Longest step part of a script's file name and job name (characters): a file name stays
#: well under the 255 bytes file systems take, whatever the job id.
MAX_STEP_SLUG = 180


def slug(name: str) -> str:
    """A name as Slurm job names and file names take it (no spaces or shell syntax)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def step_slug(step: Step) -> str:
    """:func:`slug` of the step's name, cut to :data:`MAX_STEP_SLUG` characters with a hash
    of the whole name when longer (so that distinct long names stay distinct)."""
    text = slug(step.name)
    if len(text) <= MAX_STEP_SLUG:
        return text
    digest = hashlib.sha1(step.name.encode("utf-8")).hexdigest()[:8]
    return f"{text[:MAX_STEP_SLUG - 9]}-{digest}"


def job_name(sched: Schedule, step: Step) -> str:
    """The Slurm job name of a step: ``<plan id>.<step name>`` (made safe by :func:`slug`)."""
    return f"{slug(sched.plan_id)}.{step_slug(step)}"


def file_name(step: Step) -> str:
    return step_slug(step) + ".sbatch"


def submit_script(sched: Schedule, names: dict[str, str]) -> str:
    """``submit.sh``: submit every step in order of planned start (a job's steps in order)."""
    steps, plan = sched.steps, sched.plan
    order = sorted(range(len(steps)), key=lambda i: (steps[i].begin, steps[i].job,
                                                      steps[i].index))
    var = {steps[i].name: f"s{n}" for n, i in enumerate(order)}
    n_runs = sum(s.kind == "run" for s in steps)
    total = len(steps)
    lines = [
        "#!/usr/bin/env bash",
        f"# Submit plan {sched.plan_id} ({shlex.quote(plan.policy)} for instance "
        f"{shlex.quote(plan.instance)}) to Slurm: {total} steps",
        f"# ({n_runs} runs, {total - n_runs} transfers) of {len(plan.jobs)} jobs. Every step "
        "begins at its planned time, or when its",
        "# job's previous step has succeeded if that is later; a step that fails, times out "
        "or is cancelled",
        "# cancels the rest of its job's chain (--kill-on-invalid-dep=yes). Arguments go to "
        "every sbatch call,",
        "# e.g.  ./submit.sh --hold   Writes submitted.csv (step,slurm_job_id,cluster); "
        "./cancel.sh cancels what is left.",
        "# Portable: bash and date +%s only (no GNU date -d): sbatch gets --begin=now+<seconds>.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "if [ -s submitted.csv ]; then",
        f'    echo "submit.sh: plan {sched.plan_id} was submitted from here already '
        '(submitted.csv); ./cancel.sh cancels it, then delete submitted.csv to submit again" >&2',
        "    exit 1",
        "fi",
        "mkdir -p logs",
        "n=0",
        "trap 'rc=$?; [ \"$rc\" -eq 0 ] || echo \"submit.sh: stopped after submitting $n of "
        f"{total} steps (in submitted.csv); ./cancel.sh cancels them\" >&2' EXIT",
        "# --begin of a planned start (Unix time): the seconds from now, as sbatch reads now+N, "
        "plus 1 s",
        "# so that it is never earlier (sbatch's clock, time(), may lag date's by a fraction "
        "of a second)",
        'at() { local d=$(( $1 - $(date +%s) + 1 )); [ "$d" -gt 0 ] || d=0; echo "now+$d"; }',
        "# submit STEP SBATCH_ARGS...: submit, add the row to submitted.csv, set $id "
        '(sbatch --parsable prints "id" or "id;cluster")',
        "submit() {",
        '    local step=$1 out cluster=""; shift',
        '    out=$(sbatch --parsable "$@")',
        '    id=${out%%;*}',
        '    case $out in *";"*) cluster=${out#*;} ;; esac',
        "    printf '%s,%s,%s\\n' \"$step\" \"$id\" \"$cluster\" >> submitted.csv",
        "    n=$((n + 1))",
        "}",
        "echo step,slurm_job_id,cluster > submitted.csv",
    ]
    for i in order:
        s = steps[i]
        dep = f" --dependency=afterok:${var[s.after]}" if s.after else ""
        lines.append(f"submit {shlex.quote(_csv_cell(s.name))} \"$@\" "
                     f'--begin="$(at {s.begin_unix})"{dep} '
                     f"jobs/{names[s.name]}; {var[s.name]}=$id")
    lines.append(f'echo "submitted {total} steps of plan {sched.plan_id}; job ids in '
                 f'submitted.csv"')
    return "\n".join(lines) + "\n"


def cancel_script(sched: Schedule) -> str:
    """``cancel.sh``: cancel every step of ``submitted.csv`` still pending or running."""
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# Cancel what is left of plan {sched.plan_id}: every step in submitted.csv that is "
        "still pending or running",
        "# (finished ones stay as they are). Arguments go to scancel, e.g.  ./cancel.sh "
        "--state=PENDING  cancels only",
        "# the steps that have not started.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "if [ ! -s submitted.csv ]; then",
        '    echo "cancel.sh: no submitted.csv here: nothing was submitted from this folder" >&2',
        "    exit 1",
        "fi",
        "status=0 count=0",
        "# one scancel per cluster; the last two fields of a row are the job id and its cluster",
        "while read -r cluster ids; do",
        '    [ "$cluster" = "-" ] && cluster=""',
        '    scancel --quiet ${cluster:+--clusters="$cluster"} "$@" $ids || status=1',
        "    count=$((count + $(echo $ids | wc -w)))",
        "done < <(awk -F, 'NR > 1 && NF >= 3 { c = ($NF == \"\" ? \"-\" : $NF); "
        "ids[c] = ids[c] \" \" $(NF - 1) } END { for (c in ids) print c ids[c] }' "
        "submitted.csv)",
        f'echo "cancel.sh: asked Slurm to cancel the $count steps of plan {sched.plan_id} '
        'in submitted.csv (finished ones are left as they are)"',
        'exit "$status"',
    ]) + "\n"


def _csv_cell(text: str) -> str:
    """A CSV field: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"') else text


def export_slurm(sched: Schedule, out: Path, sites: SiteMap, command: str = DEFAULT_COMMAND,
                 transfer: str = DEFAULT_TRANSFER, margin: float = DEFAULT_MARGIN_S,
                 signal: str | None = DEFAULT_SIGNAL) -> int:
    """Write the scripts of every step, ``submit.sh``, ``cancel.sh``, ``steps.csv`` and
    ``steps.json`` into ``out`` (a staging folder). Returns the number of scripts."""
    signal = check_slurm_options(margin, signal)
    names = {s.name: file_name(s) for s in sched.steps}
    if len(set(names.values())) < len(names):
        raise InputError("plan.json", "two steps map to the same script name; job ids differ "
                         "only in characters Slurm cannot take", field="jobs")
    jobs = out / "jobs"
    jobs.mkdir(parents=True)
    for s in sched.steps:
        (jobs / names[s.name]).write_text(script(s, sched, sites, command, transfer, margin,
                                                 signal), encoding="utf-8")
    for name, text in (("submit.sh", submit_script(sched, names)),
                       ("cancel.sh", cancel_script(sched))):
        (out / name).write_text(text, encoding="utf-8")
        (out / name).chmod(0o755)
    write_steps(out, sched)
    return len(sched.steps)
