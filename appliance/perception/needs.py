"""What perception an experience asks for: which models, at what rate.

Invariants:

- ``Needs`` is a frozen value: the kiosk hands the current experience's needs to the
  perception thread through a latest-value slot; the thread reads it once per frame.
- Segmentation always runs while anything is shown (presence, the mirror and the
  layout come from its mask); ``segmentation=False`` only means the experience draws no
  person (the scheduler may then run it at a reduced rate for presence alone).
- A rate is in frames per second of the camera: ``EVERY_FRAME`` (the default for
  segmentation and hands) or a positive number (pose at 10 means at most ten pose runs a
  second); 0 is off.  Gestures come with hands.
- ``union`` is what two needs ask together (the larger rate of each model); it is how the
  kiosk joins the current experience's needs with its own (hands for navigation).
- ``age`` is guessed on the tracked faces, so it needs ``face`` on; ``gender`` (not a rate)
  adds the gender network to each age run, and without it the gender model is never loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EVERY_FRAME = math.inf
MODELS = ("segmentation", "hands", "pose", "face", "age")


@dataclass(frozen=True)
class Needs:
    segmentation: float = EVERY_FRAME
    hands: float = EVERY_FRAME
    pose: float = 0.0
    face: float = 0.0
    age: float = 0.0
    gender: bool = False

    def __post_init__(self) -> None:
        for model in MODELS:
            rate = getattr(self, model)
            if not (rate == EVERY_FRAME or (isinstance(rate, (int, float)) and 0 <= rate <= 240)):
                raise ValueError(f"needs {model}={rate!r}: 0 (off), a rate up to 240 per second, or EVERY_FRAME")
        if self.age > 0 and self.face <= 0:
            raise ValueError(f"needs age={self.age!r}: age is guessed on the tracked faces, so face must be on too")
        if self.gender and self.age <= 0:
            raise ValueError("needs gender=True: gender is guessed with age, so age must be on too")

    def union(self, other: Needs) -> Needs:
        return Needs(**{model: max(getattr(self, model), getattr(other, model)) for model in MODELS},
                     gender=self.gender or other.gender)

    def wants(self, model: str) -> bool:
        return getattr(self, model) > 0

    def describe(self) -> str:
        """``segmentation every frame, hands every frame, pose 10/s`` (only what is on)."""
        parts = []
        for model in MODELS:
            rate = getattr(self, model)
            if rate > 0:
                parts.append(f"{model} {'every frame' if rate == EVERY_FRAME else f'{rate:g}/s'}")
        if self.gender:
            parts.append("gender with age")
        return ", ".join(parts) or "nothing"
