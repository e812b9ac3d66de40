"""Sweeps: many independent cells (one plan, one replay, ...), each written to its own folder,
run in this process or as tasks of a Dask cluster.

A :class:`Cell` is a function and its arguments; it returns its ``summary.json`` (a dict) and
other files (name -> text). :func:`run` computes the cells whose folder holds no finished
result and writes each one **atomically** (its files appear together, ``summary.json`` among
them, or not at all), so a sweep that crashed or was cancelled resumes where it stopped. A
finished cell records the options it was made with (``summary["options"]``); a cell whose
recorded options differ from the sweep's is computed again, and the sweep says so.

Where the cells run (:class:`Where`, made by :func:`where` from the command line's options):

- in this process, one after the other (the default);
- ``workers=N``: a local Dask cluster of N worker processes;
- ``scheduler=ADDRESS``: an existing Dask cluster (its workers need milp installed);
- ``slurm=SlurmSpec(...)``: worker processes started as Slurm jobs by ``sbatch``, through
  ``dask-jobqueue``.

On Dask each cell is one task; a worker process runs one cell at a time. A worker that dies
mid-cell (killed, out of memory, its node lost) loses only that cell: the scheduler runs it
again on another worker (up to Dask's ``allowed-failures``, 3), and the sweep says so; a cell
that fails (an error, or too many dead workers) is reported and the other cells go on
(:class:`SweepFailed` at the end). Progress: an event per finished cell (phase ``label``,
``cells_done``, ``cells_total``, ``cell``, ``status``, ``finished``), and in this process the
cell's own events with ``cell``, ``cells_done`` and ``cells_total`` added; messages (retries,
cells computed again, failures) go to the logger ``milp.sweep``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from milp.errors import InputError
from milp.files import staged_files

LOG = logging.getLogger("milp.sweep")

ProgressFn = Callable[[dict], None]
#: What a cell's function returns: its summary (``summary.json``) and other files.
CellOutput = tuple[dict, Mapping[str, str]]

#: Seconds between two looks at the scheduler for cells whose worker died.
POLL_S = 1.0
#: Local worker processes at most.
MAX_WORKERS = 256
#: Help of the options that say where a sweep runs: one text for ``milp bench`` and the
#: benchmark scripts.
HELP = {
    "workers": "Run the cells on a local Dask cluster of this many worker processes "
               "(default: one after the other in this process).",
    "scheduler": "Run the cells on the existing Dask cluster whose scheduler is at this "
                 "address (tcp://HOST:PORT); its workers need milp installed.",
    "slurm": "Run the cells on Dask workers started as Slurm jobs (sbatch, through "
             "dask-jobqueue).",
    "slurm_jobs": "--slurm: worker jobs at most at once.",
    "slurm_partition": "--slurm: partition of the worker jobs (default: the cluster's).",
    "slurm_account": "--slurm: account charged for the worker jobs.",
    "slurm_walltime": "--slurm: time limit of each worker job, [D-]HH:MM:SS; a worker stops "
                      "taking cells 5 minutes before it.",
    "slurm_cores": "--slurm: cores per worker job; one worker process (one cell at a time) "
                   "per core.",
    "slurm_memory": "--slurm: memory per worker job, e.g. 4GB.",
    "slurm_interface": "--slurm: network interface the workers reach the scheduler on "
                       "(e.g. ib0; default: the host's address).",
}
SLURM_DEFAULTS = {"jobs": 1, "partition": None, "account": None, "walltime": "01:00:00",
                  "cores": 1, "memory": "4GB", "interface": None}


# ---- where a sweep runs -------------------------------------------------------------------

@dataclass(frozen=True)
class SlurmSpec:
    """Worker jobs of ``--slurm`` (see :data:`HELP`)."""

    jobs: int = SLURM_DEFAULTS["jobs"]
    partition: str | None = None
    account: str | None = None
    walltime: str = SLURM_DEFAULTS["walltime"]
    cores: int = SLURM_DEFAULTS["cores"]
    memory: str = SLURM_DEFAULTS["memory"]
    interface: str | None = None
    #: Folder of the worker jobs' output files (default: the folder sbatch runs in).
    log_dir: str | None = None


@dataclass(frozen=True)
class Where:
    """Where the cells of a sweep run: in this process (all None), on ``workers`` local
    processes, on the Dask cluster at ``scheduler``, or on Slurm worker jobs (``slurm``)."""

    workers: int | None = None
    scheduler: str | None = None
    slurm: SlurmSpec | None = None

    @property
    def local(self) -> bool:
        """Cells run in this process."""
        return self.workers is None and self.scheduler is None and self.slurm is None

    def describe(self) -> str:
        if self.workers is not None:
            return f"a local Dask cluster of {self.workers} worker process" + (
                "es" if self.workers > 1 else "")
        if self.scheduler is not None:
            return f"the Dask cluster at {self.scheduler}"
        if self.slurm is not None:
            s = self.slurm
            return (f"Slurm: up to {s.jobs} worker job{'s' if s.jobs > 1 else ''} of "
                    f"{s.cores} core{'s' if s.cores > 1 else ''}"
                    + (f" on partition {s.partition}" if s.partition else ""))
        return "this process"


_WALLTIME = re.compile(r"(?:(\d+)-)?(\d{1,3}):([0-5]\d):([0-5]\d)")


def walltime_s(text: str) -> int:
    """Seconds of a Slurm time limit ``[D-]HH:MM:SS``; ValueError otherwise."""
    m = _WALLTIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(text)
    days, h, mi, s = (int(g or 0) for g in m.groups())
    return ((days * 24 + h) * 60 + mi) * 60 + s


def where(workers: int | None = None, scheduler: str | None = None, slurm: bool = False,
          slurm_jobs: int | None = None, slurm_partition: str | None = None,
          slurm_account: str | None = None, slurm_walltime: str | None = None,
          slurm_cores: int | None = None, slurm_memory: str | None = None,
          slurm_interface: str | None = None, slurm_log_dir: str | Path | None = None
          ) -> Where:
    """The command line's options as a :class:`Where`, checked: a mistake is an
    :class:`InputError` naming the option."""
    chosen = [name for name, given in (("--workers", workers is not None),
                                       ("--scheduler", scheduler is not None),
                                       ("--slurm", slurm)) if given]
    if len(chosen) > 1:
        raise InputError(chosen[1], f"give one of --workers, --scheduler and --slurm, not "
                         f"{' and '.join(chosen)}")
    extra = {"--slurm-jobs": slurm_jobs, "--slurm-partition": slurm_partition,
             "--slurm-account": slurm_account, "--slurm-walltime": slurm_walltime,
             "--slurm-cores": slurm_cores, "--slurm-memory": slurm_memory,
             "--slurm-interface": slurm_interface}
    if not slurm:
        for name, value in extra.items():
            if value is not None:
                raise InputError(name, "needs --slurm")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise InputError("--workers", f"{workers} is not a whole number from 1 to {MAX_WORKERS}")
    if scheduler is not None:
        if not re.fullmatch(r"(?:[a-z]+://)?[^\s/]+:\d{1,5}", scheduler.strip()):
            raise InputError("--scheduler", f"{scheduler!r} is not an address like "
                             "tcp://HOST:PORT")
        return Where(scheduler=scheduler.strip())
    if not slurm:
        return Where(workers=workers)
    spec = {k[len("--slurm-"):]: v for k, v in extra.items() if v is not None}
    log_dir = str(slurm_log_dir) if slurm_log_dir is not None else None
    return Where(slurm=SlurmSpec(**_checked_slurm(spec), log_dir=log_dir))


def _checked_slurm(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``--slurm-*`` options given (``jobs``, ``partition``, ...), checked: a mistake is an
    :class:`InputError` naming the option."""
    for key in ("jobs", "cores"):
        if key in spec and not 1 <= spec[key] <= 10_000:
            raise InputError(f"--slurm-{key}", f"{spec[key]} is not a whole number from 1 to "
                             "10000")
    for key in ("partition", "account", "interface"):
        if key in spec and not re.fullmatch(r"[A-Za-z0-9_.,@+-]+", spec[key]):
            raise InputError(f"--slurm-{key}", f"{spec[key]!r}: letters, digits and _.,@+- "
                             "only")
    if "walltime" in spec:
        try:
            walltime_s(spec["walltime"])
        except ValueError:
            raise InputError("--slurm-walltime", f"{spec['walltime']!r} is not a time limit "
                             "[D-]HH:MM:SS") from None
    if "memory" in spec:
        from dask.utils import parse_bytes

        try:
            ok = parse_bytes(spec["memory"]) >= 2**20
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise InputError("--slurm-memory", f"{spec['memory']!r} is not an amount of memory "
                             "like 4GB (at least 1MiB)")
    return spec


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of :func:`where` on a benchmark script's parser (``--workers``,
    ``--scheduler``, ``--slurm``, ``--slurm-*``), with the help of ``milp bench``."""
    ap.add_argument("--workers", type=int, help=HELP["workers"])
    ap.add_argument("--scheduler", help=HELP["scheduler"])
    ap.add_argument("--slurm", action="store_true", help=HELP["slurm"])
    for key, kind in (("jobs", int), ("partition", str), ("account", str), ("walltime", str),
                      ("cores", int), ("memory", str), ("interface", str)):
        ap.add_argument(f"--slurm-{key}", type=kind, help=HELP[f"slurm_{key}"])


def from_arguments(args: argparse.Namespace, slurm_log_dir: Path | None = None) -> Where:
    """:func:`where` of the options :func:`add_arguments` added."""
    return where(args.workers, args.scheduler, args.slurm,
                 *(getattr(args, f"slurm_{k}") for k in ("jobs", "partition", "account",
                                                         "walltime", "cores", "memory",
                                                         "interface")),
                 slurm_log_dir=slurm_log_dir)


def main(body: Callable[[], None]) -> None:
    """Run a benchmark script's ``body``; a user mistake (:class:`InputError`) or failed cells
    (:class:`SweepFailed`) end it with one ``error:`` line and exit 2 or 1, no traceback."""
    try:
        body()
    except InputError as e:
        sys.exit(print(f"error: {e}", file=sys.stderr) or 2)
    except SweepFailed as e:
        sys.exit(print(f"error: {e}", file=sys.stderr) or 1)


def console() -> ProgressFn:
    """Progress of a benchmark script on stderr (a bar on a terminal, a line per finished cell
    elsewhere), and the messages of ``milp`` (retries, cells computed again) as log lines."""
    from milp.progress import ProgressLine

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("milp").setLevel(logging.INFO)
    import distributed  # noqa: F401  (its import sets its loggers' levels: then quieten them)

    logging.getLogger("distributed").setLevel(logging.WARNING)
    return ProgressLine(sys.stderr, terminal=sys.stderr.isatty())


# ---- cells ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One unit of a sweep: ``fn(*args, progress=...)`` returns ``(summary, files)``; the
    sweep writes ``files`` and ``summary.json`` into ``folder``. ``options``: what the
    finished cell's ``summary["options"]`` must be for it to be kept. ``fn`` must be
    importable where the cells run (a module-level function of milp)."""

    name: str
    folder: Path
    fn: Callable[..., CellOutput]
    args: tuple = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    #: :func:`fingerprint` of the files the cell reads (instance folder, plan): a finished cell
    #: made from other inputs is computed again ("" = not checked).
    inputs: str = ""


@dataclass
class Outcome:
    """What :func:`run` did: cells computed, kept from an earlier run, computed again because
    their options differed (name -> why), retried after their worker died (name -> times),
    failed (name -> why); and its wall time."""

    computed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    recomputed: dict[str, str] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    where: str = "this process"


class SweepFailed(Exception):
    """Some cells failed (the others are written): ``outcome.failed`` says which and why."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        first = next(iter(outcome.failed.items()))
        more = len(outcome.failed) - 1
        super().__init__(f"{len(outcome.failed)} cell(s) failed; {first[0]}: {first[1]}"
                         + (f" (and {more} more, listed above)" if more else "")
                         + "; the finished cells are kept: run again to retry the others")


def _normal(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists, ...), for comparing options."""
    return json.loads(json.dumps(value, default=str, allow_nan=True))


#: The files of a folder that :func:`fingerprint` reads.
DATA_SUFFIXES = (".csv", ".toml")


def fingerprint(*paths: Path) -> str:
    """SHA-256 (hex, 16 digits) of the files a cell reads: each path a file or a folder (its
    ``.csv`` and ``.toml`` files, by relative name: an instance's data, not its README), names
    and bytes, in order."""
    h = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES
                       ) if path.is_dir() else [path]
        for f in files:
            h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
            h.update(b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def state(cell: Cell) -> tuple[str, str]:
    """``("done", "")``, ``("missing", "")`` or ``("stale", why)`` for a cell's folder."""
    path = cell.folder / "summary.json"
    if not path.is_file():
        return "missing", ""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return "stale", "its summary.json is unreadable"
    if not isinstance(summary, dict) or "options" not in summary:
        return "stale", "it records no options (made by an older milp)"
    if cell.inputs and summary.get("inputs") != cell.inputs:
        return "stale", ("its inputs changed (instance or plan files)" if "inputs" in summary
                         else "it records no inputs (made by an older milp)")
    old, new = _normal(summary["options"]), _normal(dict(cell.options))
    if old == new:
        return "done", ""
    if not isinstance(old, dict):
        return "stale", "its recorded options are not a table"
    changed = [f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(set(old) | set(new))
               if old.get(k, "-") != new.get(k, "-")]
    return "stale", "its options differ (" + ", ".join(changed) + ")"


def _write(cell: Cell, summary: dict, files: Mapping[str, str], ran: Mapping[str, Any]) -> None:
    """The cell's files and then its summary (with ``sweep``: where it ran), all or none."""
    summary = {**summary, "sweep": dict(ran), **({"inputs": cell.inputs} if cell.inputs else {})}
    names = [n for n in files if n != "summary.json"]
    paths = [cell.folder / n for n in names] + [cell.folder / "summary.json"]
    texts = [files[n] for n in names] + [json.dumps(summary, indent=2, allow_nan=False,
                                                    default=_json_default) + "\n"]
    with staged_files(*paths) as temps:
        for tmp, text in zip(temps, texts):
            tmp.write_text(text, encoding="utf-8")


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


# ---- running -------------------------------------------------------------------------------

def run(cells: list[Cell], where_: Where = Where(), *, label: str = "sweep",
        progress: ProgressFn | None = None) -> Outcome:
    """Compute every cell that is not finished with the sweep's options, where ``where_``
    says; write each atomically. Raises :class:`SweepFailed` (after writing every other
    cell) when some failed."""
    folders = [c.folder.resolve() for c in cells]
    if len(set(folders)) < len(folders):
        twice = next(c for c, f in zip(cells, folders) if folders.count(f) > 1)
        raise ValueError(f"two cells write to {twice.folder}")
    started = time.perf_counter()
    out = Outcome(where=where_.describe())
    todo: list[Cell] = []
    for cell in cells:
        status, why = state(cell)
        if status == "done":
            out.kept.append(cell.name)
            continue
        if status == "stale":
            out.recomputed[cell.name] = why
            LOG.info("%s: computed again: %s", cell.name, why)
        todo.append(cell)
    total, done = len(cells), len(out.kept)
    if out.kept:
        LOG.info("%d of %d cells kept from an earlier run", len(out.kept), total)
    if todo:
        LOG.info("%d cell(s) to compute in %s", len(todo), where_.describe())

    def finished(cell: Cell, status: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress({"phase": label, "elapsed_s": round(time.perf_counter() - started, 3),
                      "cell": cell.name, "cells_done": done, "cells_total": total,
                      "status": status, "finished": True})

    if where_.local:
        _run_here(todo, out, label, started, lambda: (done, total), finished, progress)
    else:
        with _client(where_) as client:
            _run_dask(client, todo, out, finished)
    out.wall_s = time.perf_counter() - started
    if out.failed:
        for name, why in out.failed.items():
            LOG.error("%s: failed: %s", name, why)
        raise SweepFailed(out)
    return out


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _run_here(todo: list[Cell], out: Outcome, label: str, started: float,
              counts: Callable[[], tuple[int, int]], finished: Callable[[Cell, str], None],
              progress: ProgressFn | None) -> None:
    for cell in todo:
        done, total = counts()
        tell = None
        if progress is not None:
            def tell(event: dict, name: str = cell.name, done: int = done) -> None:
                progress({**event, "cell": name, "cells_done": done, "cells_total": total})
            tell({"phase": label, "elapsed_s": round(time.perf_counter() - started, 3)})
        t0 = time.perf_counter()
        try:
            summary, files = cell.fn(*cell.args, progress=tell)
        except Exception as e:            # the cell fails, the others go on
            out.failed[cell.name] = f"{type(e).__name__}: {_one_line(e)}"
            finished(cell, "failed")
            continue
        _write(cell, summary, files, {**_here(), "retries": 0})
        out.computed.append(cell.name)
        finished(cell, f"done in {time.perf_counter() - t0:.1f} s")


def _here() -> dict[str, Any]:
    """Where this process is: the Dask worker (if any), host, pid, Slurm job (if any)."""
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = None
    return {"worker": worker, "host": socket.gethostname(), "pid": os.getpid(),
            "slurm_job": os.environ.get("SLURM_JOB_ID")}


#: One cell at a time per worker process (a worker started with more threads runs its cells
#: one after the other: the solvers capture the process's output descriptors).
_ONE_AT_A_TIME = threading.Lock()


def execute(fn: Callable[..., CellOutput], args: tuple) -> dict[str, Any]:
    """A Dask task: run one cell in this worker process; its summary, files and where it
    ran."""
    with _ONE_AT_A_TIME:
        t0 = time.perf_counter()
        summary, files = fn(*args, progress=None)
        return {"summary": summary, "files": dict(files), "ran": _here(),
                "cell_s": time.perf_counter() - t0}


def _run_dask(client, todo: list[Cell], out: Outcome,
              finished: Callable[[Cell, str], None]) -> None:
    """Hand the cells to the cluster, never more at once than it has workers (so that a cell
    handed out runs at once, and a worker that dies held only the cell it ran); write each as
    it comes back."""
    tag = uuid.uuid4().hex[:8]
    queue = list(enumerate(todo))
    futures: dict[Any, Cell] = {}
    by_key: dict[str, Cell] = {}
    deaths: dict[str, int] = {}
    last_on: dict[str, str] = {}            # key -> the worker last seen running it
    workers, last_poll = 1, -math.inf
    while queue or futures:
        if time.monotonic() - last_poll >= POLL_S:
            last_poll = time.monotonic()
            workers = max(1, _workers(client))
            _note_deaths(client, by_key, deaths, out, last_on)
        while queue and len(futures) < workers:
            k, cell = queue.pop(0)
            f = client.submit(execute, cell.fn, cell.args, key=f"milp-cell-{tag}-{k}",
                              pure=False)
            futures[f] = cell
            by_key[f.key] = cell
        ready = [f for f in futures if f.done()]
        if not ready:
            time.sleep(0.1)
            continue
        _note_deaths(client, by_key, deaths, out, last_on)   # before the finished are released
        for f in ready:
            by_key.pop(f.key, None)
            _collect(f, futures.pop(f), out, finished)


def _collect(future, cell: Cell, out: Outcome, finished: Callable[[Cell, str], None]) -> None:
    """Write the cell of a finished task, or note it failed; release the task."""
    from distributed.client import FutureCancelledError
    from distributed.core import CommClosedError

    try:
        result = future.result()
    except (FutureCancelledError, CommClosedError, OSError) as e:
        out.failed[cell.name] = f"lost: {_one_line(e)}"
        return finished(cell, "failed")
    except Exception as e:                 # the cell's error, or KilledWorker
        out.failed[cell.name] = f"{type(e).__name__}: {_one_line(e)}"
        return finished(cell, "failed")
    finally:
        future.release()
    retries = out.retried.get(cell.name, 0)
    _write(cell, result["summary"], result["files"], {**result["ran"], "retries": retries})
    out.computed.append(cell.name)
    where_ = result["ran"]["worker"] or result["ran"]["host"]
    finished(cell, f"done in {result['cell_s']:.1f} s on {where_}"
             + (f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""))


def _workers(client) -> int:
    """Workers connected to the scheduler now (0 if it cannot say)."""
    try:
        return len(client.nthreads())
    except Exception:                       # the scheduler is gone: the futures will say so
        return 0


def _note_deaths(client, by_key: Mapping[str, Cell], deaths: dict[str, int],
                 out: Outcome, last_on: dict[str, str]) -> None:
    """Ask the scheduler how often each cell's worker died while it ran the cell (Dask's
    ``suspicious`` count) and say so for every new death, naming the worker last seen running
    it: Dask runs the cell again."""
    keys = list(by_key)

    def probe(dask_scheduler=None, keys=keys):     # runs on the scheduler (pickled by value)
        found = {}
        for key in keys:
            ts = dask_scheduler.tasks.get(key)
            if ts is not None:
                found[key] = (ts.suspicious, ts.processing_on.address
                              if ts.processing_on is not None else None)
        return found

    try:
        counts = client.run_on_scheduler(probe)
    except Exception as e:                 # the scheduler is gone: the futures will say so
        LOG.debug("cannot ask the scheduler about dead workers: %s", e)
        return
    for key, (count, now_on) in counts.items():
        before = deaths.get(key, 0)
        if count > before:
            deaths[key] = count
            cell = by_key[key]
            out.retried[cell.name] = count
            LOG.warning("%s: its worker died while running it%s; the cell runs again (retry "
                        "%d; Dask gives up after %s)", cell.name,
                        f" ({last_on[key]})" if last_on.get(key) else "", count,
                        _allowed_failures(client))
        if now_on is not None:
            last_on[key] = now_on


def _allowed_failures(client) -> str:
    try:
        import dask

        return str(dask.config.get("distributed.scheduler.allowed-failures"))
    except Exception:                       # pragma: no cover
        return "a few"


# ---- clusters ------------------------------------------------------------------------------

#: Dask settings for the clusters a sweep starts: a worker holds only the cell it runs (so a
#: dead worker's retries are only its cell), no dashboard.
_DASK_CONFIG = {"distributed.scheduler.worker-saturation": 1.0,
                "distributed.scheduler.allowed-failures": 3}


@contextmanager
def _client(where_: Where) -> Iterator[Any]:
    import dask
    from distributed import Client

    with dask.config.set(_DASK_CONFIG):
        if where_.scheduler is not None:
            try:
                client = Client(where_.scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise InputError("--scheduler", f"cannot reach a Dask scheduler at "
                                 f"{where_.scheduler}: {_one_line(e)}") from None
            try:
                yield client
            finally:
                client.close()
            return
        cluster = _local(where_.workers) if where_.workers is not None else _slurm(where_.slurm)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def _local(workers: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR)


def _slurm(spec: SlurmSpec):
    """A dask-jobqueue SLURMCluster with ``spec``: one worker process per core, each running
    one cell at a time with this Python; workers retire 5 minutes before the walltime (their
    cell runs again elsewhere). The worker job is checked with ``sbatch --test-only`` first, so
    that a job Slurm refuses (an unknown partition, too much memory) is one clear error rather
    than a sweep waiting for workers that never come."""
    import shutil
    import subprocess
    import tempfile

    from dask_jobqueue import SLURMCluster

    if shutil.which("sbatch") is None:
        raise InputError("--slurm", "sbatch is not on PATH: run the sweep where Slurm's "
                         "commands are (a login node)")
    life = walltime_s(spec.walltime)
    extra = (["--lifetime", f"{life - 300}s"] if life > 600 else [])
    kwargs: dict[str, Any] = dict(
        queue=spec.partition, account=spec.account, walltime=spec.walltime,
        cores=spec.cores, processes=spec.cores, memory=spec.memory, python=sys.executable,
        interface=spec.interface, worker_extra_args=extra, job_name="milp-sweep",
        scheduler_options={"dashboard_address": None}, silence_logs="error")
    if spec.log_dir is not None:
        Path(spec.log_dir).mkdir(parents=True, exist_ok=True)
        kwargs["log_directory"] = spec.log_dir
    try:
        cluster = SLURMCluster(**kwargs)
    except (OSError, ValueError) as e:
        raise InputError("--slurm", f"cannot start a Dask scheduler for Slurm workers: "
                         f"{_one_line(e)}") from None
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="milp-sweep-") as f:
            f.write(cluster.job_script())
            f.flush()
            r = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True,
                               text=True, timeout=120)
        if r.returncode != 0:
            why = (r.stderr or r.stdout).strip().splitlines() or [f"exit {r.returncode}"]
            raise InputError("--slurm", f"sbatch refuses the worker job: {why[-1].strip()}")
    except BaseException:
        cluster.close()
        raise
    cluster.scale(jobs=spec.jobs)
    return cluster
