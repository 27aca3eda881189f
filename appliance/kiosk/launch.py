"""Wiring the kiosk together from the configuration: models, source, threads, display, content."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from appliance.config import Config
from appliance.content import load_bundle
from appliance.events import EventBus
from appliance.inference.backend import BackendOptions, Inference
from appliance.kiosk.app import Kiosk, Workers
from appliance.kiosk.display import Display, DisplayMode
from appliance.perception.pipeline import Perceiver, PerceptionThread
from appliance.slot import LatestSlot
from appliance.sources.camera import CameraMode
from appliance.sources.capture import CaptureThread
from appliance.sources.open import open_source


def inference_from(config: Config) -> Inference:
    settings = config.inference
    return Inference(settings.backend, BackendOptions(threads=settings.threads, core_mask=settings.core_mask))


def camera_mode_from(config: Config) -> CameraMode:
    source = config.source
    return CameraMode(source.width, source.height, source.fps, source.fourcc)


@contextmanager
def kiosk_session(config: Config, mode: DisplayMode) -> Iterator[Kiosk]:
    """A kiosk with its threads running; everything is released on the way out."""
    bundle = load_bundle(config.kiosk.content)
    inference = inference_from(config)
    perceiver = Perceiver(inference, config.segmentation.matte())
    source = open_source(config.source.uri, paced=True, camera_mode=camera_mode_from(config))
    display = Display(mode, (config.display.width, config.display.height))
    frames = LatestSlot()
    results = LatestSlot()
    workers = Workers(CaptureThread(source, frames).start(),
                      PerceptionThread(perceiver, frames, results).start(), results)
    try:
        yield Kiosk(config, display, bundle, workers, inference.backend_summary, events=EventBus())
    finally:
        workers.perception.stop()
        workers.capture.stop()
        display.close()


def run_kiosk(config: Config, mode: DisplayMode, max_frames: int | None = None) -> int:
    """Bring the kiosk up and run it until asked to stop (or for ``max_frames`` camera frames)."""
    with kiosk_session(config, mode) as kiosk:
        return kiosk.run(max_frames)
