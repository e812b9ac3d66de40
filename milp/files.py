"""Writing output files so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator


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
