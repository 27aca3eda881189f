"""The ``[pose]`` table of a campaign: the star's poses, and how the game is paced and judged.

Invariants: every pose has the star's cut-out (a PNG asset) and the star's 33 landmarks in
it, each ``[x, y, visibility]`` with x and y as fractions of the picture's width and height
(``python -m appliance.ops star-pose`` writes them from a photo); a pose that cannot be
scored (its shoulders, and for the full body its hips, not seen) is refused at its key.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from appliance.experience.api import Asset, ExperienceConfig
from appliance.experiences.posegame.scoring import scorable

#: A game's poses when the campaign does not say.
ROUND_POSES = 3
Landmark = Annotated[list[Annotated[float, Field(ge=-1.0, le=2.0)]], Field(min_length=3, max_length=3)]


class StarPose(ExperienceConfig):
    image: Asset = Field(description="The star striking this pose: a PNG cut-out (alpha), relative to the bundle.")
    landmarks: list[Landmark] = Field(
        min_length=33, max_length=33,
        description="The star's 33 MediaPipe landmarks in the image: [x, y, visibility], x and y as fractions "
                    "of the image's width and height (from `python -m appliance.ops star-pose`).")
    name: str = Field("", max_length=24, description="What the pose is called on screen (optional).")

    @field_validator("landmarks")
    @classmethod
    def _visibility(cls, rows: list[list[float]]) -> list[list[float]]:
        for index, (_, _, visibility) in enumerate(rows):
            if not 0.0 <= visibility <= 1.0:
                raise ValueError(f"landmark {index}: visibility {visibility} is not within 0..1")
        return rows

    def points(self, size: tuple[int, int]) -> np.ndarray:
        """The landmarks in pixels of the picture drawn at ``size`` (w, h), with their visibility."""
        points = np.array(self.landmarks, np.float64)
        points[:, 0] *= size[0]
        points[:, 1] *= size[1]
        return points


class PoseConfig(ExperienceConfig):
    star_name: str = Field(min_length=1, max_length=24, description="The star's name, shown on screen.")
    legs: bool = Field(True, description="Score the legs and torso too (false: arms only, for screens that see "
                                         "shoppers from the waist up).")
    poses: list[StarPose] = Field(min_length=1, max_length=30, description="The star's poses ([[pose.poses]]).")
    poses_per_round: int | None = Field(None, ge=1, le=10, description="Poses in one game, taken from `poses`; "
                                        "absent: all of them, up to ROUND_POSES.")
    shuffle: bool = Field(True, description="Take a game's poses in a random order (false: the campaign's order).")
    seconds_per_pose: float = Field(10.0, ge=3.0, le=60.0, description="The countdown of each pose.")
    tolerance_deg: float = Field(
        25.0, ge=8.0, le=60.0,
        description="The difficulty: how many degrees a limb may be off the star's and still match "
                    "(35 easy, 25 normal, 15 hard).")
    intro_s: float = Field(4.0, ge=0.5, le=15.0, description="Seconds the game's introduction stays on screen.")
    star_happy_image: Asset | None = Field(None, description="The star pleased at the end (a good copy).")
    star_sad_image: Asset | None = Field(None, description="The star disappointed at the end (a poor copy).")

    @property
    def round_size(self) -> int:
        return self.poses_per_round if self.poses_per_round is not None else min(ROUND_POSES, len(self.poses))

    @field_validator("poses")
    @classmethod
    def _scorable(cls, poses: list[StarPose], info: ValidationInfo) -> list[StarPose]:
        legs = info.data.get("legs", True)
        for index, pose in enumerate(poses):
            problem = scorable(pose.points((1, 1)), legs)
            if problem is not None:
                raise ValueError(f"poses[{index}] cannot be scored{' with legs = true' if legs else ''}: {problem}")
        return poses

    @field_validator("poses_per_round")
    @classmethod
    def _enough(cls, count: int | None, info: ValidationInfo) -> int | None:
        given = len(info.data.get("poses", ()))
        if count is not None and "poses" in info.data and count > given:
            raise ValueError(f"{count} is more than the {given} pose(s) given")
        return count
