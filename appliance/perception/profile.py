"""How much perception a board affords: the full schedule, or the one for a board that runs its models on the CPU.

Invariants:

- A profile only ever lowers what an experience asks (``cap``): each model's rate is
  the smaller of the experience's and the profile's cap, so an experience never needs
  to know the board, and a model the experience left off stays off.
- ``full`` changes nothing: every model at the rate asked, two hand-search windows a
  frame while no hand is tracked.
- ``cpu-board`` (an RK3399: no NPU, two Cortex-A72 and four A53 cores; the README's
  "On the boards" estimates each A72 at about 6 times slower than one core of the
  development machine, from published single-thread figures) keeps what the games
  need and trims the rest, every choice measured on the devset's kiosk video with
  ``make eval-hands PROFILE=…`` (hand frames with a hand found at 1.0 / 0.6 / 0.4 /
  0.3 of its size, and the gestures held):

  - segmentation and hands every frame, each in its own lane (a thread of its own,
    so the two big cores can take one each).  Hands every second frame instead (an
    experiment, not a profile) lost the moving hand (0.976 / 0.476 / 0.869 / 0.869,
    a false ``point`` held, the thumb missed).
  - one hand-search window on at most 5 frames a second while no hand is tracked
    (the palm detector is the dearest model: a search on every frame would take
    every frame's time); a raised hand is found a frame or two later: 0.988 at every
    size, rock and thumb-up held at every size.
  - pose and face at most 5 a second, age at most once a second.
  - one inference thread a model unless ``[inference] threads`` says otherwise (a
    lane's model then stays on the lane's core instead of waiting on a little one).
- ``cpu-board-lite`` is ``cpu-board`` with the lite hand landmark model: the hands
  stage at about 0.7 of the CPU time (``make bench-cpu-board``), at a measured price:
  0.988 / 0.617 / 0.988 / 0.988, and at 0.6 of the size the rock was never held.  It
  is there for the operator to choose; ``auto`` never picks it.
- ``npu-board`` is ``full`` with a lane per stage: on an RK3588 each stage's models
  run on their own NPU core (``[inference.models.<name>] core_mask``) and the stages'
  CPU work (pre-processing, decoding, the matte) overlaps too, which should pay even
  on a one-core NPU (estimated with a stand-in NPU: ``make bench-npu``).
- ``auto`` is ``npu-board`` on a board with an RKNN NPU, ``cpu-board`` on a board
  whose SoC is known and has none (an RK3399), and ``full`` elsewhere (x86 machines:
  two cores, where lanes only compete).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from appliance.errors import ApplianceError
from appliance.inference.soc import has_rknn_npu
from appliance.perception.hands import LANDMARK_MODEL, LITE_LANDMARK_MODEL
from appliance.perception.needs import EVERY_FRAME, MODELS, Needs


@dataclass(frozen=True)
class Profile:
    name: str
    caps: Needs                       # the most each model may run (a rate per model)
    hand_landmark: str = LANDMARK_MODEL
    search_windows: int = 2           # hand-search windows a frame while no hand is tracked...
    search_rate: float = EVERY_FRAME  # ...on at most this many frames a second
    lanes: bool = False               # each stage in its own thread (its own core), whatever [inference] parallel says
    threads: int | None = None        # inference threads a model when [inference] threads is left out

    def cap(self, needs: Needs) -> Needs:
        """``needs`` with no model above this profile's rate for it."""
        return Needs(**{model: min(getattr(needs, model), getattr(self.caps, model)) for model in MODELS},
                     gender=needs.gender)

    def describe(self) -> str:
        """``cpu-board: at most …, pose 5/s, … (hand_landmark_lite; 1 hand-search window on at most 5 frames a
        second while no hand is tracked; a lane per stage)``."""
        uncapped = all(getattr(self.caps, model) == EVERY_FRAME for model in MODELS)
        rates = "every model as often as the experience asks" if uncapped else f"at most {self.caps.describe()}"
        windows = f"{self.search_windows} hand-search window{'s' if self.search_windows > 1 else ''} on " + (
            "every frame" if self.search_rate == EVERY_FRAME else f"at most {self.search_rate:g} frames a second")
        lanes = "; a lane per stage" if self.lanes else ""
        lanes += f"; {self.threads} inference thread a model" if self.threads else ""
        return f"{self.name}: {rates} ({self.hand_landmark}; {windows} while no hand is tracked{lanes})"


FULL = Profile("full", Needs(EVERY_FRAME, EVERY_FRAME, EVERY_FRAME, EVERY_FRAME, EVERY_FRAME))
CPU_BOARD = Profile("cpu-board", Needs(segmentation=EVERY_FRAME, hands=EVERY_FRAME, pose=5.0, face=5.0, age=1.0),
                    search_windows=1, search_rate=5.0, lanes=True, threads=1)
CPU_BOARD_LITE = replace(CPU_BOARD, name="cpu-board-lite", hand_landmark=LITE_LANDMARK_MODEL)
NPU_BOARD = replace(FULL, name="npu-board", lanes=True)
PROFILES = {profile.name: profile for profile in (FULL, NPU_BOARD, CPU_BOARD, CPU_BOARD_LITE)}
CHOICES = ("auto", *PROFILES)


def choose(setting: str, soc: str | None) -> Profile:
    """The profile ``[inference] profile`` names; ``auto`` picks by the board's SoC (``soc``: None off a board)."""
    if setting == "auto":
        if has_rknn_npu(soc):
            return NPU_BOARD
        return FULL if soc is None else CPU_BOARD
    try:
        return PROFILES[setting]
    except KeyError:
        raise ApplianceError(f"unknown perception profile {setting!r} (known: {', '.join(CHOICES)})") from None
