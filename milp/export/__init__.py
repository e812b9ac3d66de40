"""Exports of a plan for the schedulers that run the jobs: neutral CSV, Slurm, Kubernetes.

Every exporter starts from the same flat list of steps (:mod:`milp.export.steps`), so the
number of run and transfer steps and the planned compute seconds are the same in every format.
"""

#: Default command of a run step (placeholders: see :data:`milp.export.commands.PLACEHOLDERS`).
DEFAULT_COMMAND = "./train.sh --job {job} --resume {checkpoint} --until {end}"
#: Default command of a transfer step: copy the checkpoint folder from source to destination.
DEFAULT_TRANSFER = "rsync -a --partial {src}/ {dst}/"
#: Kubernetes defaults: node label naming the site, image of every step (it must hold the
#: run command's program and the transfer command's, e.g. rsync and ssh).
DEFAULT_LABEL = "milp.io/site"
DEFAULT_IMAGE = "python:3.11-slim"
