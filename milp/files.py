"""Reading input files within the size policy, and writing output files so that a failure
never leaves a half-written file behind."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import signal
import socket
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator

from milp.errors import InputError
from milp.limits import check_file_size

try:
    import fcntl
except ImportError:                 # pragma: no cover - not a POSIX system: no lock
    fcntl = None

# ---- reading ---------------------------------------------------------------------------------


def read_input(path: str | Path, source: str | None = None) -> bytes:
    """The bytes of an input file, refused (as ``source``, default the path) when it is missing,
    not a regular file, or larger than the size policy allows (checked before reading)."""
    path = Path(path)
    source = source or str(path)
    try:
        if not path.is_file():
            raise InputError(source, "file is missing" if not path.exists() else
                             "is not a regular file")
        check_file_size(path.stat().st_size, source)
        return path.read_bytes()
    except OSError as e:
        raise InputError(source, f"cannot be read ({e.strerror or e})") from None


#: Largest whole number a JSON input may hold (int64): beyond it, numbers lose their meaning
#: as floats, or cannot become one at all.
MAX_JSON_INT = 2**63 - 1


def _json_int(text: str) -> int:
    """A JSON integer, refused beyond :data:`MAX_JSON_INT` (without parsing 5000 digits)."""
    value = int(text) if len(text) <= 25 else MAX_JSON_INT + 1
    if abs(value) > MAX_JSON_INT:
        digits = len(text.lstrip("-"))
        raise ValueError(f"holds a whole number of {digits} digits; numbers here must lie "
                         f"within ±{MAX_JSON_INT:.3g}")
    return value


def _json_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it overflows (1e999)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"holds {text}, which is too large to be a number")
    return value


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON input file (a ``what``: "plan", "state"): refused with one line (file, line
    when known) when it is missing, too large, not UTF-8, not JSON, nested too deeply, or holds
    NaN, Infinity or a number too large to compute with."""
    source = str(path)
    raw = read_input(path)

    def constant(name: str):
        raise ValueError(f"{name} is not a number a {what} may hold")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=constant, parse_int=_json_int,
                          parse_float=_json_float)
    except RecursionError:
        raise InputError(source, f"JSON nested too deeply to be a {what}") from None
    except json.JSONDecodeError as e:
        raise InputError(source, f"invalid JSON: {e.msg}", line=e.lineno) from None
    except UnicodeDecodeError:
        raise InputError(source, "not UTF-8 text") from None
    except ValueError as e:
        raise InputError(source, str(e)) from None


# ---- writing ---------------------------------------------------------------------------------
#
# Temporary files and staging folders are hidden siblings of what they become, named
# ``.<name>.<host>-<pid>.<random>.tmp``: a process ended by SIGKILL (or a crash) cannot clean up
# behind itself, so the next output written beside them removes those of this host whose
# process is gone.

#: The hidden file in an output folder with sub-folders (an export's ``jobs/``) listing the
#: files milp wrote there last (one relative path per line): a later run into the same folder
#: replaces those, and only those.
MANIFEST = ".milp-files"
#: Signals whose arrival must not interrupt moving an output into place: they are held until
#: the move is done, then delivered.
_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}-{os.getpid()}."


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True          # exists, owned by someone else
    return True


def sweep_leftovers(path: str | Path) -> list[Path]:
    """Remove the temporary files and staging folders of ``path`` that a process of this host
    left when it was killed (its process is gone); returns what was removed. Those of other
    hosts (shared file systems) and of live processes are never touched."""
    path = Path(path)
    removed = []
    host = socket.gethostname()
    with suppress(OSError):
        for entry in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            tag = entry.name[len(path.name) + 2:-len(".tmp")].rsplit(".", 1)[0]
            owner, _, pid = tag.rpartition("-")
            if owner != host or not pid.isdigit() or _alive(int(pid)):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while the block runs (they are delivered after it), so
    that an output is never left half-moved into place. A no-op outside the main thread."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (ValueError, OSError):           # not the main thread, or no signal masks here
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stop_on_termination() -> None:
    """Make SIGTERM and SIGHUP (what ``timeout``, Slurm, systemd, Kubernetes and a closed
    terminal send) end the process as Ctrl-C does: by an exception, so that every staging
    folder and temporary file is removed on the way out. Exit status 128 + the signal's
    number, as a shell reports it. A second signal during that cleanup is ignored."""
    def stop(signum: int, frame) -> None:
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) is signal.SIG_DFL:
            signal.signal(s, stop)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    with staged_files(path) as (tmp,):
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@contextmanager
def staged_files(*paths: str | Path) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary file beside each of ``paths``; when the block ends normally, move
    each into place (signals held, so they appear together), else delete them: the files
    appear all complete, or not at all. A path that is a folder is refused, untouched."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            sweep_leftovers(target)
            fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp",
                                       dir=target.parent)
            os.close(fd)
            temps.append(Path(tmp))
        yield tuple(temps)
        umask = os.umask(0)
        os.umask(umask)
        for tmp in temps:
            os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would, not mkstemp's 0600
        with signals_held():
            for target in targets:
                if target.is_dir() and not target.is_symlink():
                    raise InputError(str(target), "is a folder where milp writes a file: move "
                                     "it away or choose another --out")
            for tmp, target in zip(temps, targets):
                os.replace(tmp, target)
    finally:
        for tmp in temps:
            with suppress(OSError):
                tmp.unlink()


def check_out_entries(out: str | Path, files: tuple[str, ...] = (),
                      folders: tuple[str, ...] = ()) -> None:
    """Refuse an ``out`` folder where a file milp writes is a folder, or a folder it writes is
    a file or a link: milp never deletes what it did not write (call before the work, so that
    nothing is computed in vain; :func:`staged_dir` checks again before it moves anything)."""
    out = Path(out)
    for name in files:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            raise InputError(str(target), "is a folder where milp writes a file: move it away or "
                             "choose another --out")
    for name in folders:
        target = out / name
        if (target.exists() or target.is_symlink()) and (target.is_symlink()
                                                           or not target.is_dir()):
            raise InputError(str(target), "is a file or a link where milp writes a folder: move "
                             "it away or choose another --out")


@contextmanager
def staged_dir(out: str | Path, replaces: tuple[str, ...] = (),
               kept: Callable[[list[Path]], None] | None = None) -> Iterator[Path]:
    """Build a command's output folder in a temporary sibling, then move it into ``out``.

    Yields the staging folder. When the block ends normally, every file of the staging folder
    takes the place of the same-named file of ``out``. A sub-folder (``jobs/``) is merged into
    the same-named folder of ``out``: the files an earlier run wrote there (listed in ``out``'s
    :data:`MANIFEST`) are removed first, so no stale output stays, and files milp did not write
    are kept (``kept`` is called with them). Top-level files named in ``replaces`` (outputs of
    an earlier run that this one did not write, and that would now be stale) are removed, never
    a folder of that name; other entries of ``out`` stay. A file where milp writes a folder, or a folder where it writes a
    file, is refused before anything moves. Two runs into one ``out`` move their outputs in one
    after the other (a lock on ``out``); signals are held while files move.

    When the block raises (or SIGTERM/SIGINT stop the process, see
    :func:`stop_on_termination`), the staging folder is deleted and ``out`` is untouched: a
    failure never leaves part of an output on disk.
    """
    out = Path(out)
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(out)
    stage = Path(tempfile.mkdtemp(prefix=_temp_prefix(out), suffix=".tmp", dir=out.parent))
    ok = False
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        for folder in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
            os.chmod(folder, 0o777 & ~umask)
        with signals_held():
            out.mkdir(exist_ok=True)
            fd = os.open(out, os.O_RDONLY)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)   # another run's move into out waits
                _move_in(stage, out, replaces, kept)
            finally:
                os.close(fd)
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made if not ok else ():   # the folders made for it, if still empty
            with suppress(OSError):
                folder.rmdir()


def _files(root: Path) -> list[str]:
    """Every file under ``root`` as a relative POSIX path, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if not p.is_dir() or p.is_symlink())


def _move_in(stage: Path, out: Path, replaces: tuple[str, ...],
             kept: Callable[[list[Path]], None] | None) -> None:
    """Move the staged output into ``out`` (see :func:`staged_dir`)."""
    top = sorted(stage.iterdir())
    for entry in [*top, *(p for p in stage.rglob("*") if p.parent != stage)]:
        rel = entry.relative_to(stage)
        parent = rel.parent.as_posix()
        check_out_entries(out / parent, () if entry.is_dir() else (entry.name,),
                          (entry.name,) if entry.is_dir() else ())
    written = _files(stage)
    manifest = out / MANIFEST
    try:
        before = set(manifest.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        before = set()
    for rel in sorted(before):                # our earlier outputs in the folders rewritten
        old = _inside(out, rel)
        if old is not None and (stage / rel.split("/")[0]).is_dir() and (
                old.is_file() or old.is_symlink()):
            old.unlink()
    for name in replaces:                    # stale outputs of an earlier run
        old = out / name
        if not (stage / name).exists() and (old.is_file() or old.is_symlink()):
            old.unlink()
    foreign: list[Path] = []
    for entry in top:
        _merge(entry, out / entry.name, foreign)
    if any("/" in rel for rel in written):    # only sub-folders need to know what was ours
        write_atomic(manifest, "".join(f"{rel}\n" for rel in written))
    if foreign and kept is not None:
        kept(foreign)


def _inside(out: Path, rel: str) -> Path | None:
    """``out / rel`` for a manifest line naming a file in a sub-folder of ``out`` (no absolute
    path, no '..', no link on the way), else ``None``: a manifest cannot make milp delete
    anything outside the folders it writes."""
    parts = rel.split("/")
    if len(parts) < 2 or any(part in ("", ".", "..") for part in parts):
        return None
    folder = out
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            return None
    return folder / parts[-1]


def _merge(entry: Path, target: Path, foreign: list[Path]) -> None:
    """Move ``entry`` to ``target``; a folder onto an existing folder file by file (the
    existing folder's other files, which milp did not write, are kept and listed in
    ``foreign``)."""
    if not entry.is_dir() or not target.is_dir():
        os.replace(entry, target)
        return
    names = {e.name for e in entry.iterdir()}
    foreign.extend(sorted(p for p in target.iterdir() if p.name not in names))
    for sub in sorted(entry.iterdir()):
        _merge(sub, target / sub.name, foreign)
