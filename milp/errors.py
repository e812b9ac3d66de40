"""The one exception type for user mistakes in input files.

The CLI turns an :class:`InputError` into one line on stderr and exit code 2; nothing else in the
package catches it.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: names the file, the line (1 = header of a CSV) and the field when known; for
    an input given as a frame (:meth:`milp.instance.Instance.from_frames`), the frame and the
    row (its index label)."""

    def __init__(self, file: str, message: str, *, line: int | None = None,
                 field: str | None = None, row: object = None) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.row = row
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.row is not None:
            where += f" row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return _one_line(f"{where}: {_short(self.message)}")


#: A message quoting a value longer than this is cut in the middle (a 100 kB field stays
#: readable on one screen).
MAX_MESSAGE = 400


def _short(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE - 100]}…[{len(text) - MAX_MESSAGE + 60} characters]…{text[-40:]}"


def _one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``, ``\\x00``),
    so that a file's bytes quoted in a message can never split it over several lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
