"""``fusion``: the shopper's face fused into the campaign star's poster, taken home by QR code and printed (the
engine in ``fusion``, the visit in ``scene`` on the photo booth's ``Booth``; the picture filed, shared and printed
by the kiosk's photo desk, ``Context.keepsakes.picture``)."""

from __future__ import annotations

from appliance.experience.api import API_VERSION, EVERY_FRAME, Card, Experience, Needs
from appliance.experiences.facefusion.config import FusionConfig
from appliance.experiences.facefusion.scene import FusionScene
from appliance.experiences.photobooth.keepsake_visit import KEYS


def card(config: FusionConfig) -> Card:
    return Card(config.card_title(), config.subtitle, icon=config.template)


experience = Experience(name="fusion", api=API_VERSION, scene=FusionScene, card=card,
                        needs=Needs(hands=EVERY_FRAME, face=EVERY_FRAME), config=FusionConfig, keys=KEYS,
                        offered="with_table", reads_screen=False)
