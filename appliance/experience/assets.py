"""The bundle files an experience's validated config names: every field typed ``Asset`` (``AssetRef``).

Invariants: found by walking the config's fields (nested models, lists and optional
fields included), each with its key path from the campaign's top (``rps.star_image``)
and the suffixes its ``AssetRef`` allows; unset optional assets are skipped.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from appliance.experience.api import AssetRef


def _asset_ref(annotation: Any, metadata: list[Any]) -> AssetRef | None:
    for item in metadata:
        if isinstance(item, AssetRef):
            return item
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _asset_ref(base, extra)
    for argument in typing.get_args(annotation):
        found = _asset_ref(argument, [])
        if found is not None:
            return found
    return None


def assets(config: BaseModel, prefix: str) -> Iterator[tuple[str, str, AssetRef]]:
    """(key path, bundle-relative path, its AssetRef) of every asset ``config`` names."""
    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        ref = _asset_ref(info.annotation, list(info.metadata))
        yield from _values(value, ref, f"{prefix}.{name}")


def asset_paths(config: BaseModel | None, name: str) -> frozenset[str]:
    """The bundle-relative paths of every asset experience ``name``'s validated table names."""
    return frozenset(path for _, path, _ in assets(config, name)) if config is not None else frozenset()


def own_asset(paths: frozenset[str], name: str, asset: str) -> str:
    """``asset`` when it is one of ``paths`` (experience ``name``'s); KeyError naming it otherwise."""
    if asset not in paths:
        raise KeyError(f"experience {name}: {asset!r} is not an asset of its [{name}] table")
    return asset


def _values(value: Any, ref: AssetRef | None, key: str) -> Iterator[tuple[str, str, AssetRef]]:
    if isinstance(value, str) and ref is not None:
        yield key, value, ref
    elif isinstance(value, BaseModel):
        yield from assets(value, key)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _values(item, ref, f"{key}[{index}]")
