"""Located manifest errors: what went wrong, and exactly where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ManifestError:
    """One problem in one manifest file, located as precisely as the input allows.

    ``path`` is the field path inside the document (``flavours.cuda.selectors[0].kind``),
    empty for problems of the whole file. ``line`` and ``column`` are 1-based YAML
    positions when known. ``ref`` is the git tag or commit the file was read at.
    """

    file: str
    message: str
    ref: str | None = None
    line: int | None = None
    column: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.ref:
            where += f"@{self.ref}"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"
