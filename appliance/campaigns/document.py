"""The campaign document: the desired state an operator signs and pushes to a device.

Schedules are checked here (time zones must exist, dayparts must be well formed)
so a document that could never be scheduled is refused before anything is downloaded.
Numbers (versions, sizes, priorities) are JSON integers that fit a signed 64-bit
column: ``"9"``, ``9.0``, ``true`` or ``2**70`` are refused, never coerced. Asset
paths are normalised (``./bg.png`` is ``bg.png``), and two assets naming one file
after normalisation are refused, so a bundle file is only ever written once.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timezone
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.boundedjson import INT64_MAX, loads_object
from appliance.campaigns.errors import Rejected
from appliance.content import CAMPAIGN_FILE
from appliance.errors import ApplianceError
from appliance.tomlfile import reject_duplicates, validated

SHA256_PATTERN = r"^[0-9a-f]{64}$"
CAMPAIGN_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DAYPART_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"
#: The largest number a document may carry: a signed 64-bit integer, what SQLite and PostgreSQL store.
#: The largest document a device parses (a few campaigns with their campaign.toml text fit in a few kB).
MAX_DOCUMENT_BYTES = 1024 * 1024


class _Strict(BaseModel):
    """A typo in a signed document must be refused, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _daypart_bounds(daypart: str) -> tuple[time, time]:
    start, end = daypart.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


class Schedule(_Strict):
    """When a campaign may show. Every constraint given must hold; none given means always."""

    start: datetime | None = Field(None, description="First instant (inclusive), with a zone or Z.")
    end: datetime | None = Field(None, description="Last instant (exclusive), with a zone or Z.")
    dayparts: list[str] = Field(
        default_factory=list, description='Local-time windows like "18:00-02:00"; an end before the start wraps.'
    )
    timezone: str | None = Field(None, description="IANA zone of the dayparts; absent: the device's local zone.")

    @field_validator("start", "end")
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone (write it as e.g. 2024-12-01T00:00:00Z)")
        return None if value is None else value.astimezone(timezone.utc)

    @field_validator("dayparts")
    def _dayparts_well_formed(cls, dayparts: list[str]) -> list[str]:
        for daypart in dayparts:
            if re.fullmatch(DAYPART_PATTERN, daypart) is None:
                raise ValueError(f"{daypart!r} is not a daypart like '18:00-02:00'")
            start, end = _daypart_bounds(daypart)
            if start == end:
                raise ValueError(f"{daypart!r} is empty (leave dayparts out for all day)")
        return dayparts

    @field_validator("timezone")
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not a known IANA time zone (e.g. Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self

    def active_at(self, now: datetime) -> bool:
        """Whether the campaign may show at ``now`` (an aware instant)."""
        if (self.start and now < self.start) or (self.end and now >= self.end):
            return False
        if not self.dayparts:
            return True
        local = now.astimezone(ZoneInfo(self.timezone) if self.timezone else None).time().replace(tzinfo=None)
        for daypart in self.dayparts:
            start, end = _daypart_bounds(daypart)
            inside = start <= local < end if start < end else (local >= start or local < end)
            if inside:
                return True
        return False


class Asset(_Strict):
    """A media file of a bundle. ``path`` is checked when installing (a traversal fails the install)."""

    path: str = Field(min_length=1, max_length=255, description="Where the file goes, relative to the bundle.")
    url: str = Field(min_length=1, description="http(s) URL the device downloads it from.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="Lower-case hex digest; also the store's file name.")
    size: int = Field(ge=0, le=INT64_MAX, strict=True, description="Exact size in bytes.")

    @field_validator("path")
    def _normalised(cls, path: str) -> str:
        """``./a//b.png`` → ``a/b.png``; ``..`` and absolute paths are kept for the install to refuse by name."""
        return str(PurePosixPath(path))


class CampaignEntry(_Strict):
    """One campaign of the document: a content bundle, its media and when it shows."""

    id: str = Field(pattern=CAMPAIGN_ID_PATTERN, description="Stable identifier (also a directory name).")
    priority: int = Field(0, ge=-INT64_MAX - 1, le=INT64_MAX, strict=True,
                          description="When several campaigns may show, the highest priority wins.")
    schedule: Schedule = Field(default_factory=Schedule)
    bundle: str = Field(min_length=1, description="The bundle's campaign.toml, as text.")
    assets: list[Asset] = Field(default_factory=list)

    @field_validator("assets")
    def _unique_paths(cls, assets: list[Asset]) -> list[Asset]:
        """One file per path: no duplicates, no file where another needs a directory, not campaign.toml."""
        paths = [asset.path for asset in assets]
        reject_duplicates(paths, "asset path")
        for path in paths:
            if path == CAMPAIGN_FILE:
                raise ValueError(f"asset path {path!r} is the bundle's own {CAMPAIGN_FILE}")
            parent = next((str(p) for p in PurePosixPath(path).parents if str(p) in paths), None)
            if parent is not None:
                raise ValueError(f"asset path {parent!r} is a file, but {path!r} needs it to be a directory")
        return assets


class DocumentBody(_Strict):
    """What ``campaign build`` writes: the campaigns, before a version and a signature are added."""

    campaigns: list[CampaignEntry] = Field(description="Empty means: back to the bundled default.")

    @field_validator("campaigns")
    def _unique_ids(cls, campaigns: list[CampaignEntry]) -> list[CampaignEntry]:
        ids = [campaign.id for campaign in campaigns]
        twice = sorted({campaign_id for campaign_id in ids if ids.count(campaign_id) > 1})
        if twice:
            raise ValueError(f"campaign ids used twice: {', '.join(twice)}")
        return campaigns


class Document(DocumentBody):
    """The signed desired state on ``{p}/state/desired``."""

    version: int = Field(ge=1, le=INT64_MAX, strict=True,
                         description="Increases with every push; a device applies only newer versions.")
    key_id: str = Field(min_length=1, description="Which operator key signed it.")
    signature: str = Field(min_length=1, description="Base64 Ed25519 signature of the canonical document.")

    def blobs(self) -> set[str]:
        """The sha256 of every asset: what the content store must keep for this document."""
        return {asset.sha256 for campaign in self.campaigns for asset in campaign.assets}


def parse_document(raw: dict) -> Document:
    try:
        return validated(Document, raw, Path("document"))
    except ApplianceError as exc:
        raise Rejected(f"malformed {exc}") from exc


def claimed_version(raw: dict) -> int | None:
    """The version ``raw`` claims, when it is one a document may have (for reports before it is verified)."""
    version = raw.get("version")
    return version if type(version) is int and 1 <= version <= INT64_MAX else None


def decode_payload(payload: bytes | str | dict) -> dict:
    """The JSON object of an MQTT payload (the link may hand over bytes, text or already-parsed JSON)."""
    if isinstance(payload, dict):
        return payload
    try:
        return loads_object(payload, "the document", MAX_DOCUMENT_BYTES)
    except ApplianceError as exc:
        raise Rejected(str(exc)) from exc
