"""Reading TOML files into validated models, with one-line errors that name the file and the key.

Config, the model manifest and content bundles all come from TOML written by
people; a typo must be refused with the key it concerns and the line it is on,
not a traceback.  tomllib keeps no positions, so the lines come from a small
scan of the text (table headers and ``key =`` lines); a key that is missing
points at the line of its table.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - boards with Python 3.10
    import tomli as tomllib

from pydantic import BaseModel, ValidationError

from appliance.errors import ApplianceError

Model = TypeVar("Model", bound=BaseModel)

#: Pydantic's wording for the two mistakes people make most, in plainer words.
FRIENDLY = {"extra_forbidden": "unknown key", "missing": "required key is missing"}

Location = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGNMENT = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
_MULTILINE = re.compile(r'"""|\'\'\'')


class TomlTable(dict):
    """A parsed TOML document that remembers the line of each key, for error messages."""

    lines: dict[Location, int]


def _dotted(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", text)]


def key_lines(text: str) -> dict[Location, int]:
    """``{("source", "uri"): 3, ("scenes", 0): 7, ("scenes", 0, "snow"): 9, ...}`` (1-based lines)."""
    lines: dict[Location, int] = {}
    table: list[str | int] = []
    counts: dict[Location, int] = {}
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = len(_MULTILINE.findall(line))
        if in_string:
            in_string = quotes % 2 == 0
            continue
        header = _HEADER.match(line)
        if header and not _ASSIGNMENT.match(line):
            resolved: list[str | int] = []
            parts = _dotted(header.group(2))
            for part in parts[:-1]:
                resolved.append(part)
                if tuple(resolved) in counts:
                    resolved.append(counts[tuple(resolved)])
            resolved.append(parts[-1])
            if header.group(1) == "[[":
                lines.setdefault(tuple(resolved), number)
                counts[tuple(resolved)] = counts.get(tuple(resolved), -1) + 1
                resolved.append(counts[tuple(resolved)])
            table = resolved
            lines.setdefault(tuple(table), number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            lines.setdefault((*table, *_dotted(assignment.group(1))), number)
        in_string = quotes % 2 == 1
    return lines


def line_of(lines: dict[Location, int], location: Sequence[str | int]) -> int | None:
    """The line of ``location``, or of the nearest enclosing key or table that has one."""
    for end in range(len(location), 0, -1):
        if tuple(location[:end]) in lines:
            return lines[tuple(location[:end])]
    return None


def read_toml(path: Path) -> dict:
    """The document in ``path`` as a ``TomlTable`` (a dict that also knows its keys' lines)."""
    try:
        text = path.read_text(encoding="utf-8")
        table = TomlTable(tomllib.loads(text))
        table.lines = key_lines(text)
        return table
    except FileNotFoundError as exc:
        raise ApplianceError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ApplianceError(f"{path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ApplianceError(f"{path} is not valid TOML: {exc}") from exc


def key_path(location: Sequence[str | int]) -> str:
    """``("scenes", 0, "snow")`` → ``scenes[0].snow``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class InvalidFile(ApplianceError):
    """A file that parsed but does not validate; ``problems`` holds one line per error."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


def validated(model: type[Model], data: dict, path: Path) -> Model:
    """``data`` validated as ``model``; each error names its key, and its line when ``data`` came from read_toml."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = getattr(data, "lines", {})
        problems = []
        for error in exc.errors():
            message = FRIENDLY.get(error["type"], error["msg"].removeprefix("Value error, "))
            line = line_of(lines, error["loc"])
            problems.append(f"{key_path(error['loc'])}: {message}" + (f" (line {line})" if line else ""))
        raise InvalidFile(path, problems) from exc


def reject_duplicates(values: Sequence[str], what: str) -> None:
    """For model validators: a ValueError naming the first value listed twice (e.g. two scenes with one id)."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)
