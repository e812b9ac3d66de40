"""The commands a step runs: ``--command`` / ``--transfer`` templates filled per step.

A template names values in braces, e.g. ``rsync -a {src}/ {dst}/``; each is replaced by the
step's value, quoted for where it stands, so that no value (a job id from a plan made elsewhere,
a host from a site map) can change what the shell runs:

- outside quotes, shell-quoted (``'j 1'``);
- inside double quotes (``--job "{job}"``), with ``$``, `````, ``"`` and ``\\`` escaped;
- inside single quotes (``--job '{job}'``), with each ``'`` written ``'\\''``.

Other braces are left to the shell (``${HOME}``, ``$HOME``, ``$(hostname)``). A placeholder
that comes after a construct whose quoting a template reader cannot follow reliably — ``$(…)``
holding quotes or parentheses, backquotes,
``${…}`` other than ``${NAME}``, ``$'…'``, a subshell ``(…)``, a here-document — is refused with
a message: there, the step's values are in the environment (``"$MILP_JOB"``, ``$MILP_DST``, …,
:func:`step_values`), and the shell reads them without parsing them as code. So is a
placeholder right after ``$`` or a backslash, which would change its quoting.
"""

from __future__ import annotations

import re
import shlex

from milp.errors import InputError
from milp.export.steps import Step, iso
from milp.export.targets import SiteMap, Target

#: Placeholders a --command / --transfer template may use.
PLACEHOLDERS = ("job", "step", "site", "src", "dst", "checkpoint", "begin", "end", "seconds")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
#: ``${NAME}`` and ``$NAME``: parameter expansions a template may hold anywhere.
_PARAMETER = re.compile(r"\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*|[0-9#?$!@*-])")
#: ``$(…)`` without quotes, parentheses, backquotes, backslashes, comments or line breaks
#: inside (``$(hostname)``, ``$(date +%s)``): its end is certain, so quoting goes on after it.
_SIMPLE_SUBSTITUTION = re.compile(r"\$\((?!\()[^'\"`()\\#\n]*\)")
#: Characters after which a word starts (where ``#`` begins a comment).
_WORD_BREAK = " \t\n;&|<>"


def _quote(value: str, context: str) -> str:
    """``value`` as a literal in ``context`` (outside quotes, in double or single quotes)."""
    if context == "double":
        return re.sub(r'([$`"\\])', r"\\\1", value)
    if context == "single":
        return value.replace("'", "'\\''")
    return shlex.quote(value)


def _value(values: dict[str, str], name: str, option: str) -> str:
    """The value of placeholder ``name`` in this step (refused if it has none)."""
    if name not in values:
        raise InputError(option, f"{{{name}}} has no value in a run step; it is for transfers")
    return values[name]


def _unreadable(option: str, name: str, what: str) -> InputError:
    """The refusal of a placeholder whose quoting cannot be followed (``what``: where)."""
    return InputError(option, f"{{{name}}} comes {what}, where milp cannot tell how the shell "
                      f"reads it, so it cannot quote it safely; write \"$MILP_{name.upper()}\" "
                      f"there (every step has its values in the environment), or put "
                      f"{{{name}}} before it")


def fill(template: str, values: dict[str, str], option: str) -> str:
    """Replace ``{name}`` placeholders with the step's values, quoted for where they stand
    (module docstring); other braces stay as written (so ``${HOME}`` in a template is left to
    the shell). Raises :class:`InputError` naming ``option`` for a placeholder it cannot
    quote safely, or one without a value in this step."""
    if not template.strip():
        raise InputError(option, "must not be empty")
    out: list[str] = []
    stack = ["plain"]          # plain | double | single
    unreadable = ""            # the construct after which quoting can no longer be followed
    word_start = True
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        m = _PLACEHOLDER.match(template, i)
        if m:
            name = m.group(1)
            value = _value(values, name, option)
            if unreadable:
                raise _unreadable(option, name, f"in or after {unreadable}")
            out.append(_quote(value, stack[-1]))
            i, word_start = m.end(), False
            continue
        top = stack[-1]
        if top == "single":
            if c == "'":
                stack.pop()
            out.append(c)
            i += 1
            continue
        if c == "\\":
            if _PLACEHOLDER.match(template, i + 1) and not unreadable:
                name = _PLACEHOLDER.match(template, i + 1).group(1)
                raise _unreadable(option, name, "right after a backslash")
            out.append(template[i:i + 2])
            i, word_start = i + 2, False
            continue
        if c == "$":
            after = _PLACEHOLDER.match(template, i + 1)
            if after and not unreadable:
                raise InputError(option, f"${{{after.group(1)}}} is a placeholder after '$'; "
                                 f"write {{{after.group(1)}}} for the step's value, or "
                                 f"$MILP_{after.group(1).upper()}")
            p = _PARAMETER.match(template, i)
            if p:
                out.append(p.group(0))
                i, word_start = p.end(), False
                continue
            simple = _SIMPLE_SUBSTITUTION.match(template, i)
            if simple and not _PLACEHOLDER.search(simple.group(0)):                       # $(hostname), $(date +%s): one opaque word
                out.append(simple.group(0))
                i, word_start = simple.end(), False
                continue
            nxt = template[i + 1:i + 2]
            if nxt == "(":
                unreadable = unreadable or "a command substitution $(…)"
            elif nxt == "{":
                unreadable = unreadable or "a parameter expansion ${…}"
            elif nxt == "'" and top == "plain":
                unreadable = unreadable or "a $'…' string"
            out.append(c)
            i, word_start = i + 1, False
            continue
        if c == "`":
            unreadable = unreadable or "a backquote"
        elif top == "double":
            if c == '"':
                stack.pop()
        elif c == '"':
            stack.append("double")
        elif c == "'":
            stack.append("single")
        elif c == "#" and word_start:
            end = template.find("\n", i)
            end = n if end < 0 else end
            out.append(_PLACEHOLDER.sub(lambda x: shlex.quote(_value(values, x.group(1),
                                                                     option)),
                                        template[i:end]))   # inert: a comment runs nothing
            i = end
            continue
        elif c in "()":
            unreadable = unreadable or "a subshell or a case pattern"
        elif template.startswith("<<<", i):   # a here-string: a word follows
            out.append("<<<")
            i, word_start = i + 3, True
            continue
        elif template.startswith("<<", i):
            unreadable = unreadable or "a here-document"
            out.append("<<")
            i, word_start = i + 2, True
            continue
        out.append(c)
        word_start = top == "plain" and c in _WORD_BREAK
        i += 1
    return "".join(out)


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
