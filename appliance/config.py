"""The appliance's configuration: one TOML file, validated at start, unknown keys refused.

Every key has a default, so an unconfigured device runs the bundled campaign on
whatever camera it finds (or the demo source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.content.bundle import DEFAULT_BUNDLE_DIR
from appliance.perception.matte import MatteSettings
from appliance.tomlfile import read_toml, validated


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(Section):
    uri: str = Field("auto", description="camera:N, video:PATH, image:PATH, demo, or auto (camera 0, else demo)")
    width: int = Field(1280, gt=0, description="camera capture width")
    height: int = Field(720, gt=0, description="camera capture height")
    fps: int = Field(30, gt=0, description="camera frame rate")
    fourcc: str = Field("MJPG", min_length=4, max_length=4, description="camera pixel format")


class InferenceConfig(Section):
    backend: str = Field("auto", description="auto, litert or rknn")
    threads: int = Field(2, ge=1, le=16, description="CPU threads per model (litert)")
    core_mask: Literal["auto", "0", "1", "2", "0_1", "0_1_2"] = Field("auto", description="NPU cores (rknn)")


class DisplayConfig(Section):
    fullscreen: bool = Field(True, description="fullscreen at the display's resolution; false = window")
    width: int = Field(1920, gt=0, description="window / headless screen width")
    height: int = Field(1080, gt=0, description="window / headless screen height")
    fps_cap: int = Field(60, gt=0, description="upper bound on redraws per second")


class SegmentationConfig(Section):
    smoothing: float = Field(MatteSettings.smoothing, ge=0, lt=1, description="temporal smoothing of unsure edge pixels")
    motion_gain: float = Field(MatteSettings.motion_gain, ge=0, description="how quickly moving pixels escape smoothing")
    refine_radius: int = Field(MatteSettings.refine_radius, ge=0, le=8, description="guided-filter radius (0 = off)")
    refine_eps: float = Field(MatteSettings.refine_eps, gt=0, description="guided-filter regularisation")
    edge_low: float = Field(MatteSettings.edge_low, ge=0, le=1, description="anti-halo ramp start")
    edge_high: float = Field(MatteSettings.edge_high, ge=0, le=1, description="anti-halo ramp end")

    def matte(self) -> MatteSettings:
        return MatteSettings(**self.model_dump())


class KioskConfig(Section):
    content: Path = Field(DEFAULT_BUNDLE_DIR, description="content bundle directory")
    person_enter: float = Field(0.04, ge=0, le=1, description="person coverage that wakes the mirror")
    person_leave: float = Field(0.015, ge=0, le=1, description="coverage below which the screen counts as empty")
    attract_after_s: float = Field(4.0, ge=0, description="seconds of empty screen before the attract scene")


class FleetConfig(Section):
    broker: str | None = Field(None, description="host:port; fleet link disabled when absent")
    tls: bool = True
    ca_file: Path = Path("/etc/oivis/tls/ca.pem")
    cert_file: Path = Path("/etc/oivis/tls/device.pem")
    key_file: Path = Path("/etc/oivis/tls/device.key")
    topic_prefix: str = "oivis/v1/{device_id}"


class CampaignsConfig(Section):
    trusted_keys: list[Path] = Field(default_factory=list, description="operator Ed25519 public keys")


class PathsConfig(Section):
    state_dir: Path = Field(Path("/var/lib/oivis"), description="spool, content store, photos")


class Config(Section):
    device_id: str = "dev-unprovisioned"
    source: SourceConfig = SourceConfig()
    inference: InferenceConfig = InferenceConfig()
    display: DisplayConfig = DisplayConfig()
    segmentation: SegmentationConfig = SegmentationConfig()
    kiosk: KioskConfig = KioskConfig()
    fleet: FleetConfig = FleetConfig()
    campaigns: CampaignsConfig = CampaignsConfig()
    paths: PathsConfig = PathsConfig()


def load_config(path: Path | None) -> Config:
    """The configuration in ``path`` (defaults when None); errors name the file and the key."""
    if path is None:
        return Config()
    return validated(Config, read_toml(path), path)
