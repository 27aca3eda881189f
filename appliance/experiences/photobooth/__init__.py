"""``photo``: a photo with the campaign's star, taken home by QR code and printed (the visit in ``booth``,
drawn by ``scene``; the photo, upload and print are the kiosk's photo desk, ``Context.keepsakes``)."""

from __future__ import annotations

from appliance.experience.api import API_VERSION, EVERY_FRAME, Card, Experience, Needs
from appliance.experience.photo import PhotoConfig
from appliance.experiences.photobooth.keepsake_visit import KEYS
from appliance.experiences.photobooth.scene import BoothScene


def card(config: PhotoConfig) -> Card:
    return Card(config.title, config.subtitle, icon=config.star)


experience = Experience(name="photo", api=API_VERSION, scene=BoothScene, card=card,
                        needs=Needs(hands=EVERY_FRAME, pose=5, face=10), config=PhotoConfig, keys=KEYS, offered="with_table",
                        reads_screen=False)
