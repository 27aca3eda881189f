"""The kiosk's photo desk (``appliance.experience.keepsake.Keepsakes``): photos composed off the loop, kept
only with the shopper's consent, taken home by QR and printed, and never kept longer than needed.

Invariants:

- ``remember`` (the loop, every fresh frame) keeps the last ``RECENT`` perceptions; ``take`` picks the
  sharpest of those that show the most person (variance of the Laplacian inside the person's box) and
  composes it in a job (``appliance.photo``), writing the print JPEG to ``photos_dir`` (mode 0600).  When
  the source photographs larger than it films (``stills``: a camera's still mode), the job asks it for a
  burst of ``STILL_BURST`` and composes the sharpest inside the chosen frame's person box instead; a
  source that fails the burst leaves the chosen live frame, said in the log.
- A photo asked for in a campaign style is painted in the same job (``compose``'s ``style``), after the
  composition; its keepsake names the style.  The styles' samples are painted in a job of their own.
- Nothing is uploaded or printed before ``keep``.  ``link`` is given only once the upload is done.
- Events: ``photo_shared`` when an upload is done (one that ended after a restart too: the uploader keeps
  the campaign and session with the job), ``photo_printed`` / ``print_failed`` when the print ends (one
  from before a restart too: so does the printer), each with the campaign and the session that was current
  at ``keep``; published on the loop (``tick``), never from the uploader's or the printer's thread.
- Logs and errors name a photo by its ``photo_tag``, never its id (with a short link, the link's secret).
- The device's copy is deleted once every kept use of it is over (uploaded, printed), on ``discard`` of a
  photo not kept, and ``retention_s`` after it was taken whatever happens (``tick``); what the screen shows
  of it (its link, the print's status) stays until the scene lets it go (``discard``) or the retention.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.boxes import mask_box, sharpness
from appliance.digest import photo_tag
from appliance.errors import ApplianceError, one_line
from appliance.experience.api import Job, Perception
from appliance.experience.keepsake import Keepsake
from appliance.perception.face import EYES_OPEN
from appliance.share import new_photo_id, qr_image
from appliance.sources.base import Frame

log = logging.getLogger(__name__)

#: How many of the last camera frames the best photo is picked from.
RECENT = 6
#: The screen version's long side and the JPEG quality of an experience's own picture (``make_picture``).
SCREEN_LONG_SIDE_PX = 1280
PICTURE_JPEG_QUALITY = 92
#: How many full-resolution stills the best photo is picked from, when the source has a still mode.
STILL_BURST = 3


@dataclass
class _Kept:
    path: Path
    taken_at: float
    share: bool = False
    print: bool = False
    shared: bool = False
    printed: bool = False
    ticket: Any = None
    shown: bool = True     # on screen: its link and print status stay until the scene lets it go (``discard``)
    deleted: bool = False  # the device's copy is gone (every kept use of it over)


def best_frame(recent: list[Perception]) -> Perception:
    """The sharpest of the frames that show nearly the most person, preferring those where the person is fully
    in (their mask touches neither side nor the top of the frame), then those where every face known has its
    eyes open (frames without faces are not judged on eyes)."""
    most = max(perception.coverage for perception in recent)
    candidates = [perception for perception in recent if perception.coverage >= 0.9 * most]
    candidates = [perception for perception in candidates if _fully_in(perception.alpha)] or candidates
    open_eyes = [perception for perception in candidates
                 if all(face.eye_openness() >= EYES_OPEN for face in perception.faces)]
    return max(open_eyes or candidates,
               key=lambda perception: sharpness(perception.frame.image, mask_box(perception.alpha >= 128)))


def _fully_in(alpha: np.ndarray) -> bool:
    person = alpha >= 128
    return not (person[0].any() or person[:, 0].any() or person[:, -1].any())


@dataclass
class KioskKeepsakes:
    """One kiosk's photo desk.  ``compose(bundle, world_id, frame, pose, style)`` makes an
    ``appliance.photo.compose.Photo`` (in a job), painted in the campaign style named ``style`` unless None;
    ``samples(bundle, world_id)`` paints the campaign's styles on a small sample (in a job); the kiosk
    ``attach``-es what it knows (its events, the session, the campaign and world shown)."""

    compose: Callable[[Any, str, np.ndarray, Any, str | None], Any]
    photos_dir: Path
    samples: Callable[[Any, str], dict[str, np.ndarray]] = field(default=lambda bundle, world: {})
    #: Start the uploader and the printer (appliance.share.ShareService / appliance.printing.PrintService, or
    #: None when off): at the kiosk's start, so what an earlier run queued is uploaded, followed or expired.
    start_share: Callable[[], Any] = field(default=lambda: None)
    start_printer: Callable[[Callable[[str, Any, dict[str, str | None]], None]], Any] = field(
        default=lambda outcome: None)
    retention_s: float = 600.0
    #: A still's faces (perception's still face stage), for experiences' jobs (``Keepsakes.faces``).
    find_faces: Callable[[np.ndarray], tuple[Any, ...]] = field(default=lambda image: ())
    #: The source's full-resolution burst (``CaptureThread.still``), None when its photos are its live frames.
    stills: Callable[[int], list[Frame]] | None = None
    new_id: Callable[[], str] = new_photo_id
    share: Any = None
    printer: Any = None
    _started: bool = False
    clock: Callable[[], float] = time.monotonic
    private_on: bool = False
    _recent: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    _kept: dict[str, _Kept] = field(default_factory=dict)
    _outcomes: list[tuple[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        """Photos a crash or a power cut left behind are deleted at start: none outlives its visit."""
        left = list(self.photos_dir.glob("*.jpg")) if self.photos_dir.is_dir() else []
        for path in left:
            path.unlink(missing_ok=True)
        if left:
            log.warning("deleted %d photo(s) left on the device by an earlier run", len(left))
    publish: Callable[[str, dict[str, Any]], None] = field(default=lambda type, data: None)
    session: Callable[[], str | None] = field(default=lambda: None)
    place: Callable[[], tuple[Any, str]] = field(default=lambda: (None, ""))

    def attach(self, publish: Callable[[str, dict[str, Any]], None], session: Callable[[], str | None],
               place: Callable[[], tuple[Any, str]]) -> None:
        """The kiosk's events bus, its current session, and the bundle and world id shown now."""
        self.publish, self.session, self.place = publish, session, place

    def campaign(self) -> str:
        bundle, _ = self.place()
        return getattr(bundle, "name", "")

    # -- the loop's side --------------------------------------------------------------------------------

    def remember(self, perception: Perception) -> None:
        self._recent.append(perception)

    def printed(self, photo_id: str, status: Any, labels: dict[str, str | None]) -> None:
        """The printer's outcome (its thread; a print from before a restart too): handed to the loop's ``tick``."""
        with self._lock:
            self._outcomes.append((photo_id, status, labels))

    def tick(self) -> None:
        """On the loop: the events of uploads and prints that ended, and the copies no longer needed."""
        self._publish_prints()
        for photo_id, labels in self.share.to_announce() if self.share is not None else ():
            self.publish("photo_shared", {"session": labels.get("session"), "campaign": labels.get("campaign") or "",
                                          "photo_id": photo_id})
            self.share.announced(photo_id)
            with self._lock:
                kept = self._kept.get(photo_id)
            if kept is not None:
                kept.shared = True
        now = self.clock()
        with self._lock:
            kept_now = list(self._kept.items())
        for photo_id, kept in kept_now:
            over = (not kept.share or kept.shared) and (not kept.print or kept.printed) and (kept.share or kept.print)
            if over and not kept.deleted:   # the device's copy goes as soon as nothing needs it (once, not per frame)
                kept.path.unlink(missing_ok=True)
                kept.deleted = True
            if (over and not kept.shown) or now - kept.taken_at >= self.retention_s:
                self._forget(photo_id)

    def _publish_prints(self) -> None:
        """The events of the prints that ended (the printer's outcomes since the last call)."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        for photo_id, status, labels in outcomes:
            with self._lock:
                kept = self._kept.get(photo_id)
            if kept is not None:
                kept.printed = True
            ok = getattr(status, "state", "") == "printed"
            data = {"session": labels.get("session"), "campaign": labels.get("campaign") or "", "photo_id": photo_id}
            self.publish("photo_printed" if ok else "print_failed",
                         data if ok else {**data, "reason": getattr(status, "reason", "") or ""})

    def _forget(self, photo_id: str) -> None:
        with self._lock:
            kept = self._kept.pop(photo_id, None)
        if kept is not None:
            kept.path.unlink(missing_ok=True)
            if self.printer is not None:
                self.printer.forget(photo_id)

    # -- the experiences' side (through ``for_jobs``) -------------------------------------------------------

    def for_jobs(self, submit: Callable[[Callable[[], Any], str], Job[Any]]) -> ExperienceKeepsakes:
        return ExperienceKeepsakes(self, submit)

    def make(self, recent: list[Perception], place: tuple[Any, str], asked_at: float | None = None,
             style: str | None = None) -> Keepsake:
        """In a job: the best of ``recent`` (the frames when it was asked for) composed for ``place`` (the
        bundle and world shown then), painted in ``style`` when given, written to ``photos_dir``.  Its timings
        are the composition's steps (``style`` among them when painted),
        ``still`` (the burst, with a still mode) and ``total``: from ``asked_at`` (the loop's ``time.monotonic``
        when the photo was asked for; else this call) to the photo written, the campaign's desk made at its
        first photo included."""
        started = time.monotonic() if asked_at is None else asked_at
        self.start()
        if not recent:
            raise ApplianceError("no camera frame to take a photo of")
        chosen = best_frame(recent)
        image, pose = chosen.frame.image, chosen.poses[0] if chosen.poses else None
        timings: dict[str, float] = {}
        if self.stills is not None:
            burst_at = time.monotonic()
            image, pose = self._still(chosen, pose)
            timings["still"] = round((time.monotonic() - burst_at) * 1000, 1)
        bundle, world = place
        photo = self.compose(bundle, world, image, pose, style)
        timings = {**photo.timings_ms, **timings, "compose": photo.timings_ms.get("total", 0.0)}
        photo_id = self._file(photo.jpeg)
        timings["total"] = round((time.monotonic() - started) * 1000, 1)
        return Keepsake(photo_id, photo.screen, photo.person_box, photo.star_box, timings, style)

    def make_picture(self, make: Callable[[], np.ndarray], screen_long_side: int = SCREEN_LONG_SIDE_PX,
                     quality: int = PICTURE_JPEG_QUALITY) -> Keepsake:
        """In a job: the picture ``make`` returns (BGR uint8, an experience's own: a face fused into a poster)
        filed like a photo, kept, shared and printed only as a photo is; the whole picture is its "person"."""
        started = time.monotonic()
        self.start()
        picture = make()
        if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
            raise ApplianceError(f"a picture is BGR uint8 HxWx3, got {picture.dtype} {picture.shape}")
        ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ApplianceError("the picture could not be encoded as JPEG")
        height, width = picture.shape[:2]
        scale = min(1.0, screen_long_side / max(width, height))
        screen = cv2.resize(picture, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        photo_id = self._file(encoded.tobytes())
        return Keepsake(photo_id, screen, (0, 0, width, height), (0, 0, 0, 0),
                        {"total": round((time.monotonic() - started) * 1000, 1)})

    def _file(self, jpeg: bytes) -> str:
        """``jpeg`` written to ``photos_dir`` (0600) under a new photo id, known to the desk from now."""
        photo_id = self.new_id()
        self.photos_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.photos_dir / f"{photo_id}.jpg"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(jpeg)
        with self._lock:
            self._kept[photo_id] = _Kept(path, self.clock())
        return photo_id

    def _still(self, chosen: Perception, pose: Any) -> tuple[np.ndarray, Any]:
        """The sharpest of a full-resolution burst inside ``chosen``'s person box, with ``pose`` scaled to it;
        ``chosen``'s own frame and pose when the source fails the burst."""
        try:
            burst = self.stills(STILL_BURST)
        except ApplianceError as exc:
            log.warning("no full-resolution photo (%s): the photo is the live frame", one_line(exc))
            return chosen.frame.image, pose
        (still_w, still_h), (live_w, live_h) = burst[0].size, chosen.frame.size
        scale_x, scale_y = still_w / live_w, still_h / live_h
        box = mask_box(chosen.alpha >= 128)
        if box is not None:
            x, y, w, h = box
            box = (round(x * scale_x), round(y * scale_y), round(w * scale_x), round(h * scale_y))
        image = max((frame.image for frame in burst), key=lambda image: sharpness(image, box))
        if pose is not None and abs(scale_x / scale_y - 1) < 0.01:
            landmarks = pose.landmarks.copy()
            landmarks[:, :2] *= scale_x
            pose = replace(pose, landmarks=landmarks)
        else:   # another aspect (a 4:3 still mode beside 16:9 video) frames the sensor otherwise: compose finds it
            pose = None
        return image, pose

    def start(self) -> None:
        """The uploader and the printer, once (the kiosk starts them; a photo made before, in a test, does);
        one that cannot start is said in one line and left off."""
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            share = self.start_share()
        except Exception as exc:  # noqa: BLE001 - whatever stops the uploader leaves it off, said once
            log.error("photos cannot be shared: %s", one_line(exc))
            share = None
        try:
            printer = self.start_printer(self.printed)
        except Exception as exc:  # noqa: BLE001 - likewise the printer
            log.error("photos cannot be printed: %s", one_line(exc))
            printer = None
        with self._lock:
            self.share, self.printer = share, printer

    def stop(self) -> None:
        """What ended is published while the uploader can still record its announcements; the services stop (the
        uploads and prints under way stay with them, taken up at the next start); the outcomes the printer gave
        while stopping are published; the device's copies go with the kiosk."""
        self.tick()
        for service in (self.share, self.printer):
            if service is not None:
                service.stop()
        self._publish_prints()
        with self._lock:
            kept, self._kept = list(self._kept.values()), {}
        for item in kept:
            item.path.unlink(missing_ok=True)

    def keep(self, keepsake: Keepsake, share: bool, print: bool) -> None:
        with self._lock:
            kept = self._kept.get(keepsake.photo_id)
        if kept is None:
            raise ApplianceError(f"photo {photo_tag(keepsake.photo_id)} is no longer on the device (retention)")
        labels = {"session": self.session(), "campaign": self.campaign()}   # the events', even after a restart
        kept.share = share and self.share is not None
        kept.print = print and self.printer is not None
        if kept.share:
            kept.ticket = self.share.submit(keepsake.photo_id, kept.path, labels)
        if kept.print:
            self.printer.submit(keepsake.photo_id, kept.path, labels)

    def link(self, keepsake: Keepsake) -> str | None:
        with self._lock:
            kept = self._kept.get(keepsake.photo_id)
        if kept is None or kept.ticket is None or self.share is None or not self.share.done(keepsake.photo_id):
            return None
        return kept.ticket.url

    def print_status(self, keepsake: Keepsake) -> str | None:
        """The printer's line for the shopper; its "scan the QR" only for a photo that is being shared."""
        status = self.printer.status(keepsake.photo_id) if self.printer is not None else None
        if status is None:
            return None
        with self._lock:
            kept = self._kept.get(keepsake.photo_id)
        return status.line(qr=kept is not None and kept.share)

    def discard(self, keepsake: Keepsake) -> None:
        with self._lock:
            kept = self._kept.get(keepsake.photo_id)
        if kept is None:
            return
        kept.shown = False
        if not (kept.share or kept.print):
            self._forget(keepsake.photo_id)

    def can_share(self) -> bool:
        return self.share is not None and bool(self.share.online)

    def notice(self, template: str | None) -> str:
        """What leaves the screen and for how long: uploaded when sharing is set up (a photo kept while the storage
        is down is uploaded later, so this does not follow ``can_share``), printed when the printer is fine now
        (the booth prints only then); the campaign's ``template`` only where it can be true (this screen shares)."""
        minutes = max(1, round(self.retention_s / 60))
        if self.share is not None:
            hours = round(self.share.link_expiry_s / 3600)
            if template is not None:
                return template.format(hours=hours, minutes=minutes)
            shared = f"Your photo is uploaded for {hours} h for your QR link, then deleted"
            return f"{shared}; it is printed here" if self.can_print() else shared
        if self.can_print():
            return f"Your photo is printed here, never uploaded; this screen deletes it within {minutes} min"
        return f"Your photo stays on this screen and is deleted within {minutes} min"

    def can_print(self) -> bool:
        return self.printer is not None and bool(self.printer.printer_ok)


@dataclass
class _Order:
    cancelled: bool = False
    keepsake: Keepsake | None = None


@dataclass
class ExperienceKeepsakes:
    """``Context.keepsakes`` for one experience: the kiosk's desk, its jobs under the experience's run."""

    _desk: KioskKeepsakes
    _submit: Callable[[Callable[[], Any], str], Job[Any]]

    def can_share(self) -> bool:
        return self._desk.can_share()

    def can_print(self) -> bool:
        return self._desk.can_print()

    def notice(self, template: str | None) -> str:
        return self._desk.notice(template)

    def faces(self, image: np.ndarray) -> tuple[Any, ...]:
        return self._desk.find_faces(image)

    #: Each photo job (by weak reference, so an order lives no longer than its job) and its order.
    _orders: list[tuple[weakref.ref, _Order]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, style: str | None = None) -> Job[Keepsake]:
        recent, place = list(self._desk._recent), self._desk.place()   # on the loop: the frames and world now
        asked_at = time.monotonic()
        return self._ordered(lambda: self._desk.make(recent, place, asked_at, style), "photo")

    def picture(self, make: Callable[[], np.ndarray]) -> Job[Keepsake]:
        return self._ordered(lambda: self._desk.make_picture(make), "picture")

    def _ordered(self, make: Callable[[], Keepsake], name: str) -> Job[Keepsake]:
        """``make`` in a job whose photo ``cancel`` can still let go (see ``_Order``)."""
        order = _Order()

        def made() -> Keepsake:
            keepsake = make()
            with self._lock:
                order.keepsake = keepsake
                unwanted = order.cancelled
            if unwanted:
                self._desk.discard(keepsake)
            return keepsake

        job = self._submit(made, name)
        self._orders = [(ref, known) for ref, known in self._orders if ref() is not None] + [(weakref.ref(job), order)]
        return job

    def samples(self) -> Job[dict[str, np.ndarray]]:
        bundle, world = self._desk.place()
        return self._submit(lambda: self._desk.samples(bundle, world), "style samples")

    def cancel(self, job: Job[Keepsake]) -> None:
        order = next((known for ref, known in self._orders if ref() is job), None)
        if order is None:
            return
        with self._lock:
            order.cancelled = True
            keepsake = order.keepsake
        if keepsake is not None:
            self._desk.discard(keepsake)

    def keep(self, keepsake: Keepsake, share: bool, print: bool) -> None:
        self._desk.keep(keepsake, share, print)

    def link(self, keepsake: Keepsake) -> str | None:
        return self._desk.link(keepsake)

    def qr(self, link: str, size: int) -> np.ndarray:
        return qr_image(link, size)

    def print_status(self, keepsake: Keepsake) -> str | None:
        return self._desk.print_status(keepsake)

    def discard(self, keepsake: Keepsake) -> None:
        self._desk.discard(keepsake)

    def private(self, on: bool) -> None:
        self._desk.private_on = on
