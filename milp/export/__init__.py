"""Exports of a plan for the tools that run the jobs: neutral CSV/JSON, Slurm, Kubernetes Jobs,
Argo Workflows.

Every exporter starts from the same flat list of steps (:mod:`milp.export.steps`), so the
number of run and transfer steps and the planned compute seconds are the same in every format.
"""

#: Default command of a run step (placeholders: see :data:`milp.export.commands.PLACEHOLDERS`).
DEFAULT_COMMAND = "./train.sh --job {job} --resume {checkpoint} --until {end}"
#: Default command of a transfer step, which runs at the source site: copy the local
#: checkpoint folder to the destination's (``host:path``). ``-s`` (``--protect-args``, rsync
#: 3.0.0 and later) sends the remote path through rsync's protocol, never through the remote
#: host's shell (which rsync before 3.2.4 would otherwise hand it to); ``--`` ends the options,
#: so no path is read as one.
DEFAULT_TRANSFER = "rsync -a -s --partial -- {checkpoint}/ {dst}/"
#: Kubernetes defaults: node label naming the site, image of every step (it must hold the
#: run command's program and the transfer command's, e.g. rsync and ssh).
DEFAULT_LABEL = "milp.io/site"
DEFAULT_IMAGE = "python:3.11-slim"
#: Image of Argo's wait steps (sleep until a step's begin time): POSIX sh, date and sleep.
DEFAULT_WAIT_IMAGE = "busybox:1.36"
#: Seconds a step may run past its planned length before the scheduler ends it (Slurm --time,
#: Kubernetes activeDeadlineSeconds): time to write a checkpoint, start late, or finish a copy.
DEFAULT_MARGIN_S = 300.0
#: Signal a Slurm run step gets ``margin`` seconds before its time limit (``none``: no signal).
DEFAULT_SIGNAL = "USR1"
#: Seconds Kubernetes keeps a finished Job or Workflow (ttlSecondsAfterFinished, ttlStrategy).
DEFAULT_TTL_S = 86400
