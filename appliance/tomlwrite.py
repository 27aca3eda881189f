"""Writing a plain document (tables, strings, numbers, booleans, arrays) as TOML.

The standard library reads TOML but does not write it, and the device only ever
writes its own configuration, whose shape is simple; the result is parsed back
and compared before anyone gets it, so a value this writer cannot express is an
error, never a silently different file.  Comments of the original are not kept.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - boards with Python 3.10
    import tomli as tomllib

from appliance.errors import ApplianceError

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(document: Mapping[str, Any]) -> str:
    lines: list[str] = []
    _table(document, (), lines)
    text = "\n".join(lines).strip("\n") + "\n"
    if tomllib.loads(text) != document:
        raise ApplianceError("the document cannot be written as TOML without changing it")
    return text


def _table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    scalars = {key: value for key, value in table.items() if not isinstance(value, Mapping)}
    tables = {key: value for key, value in table.items() if isinstance(value, Mapping)}
    if path and (scalars or not tables):
        lines += ["", f"[{'.'.join(map(_key, path))}]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in scalars.items()]
    for key, value in tables.items():
        _table(value, (*path, key), lines)


def _key(key: str) -> str:
    return key if _BARE.match(key) else _string(key)


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007F")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 1.5, 1e+20, inf and nan are TOML as Python writes them
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(key)} = {_value(item)}" for key, item in value.items()) + "}"
    raise ApplianceError(f"{value!r} ({type(value).__name__}) has no TOML form here")
