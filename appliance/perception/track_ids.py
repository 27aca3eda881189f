"""What the pose and face trackers share: ids for what they track, the same while tracked and given back to
one found again soon, and the order they report in (largest first).

Invariants: a new track gets the next id, except when a track was lost less than ``REMEMBER_S`` ago
where the new one is (their boxes overlap by more than ``SAME_PLACE``, IoU): it gets that id back (a
missed frame does not renumber anyone); ids are never reused otherwise, across ``reset`` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from appliance.boxes import iou

Box = tuple[float, float, float, float]


class Sized(Protocol):
    @property
    def area(self) -> float: ...


S = TypeVar("S", bound=Sized)


def largest_first(items: list[S]) -> list[S]:
    """``items`` (poses, faces) by their area, largest first."""
    return sorted(items, key=lambda item: -item.area)

#: A lost track's id is given back to a track started this soon (s) in the same place.
REMEMBER_S = 1.0
#: Boxes overlapping this much (IoU) are the same place.
SAME_PLACE = 0.3


@dataclass(frozen=True)
class Lost:
    track_id: int
    box: Box
    at: float


class TrackIds:
    def __init__(self) -> None:
        self._lost: list[Lost] = []
        self._next_id = 1

    def lost(self, track_id: int, box: Box, at: float) -> None:
        """Track ``track_id`` was lost at ``at``, last seen at ``box``."""
        self._lost.append(Lost(track_id, box, at))

    def forget(self, now: float) -> None:
        """Lost tracks older than ``REMEMBER_S`` are no longer given back."""
        self._lost = [lost for lost in self._lost if now - lost.at <= REMEMBER_S]

    def assign(self, box: Box) -> int:
        """The id of a track starting at ``box``: a lost one's from the same place, else a new one."""
        again = max(self._lost, key=lambda lost: iou(lost.box, box), default=None)
        if again is not None and iou(again.box, box) > SAME_PLACE:
            self._lost.remove(again)
            return again.track_id
        track_id, self._next_id = self._next_id, self._next_id + 1
        return track_id

    def reset(self) -> None:
        """Nobody lost is remembered (ids go on from where they were)."""
        self._lost = []
