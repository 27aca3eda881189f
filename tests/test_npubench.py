"""The stand-in NPU benchmark: the published line it estimates from, the compute it counts, and that a run
replays the real models' outputs (no unrecorded call) with the models of one core never overlapping."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from appliance.inference.manifest import Manifest
from appliance.tools import npubench
from appliance.tools.npubench import PUBLISHED, Recorder, StandInNpu, macs, npu_ms, run


@pytest.mark.parametrize("soc", sorted(PUBLISHED))
def test_the_estimate_passes_through_the_published_figures(soc: str) -> None:
    for gmac, fps in PUBLISHED[soc]:
        assert npu_ms(gmac, soc) == pytest.approx(1000 / fps)
    assert npu_ms(0.3, soc, fp16=True) > npu_ms(0.3, soc)


def test_compute_is_counted_from_the_graph() -> None:
    manifest = Manifest.load()
    full, lite = (macs(manifest.verified_path(name)) for name in ("hand_landmark_full", "hand_landmark_lite"))
    assert 0 < lite < full
    assert 1e8 < macs(manifest.verified_path("palm_detection_full")) < 1e9   # a mobile SSD: a few hundred MMAC


class WatchedLock:
    """A core's lock that logs each take and free, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []

    def __enter__(self) -> None:
        self.lock.acquire()
        self.events.append("take")

    def __exit__(self, *exc: object) -> None:
        self.events.append("free")
        self.lock.release()


def test_every_inference_holds_its_core() -> None:
    """Two lanes run models of one core at once: each of their six inferences takes the core's lock and frees
    it (so two models of one core never overlap)."""
    npu = StandInNpu(Recorder(), {"selfie_landscape": 0, "face_landmark": 0},
                     {"selfie_landscape": 20, "face_landmark": 20})
    npu.locks[0] = watched = WatchedLock()
    runners = {model: npu.load(model) for model in ("selfie_landscape", "face_landmark")}
    shapes = {"selfie_landscape": (1, 144, 256, 3), "face_landmark": (1, 192, 192, 3)}

    def three_runs(model: str) -> None:   # a lane: one thread per model (an interpreter is not thread-safe)
        for _ in range(3):
            runners[model].run([np.zeros(shapes[model], np.uint8)])

    threads = [threading.Thread(target=three_runs, args=(model,)) for model in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert watched.events == ["take", "free"] * 6
    assert npu.misses == 2   # each model's first call ran the real model (and recorded it); the rest replayed


def test_a_run_replays_every_call(media: Path) -> None:
    report = run(media / "kiosk_fist_thumbup_720p.mp4", 4)
    assert [row["misses"] for row in report["layouts"]] == [0, 0, 0]
    assert [row["layout"] for row in report["layouts"]] == [layout.name for layout in npubench.LAYOUTS]
    assert set(report["layouts"][2]["npu_busy"]) == {"core 0", "core 1", "core 2"}
