"""The commands a step runs: ``--command`` / ``--transfer`` templates filled per step.

A template names values in braces, e.g. ``rsync -a {src}/ {dst}/``; each is replaced by the
step's value, shell-quoted. Other braces (``${HOME}``) are left to the shell.
"""

from __future__ import annotations

import re
import shlex

from milp.errors import InputError
from milp.export.steps import Step, iso
from milp.export.targets import SiteMap, Target

#: Placeholders a --command / --transfer template may use.
PLACEHOLDERS = ("job", "step", "site", "src", "dst", "checkpoint", "begin", "end", "seconds")


def fill(template: str, values: dict[str, str], option: str) -> str:
    """Replace ``{name}`` placeholders with shell-quoted values; other braces stay as written
    (so ``${HOME}`` in a template is left to the shell)."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in values:
            raise InputError(option, f"{{{m.group(1)}}} has no value in a run step; it is "
                             f"for transfers")
        return shlex.quote(values[m.group(1)])
    if not template.strip():
        raise InputError(option, "must not be empty")
    return re.sub(r"\{(" + "|".join(PLACEHOLDERS) + r")\}", sub, template)


def step_values(step: Step, sites: SiteMap) -> dict[str, str]:
    """The placeholder values of one step (checkpoint locations come from the site map)."""
    here: Target = sites[step.site]
    values = {"job": step.job, "step": str(step.index), "site": step.site,
              "checkpoint": here.checkpoint_path(step.job), "begin": iso(step.begin),
              "end": iso(step.end), "seconds": f"{step.seconds:.3f}"}
    if step.kind == "transfer":
        values |= {"src": here.checkpoint_url(step.job),
                   "dst": sites[step.dst].checkpoint_url(step.job)}
    return values
