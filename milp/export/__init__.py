"""Exports of a plan for the schedulers that run the jobs: neutral CSV, Slurm, Kubernetes.

Every exporter starts from the same flat list of steps (:mod:`milp.export.steps`), so the
number of run and transfer steps and the planned compute seconds are the same in every format.
"""

#: Default command of a run step (placeholders: see :data:`milp.export.commands.PLACEHOLDERS`).
DEFAULT_COMMAND = "./train.sh --job {job} --resume {checkpoint} --until {end}"
#: Default command of a transfer step, which runs at the source site: copy the local
#: checkpoint folder to the destination's (``host:path``).
DEFAULT_TRANSFER = "rsync -a --partial {checkpoint}/ {dst}/"
#: Kubernetes defaults: node label naming the site, image of every step (it must hold the
#: run command's program and the transfer command's, e.g. rsync and ssh).
DEFAULT_LABEL = "milp.io/site"
DEFAULT_IMAGE = "python:3.11-slim"
