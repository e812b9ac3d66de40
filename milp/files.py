"""Reading input files within the size policy, and writing output files so that a failure
never leaves a half-written file behind."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

from milp.errors import InputError
from milp.limits import check_file_size

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
    value = int(text) if len(text) <= 25 else MAX_JSON_INT + 1
    if abs(value) > MAX_JSON_INT:
        digits = len(text.lstrip("-"))
        raise ValueError(f"holds a whole number of {digits} digits; numbers here must lie "
                         f"within ±{MAX_JSON_INT:.3g}")
    return value


def _json_float(text: str) -> float:
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


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def staged_dir(out: str | Path, replaces: tuple[str, ...] = ()) -> Iterator[Path]:
    """Build a command's output folder in a temporary sibling, then move it into ``out``.

    Yields the staging folder. When the block ends normally, each top-level entry of the
    staging folder replaces the same-named entry of ``out`` (a sub-folder is replaced whole);
    other entries of ``out`` stay, except those named in ``replaces`` (outputs of an earlier
    run that this one did not write, and that would now be stale). When the block raises, the staging folder is deleted and
    ``out`` is untouched: a failure never leaves part of an output on disk.
    """
    out = Path(out)
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    ok = False
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        out.mkdir(exist_ok=True)
        for name in replaces:
            old = out / name
            if not (stage / name).exists() and (old.exists() or old.is_symlink()):
                shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif entry.is_dir() and target.exists():
                target.unlink()
            if entry.is_dir():
                os.chmod(entry, 0o777 & ~umask)
            os.replace(entry, target)
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made if not ok else ():   # the folders made for it, if still empty
            with suppress(OSError):
                folder.rmdir()
