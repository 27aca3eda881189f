"""The age experience in the real kiosk (headless, real models and threads): a real face gets its band on
screen, and what leaves the kiosk is the run's event and, opted in, the hour's counts; no log line and no
event says the shopper's age or gender."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pygame
import pytest
from bundles import offering

from appliance.compose import kiosk_session
from appliance.config import Config
from appliance.kiosk.display import DisplayMode


def key(name: int) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=name, mod=0)


def test_a_real_face_gets_a_band_and_only_counts_leave_the_kiosk(astronaut_file: Path, content_dir: Path,
                                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = offering(content_dir, tmp_path / "bundle", '["age"]', "\n[age]\ngender = true\nguesses = 3\n",
                      without=("age",))
    config = Config.model_validate({"source": {"uri": f"image:{astronaut_file}"},
                                    "display": {"width": 960, "height": 540}, "kiosk": {"content": str(bundle)},
                                    "audience": {"counts": True, "gender": True}})
    caplog.set_level(logging.DEBUG)
    with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
        def on_event(event) -> None:
            if event.type == "session_start":
                pygame.event.post(key(pygame.K_RETURN))          # the menu's only offer: age
            elif event.type == "experience_chosen":
                pygame.time.set_timer(key(pygame.K_BACKSPACE), 5000, loops=1)
            elif event.type == "age_played":
                kiosk.stop()

        kiosk.events.subscribe(on_event)
        pygame.time.set_timer(pygame.QUIT, 60_000, loops=1)
        try:
            kiosk.run()
        finally:
            pygame.time.set_timer(pygame.KEYDOWN, 0)
            pygame.time.set_timer(pygame.QUIT, 0)
    published = {event.type: event.data for event in kiosk.events.drain(100)}
    assert set(published) == {"session_start", "experience_chosen", "age_played", "audience_hour"}, published
    played, hour = published["age_played"], published["audience_hour"]
    assert set(played) == {"session", "campaign", "duration_s", "faces", "reason"}
    assert played["faces"] == 1 and played["reason"] == "key" and played["duration_s"] >= 4
    assert set(hour) == {"hour", "faces", "bands", "genders"} and hour["faces"] == 1
    assert hour["genders"] == {"female": 1}
    (band,) = hour["bands"]
    assert band in ("25-35", "30-40") and hour["bands"][band] == 1
    individual = json.dumps([data for kind, data in published.items() if kind != "audience_hour"])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in (individual, logged):   # no gender, no band, no number an age of about 33 could be
        assert not re.search(rf"female|\bmale\b|{band}|(?<![\w.])(2[5-9]|3[0-9]|4[0-2])(\.[0-9]+)?(?![\w.])", text), text
