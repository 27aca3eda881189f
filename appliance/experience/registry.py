"""Finding the installed experiences: the entry-point group ``oivis.experiences``.

Invariants:

- Each entry point names an ``Experience`` value; its name must be the entry point's.
  One that fails to import, is no ``Experience``, is named otherwise, or declares an API
  this kiosk cannot run (another major, or a newer minor) is logged once with the reason
  and skipped; it never stops the kiosk.  ``Registry.skipped`` keeps the reasons (for
  ``doctor`` and the fleet).
- Two entry points with one name: the one from this appliance's own distribution wins
  (a plug-in cannot replace a built-in), else the first in the distributions' name order;
  the other is skipped with the reason.
- ``installed()`` looks once per process (entry points do not change under a running
  kiosk); tests build a ``Registry`` from the entry points they want.

Plain entry points rather than pluggy: an experience is one value addressed by name,
not a hook that many plug-ins answer together, so a name → value table is all the
kiosk needs, and it keeps plug-ins free of a framework.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from appliance.experience.api import API_VERSION, Experience

log = logging.getLogger(__name__)

GROUP = "oivis.experiences"
OWN_DISTRIBUTION = "oivis-appliance"


def declared_api(declared: object) -> tuple[int, int] | None:
    """(major, minor) of the API an experience declares, or None when it is not "major.minor"."""
    try:
        major, minor = (int(part) for part in str(declared).split("."))
    except ValueError:
        return None
    return major, minor


def api_problem(declared: object) -> str | None:
    """Why an experience written for API ``declared`` cannot run here, or None."""
    ours = declared_api(API_VERSION)
    version = declared_api(declared)
    if version is None:
        return f"declares API {declared!r}, not major.minor (this kiosk runs API {API_VERSION})"
    major, minor = version
    if major != ours[0] or minor > ours[1]:
        return f"needs experience API {major}.{minor}; this kiosk runs {API_VERSION}"
    return None


@dataclass(frozen=True)
class Registry:
    """The experiences that loaded, by name, and what was skipped with why."""

    experiences: Mapping[str, Experience] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.experiences

    def __getitem__(self, name: str) -> Experience:
        return self.experiences[name]

    def names(self) -> list[str]:
        return sorted(self.experiences)

    @classmethod
    def of(cls, experiences: Iterable[Experience]) -> Registry:
        """A registry of given experiences (tests, the test kit)."""
        return cls({experience.name: experience for experience in experiences})


def _distribution(entry: EntryPoint) -> str:
    return entry.dist.name if entry.dist is not None else ""


def load(entries: Iterable[EntryPoint]) -> Registry:
    """The experiences ``entries`` name, each checked (see the module's invariants)."""
    ordered = sorted(entries, key=lambda entry: (_distribution(entry) != OWN_DISTRIBUTION, _distribution(entry),
                                                  entry.name))
    found: dict[str, Experience] = {}
    skipped: dict[str, str] = {}
    for entry in ordered:
        where = f"experience {entry.name!r} ({entry.value}, from {_distribution(entry) or 'an unknown distribution'})"
        if entry.name in found:
            reason = f"the name is taken by {found[entry.name].scene.__module__}"
        else:
            reason = _check(entry, found)
        if reason is not None:
            log.warning("%s skipped: %s", where, reason)
            key = entry.name if entry.name not in skipped else f"{entry.name} ({_distribution(entry)})"
            skipped[key] = reason
    return Registry(found, skipped)


def _check(entry: EntryPoint, found: dict[str, Experience]) -> str | None:
    """Load ``entry`` into ``found``; the reason it cannot be used, or None."""
    try:
        value = entry.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of a plug-in is a reason to skip it
        return f"it does not import: {type(exc).__name__}: {exc}"
    if not isinstance(value, Experience):
        return f"it names {type(value).__name__}, not an appliance.experience.api.Experience"
    if value.name != entry.name:
        return f"it is called {value.name!r}, not {entry.name!r} as its entry point"
    problem = api_problem(value.api)
    if problem is not None:
        return problem
    found[value.name] = value
    return None


@lru_cache(maxsize=1)
def installed() -> Registry:
    """The experiences installed in this environment (looked up once)."""
    registry = load(entry_points(group=GROUP))
    log.info("experiences: %s", ", ".join(registry.names()) or "none")
    return registry
