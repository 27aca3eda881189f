"""The experience API, version 1: what an experience is, and everything it may use of the kiosk.

An experience is a plug-in: an ``Experience`` value that an installed distribution names
in the entry-point group ``oivis.experiences`` (``appliance.experience.registry`` finds
them; the built-ins in ``appliance.experiences`` register the same way).  The kiosk
core runs the loop, decides when the attract experience shows (from presence), sends
an experience that raises to its failsafe state, and hands each hook a ``Context`` and
the frame's ``Moment``.  This module is the whole contract: a plug-in imports nothing
else of ``appliance`` (the test kit, ``appliance.experience.testkit``, aside).

Invariants:

- ``API_VERSION`` is "major.minor".  A plug-in declares the version it was written for
  (``Experience.api``); it is loaded when the major is the kiosk's and its minor is not
  newer.  Additions raise the minor; anything removed or changed raises the major.
- A scene's hooks run on the render loop, one at a time: ``enter`` once, then per frame
  ``update`` (which returns where to go) and ``draw``, and ``exit`` once with the reason
  (``EXIT_REASONS``).  Hooks never block: work longer than a frame goes to
  ``Context.jobs``, whose results arrive in a later frame, on the loop.  An exception
  from any hook (and from ``Experience.scene`` or ``card``) is the kiosk's failsafe state.
- What a scene may not touch stays behind the context: pygame, threads, the fleet,
  stopping the kiosk, other plug-ins.  Events published go out with the shopper's session and
  the campaign shown (``session``, ``campaign``).
- An experience's campaign table (``[<name>]`` in campaign.toml) is validated by its
  ``config`` model before the campaign is shown: unknown keys are refused with their line,
  and the paths of fields typed ``Asset`` are checked (and shipped with the campaign).
  ``Context.assets`` draws only those.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Generic, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from appliance.boxes import mask_box, sharpness
from appliance.colour import lab_statistics, transfer
from appliance.experience.gestures import Hold, held_gesture
from appliance.experience.textblock import TextBlock
from appliance.perception.body import LIMBS, Pose
from appliance.perception.face import Face, FaceAge
from appliance.perception.hand import GestureState, Hand, HandGesture, Swipe
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perception

API_VERSION = "1.5"  # 1.1: Pose, LIMBS; 1.2: World.mirror, Stage.screen_point; 1.3: Context.keepsakes;
#                      1.4: Keepsakes.notice and cancel, mask_box, FakeContext(campaign=…) publishes as the kiosk does,
#                      [photo] styles and style_default, Keepsakes.take(style) and samples, Keepsake.style,
#                      Face (Perception.faces with Needs.face), Keepsakes.picture and faces, Context.pixels,
#                      Needs.age and gender, Face.age (FaceAge: a tracked face's smoothed band), Experience.needs_of,
#                      sharpness (a box's), lab_statistics and transfer (Reinhard's colour transfer), screen_corners;
#                      1.5: Experience.reads_screen (Stage.show may return None to an experience that never reads it)
#: Names the core gives a role: ``attract`` shows while nobody is in front, ``menu`` offers the others.
ATTRACT, MENU = "attract", "menu"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: Why ``exit`` is called: the scene asked to go (``done``), the shopper left, the scene failed, the
#: campaign changed under it, the kiosk is stopping.
EXIT_REASONS = ("done", "left", "failed", "campaign", "stopped")
OFFERED = ("always", "with_table", "listed")
#: The campaign's own top-level keys: no experience may be named so (its table would be one of them).
RESERVED = ("name", "scenes", "experiences")

T = TypeVar("T")

__all__ = [
    "API_VERSION", "ATTRACT", "EVERY_FRAME", "EXIT_REASONS", "LIMBS", "MENU", "Pose", "Action", "Asset", "AssetRef", "Canvas",
    "Card", "Context", "Experience", "ExperienceConfig", "Face", "FaceAge", "GestureState", "Hand", "HandGesture",
    "Hold", "Image", "Job", "Jobs", "Layout", "Moment", "Needs", "Offer", "Perception", "Scene", "Stage", "Swipe", "TextBlock",
    "World", "held_gesture", "lab_statistics", "mask_box", "screen_corners", "sharpness", "transfer",
]


class Action(Enum):
    """What the shopper's gestures (and the technician's keys standing in for them) mean for any experience."""

    PREVIOUS = "previous"   # swipe right, ←
    NEXT = "next"           # swipe left, →
    CONFIRM = "confirm"     # a fist, Enter
    BACK = "back"           # an open palm held for a second, Backspace
    SWITCH = "switch"       # a victory sign


@dataclass(frozen=True)
class AssetRef:
    """Marks a config field as a file of the campaign bundle, with the suffixes it may have."""

    suffixes: tuple[str, ...] = (".png",)


#: A bundle-relative PNG (with alpha: drawn over the mirror); use ``Annotated[str, AssetRef((...))]`` for others.
Asset = Annotated[str, AssetRef()]


class ExperienceConfig(BaseModel):
    """Base of an experience's campaign table: frozen, and a typo is refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Card:
    """How the menu offers an experience: a title, a line under it, and an icon (an ``Asset`` of its config)
    or, with ``live``, the live mirror itself."""

    title: str
    subtitle: str = ""
    icon: str | None = None
    live: bool = False


@dataclass(frozen=True)
class Offer:
    """An experience the campaign enables, as the menu shows it."""

    name: str
    card: Card


@dataclass(frozen=True)
class World:
    """The campaign's world the shopper is shown in; ``mirror``: the camera is shown flipped, like a mirror
    (so a shopper copying what they see raises the arm opposite to the one shown)."""

    id: str
    title: str
    mirror: bool = True


@dataclass(frozen=True)
class Moment:
    """One frame's input: the time, the newest perception (None before the first), and what was asked.

    ``actions`` come from gestures and from the technician's keys; ``typed`` is the keys' share (for a
    scene where a gesture means something else than its key); ``inputs`` are the experience's own keys
    (``Experience.keys``) typed this frame.  An action reaches the scene current for its frame only.
    ``reading`` is true while a screen that offers a choice is younger than the reading time: a fist's
    CONFIRM is held back by the core meanwhile (a technician's Enter is not).
    """

    now: float
    perception: Perception | None
    actions: tuple[Action, ...] = ()
    typed: tuple[Action, ...] = ()
    inputs: tuple[str, ...] = ()
    hold_progress: float = 0.0
    reading: bool = False

    @property
    def gestures(self) -> GestureState:
        return self.perception.gestures if self.perception is not None else GestureState()


class Image(Protocol):
    """A decoded asset, ready to draw (``Canvas.blit``)."""

    def get_size(self) -> tuple[int, int]: ...


class Canvas(Protocol):
    """Drawing on this frame's screen (positions in screen pixels, colours RGB)."""

    @property
    def size(self) -> tuple[int, int]: ...

    def text(self, line: str, position: tuple[int, int], size: int = 36, colour: tuple[int, int, int] = (255, 255, 255),
             anchor: str = "topleft", backdrop: bool = False) -> tuple[int, int, int, int]:
        """Draws one line; returns its box (x, y, w, h)."""

    def text_size(self, line: str, size: int) -> tuple[int, int]: ...

    def panel(self, rect: tuple[int, int, int, int], colour: tuple[int, int, int], opacity: float = 0.6,
              radius: int = 0, border: tuple[int, int, int] | None = None) -> None: ...

    def blit(self, image: Image, position: tuple[int, int], anchor: str = "center", angle: float = 0.0,
             scale: float = 1.0) -> None: ...

    def picture(self, image: Any, position: tuple[int, int], anchor: str = "center") -> None:
        """A BGR numpy image (e.g. a thumbnail of the screen)."""

    def circle(self, centre: tuple[int, int], radius: int, colour: tuple[int, int, int], width: int = 0,
               opacity: float = 1.0) -> None: ...

    def ring(self, centre: tuple[int, int], radius: int, fraction: float, colour: tuple[int, int, int],
             width: int) -> None: ...


class Layout(Protocol):
    """Where text and cards may go on this frame without covering the shopper's head and face."""

    def place(self, size: tuple[int, int], prefer: tuple[float, float]) -> tuple[int, int]:
        """The centre for a box of ``size`` nearest to ``prefer`` (fractions of the screen: (0.5, 0.1) is top
        centre) that keeps clear of the head; ``prefer`` itself when nobody's head is known."""


class Stage(Protocol):
    """The campaign's world, the person in it, the cursor and the layout."""

    @property
    def world(self) -> World: ...

    @property
    def layout(self) -> Layout: ...

    def show(self, perception: Perception | None, person: bool = True) -> Any:
        """The world with the person cut in (``person=False``: the world alone) as this frame's background;
        returns the composited screen (a BGR numpy image: the screen itself; where the GPU composites, an
        experience declaring API 1.5 or later gets a quarter-size copy of it, and None when it declared
        ``reads_screen=False``)."""

    def switch_world(self, step: int) -> None:
        """The next (+1) or previous (-1) world of the campaign."""

    def cursor(self, moment: Moment, progress: float = 0.0) -> None:
        """The hand cursor where the shopper sees their driving hand, with ``progress`` (0..1) as a ring."""

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float] | None:
        """Where a point of the camera frame (pixels of a (w, h) frame) shows on the screen in this world
        (mirrored or not, cover-fitted); None while the world cannot be shown."""


def screen_corners(stage: Stage, box: tuple[float, float, float, float], frame_size: tuple[int, int]
                   ) -> tuple[float, float, float, float] | None:
    """Where a box (x, y, w, h) of the camera frame shows on the screen: (left, top, right, bottom) of its
    corners' screen points (a mirrored world swaps its sides); None while the world cannot be shown."""
    x, y, w, h = box
    corners = [stage.screen_point(point, frame_size) for point in ((x, y), (x + w, y + h))]
    if None in corners:
        return None
    (left, right), (top, bottom) = sorted(c[0] for c in corners), sorted(c[1] for c in corners)
    return left, top, right, bottom


class Job(Protocol, Generic[T]):
    """Work submitted off the loop; ``done`` turns true on the loop, at the start of a frame."""

    @property
    def done(self) -> bool: ...

    def result(self) -> T:
        """The function's value; its exception (raised here) when it failed; ValueError while not done."""


class Jobs(Protocol):
    def submit(self, function: Callable[[], T], name: str) -> Job[T]:
        """Run ``function`` off the loop (this run's jobs one at a time, in order, on a thread of their own);
        its result comes back to the scene in a later frame.  When the scene exits, its jobs not started are
        dropped, and the result of one running is."""


class Context(Protocol):
    """Everything a scene may use; one per experience, valid while the campaign it was made for is shown."""

    canvas: Canvas
    stage: Stage
    jobs: Jobs
    rng: random.Random
    #: The experience's validated campaign table (an instance of ``Experience.config``), or None.
    config: Any
    #: The experiences the campaign enables, in its order (what the menu offers).
    offers: tuple[Offer, ...]
    #: The photo desk (``appliance.experience.keepsake.Keepsakes``): photos with the star, taken home by QR and
    #: printed; None where the kiosk has none.
    keepsakes: Any

    def image(self, asset: str, height: int) -> Image:
        """An asset of this experience's config, decoded once per height."""

    def pixels(self, asset: str) -> np.ndarray:
        """An asset of this experience's config as BGR uint8 pixels, decoded within the media limits on every
        call: for work off the loop (a job), e.g. a face found in a poster (since API 1.4)."""

    def icon(self, offer: Offer, height: int) -> Image | None:
        """``offer``'s icon, or None when its card has none (or is ``live``)."""

    def publish(self, type: str, data: Mapping[str, Any]) -> None:
        """An analytics event, sent with the current shopper's session."""

    def new_screen(self) -> None:
        """A screen that offers a choice has just appeared: CONFIRM waits for the reading time."""


class Scene(Protocol):
    """One run of an experience, from ``enter`` to ``exit``."""

    def enter(self, context: Context, moment: Moment) -> None: ...

    def update(self, context: Context, moment: Moment) -> str | None:
        """None to stay; the name of an experience to go to (``MENU`` when done)."""

    def draw(self, context: Context, moment: Moment) -> None: ...

    def exit(self, context: Context, reason: str) -> None: ...


@dataclass(frozen=True)
class Experience:
    """What a plug-in declares (the value its entry point names).

    ``scene`` makes a new scene for each run; ``card`` gives the menu card from the validated config;
    ``keys`` maps technicians' key names (pygame's: "r", "space", "f5") to the experience's inputs
    (``Moment.inputs``).  ``offered`` is for campaigns without an ``experiences`` list (written before
    plug-ins): "always" offers it, "with_table" when the campaign has its table, "listed" (the
    default) never — a campaign lists the experiences it wants.  ``needs_of``, when given, makes the
    needs from the validated config (a campaign switch that spares a model); ``needs_for`` is what the
    kiosk asks for.  ``reads_screen=False`` says the experience never reads what ``Stage.show`` returns:
    where the GPU composites, the kiosk then makes no CPU copy of the screen for it (since API 1.5).
    """

    name: str
    api: str
    scene: Callable[[], Scene]
    card: Callable[[Any], Card]
    needs: Needs = Needs()
    config: type[ExperienceConfig] | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    offered: str = "listed"
    needs_of: Callable[[Any], Needs] | None = None
    reads_screen: bool = True

    def needs_for(self, config: Any) -> Needs:
        """The perception a run asks for, given the campaign's validated table."""
        return self.needs if self.needs_of is None else self.needs_of(config)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"experience name {self.name!r}: a lower-case letter, then up to 31 of a-z 0-9 _")
        if self.name in RESERVED:
            raise ValueError(f"experience name {self.name!r} is a campaign key of its own ({', '.join(RESERVED)})")
        if self.offered not in OFFERED:
            raise ValueError(f"experience {self.name}: offered {self.offered!r} is not one of {', '.join(OFFERED)}")
