"""Changing the device's configuration file from the fleet: merged, validated, replaced atomically.

The change is a partial document (``{"kiosk": {"attract_after_s": 6}}``; ``null``
removes a key, so it falls back to its default) merged into the file as it is
on disk.  The merged whole goes through exactly the checks ``run`` makes at
start (``appliance.preflight``), so a value the service would refuse never
reaches the file: a device told to apply a typo keeps running, and keeps
starting.  What passes is still only on trial (``appliance.configtrial``): the
running file is kept as the last good one, and the new one is rolled back when
the kiosk does not become ready with it.

Only what shapes the screen may change remotely (an allow-list, so a key added
later is protected until someone decides otherwise).  The keys that bind the
device to its identity, to the fleet and to its trust are not: a wrong broker
or certificate path would cut the device off from the very channel that could
repair it, and a new trusted key or content path would let whoever holds the
broker's operator account bypass campaign signing.  Those are for provisioning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.atomicfile import write_atomically
from appliance.config import Config, Section, with_credentials
from appliance.configtrial import ConfigTrial
from appliance.errors import ApplianceError
from appliance.preflight import require
from appliance.tomlfile import InvalidFile, read_toml, validated
from appliance.tomlwrite import dumps

#: Dotted key prefixes set-config may change; everything else is refused.
REMOTE_SETTINGS = ("source", "inference", "display", "segmentation", "kiosk.person_enter", "kiosk.person_leave",
                   "kiosk.attract_after_s", "fleet.health_period_s")


def apply_settings(path: Path, changes: Mapping[str, Any]) -> list[str]:
    """Merge ``changes`` into the configuration file at ``path``; the dotted keys whose value changed.

    Nothing is written when nothing changes, or when anything is refused (ApplianceError naming the keys).
    """
    if not isinstance(changes, Mapping) or not changes:
        raise ApplianceError('set-config needs a non-empty object of settings in "set", e.g. '
                             '{"set": {"kiosk": {"attract_after_s": 6}}}')
    protected = refused_keys(changes)
    if protected:
        raise ApplianceError(f"refused, nothing changed: {', '.join(protected)} cannot be changed remotely "
                             f"(only {', '.join(REMOTE_SETTINGS)}; the rest is for provisioning)")
    current = _plain(read_toml(path)) if path.exists() else {}
    updated = merge(current, changes)
    try:
        config = validated(Config, updated, path)
        require(with_credentials(config, os.environ.get("CREDENTIALS_DIRECTORY")), None)  # no lines: not on disk yet
    except InvalidFile as exc:
        raise ApplianceError(f"refused, nothing changed: {'; '.join(exc.problems)}") from exc
    before, after = flatten(current), flatten(updated)
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    if not changed:
        return []
    ConfigTrial(path).begin(changed)
    write_atomically(path, dumps(updated).encode("utf-8"))
    return changed


def merge(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` laid over it: tables merged key by key, None removing a key."""
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            below = result.get(key)
            result[key] = merge(below if isinstance(below, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"kiosk": {"a": 1}}`` → ``{"kiosk.a": 1}`` (empty tables vanish)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def refused_keys(changes: Mapping[str, Any]) -> list[str]:
    """The dotted keys of ``changes`` that set-config refuses (outside ``REMOTE_SETTINGS``)."""
    return [key for key in flatten(changes) if not any(_within(key, allowed) for allowed in REMOTE_SETTINGS)]


def remote_keys() -> list[tuple[str, str]]:
    """Every setting set-config may change, as (dotted key, its description), in the schema's order."""
    keys: list[tuple[str, str]] = []

    def walk(model: type, prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, Section):
                walk(annotation, f"{key}.")
            elif any(_within(key, allowed) for allowed in REMOTE_SETTINGS):
                keys.append((key, field.description or ""))

    walk(Config, "")
    return keys


def _within(key: str, allowed: str) -> bool:
    """True when ``key`` is ``allowed`` or below it (``kiosk.attract_after_s`` is within ``kiosk.attract_after_s``,
    ``display.width`` within ``display``; ``kiosk`` as a whole is within nothing narrower)."""
    return key == allowed or key.startswith(f"{allowed}.")


def _plain(table: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed file as plain dicts (without the line bookkeeping ``read_toml`` attaches)."""
    return {key: _plain(value) if isinstance(value, Mapping) else value for key, value in table.items()}
