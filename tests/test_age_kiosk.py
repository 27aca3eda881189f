"""The age experience in the real kiosk (headless, real models and threads): a real face gets its band on
screen, and what leaves the kiosk is the run's event; one face is fewer than the audience counts' K, so
even opted in no count of it leaves.  No log line and no event says the shopper's age or gender."""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import pygame
import pytest
from bundles import offering

from appliance.compose import kiosk_session
from appliance.config import Config
from appliance.kiosk.display import DisplayMode

GUESSES = 3


def key(name: int) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=name, mod=0)


def test_a_real_face_gets_a_band_and_nothing_individual_leaves_the_kiosk(
        astronaut_file: Path, content_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle = offering(content_dir, tmp_path / "bundle", '["age"]', f"\n[age]\ngender = true\nguesses = {GUESSES}\n",
                      without=("age",))
    config = Config.model_validate({"source": {"uri": f"image:{astronaut_file}"},
                                    "display": {"width": 960, "height": 540}, "kiosk": {"content": str(bundle)},
                                    "audience": {"counts": True, "gender": True}})
    caplog.set_level(logging.DEBUG)
    done = threading.Event()
    with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
        def back_once_labelled() -> None:
            """Backspace once a frame the kiosk used has the face's label ready (polled, no timer)."""
            while not done.wait(0.05):
                perception = kiosk._frame_perception
                if perception is not None and any(face.age is not None and face.age.guesses >= GUESSES
                                                  for face in perception.faces):
                    pygame.event.post(key(pygame.K_BACKSPACE))
                    return

        def on_event(event) -> None:
            if event.type == "session_start":
                pygame.event.post(key(pygame.K_RETURN))          # the menu's only offer: age
            elif event.type == "experience_chosen":
                threading.Thread(target=back_once_labelled, daemon=True).start()
            elif event.type == "age_played":
                kiosk.stop()

        kiosk.events.subscribe(on_event)
        pygame.time.set_timer(pygame.QUIT, 120_000, loops=1)     # a safety net, never reached when it works
        try:
            kiosk.run()
        finally:
            done.set()
            pygame.time.set_timer(pygame.QUIT, 0)
    published = [(event.type, event.data) for event in kiosk.events.drain(100)]
    assert [kind for kind, _ in published] == ["session_start", "experience_chosen", "age_played"], published
    played = published[2][1]
    assert set(played) == {"session", "campaign", "duration_s", "faces", "reason"}
    assert played["faces"] == 1 and played["reason"] == "key" and played["duration_s"] >= 0
    said = json.dumps([data for _, data in published]) + "\n".join(record.getMessage() for record in caplog.records)
    # no gender, no band (the screen's or the audience's), no number an age of about 33 could be
    assert not re.search(r"female|\bmale\b|25-35|30-40|18-29|30-44|(?<![\w.])(2[5-9]|3[0-9]|4[0-2])(\.[0-9]+)?(?![\w.])",
                         said), said
