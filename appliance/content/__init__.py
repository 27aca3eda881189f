"""Content bundles: what a campaign puts on the screen (schema and loader), and the bundled default."""

from appliance.content.bundle import (
    CAMPAIGN_FILE,
    DEFAULT_BUNDLE_DIR,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Bundle,
    Campaign,
    OverlaySpec,
    SceneSpec,
    SnowSpec,
    load_bundle,
)
from appliance.content.generate import generate_default

__all__ = ["CAMPAIGN_FILE", "DEFAULT_BUNDLE_DIR", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Bundle", "Campaign",
           "OverlaySpec", "SceneSpec", "SnowSpec", "generate_default", "load_bundle"]
