"""The experience API's photo desk (since API 1.3): a photo of the shopper with the campaign's star, taken
home by QR code and printed — what a photo booth experience may ask of the kiosk.

Invariants (the kiosk's side, ``appliance.kiosk.keepsakes``, keeps them):

- ``take`` composes off the loop (a job): the sharpest of the last few camera frames at the camera's
  full resolution, the still matte, the world, the star, the frame; the result is on the device only.
- Nothing leaves the screen before ``keep`` (which an experience calls only after the shopper's
  explicit gesture on the finished photo and the notice): then the photo is uploaded and/or printed.
- ``link`` is given only once the upload is done (so the QR always works); ``can_share`` is false while
  the storage does not answer (say the photo will be printed, offer no QR).
- The device's copies are deleted once uploaded and printed, on ``discard``, and after the retention
  time whatever happens; a photo on screen is never in a fleet screenshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from appliance.experience.api import Face, Job


@dataclass(frozen=True)
class Keepsake:
    """A finished photo: its id (random), the screen version (BGR), and where the shopper and star are in it."""

    photo_id: str
    screen: np.ndarray
    person_box: tuple[int, int, int, int]
    star_box: tuple[int, int, int, int]
    timings_ms: dict[str, float]
    #: The campaign style it was painted in (a ``[photo] styles`` name), None for the original (since API 1.4).
    style: str | None = None


class Keepsakes(Protocol):
    def can_share(self) -> bool:
        """Sharing is set up and the storage answered lately."""

    def can_print(self) -> bool:
        """Printing is set up and the printer is fine."""

    def notice(self, template: str | None) -> str:
        """The one-line notice the shopper reads before consenting, true to this screen (since API 1.4):
        ``template`` (the campaign's) with ``{hours}`` (the link's) and ``{minutes}`` (the device's retention)
        filled in, or, without one, what this screen does with the photo (uploaded for how long, printed)."""

    def take(self, style: str | None = None) -> Job[Keepsake]:
        """The photo, composed off the loop for this campaign's ``[photo]`` table; with ``style`` (since API 1.4:
        one of the table's ``styles`` by name) painted in that style, the shopper's face kept recognisable."""

    def samples(self) -> Job[dict[str, np.ndarray]]:
        """Each of the campaign's styles painted on a small picture of its world and star (BGR, for
        ``Canvas.picture``), by name, and the picture itself as "Original"; made off the loop (since API 1.4)."""

    def picture(self, make: Callable[[], np.ndarray]) -> Job[Keepsake]:
        """The experience's own finished picture (since API 1.4: a face fused into the star's poster): ``make``
        runs off the loop and returns it (BGR uint8); it is then a keepsake like a photo — on the device only,
        kept, shared and printed with the shopper's consent (``keep``), deleted as a photo is."""

    def faces(self, image: np.ndarray) -> tuple[Face, ...]:
        """The faces of a still (BGR), both face detectors and the mesh, largest first; slow: call it in a job
        (since API 1.4: the face of a poster, the shopper's face in the chosen frame)."""

    def cancel(self, job: Job[Keepsake]) -> None:
        """The photo ``take`` is making is no longer wanted (the shopper left while it was composed): it is
        deleted as soon as it is made (since API 1.4)."""

    def keep(self, keepsake: Keepsake, share: bool, print: bool) -> None:
        """After the shopper's consent: upload (``share``) and print (``print``); never blocks.  Raises
        ``ApplianceError`` when the photo is no longer on the device (past the retention): say so and retake."""

    def link(self, keepsake: Keepsake) -> str | None:
        """The take-home link once the upload is done (None before, or when not shared)."""

    def qr(self, link: str, size: int) -> np.ndarray:
        """A QR code of ``link``, ``size`` pixels square with its quiet zone, as a BGR image for ``Canvas.picture``."""

    def print_status(self, keepsake: Keepsake) -> str | None:
        """The printer's line for the shopper ("printing…", "printed: take your photo below", …) or None."""

    def discard(self, keepsake: Keepsake) -> None:
        """The photo is no longer needed on screen (its uploads and prints go on if kept)."""

    def private(self, on: bool) -> Any:
        """While on, the screen shows a shopper's photo: fleet screenshots get a blank screen instead."""
