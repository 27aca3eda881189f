"""How much perception a board affords: the full schedule, or the one for a board that runs its models on the CPU.

Invariants:

- A profile only ever lowers what an experience asks (``cap``): each model's rate is
  the smaller of the experience's and the profile's cap, so an experience never needs
  to know the board, and a model the experience left off stays off.
- ``full`` changes nothing: every model at the rate asked, two hand-search windows a
  frame while no hand is tracked.
- ``cpu-board`` (an RK3399: no NPU, two Cortex-A72 and four A53 cores) keeps what
  the shopper sees and plays with at full rate and trims the rest: segmentation and
  hands every frame, one hand-search window a frame while no hand is tracked (the
  palm detector is the dearest model of a frame), pose and face at most 5 a second,
  age at most once a second.  Measured on the devset's kiosk video (hand frames
  with a hand found at 1.0 / 0.6 / 0.4 / 0.3 of its size): every frame with one
  search window 1.000 / 0.988 / 1.000 / 1.000, as with two; hands every second frame
  0.976 / 0.476 / 0.869 / 0.869, with a false ``point`` held and the thumb missed
  (tracking loses a moving hand over the gap, and a gesture is held over frames);
  the lite landmark model (half the cost) 1.000 / 0.671 / 1.000 / 1.000.  So hands
  keep every frame and the full models.
- ``auto`` is ``cpu-board`` on a board whose SoC is known and has no RKNN NPU, and
  ``full`` everywhere else (x86 machines, NPU boards).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ApplianceError
from appliance.inference.soc import has_rknn_npu
from appliance.perception.needs import EVERY_FRAME, MODELS, Needs


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
        """``cpu-board: at most …, pose 5/s, … (1 hand-search window a frame while no hand is tracked)``."""
        uncapped = all(getattr(self.caps, model) == EVERY_FRAME for model in MODELS)
        rates = "every model as often as the experience asks" if uncapped else f"at most {self.caps.describe()}"
        windows = f"{self.search_windows} hand-search window{'s' if self.search_windows > 1 else ''}"
        return f"{self.name}: {rates} ({windows} a frame while no hand is tracked)"


FULL = Profile("full", Needs(EVERY_FRAME, EVERY_FRAME, EVERY_FRAME, EVERY_FRAME, EVERY_FRAME))
CPU_BOARD = Profile("cpu-board", Needs(segmentation=EVERY_FRAME, hands=EVERY_FRAME, pose=5.0, face=5.0, age=1.0),
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
