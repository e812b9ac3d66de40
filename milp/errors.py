"""The one exception type for user mistakes in input files.

The CLI turns an :class:`InputError` into one line on stderr and exit code 2; nothing else in the
package catches it.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: names the file, the line (1 = header of a CSV) and the field when known."""

    def __init__(self, file: str, message: str, *, line: int | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"
