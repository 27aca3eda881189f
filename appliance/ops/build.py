"""A campaign directory → the unsigned campaign document (what ``campaign build`` writes and ``push`` signs).

A campaign directory is one content bundle (``campaign.toml`` and its media), or a
directory of bundles, one per subdirectory; next to each ``campaign.toml`` an
optional ``campaign-meta.toml`` gives the campaign's id, priority and schedule.
Only the media a ``campaign.toml`` names become assets: drafts and notes lying in
the directory are neither hashed nor served.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from appliance.campaigns.document import CAMPAIGN_ID_PATTERN, DocumentBody, Schedule
from appliance.content import CAMPAIGN_FILE, load_bundle
from appliance.digest import sha256_of
from appliance.errors import ApplianceError
from appliance.experience.registry import Registry
from appliance.tomlfile import read_toml, validated

META_FILE = "campaign-meta.toml"
DEFAULT_PORT = 8080


class CampaignMeta(BaseModel):
    """The contents of campaign-meta.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(None, pattern=CAMPAIGN_ID_PATTERN, description="Absent: the bundle directory's name.")
    priority: int = 0
    schedule: Schedule = Field(default_factory=Schedule)


@dataclass(frozen=True)
class Built:
    """The document body, and the file behind each asset URL path (what ``serve`` serves)."""

    body: DocumentBody
    files: dict[str, Path]

    def unsigned(self) -> dict:
        return self.body.model_dump(mode="json", exclude_none=True)


def default_asset_base_url(port: int = DEFAULT_PORT) -> str:
    """Where ``campaign serve`` on this machine would serve the assets."""
    return f"http://{socket.getfqdn()}:{port}"


def bundle_dirs(campaign_dir: Path) -> list[Path]:
    if (campaign_dir / CAMPAIGN_FILE).is_file():
        return [campaign_dir]
    if not campaign_dir.is_dir():
        raise ApplianceError(f"{campaign_dir} is not a directory")
    found = sorted(child for child in campaign_dir.iterdir() if (child / CAMPAIGN_FILE).is_file())
    if not found:
        raise ApplianceError(f"{campaign_dir} holds no {CAMPAIGN_FILE}, neither itself nor in a subdirectory")
    return found


def build(campaign_dir: Path, asset_base_url: str, progress: Callable[[str], None] = lambda line: None,
          registry: Registry | None = None) -> Built:
    """Validate every bundle of ``campaign_dir`` against the experiences installed here (``registry``) and
    describe it as a document body with hashed assets."""
    campaign_dir = Path(campaign_dir)
    base = asset_base_url.rstrip("/")
    campaigns: list[dict] = []
    files: dict[str, Path] = {}
    for bundle_dir in bundle_dirs(campaign_dir):
        bundle = load_bundle(bundle_dir, registry)
        meta_path = bundle_dir / META_FILE
        meta = validated(CampaignMeta, read_toml(meta_path), meta_path) if meta_path.is_file() else CampaignMeta()
        assets = []
        for name in bundle.media():
            file = bundle_dir / name
            url_path = (file.relative_to(campaign_dir)).as_posix()
            size = file.stat().st_size
            progress(f"hashing {url_path} ({size / 1e6:.1f} MB)")
            assets.append({"path": name, "url": f"{base}/{quote(url_path)}", "sha256": sha256_of(file), "size": size})
            files[url_path] = file
        campaigns.append({
            "id": meta.id or bundle_dir.resolve().name,
            "priority": meta.priority,
            "schedule": meta.schedule,
            "bundle": (bundle_dir / CAMPAIGN_FILE).read_text(encoding="utf-8"),
            "assets": assets,
        })
    body = validated(DocumentBody, {"campaigns": campaigns}, campaign_dir)
    return Built(body, files)
