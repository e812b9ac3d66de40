"""Progress of a plan being made, for people: one updating line on a terminal, log lines
otherwise.

Planners report **events**, dicts with at least ``phase`` and ``elapsed_s`` (seconds since the
command or :func:`milp.run.plan` call started):

- the MILP's engines (:class:`milp.engine.solve.SolveOptions` ``progress``): phases ``seeds``,
  ``compact``, ``lp``, ``mip``, ``search``, ``dive``, ``done``, with ``incumbent`` (objective of
  the best plan so far, kWh), ``bound`` (kWh), ``gap`` (relative), and for column generation
  ``iteration`` and ``columns``;
- HiGHS's own log while it solves the compact model (:func:`highs_log`): phase ``compact``,
  ``source`` ``highs``, incumbent, bound and gap read from its branch-and-bound table;
- a greedy policy: phase its name, ``done`` and ``total`` (its own units of work: slots or
  jobs), then ``done``;
- a sweep (``milp bench``, :mod:`milp.sweep`): phase ``bench`` with ``cell`` (instance /
  policy), ``cells_done``, ``cells_total``, ``status`` and ``finished`` after each cell, and
  (cells run in this process) the events of the cell's planner with ``cell``,
  ``cells_done`` and ``cells_total`` added.

Events can come hundreds per second: :class:`Throttle` lets through the first, the first of
each phase, ``done``, every finished cell of a sweep, and otherwise one per interval. :class:`ProgressLine` shows what passes
on one line of a terminal, rewritten in place, or as log lines of the logger
``milp.progress`` (INFO) when the output is not a terminal. Nothing here changes the planners.
"""

from __future__ import annotations

import logging
import math
import re
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TextIO

#: Where progress goes as log lines.
LOG = logging.getLogger("milp.progress")
#: HiGHS's log lines, at DEBUG (``--verbose``).
HIGHS_LOG = logging.getLogger("milp.highs")
#: The logger Pyomo's appsi interface hands HiGHS's console output to, line by line, while it
#: solves (``pyomo.contrib.appsi.solvers.highs``).
PYOMO_HIGHS = "pyomo.contrib.appsi.solvers.highs"

Event = dict[str, Any]
ProgressFn = Callable[[Event], None]

#: Seconds between two updates of a terminal line, and between two log lines (default and
#: ``--verbose``).
TERMINAL_EVERY_S = 0.2
LOG_EVERY_S = 10.0
VERBOSE_EVERY_S = 1.0


#: Characters of a sweep's progress bar on a terminal.
BAR_WIDTH = 20


def describe(event: Event, bar: bool = False) -> str:
    """One event as a short line: ``12.3 s  mip  plan 15.95 kWh  bound 15.7 kWh  gap 1.6 %
    round 34  3210 schedules`` (objective and bound in kWh, the gap in %). A sweep's events
    start with the cells done (``[3/52 cells]``, or with ``bar`` a bar: ``[#####-----] 3/52``)
    and the cell; a finished cell ends with its status."""
    parts = [f"{event.get('elapsed_s', 0.0):6.1f} s", str(event.get("phase", "?"))]
    if event.get("cell"):
        parts.insert(0, f"[{event['cell']}]")
    if event.get("cells_total"):
        done, total = event.get("cells_done", 0), event["cells_total"]
        if bar:
            full = round(BAR_WIDTH * done / total)
            parts.insert(0, f"[{'#' * full}{'-' * (BAR_WIDTH - full)}] {done}/{total}")
        else:
            parts.insert(0, f"[{done}/{total} cells]")
    if event.get("status"):
        parts.append(str(event["status"]))
    if "total" in event and event.get("total"):
        done, total = event.get("done", 0), event["total"]
        parts.append(f"{done}/{total} ({100.0 * done / total:.0f} %)")
    for key, label in (("incumbent", "plan"), ("bound", "bound")):
        value = _finite(event.get(key))
        if value is not None:
            parts.append(f"{label} {value:.4g} kWh")
    gap = _finite(event.get("gap"))
    if gap is not None:
        parts.append(f"gap {100.0 * gap:.3g} %")
    if event.get("iteration") is not None:
        parts.append(f"round {event['iteration']}")
    if event.get("columns") is not None:
        parts.append(f"{event['columns']} schedules")
    return "  ".join(parts)


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Throttle:
    """Which events to show: the first, the first of each phase, every ``done`` and every
    finished cell (``finished``), and otherwise at most one per ``every_s`` seconds of
    ``clock`` (an event held back is not shown later)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.phases: set[str] = set()
        self.last: float | None = None

    def __call__(self, event: Event) -> bool:
        now = self.clock()
        phase = str(event.get("phase"))
        new = phase not in self.phases or phase == "done" or bool(event.get("finished"))
        if not new and self.last is not None and now - self.last < self.every_s:
            return False
        self.phases.add(phase)
        self.last = now
        return True


class LogProgress:
    """A progress consumer writing throttled log lines to :data:`LOG` (INFO): what
    :func:`milp.run.plan` uses when it is given no ``progress``."""

    def __init__(self, every_s: float = LOG_EVERY_S, label: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.throttle = Throttle(every_s, clock)
        self.label = label

    def __call__(self, event: Event) -> None:
        if self.throttle(event):
            LOG.info("%s%s", self.label, describe(event))


class ProgressLine:
    """The command line's progress consumer.

    On a terminal (``terminal``): one line on ``stream``, rewritten in place at most every
    :data:`TERMINAL_EVERY_S`; :meth:`clear` erases it (before another message is printed),
    :meth:`close` ends it. Elsewhere: throttled log lines (:class:`LogProgress`), one per
    :data:`LOG_EVERY_S`, or :data:`VERBOSE_EVERY_S` with ``verbose``.
    """

    def __init__(self, stream: TextIO, *, terminal: bool, verbose: bool = False,
                 label: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.terminal = terminal
        self.label = label
        self.shown = False
        self.throttle = Throttle(TERMINAL_EVERY_S if terminal else
                                 VERBOSE_EVERY_S if verbose else LOG_EVERY_S, clock)

    def __call__(self, event: Event) -> None:
        if not self.throttle(event):
            return
        text = f"{self.label}{describe(event, bar=self.terminal)}"
        if not self.terminal:
            LOG.info("%s", text)
            return
        width = _columns() - 1
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the progress line, so that the next message starts on a clean line."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        self.clear()


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


# ---- HiGHS's own log ------------------------------------------------------------------------

#: A row of HiGHS's branch-and-bound table: ``[Src] Proc. InQueue Leaves Expl.% BestBound
#: BestSol Gap ... Time``, e.g. `` C  0  0  0  0.00%  0.3259  5.2675  93.81%  5258 ... 5.6s``.
_BNB_ROW = re.compile(
    r"^\s*(?:[A-Za-z]\s+)?\d+\s+\d+\s+\d+\s+[\d.]+%\s+(?P<bound>\S+)\s+(?P<sol>\S+)\s+"
    r"(?P<gap>\S+)\s.*\s(?P<time>[\d.]+)s\s*$")


def highs_event(line: str) -> Event | None:
    """The incumbent, bound and gap of one row of HiGHS's branch-and-bound log (``None`` for
    any other line). Values HiGHS shows as ``inf`` or ``Large`` are ``None``."""
    m = _BNB_ROW.match(line)
    if m is None:
        return None
    gap_text = m["gap"].rstrip("%")
    gap = _finite(gap_text)
    return {"incumbent": _finite(m["sol"]), "bound": _finite(m["bound"]),
            "gap": gap / 100.0 if gap is not None else None}


class _HighsLines(logging.Handler):
    """Turns the lines Pyomo logs for HiGHS into progress events (and DEBUG lines of
    :data:`HIGHS_LOG`)."""

    def __init__(self, progress: ProgressFn | None, started: float, echo: bool) -> None:
        super().__init__(logging.DEBUG)
        self.progress = progress
        self.started = started
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage()
        except Exception:                     # pragma: no cover - a malformed record
            return
        if self.echo:
            HIGHS_LOG.debug("%s", line)
        event = highs_event(line)
        if event is not None and self.progress is not None:
            self.progress({"phase": "compact", "source": "highs",
                           "elapsed_s": round(time.perf_counter() - self.started, 3), **event})


@contextmanager
def highs_log(progress: ProgressFn | None, started: float, echo: bool = False
              ) -> Iterator[None]:
    """While the block runs, HiGHS's log (which Pyomo's appsi interface passes to the logger
    :data:`PYOMO_HIGHS` line by line as HiGHS writes it) becomes progress events — phase
    ``compact``, ``source`` ``highs``, incumbent, bound, gap, ``elapsed_s`` from ``started``
    (a :func:`time.perf_counter` value) — and, with ``echo``, DEBUG lines of
    :data:`HIGHS_LOG`. The logger's level, handlers and propagation are restored afterwards.

    While HiGHS solves, Pyomo reads file descriptors 1 and 2 into that logger: a handler of
    :data:`HIGHS_LOG` that writes there would feed its own lines back (the command line
    writes to a duplicate of descriptor 2, :class:`ProgressLine`'s stream), hence ``echo``
    only on request."""
    logger = logging.getLogger(PYOMO_HIGHS)
    handler = _HighsLines(progress, started, echo)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
