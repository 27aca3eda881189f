"""The two ways a campaign document can go wrong that the device treats differently.

Anything else raised as ApplianceError while installing a document is a plain
failure: reported as ``failed`` and not retried until a new document arrives.
"""

from __future__ import annotations

from appliance.errors import ApplianceError


class Rejected(ApplianceError):
    """The document itself is refused (forged, malformed, stale): only a new push can fix it."""


class Unreachable(ApplianceError):
    """An asset could not be fetched for a reason that may pass (network down, server error):
    the same document is tried again later, resuming what was already downloaded."""


class Stalled(Unreachable):
    """A download ran below the low-speed limit or past its deadline: retried later with backoff
    (resuming), never at once, so a crawling server cannot keep the device busy."""
