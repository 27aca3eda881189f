"""One run of "AI guesses your age" as a pure state machine, the clock an argument.

Invariants: a face's label is "thinking" until its track has ``guesses`` guesses, then its band's
label (a word for a child or a teenager, never a number; gender only when the campaign asks); the run
ends at ``play_s`` or when the shopper asks (``end``), and publishes one ``age_played`` event with its
duration, the faces that got a label and why it ended: never an individual's age, band or gender.
Nothing about a face outlives the frame it came with but the count of tracks labelled, which
``update`` keeps (``labels`` is pure: what is counted does not depend on drawing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.experience.api import Face
from appliance.experiences.age.config import AgeConfig

#: Faces labelled at once (the largest: nearest the screen).
MAX_SHOWN = 4


@dataclass(frozen=True)
class Label:
    face: Face
    lines: tuple[str, ...]
    ready: bool       # false while thinking


class AgeSession:
    def __init__(self, config: AgeConfig, publish: Callable[[str, Mapping[str, Any]], None], now: float) -> None:
        self.config, self.publish, self.started = config, publish, now
        self.ended: str | None = None
        self._labelled: set[int] = set()

    def update(self, now: float, faces: Sequence[Face] = ()) -> None:
        """This frame's ``faces`` (largest first): the tracks whose label is ready are counted; time up ends."""
        if self.ended is not None:
            return
        self._labelled.update(face.track_id for face in faces[:MAX_SHOWN] if face.track_id and self._ready(face))
        if now - self.started >= self.config.play_s:
            self.end(now, "timeout")

    def _ready(self, face: Face) -> bool:
        return face.age is not None and face.age.guesses >= self.config.guesses

    def labels(self, faces: Sequence[Face]) -> list[Label]:
        """The labels of the largest ``MAX_SHOWN`` faces, in their order (pure: drawing changes nothing)."""
        labels = []
        for face in faces[:MAX_SHOWN]:
            estimate = face.age
            if estimate is None or not self._ready(face):
                labels.append(Label(face, (self.config.thinking,), False))
                continue
            config = self.config
            band = {"kid": config.kid, "teen": config.teen}.get(estimate.band, config.looks.format(band=estimate.band))
            lines = (band,)
            if config.gender and estimate.gender is not None:
                lines += (config.woman if estimate.gender == "female" else config.man,)
            labels.append(Label(face, lines, True))
        return labels

    def end(self, now: float, reason: str) -> None:
        """Once: the run's event (how long, how many faces got a label, why it ended)."""
        if self.ended is not None:
            return
        self.ended = reason
        self.publish("age_played", {"duration_s": round(now - self.started, 1), "faces": len(self._labelled),
                                    "reason": reason})
        self._labelled.clear()
