"""``age``: "AI guesses your age" — the shopper in the campaign's world, a playful age band beside each face
(the run in ``session``, drawn by ``scene``, configured by ``config``).

Faces at 10 a second (the labels follow them), age guessed 3 times a second per face (smoothed over
its last guesses by perception), gender only when the campaign's ``[age] gender`` asks.
"""

from __future__ import annotations

from appliance.experience.api import API_VERSION, Card, Experience, Needs
from appliance.experiences.age.config import AgeConfig
from appliance.experiences.age.scene import AgeScene

FACE_RATE, AGE_RATE = 10, 3


def needs(config: AgeConfig | None) -> Needs:
    return Needs(face=FACE_RATE, age=AGE_RATE, gender=config is not None and config.gender)


experience = Experience(name="age", api=API_VERSION, scene=AgeScene,
                        card=lambda config: Card("AI guesses your age", "How old do you look?", live=True),
                        needs=needs(None), config=AgeConfig, needs_of=needs, reads_screen=False)
