"""How much perception a board affords: the full schedule, or the one for a board that runs its models on the CPU.

Invariants:

- A profile only ever lowers what an experience asks (``cap``): each model's rate is
  the smaller of the experience's and the profile's cap, so an experience never needs
  to know the board, and a model the experience left off stays off.
- ``full`` changes nothing: every model at the rate asked, two hand-search windows a
  frame while no hand is tracked.
- ``cpu-board`` (an RK3399: no NPU, two Cortex-A72 and four A53 cores) keeps the
  shopper's picture live and trims the rest: segmentation every frame; hands at most
  ``HANDS_RATE`` a second (every third frame of a 30 fps camera) and one search
  window a frame; pose and face at most 5 a second; age at most once a second.
  Gestures and swipes are judged on the capture clock, so a lower hands rate keeps
  their timing.  The hand models stay the full ones: the lite landmark model costs
  half as much but found the kiosk video's hand in 0.671 of its frames at 0.6 of
  its size, against 0.988 (one search window a frame changed nothing).
- ``auto`` is ``cpu-board`` on a board whose SoC is known and has no RKNN NPU, and
  ``full`` everywhere else (x86 machines, NPU boards).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ApplianceError
from appliance.inference.soc import has_rknn_npu
from appliance.perception.needs import EVERY_FRAME, MODELS, Needs

#: Hands on a CPU board: every third frame of a 30 fps camera.
HANDS_RATE = 10.0


@dataclass(frozen=True)
class Profile:
    name: str
    caps: Needs                       # the most each model may run (a rate per model)
    search_windows: int = 2           # hand-search windows a frame while no hand is tracked

    def cap(self, needs: Needs) -> Needs:
        """``needs`` with no model above this profile's rate for it."""
        return Needs(**{model: min(getattr(needs, model), getattr(self.caps, model)) for model in MODELS},
                     gender=needs.gender)

    def describe(self) -> str:
        """``cpu-board: at most segmentation every frame, hands 10/s, … (1 hand-search window(s) a frame …)``."""
        return (f"{self.name}: at most {self.caps.describe()} ({self.search_windows} hand-search window(s) "
                "a frame while no hand is tracked)")


FULL = Profile("full", Needs(EVERY_FRAME, EVERY_FRAME, EVERY_FRAME, EVERY_FRAME, EVERY_FRAME))
CPU_BOARD = Profile("cpu-board", Needs(segmentation=EVERY_FRAME, hands=HANDS_RATE, pose=5.0, face=5.0, age=1.0),
                    search_windows=1)
PROFILES = {profile.name: profile for profile in (FULL, CPU_BOARD)}
CHOICES = ("auto", *PROFILES)


def choose(setting: str, soc: str | None) -> Profile:
    """The profile ``[inference] profile`` names; ``auto`` picks by the board's SoC (``soc``: None off a board)."""
    if setting == "auto":
        return CPU_BOARD if soc is not None and not has_rknn_npu(soc) else FULL
    try:
        return PROFILES[setting]
    except KeyError:
        raise ApplianceError(f"unknown perception profile {setting!r} (known: {', '.join(CHOICES)})") from None
