"""The appliance's configuration: one TOML file, validated at start, unknown keys refused.

Every key has a default, so an unconfigured device runs the bundled campaign on
whatever camera it finds (or the demo source).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from appliance.content.bundle import DEFAULT_BUNDLE_DIR
from appliance.errors import ApplianceError
from appliance.identity import device_id_problem
from appliance.inference.backend import BackendOptions, Inference, LaneSettings
from appliance.inference.manifest import Manifest
from appliance.inference.soc import read_soc
from appliance.media import MediaLimits
from appliance.perception.face_tracker import FaceSettings
from appliance.perception.matte import MatteSettings
from appliance.perception.pose_tracker import PoseSettings, Smoothing
from appliance.perception.profile import CHOICES as PROFILE_CHOICES
from appliance.perception.profile import Profile
from appliance.perception.profile import choose as choose_profile
from appliance.tomlfile import read_toml, validated


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(Section):
    uri: str = Field("auto", description="camera:N, video:PATH, image:PATH, demo, or auto (camera 0, else demo)")
    width: int = Field(1280, gt=0, description="camera capture width")
    height: int = Field(720, gt=0, description="camera capture height")
    fps: int = Field(30, gt=0, description="camera frame rate")
    fourcc: str = Field("MJPG", min_length=4, max_length=4, description="camera pixel format")
    still_width: int = Field(0, ge=0, description="camera still mode for photos, e.g. 1920 (0: photos are taken "
                             "from the live frames); the camera switches to it for a photo and back")
    still_height: int = Field(0, ge=0, description="camera still mode height, e.g. 1080")


CoreMask = Literal["auto", "0", "1", "2", "0_1", "0_1_2"]


def _one_device_level(value: str) -> str:
    from appliance.fleet.topics import check_template

    try:
        return check_template(value)
    except ApplianceError as exc:
        raise ValueError(str(exc)) from exc


#: A topic prefix template whose ``{device_id}`` is one whole level (the device's and the console's settings).
TopicPrefix = Annotated[str, AfterValidator(_one_device_level)]


class LaneConfig(Section):
    """``[inference.models.<name>]``: one model's own backend settings; a key left out takes ``[inference]``'s."""

    backend: str | None = Field(None, description="auto, litert, onnx or rknn for this model")
    threads: int | None = Field(None, ge=1, le=16, description="CPU threads of this model (litert)")
    core_mask: CoreMask | None = Field(None, description="NPU cores of this model (rknn), e.g. one core per model")


class InferenceConfig(Section):
    backend: str = Field("auto", description="auto, litert, onnx or rknn (auto: each model on the first that runs its format: rknn, litert for .tflite, onnx for .onnx)")
    threads: int = Field(2, ge=1, le=16, description="CPU threads per model (litert)")
    core_mask: CoreMask = Field("auto", description="NPU cores (rknn)")
    parallel: bool = Field(False, description="segmentation and hands of a frame run at once, each in its own "
                           "thread (hands search where the previous frame's person was); pays with one model "
                           "per NPU core, not on a 2-core CPU (the npu-board and cpu-board profiles run lanes "
                           "whatever this says)")
    profile: Literal[PROFILE_CHOICES] = Field(
        "auto", description="what perception the board affords: full; npu-board (full, a lane per stage); "
        "cpu-board (a lane per stage, one hand-search window at most 5 times a second, pose and face at most "
        "5/s, age 1/s: an RK3399); cpu-board-lite (cpu-board with the lite hand landmarks); auto (npu-board on "
        "an NPU board, cpu-board on a board without one, full elsewhere)")
    models: dict[str, LaneConfig] = Field(default_factory=dict, description="per-model settings by manifest "
                                          "name (selfie_landscape, palm_detection_full, hand_landmark_full…)")

    @model_validator(mode="wrap")
    @classmethod
    def _known_models(cls, data: object, handler: ValidatorFunctionWrapHandler) -> InferenceConfig:
        """A lane for a model the manifest does not name is refused at its own key (and so its line)."""
        models = data.get("models") if isinstance(data, dict) else None
        if isinstance(models, dict) and models:
            known = Manifest.load().models
            unknown = [name for name in models if name not in known]
            if unknown:
                message = f"unknown model (the manifest has: {', '.join(sorted(known))})"
                raise ValidationError.from_exception_data(cls.__name__, [
                    InitErrorDetails(type=PydanticCustomError("unknown_model", message), loc=("models", name),
                                     input=name) for name in unknown])
        return handler(data)

    def inference(self) -> Inference:
        """The models' loader with these settings: ``[inference]`` for every model, each lane's own keys over it;
        ``threads`` left out takes the profile's (one a model on a CPU board, so a lane keeps to its core)."""
        threads = self.threads
        if "threads" not in self.model_fields_set:
            threads = self.perception_profile().threads or threads
        lanes = {name: LaneSettings(lane.backend or self.backend,
                                    BackendOptions(lane.threads or threads, lane.core_mask or self.core_mask))
                 for name, lane in self.models.items()}
        return Inference(self.backend, BackendOptions(threads, self.core_mask), lanes=lanes)

    def perception_profile(self) -> Profile:
        """The profile ``profile`` names, ``auto`` decided by this board's SoC."""
        return choose_profile(self.profile, read_soc())


#: Where the kiosk composites (``[display] compositor``): auto picks the GPU where SDL offers a hardware renderer.
COMPOSITORS = ("auto", "gpu", "cpu")


class DisplayConfig(Section):
    fullscreen: bool = Field(True, description="fullscreen at the display's resolution; false = window")
    width: int = Field(1920, ge=320, le=7680, description="window / headless screen width (320 to 7680)")
    height: int = Field(1080, ge=240, le=4320, description="window / headless screen height (240 to 4320)")
    compositor: Literal[COMPOSITORS] = Field(
        "auto", description="auto: the GPU where SDL offers a hardware renderer (never headless), else the CPU")


class SegmentationConfig(Section):
    smoothing: float = Field(MatteSettings.smoothing, ge=0, lt=1, description="temporal smoothing of unsure edge pixels")
    motion_gain: float = Field(MatteSettings.motion_gain, ge=0, description="how quickly moving pixels escape smoothing")
    refine_radius: int = Field(MatteSettings.refine_radius, ge=0, le=8, description="guided-filter radius (0 = off)")
    refine_eps: float = Field(MatteSettings.refine_eps, gt=0, description="guided-filter regularisation")
    edge_low: float = Field(MatteSettings.edge_low, ge=0, le=1, description="anti-halo ramp start")
    edge_high: float = Field(MatteSettings.edge_high, ge=0, le=1, description="anti-halo ramp end")

    @model_validator(mode="after")
    def _ramp_ordered(self) -> SegmentationConfig:
        if self.edge_low >= self.edge_high:
            raise ValueError(f"edge_low {self.edge_low} must be below edge_high {self.edge_high} (the anti-halo "
                             "ramp runs from edge_low up to edge_high)")
        return self

    def matte(self) -> MatteSettings:
        return MatteSettings(**self.model_dump())


class KioskConfig(Section):
    content: Path = Field(DEFAULT_BUNDLE_DIR, description="content bundle directory")
    person_enter: float = Field(0.04, ge=0, le=1, description="person coverage that wakes the mirror")
    person_leave: float = Field(0.015, ge=0, le=1, description="coverage below which the screen counts as empty")
    attract_after_s: float = Field(4.0, ge=0, description="seconds of empty screen before the attract scene")
    reading_s: float = Field(1.0, ge=0, le=10, description="seconds a screen that offers a choice stays up before "
                             "a fist can confirm (reading time)")


class SmoothedConfig(Section):
    """The One Euro filter's keys of a table whose landmarks are tracked (``[pose]``, ``[face]``)."""

    min_cutoff: float = Field(Smoothing.min_cutoff, gt=0, le=30, description="One Euro filter: cutoff (Hz) of a "
                              "still landmark; lower = less jitter")
    beta: float = Field(Smoothing.beta, ge=0, le=1000, description="One Euro filter: how fast the cutoff rises with "
                        "speed (body or face sizes per second); higher = less lag")
    derivative_cutoff: float = Field(Smoothing.derivative_cutoff, gt=0, le=30, description="One Euro filter: "
                                     "cutoff (Hz) of the speed estimate")

    def smoothing(self) -> Smoothing:
        return Smoothing(self.min_cutoff, self.beta, self.derivative_cutoff)


class PoseConfig(SmoothedConfig):
    """``[pose]``: several people's bodies, tracked (only while an experience asks for pose)."""

    max_people: int = Field(PoseSettings.max_people, ge=1, le=8, description="people tracked at most; each costs "
                            "one landmark inference per frame")
    recheck_every: int = Field(PoseSettings.recheck_every, ge=1, le=600, description="frames between whole-frame "
                               "detector runs while fewer than max_people are tracked")
    uncovered_every: int = Field(PoseSettings.uncovered_every, ge=1, le=600, description="frames between detector "
                                 "runs on person-mask regions nobody tracked covers")

    def settings(self) -> PoseSettings:
        return PoseSettings(self.max_people, self.recheck_every, self.uncovered_every, self.smoothing())


class FaceConfig(SmoothedConfig):
    """``[face]``: faces' meshes, tracked (only while an experience asks for face)."""

    max_faces: int = Field(FaceSettings.max_faces, ge=1, le=8, description="faces tracked at most; each costs one "
                           "mesh inference per frame")
    detector: Literal["full", "short"] = Field(FaceSettings.detector, description="live face detector: full (full "
                                               "range, shoppers up to about 5 m) or short (short range, faces "
                                               "within about 2 m)")
    recheck_every: int = Field(FaceSettings.recheck_every, ge=1, le=600, description="frames between detector runs "
                               "while some but fewer than max_faces are tracked")
    age_gender: bool = Field(False, description="analyze gives each face's age, gender and gender_score (the age "
                             "and gender networks); live, age runs only while an experience asks for it")

    def settings(self) -> FaceSettings:
        return FaceSettings(self.max_faces, self.detector, self.recheck_every, self.smoothing())


class AudienceConfig(Section):
    """``[audience]``: anonymous audience counts for operators, off unless turned on here."""

    counts: bool = Field(False, description="publish audience_hour events: faces whose age was guessed (while an "
                         "experience asks for age), counted once per track by disjoint age band; a count below 5 is "
                         "never named (folded into 'other'; an hour under 5 faces carried into the next)")
    gender: bool = Field(False, description="the counts also by gender (faces whose gender was guessed: a campaign "
                         "with [age] gender = true; the others count as unknown)")


class FleetConfig(Section):
    broker: str | None = Field(None, description="host:port; fleet link disabled when absent")
    tls: bool = Field(True, description="mutual TLS with the device certificate; false only for development brokers")
    ca_file: Path = Field(Path("/etc/oivis/tls/ca.pem"), description="CA that signed the broker's certificate")
    cert_file: Path = Field(Path("/etc/oivis/tls/device.pem"), description="this device's certificate (CN = device_id)")
    key_file: Path = Field(Path("/etc/oivis/tls/device.key"), description="this device's private key")
    topic_prefix: TopicPrefix = Field("oivis/v1/{device_id}", description="topic prefix {p} of the MQTT contract")
    keepalive_s: int = Field(30, ge=5, le=300, description="MQTT keep-alive: how fast a dead connection is noticed")
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="how long the broker keeps this device's "
                                  "session (subscriptions, queued commands) while it is offline")
    will_delay_s: int = Field(60, ge=0, description="seconds offline before the broker publishes `lost`; a "
                              "reconnect within it publishes nothing, so short drops do not flap (capped by "
                              "session_expiry_s)")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect delay, doubled after each failure")
    reconnect_max_s: float = Field(60.0, gt=0, description="longest reconnect delay")
    health_period_s: float = Field(30.0, gt=0, description="seconds between health reports (they expire after 2x)")
    batch_size: int = Field(100, ge=1, le=10_000, description="events per message on {p}/events")
    ack_timeout_s: float = Field(60.0, gt=0, description="connected seconds without PUBACK before a batch is re-sent")
    confirm_timeout_s: float = Field(60.0, gt=0, description="seconds an acknowledged batch waits for the fleet's "
                                     "confirmation on {p}/events/stored before it is sent again (doubling per "
                                     "attempt, at most an hour); only once the fleet has confirmed anything")
    spool_max_mb: float = Field(64.0, ge=0.25, description="spool size bound; the oldest events are dropped (and "
                                "reported in a `dropped` event) beyond it")
    spool_max_age_days: float = Field(30.0, gt=0, description="events older than this are dropped and reported")


class CampaignsConfig(Section):
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="operator Ed25519 public keys: key files (PEM or base64, as keygen writes) or inline base64 keys",
    )
    disk_budget_mb: float = Field(2048, gt=0, description="content store limit; unreferenced assets are evicted")
    max_asset_mb: float = Field(1024, gt=0, description="largest single asset a campaign may carry")
    download_timeout_s: float = Field(30.0, gt=0, description="HTTP connect timeout, and silence allowed on an open "
                                      "connection, when fetching assets")
    download_deadline_s: float = Field(3600.0, ge=0, description="one attempt at a campaign's downloads; then "
                                       "retried later, resuming (0 = none)")
    low_speed_bytes_per_s: int = Field(1024, ge=0, description="a download slower than this for low_speed_window_s "
                                       "is abandoned and retried later (0 = no limit)")
    low_speed_window_s: float = Field(60.0, gt=0, description="the window of the low-speed limit")
    require_synced_clock: bool = Field(
        True, description="schedule only on an NTP-synchronised clock; false for development machines"
    )


class ShareConfig(Section):
    """``[share]``: finished photos taken home by QR through the operator's S3-compatible storage.

    The access keys are never in this file: they are the systemd credentials ``s3-access-key`` and
    ``s3-secret-key`` (``$CREDENTIALS_DIRECTORY``), else the files of the same names in
    ``credentials_dir`` (development, tests, ``config check`` run as root).
    """

    enabled: bool = Field(True, description="offer the QR code (false: photos are only printed); sharing also "
                          "stays off while no bucket is set")
    endpoint_url: str | None = Field(None, description="the storage's S3 endpoint, e.g. https://s3.example.com "
                                     "(phones open pre-signed links on it); absent = AWS S3 of region")
    bucket: str | None = Field(None, min_length=3, max_length=63, description="bucket holding photos/<device_id>/")
    region: str = Field("us-east-1", min_length=1, description="the bucket's region (signs the requests)")
    link_expiry_h: int = Field(24, ge=1, le=168, description="hours a pre-signed link works (S3 allows 7 days "
                               "at most); the bucket's lifecycle rule deletes photos after it, in whole days")
    short_link_base: str | None = Field(None, description="operator console URL; the QR then shows "
                                        "<short_link_base>/p/<photo_id> instead of a pre-signed link")
    retention_min: float = Field(10.0, gt=0, le=24 * 60, description="minutes a photo stays on the device at most, "
                                 "uploaded or not")
    credentials_dir: Path | None = Field(None, description="directory with s3-access-key and s3-secret-key, used "
                                         "when the service has no systemd credentials of those names")

    @field_validator("endpoint_url", "short_link_base")
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class PrintingConfig(Section):
    """``[printing]``: the photo booth's prints through CUPS (appliance/printing)."""

    enabled: bool = Field(False, description="print photos the shopper asks for (off until a printer is set up: "
                                             "true, with queue or CUPS's default destination)")
    queue: str | None = Field(None, description="CUPS queue name; CUPS's default destination when absent")
    server: str | None = Field(None, description="CUPS scheduler (socket path or host:port); CUPS's own default "
                               "(CUPS_SERVER, client.conf, /run/cups/cups.sock) when absent")
    media: str = Field("4x6", description="media name as the printer's driver knows it (4x6, na_index-4x6_4x6in, "
                       "iso_a6_105x148mm, Custom.100x150mm, w288h432 …): the page is made at its exact size")
    bleed_mm: float = Field(1.0, ge=0, le=10, description="photo beyond each edge of the page, cut off, so no edge "
                            "is left blank")
    dpi: int = Field(300, ge=100, le=1200, description="resolution of the page sent to CUPS")
    scaling: Literal["fill", "fit", "none", "auto"] = Field("fill", description="CUPS print-scaling: fill covers "
                                                             "the paper (the page is already its size)")
    daily_limit: int = Field(0, ge=0, description="pages per campaign per day (the device's local date); 0 = no "
                             "limit")
    job_timeout_s: float = Field(120.0, gt=0, le=3600, description="a photo not printed this long after it was "
                                 "asked for is cancelled (and purged from CUPS) and reported as failed")
    poll_s: float = Field(1.0, gt=0, le=30, description="seconds between looks at the queue and its jobs")

    @field_validator("media")
    def _known_media(cls, value: str) -> str:
        from appliance.printing.layout import parse_media

        parse_media(value)
        return value


class PathsConfig(Section):
    state_dir: Path = Field(Path("/var/lib/oivis"), description="spool, content store, photos")


class Config(Section):
    device_id: str = Field("dev-unprovisioned", description="<site>-<screen>: the certificate's CN and topic level")
    source: SourceConfig = SourceConfig()
    inference: InferenceConfig = InferenceConfig()
    display: DisplayConfig = DisplayConfig()
    segmentation: SegmentationConfig = SegmentationConfig()
    kiosk: KioskConfig = KioskConfig()
    pose: PoseConfig = PoseConfig()
    face: FaceConfig = FaceConfig()
    audience: AudienceConfig = AudienceConfig()
    fleet: FleetConfig = FleetConfig()
    campaigns: CampaignsConfig = CampaignsConfig()
    paths: PathsConfig = PathsConfig()
    printing: PrintingConfig = PrintingConfig()
    media: MediaLimits = MediaLimits()
    share: ShareConfig = ShareConfig()

    @field_validator("device_id")
    def _device_id(cls, value: str) -> str:
        problem = device_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value


#: The device's configuration file, written by provisioning; used when no --config is given.
DEFAULT_CONFIG_PATH = Path("/etc/oivis/appliance.toml")

#: Secrets the service receives through systemd credentials (``LoadCredential=NAME:PATH`` in the
#: unit), by credential name → the config key whose file it replaces.  The configuration keeps
#: naming the real file (root-only on the device), so ``config check`` and ``doctor`` run as root
#: read the same secret the service, running as ``oivis``, gets as ``$CREDENTIALS_DIRECTORY/NAME``.
CREDENTIALS = {"device.key": ("fleet", "key_file")}


def with_credentials(config: Config, directory: str | None) -> Config:
    """``config`` with each secret file replaced by its systemd credential, when one was passed.

    The unit's ``SetCredential=`` fallback (used when the device is not provisioned) is not PEM,
    so it counts as no credential.
    """
    if not directory:
        return config
    for name, (section, key) in CREDENTIALS.items():
        credential = Path(directory) / name
        if credential.is_file() and credential.read_bytes().startswith(b"-----BEGIN"):
            part = getattr(config, section)
            config = config.model_copy(update={section: part.model_copy(update={key: credential})})
    return config


def load_config(path: Path | None, default: Path = DEFAULT_CONFIG_PATH,
                environ: Mapping[str, str] | None = None) -> Config:
    """The configuration in ``path``, else in ``default`` when that exists, else the defaults.

    Errors name the file, the key and its line.  Secrets come from systemd's
    ``$CREDENTIALS_DIRECTORY`` when the service runs with them (see CREDENTIALS).
    """
    environ = os.environ if environ is None else environ
    if path is None and default.is_file():
        path = default
    config = Config() if path is None else validated(Config, read_toml(path), path)
    return with_credentials(config, environ.get("CREDENTIALS_DIRECTORY"))
