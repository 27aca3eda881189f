"""``pose``: copy the campaign's star's poses before each countdown ends, alone or two side by side
(the scoring in ``scoring``, the game in ``game``, drawn by ``scene``, configured by ``config``)."""

from __future__ import annotations

from appliance.experience.api import API_VERSION, Card, Experience, Needs
from appliance.experiences.posegame.config import PoseConfig
from appliance.experiences.posegame.scene import PoseScene

#: Pose runs a second: the skeleton follows the shopper smoothly and a pose held for half a second is
#: seen in several frames, at half the cost of every frame on a 30 fps camera.
POSE_RATE = 15


def card(config: PoseConfig) -> Card:
    return Card("Strike a pose", f"Copy {config.star_name}!", icon=config.poses[0].image)


experience = Experience(name="pose", api=API_VERSION, scene=PoseScene, card=card, needs=Needs(pose=POSE_RATE),
                        config=PoseConfig, offered="with_table", reads_screen=False)
