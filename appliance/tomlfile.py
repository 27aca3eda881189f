"""Reading TOML files into validated models, with one-line errors that name the file and the key.

Config, the model manifest and content bundles all come from TOML written by
people; a typo must be refused with the key it concerns, not a traceback.
"""

from __future__ import annotations

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


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
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


def validated(model: type[Model], data: dict, path: Path) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{key_path(error['loc'])}: {FRIENDLY.get(error['type'], error['msg'].removeprefix('Value error, '))}"
            for error in exc.errors()
        )
        raise ApplianceError(f"{path}: {problems}") from exc
