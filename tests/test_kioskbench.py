"""kioskbench's logic on scripted inputs (the greeting found among flips, the window's figures, the videos it
plays), and one short run of the real headless kiosk for its wiring (no figure is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.tools.kioskbench import (
    Flip,
    Reading,
    greeting_latencies,
    table,
    video_frames,
    window_figures,
    write_video,
)

REPO = Path(__file__).resolve().parents[1]


def flips(*spans: tuple[float, float, bool], fps: float = 30.0) -> list[Flip]:
    """Flips at ``fps`` over each (start, end, greeting) span."""
    made = []
    for start, end, greeting in spans:
        made += [Flip(start + index / fps, greeting) for index in range(round((end - start) * fps))]
    return made


def test_each_arrival_is_timed_to_the_first_greeting_flip_after_it() -> None:
    shown = flips((0.0, 10.3, False), (10.3, 15.0, True), (15.0, 20.25, False), (20.25, 22.0, True))
    latencies = greeting_latencies([10.0, 20.0], shown)
    assert latencies == pytest.approx([0.3, 0.25], abs=1e-9)


def test_a_greeting_flip_before_the_arrival_does_not_count() -> None:
    shown = [Flip(9.9, True), Flip(9.95, False), Flip(10.0, False), Flip(10.2, True)]
    assert greeting_latencies([9.97], shown) == pytest.approx([0.23])


def test_an_arrival_met_by_a_kiosk_still_greeting_the_last_shopper_is_refused() -> None:
    shown = flips((0.0, 1.2, False), (1.2, 6.0, True))
    with pytest.raises(ApplianceError, match=r"arrival 2 at 5\.000 s: the kiosk still greeted"):
        greeting_latencies([1.0, 5.0], shown)


def test_an_arrival_never_greeted_before_the_next_one_is_refused() -> None:
    shown = flips((0.0, 5.5, False), (5.5, 6.0, True))
    with pytest.raises(ApplianceError, match=r"arrival 1 at 1\.000 s: the kiosk never greeted"):
        greeting_latencies([1.0, 5.0], shown)


def test_the_window_gives_cores_and_frames_shown_per_second() -> None:
    figures = window_figures(Reading(100.0, 50.0, 300), Reading(120.0, 55.0, 900))
    assert figures == {"seconds": 20.0, "cores": 0.25, "frames_shown_per_s": 30.0}
    with pytest.raises(ApplianceError, match="window is 0.000 s long"):
        window_figures(Reading(1.0, 0.0, 0), Reading(1.0, 0.0, 0))


def test_a_written_video_plays_back_its_frames_at_its_rate(tmp_path: Path) -> None:
    images = [np.full((72, 128, 3), shade, np.uint8) for shade in (0, 80, 160, 240)]
    path = tmp_path / "clip.avi"
    assert write_video(path, iter(images), 30.0) == 4
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == 30.0
    capture.release()
    back = list(video_frames(path, (64, 36)))
    assert [image.shape for image in back] == [(36, 64, 3)] * 4
    assert [int(image.mean()) for image in back] == pytest.approx([0, 80, 160, 240], abs=3)
    with pytest.raises(ApplianceError, match="no frames to write"):
        write_video(tmp_path / "none.avi", iter([]), 30.0)


def test_the_table_gives_latency_in_frame_periods_and_the_greetings() -> None:
    result = {"mode": "greet", "source": "clip", "seconds": 50.0, "cores": 0.2, "frames_shown_per_s": 29.9,
              "peak_rss_mb": 300.0, "frames_left_unconverted": 0, "greeting_ms": {"median": 310.0, "max": 420.0, "each": [300.0, 310.0, 420.0]},
              "stages_ms": {"latency": {"p50": 40.0, "p95": 60.0}},
              "latency_frame_periods": {"p50": 1.2, "p95": 1.8}}
    text = table(result)
    assert "greeting: median 310 ms, max 420 ms over 3 arrivals (300, 310, 420)" in text
    assert "capture to flip: p50 1.20, p95 1.80 frame periods" in text


def test_the_real_kiosk_runs_idle_for_a_second_and_reports(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    done = subprocess.run([sys.executable, "-m", "appliance.tools.kioskbench", "idle", "--seconds", "1",
                           "--warmup", "1", "--config", str(config), "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "idle" and result["cores"] > 0 and result["frames_shown_per_s"] > 0
    assert {"latency", "segmentation", "composite"} <= set(result["stages_ms"]) and result["peak_rss_mb"] > 0
    assert result["frames_left_unconverted"] == 0   # a still is no grabbing source: every frame is read
