"""JSON from the network with limits: a size and a nesting depth checked before parsing.

``json.loads`` recurses once per nesting level, so ``[[[[…]]]]`` a few thousand
deep raises RecursionError (or worse) in whichever thread parses it, and a huge
payload costs memory in proportion.  Every JSON that arrives from the fleet or a
device (commands, campaign documents, event batches) goes through ``loads``,
which refuses both with one line and parses only what passed.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.errors import ApplianceError

#: Deeper than anything the contracts use (a campaign document is about 6 levels).
DEFAULT_MAX_DEPTH = 32
#: The largest integer the contracts carry (seq, versions, sizes): SQLite INTEGER and PostgreSQL bigint.
INT64_MAX = 2**63 - 1


class TooBig(ApplianceError):
    """The payload is over its size or depth limit (refused before parsing)."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text, outside strings (one linear scan)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(payload: bytes | str, what: str, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The JSON value in ``payload``; TooBig or ApplianceError (naming ``what``) when it is refused."""
    size = len(payload)
    if size > max_bytes:
        raise TooBig(f"{what} is {size} bytes, over the limit of {max_bytes}")
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as exc:
        raise ApplianceError(f"{what} is not UTF-8 text: {exc}") from exc
    depth = nesting_depth(text)
    if depth > max_depth:
        raise TooBig(f"{what} nests {depth} levels deep, over the limit of {max_depth}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApplianceError(f"{what} is not JSON: {exc}") from exc


def loads_object(payload: bytes | str, what: str, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> dict:
    """``loads`` for payloads that must be a JSON object."""
    value = loads(payload, what, max_bytes, max_depth)
    if not isinstance(value, dict):
        raise ApplianceError(f"{what} is not a JSON object")
    return value
