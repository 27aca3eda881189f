"""The composition root: the one place that wires source, perception, kiosk, fleet and display together.

Invariants: no other module of the device runtime builds these parts and joins them; nothing below
imports this module (only the CLI, at the top of the layers, does).  The parts are released in the
reverse order of their start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.alerts import Alerts
from appliance.config import DEFAULT_CONFIG_PATH, Config
from appliance.configtrial import READY_DEADLINE_S, ConfigTrial, Rollback
from appliance.content import Bundle, load_bundle
from appliance.errors import ApplianceError, one_line
from appliance.events import EventBus
from appliance.experience.registry import Registry, installed
from appliance.inference.backend import Inference
from appliance.kiosk.app import Kiosk, Workers
from appliance.kiosk.display import DisplayMode
from appliance.kiosk.gpu_display import open_display
from appliance.kiosk.keepsakes import KioskKeepsakes
from appliance.perception.audience import AudienceCounts
from appliance.perception.demo import demo_image
from appliance.perception.pipeline import Perceiver, PerceptionThread
from appliance.perception.schedule import watch_coverage
from appliance.perception.still_faces import StillFaces
from appliance.photo.compose import compose_photo
from appliance.photo.desk import PhotoDesk, photo_config
from appliance.photo.style import Styler, desk_and_styles, sample_picture, samples, styled_photo
from appliance.service.notify import ServiceNotifier
from appliance.service.signals import stop_on_signals
from appliance.service.status import RESTART_STATUS
from appliance.share import ShareService, purge_queue
from appliance.slot import LatestSlot
from appliance.sources.base import Frame
from appliance.sources.camera import CameraMode
from appliance.sources.capture import CaptureThread
from appliance.sources.open import open_source

if TYPE_CHECKING:   # both imported where used: the fleet side (MQTT, TLS, signatures) and CUPS are 18 MB of memory
    from appliance.fleet.runtime import FleetRuntime
    from appliance.printing import PrintService

log = logging.getLogger(__name__)




def camera_mode_from(config: Config) -> CameraMode:
    source = config.source
    return CameraMode(source.width, source.height, source.fps, source.fourcc, source.still_width, source.still_height)


@contextmanager
def kiosk_session(config: Config, mode: DisplayMode, config_path: Path = DEFAULT_CONFIG_PATH,
                  registry: Registry | None = None) -> Iterator[Kiosk]:
    """A kiosk with its threads running (and its fleet side, when a broker is configured), showing the
    experiences of ``registry`` (default: those installed).

    Everything is released on the way out, in order: the loop has stopped, then
    capture and perception, then the fleet side (the event spool is flushed
    and the link says ``offline``), then the display.
    """
    alerts = Alerts()
    fleet = None
    if config.fleet.broker:
        from appliance.fleet.runtime import FleetRuntime

        fleet = FleetRuntime(config, config_path, alerts).start()
    try:
        with _kiosk(config, mode, fleet, alerts, registry or installed()) as kiosk:
            yield kiosk
    finally:
        if fleet is not None:
            fleet.stop()


def first_bundle(config: Config, fleet: FleetRuntime | None, registry: Registry) -> Bundle:
    """The campaign the schedule picks, or the configured bundle when there is none or it cannot load
    (a bad campaign on disk must not keep the screen from starting: the campaign side falls back to
    the last good campaign and raises the alert)."""
    if fleet is not None:
        picked = fleet.schedule.pick()
        try:
            bundle = load_bundle(picked, registry)
        except ApplianceError as exc:
            log.error("campaign bundle %s cannot be shown, starting on %s: %s", picked, config.kiosk.content, exc)
            fleet.schedule.failed(picked, one_line(exc))
            bundle = load_bundle(config.kiosk.content, registry)
        fleet.schedule.shown(bundle.directory)
        return bundle
    return load_bundle(config.kiosk.content, registry)


@contextmanager
def _kiosk(config: Config, mode: DisplayMode, fleet: FleetRuntime | None, alerts: Alerts,
           registry: Registry) -> Iterator[Kiosk]:
    bundle = first_bundle(config, fleet, registry)
    inference = config.inference.inference()
    events = EventBus()
    audience = AudienceCounts(events.publish, config.audience.gender) if config.audience.counts else None
    perceiver = Perceiver(inference, config.segmentation.matte(), config.inference.parallel, config.pose.settings(),
                          config.face.settings(), audience, config.inference.perception_profile())
    source = open_source(config.source.uri, paced=True, camera_mode=camera_mode_from(config), limits=config.media,
                         demo=demo_image)
    display = open_display(mode, (config.display.width, config.display.height), config.display.compositor)
    frames = LatestSlot()
    results = LatestSlot()
    # It tells capture which frames it will use, and watches for a shopper at half the coverage that wakes the screen.
    perception = PerceptionThread(perceiver, frames, results, watch=watch_coverage(config.kiosk.person_enter))
    workers = Workers(CaptureThread(source, frames, wanted=perception.wanted).start(), perception.start(), results)
    keepsakes = photo_desk(config, inference, alerts,
                           stills=workers.capture.still if source.still_size is not None else None)
    keepsakes.start()   # what an earlier run queued is uploaded, followed or expired, whatever this campaign offers
    kiosk = Kiosk(config, display, bundle, workers, inference.backend_summary, events=events, alerts=alerts,
                  registry=registry, notifier=ServiceNotifier.from_environment(),
                  bundle_source=fleet.schedule if fleet is not None else None, keepsakes=keepsakes)
    if fleet is not None:
        fleet.attach(kiosk)
    try:
        yield kiosk
    finally:
        if kiosk.notifier is not None:
            kiosk.notifier.stopping()
        kiosk.close()
        keepsakes.stop()
        workers.perception.stop()
        workers.capture.stop()
        display.close()


def photo_desk(config: Config, inference: Inference, alerts: Alerts,
               stills: Callable[[int], list[Frame]] | None = None) -> KioskKeepsakes:
    """The kiosk's photo desk: photos composed by ``appliance.photo`` for the campaign and world shown (one
    ``PhotoDesk`` and its campaign's ``Styler`` at a time, made at the first photo or styles' samples of each)
    from the live frames or, with ``stills``, the source's full-resolution burst, painted in the campaign
    style asked for (``appliance.photo.style``); shared by ``appliance.share`` and printed by
    ``appliance.printing``, both started at the first photo; a still's faces for experiences' jobs."""
    desks: dict[tuple[str, str], tuple[PhotoDesk, Styler]] = {}
    find_faces = StillFaces(inference, config.face.settings())   # one for styles and experiences' jobs

    def desk_for(bundle: Bundle, world: str) -> tuple[PhotoDesk, Styler]:
        world = photo_config(bundle).world or world   # the campaign's photo world, else the one shown
        key = (str(bundle.directory), world)
        if key not in desks:
            desks.clear()
            desks[key] = desk_and_styles(bundle, world, inference, config.media, config.pose.settings(),
                                         find_faces)
        return desks[key]

    def compose(bundle: Bundle, world: str, frame: np.ndarray, pose: Any, style: str | None) -> Any:
        desk, styler = desk_for(bundle, world)
        photo = compose_photo(frame, desk, pose)
        if style is None:
            return photo
        return styled_photo(photo, styler, style, desk.config.jpeg_quality, desk.config.screen_size())

    def paint_samples(bundle: Bundle, world: str) -> dict[str, np.ndarray]:
        desk, styler = desk_for(bundle, world)
        return samples(styler, sample_picture(desk.background, desk.star))

    state = config.paths.state_dir

    def start_printer(outcome: Callable[[str, Any, dict[str, str | None]], None]) -> PrintService | None:
        from appliance.printing import PrintService

        return PrintService.from_config(config, alerts, state, outcome)

    def start_share() -> ShareService | None:
        share = ShareService.from_config(config)
        if share is None:
            purge_queue(state)   # photos queued while sharing was on never outlive it
        return share

    return KioskKeepsakes(compose, state / "photos", samples=paint_samples,
                          start_share=start_share,
                          start_printer=start_printer,
                          retention_s=config.share.retention_min * 60.0, stills=stills, find_faces=find_faces)


def run_kiosk(config: Config, mode: DisplayMode, max_frames: int | None = None,
              config_path: Path = DEFAULT_CONFIG_PATH, rolled_back: Rollback | None = None) -> int:
    """Bring the kiosk up and run it until asked to stop (or for ``max_frames`` camera frames).

    ``config_path`` is the file the fleet's set-config command rewrites.  The exit
    status is the loop's (RESTART_STATUS when a new configuration waits for a restart).
    A configuration on trial (see configtrial) that fails to start, or does not bring
    the kiosk to ready in time, is rolled back and the service restarted on the last
    good one; ``rolled_back`` is a rollback this start already made, to report.
    """
    trial = ConfigTrial(config_path)
    try:
        with kiosk_session(config, mode, config_path) as kiosk, stop_on_signals(kiosk.stop):
            watch_trial(kiosk, trial, rolled_back)
            return kiosk.run(max_frames)
    except ApplianceError as exc:
        if not trial.pending:
            raise
        trial.roll_back(f"the kiosk failed to start with it: {one_line(exc)}")
        return RESTART_STATUS


def watch_trial(kiosk: Kiosk, trial: ConfigTrial, rolled_back: Rollback | None,
                deadline_s: float = READY_DEADLINE_S) -> None:
    """Report the last rollback (a ``config`` alert, and an event when this start made it); confirm a
    configuration on trial once the kiosk is ready, roll it back when ``deadline_s`` passes first (both
    on the render loop, so they never race)."""
    if rolled_back is not None:
        kiosk.events.publish("config_rolled_back", {"changed": rolled_back.changed, "reason": rolled_back.reason})
    last = trial.last_rollback()
    if last is not None:
        kiosk.alerts.raise_alert("config", last.describe())
    if not trial.pending:
        return

    def ready(why: str) -> None:
        if trial.confirm():
            kiosk.alerts.clear("config")

    def expire() -> None:
        if not trial.pending:
            return
        rollback = trial.roll_back(f"the kiosk was not ready {deadline_s:.0f} s after starting with it")
        kiosk.events.publish("config_rolled_back", {"changed": rollback.changed, "reason": rollback.reason})
        kiosk.stop(RESTART_STATUS)

    kiosk.on_ready.append(ready)
    kiosk.not_ready_by.append((deadline_s, expire))
