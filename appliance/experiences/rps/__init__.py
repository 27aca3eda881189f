"""``rps``: rock–paper–scissors against the campaign's star (the game in ``game``, drawn by ``scene``)."""

from __future__ import annotations

from appliance.experience.api import API_VERSION, Card, Experience, Needs
from appliance.experiences.rps.config import RpsConfig
from appliance.experiences.rps.scene import KEYS, RpsScene


def card(config: RpsConfig) -> Card:
    return Card("Rock · Paper · Scissors", f"Beat {config.star_name}!", icon=config.star_image)


experience = Experience(name="rps", api=API_VERSION, scene=RpsScene, card=card, needs=Needs(), config=RpsConfig,
                        keys=KEYS, offered="with_table", reads_screen=False)
