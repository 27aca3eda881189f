"""From per-frame gesture readings to what the screen acts on: held gestures, the primary hand, swipes.

Per-frame readings flicker, and a hand passing from one sign to another goes
through shapes that read as a third (rock → paper passes through point and
scissors). A gesture is therefore *held* only once it is the reading in
``hold_frames`` of the last ``window`` frames, and stays held until another
reading reaches that bar: a reading that lasts one or two frames never shows.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.errors import ApplianceError
from appliance.perception.gestures import classify, palm_scale
from appliance.perception.hand import Gesture, GestureState, Hand, HandGesture, Swipe


@dataclass(frozen=True)
class SwipeSettings:
    distance: float = 0.25      # horizontal travel, as a share of the frame width...
    duration: float = 0.5       # ...within this many seconds (a mean speed of at least half a frame width per second)
    straightness: float = 0.5   # vertical travel at most this share of the horizontal
    steadiness: float = 0.8     # net travel over the path's summed |dx|: back-and-forth jitter scores low
    max_step: float = 0.5       # no single frame may carry more than this share of the travel (a tracking jump)
    refractory: float = 0.7     # seconds after a swipe during which motion is ignored (one swipe fires once)


class _HeldReading:
    """One hand's last ``window`` readings and the gesture held from them."""

    def __init__(self, hold_frames: int, window: int) -> None:
        self.hold_frames = hold_frames
        self.readings: deque[Gesture] = deque(maxlen=window)
        self.held: Gesture | None = None

    def update(self, reading: Gesture) -> Gesture | None:
        self.readings.append(reading)
        label, count = Counter(self.readings).most_common(1)[0]
        if count >= self.hold_frames:
            self.held = None if label == "other" else label
        return self.held


class SwipeDetector:
    """Horizontal swipes of one palm centre, in the shopper's (mirrored) view.

    The camera image is not mirrored but the screen is, so a palm moving
    towards image-left is a swipe to the right for the shopper.
    """

    def __init__(self, settings: SwipeSettings = SwipeSettings()) -> None:
        self.settings = settings
        self._path: deque[tuple[float, float, float]] = deque()
        self._quiet_until = float("-inf")
        self._serial = 0
        self.last: Swipe | None = None

    def reset(self) -> None:
        """Forget the path (the palm being followed changed or vanished): a new hand never swipes on arrival."""
        self._path.clear()

    def update(self, x: float, y: float, now: float, frame_width: int) -> Swipe | None:
        """Add the palm's position; returns a new swipe when one completes."""
        settings = self.settings
        if now < self._quiet_until:
            self._path.clear()
            return None
        self._path.append((now, x, y))
        while now - self._path[0][0] > settings.duration:
            self._path.popleft()
        travel = self._travel(settings.distance * frame_width)
        if travel is None:
            return None
        self._serial += 1
        self.last = Swipe("right" if travel < 0 else "left", self._serial, now)
        self._quiet_until = now + settings.refractory
        self._path.clear()
        return self.last

    def _travel(self, needed: float) -> float | None:
        """The image-x travel from some earlier point of the path to now, if it qualifies as a swipe."""
        settings = self.settings
        points = list(self._path)
        _, x_now, y_now = points[-1]
        for start in range(len(points) - 2):
            _, x0, y0 = points[start]
            dx, dy = x_now - x0, y_now - y0
            if abs(dx) < needed or abs(dy) > settings.straightness * abs(dx):
                continue
            steps = [abs(points[i + 1][1] - points[i][1]) for i in range(start, len(points) - 1)]
            if abs(dx) >= settings.steadiness * sum(steps) and max(steps) <= settings.max_step * abs(dx):
                return dx
        return None


class GestureTracker:
    """Stateful per video stream: feed every frame's hands in order, get the frame's GestureState."""

    def __init__(self, hold_frames: int = 4, window: int = 6, primary_switch: float = 1.4,
                 swipe: SwipeSettings = SwipeSettings()) -> None:
        """``primary_switch``: how many times bigger another hand must be to take over as primary."""
        if not window / 2 < hold_frames <= window:
            raise ApplianceError(f"gesture hold {hold_frames} of {window} frames: need window/2 < hold <= window")
        self.hold_frames = hold_frames
        self.window = window
        self.primary_switch = primary_switch
        self._tracks: dict[int, _HeldReading] = {}
        self._primary: int | None = None
        self._swipes = SwipeDetector(swipe)

    def update(self, hands: Sequence[Hand], now: float, frame_size: tuple[int, int]) -> GestureState:
        """``now``: monotonic seconds; ``frame_size``: (width, height) of the image the landmarks are in."""
        present = {hand.track_id for hand in hands}
        self._tracks = {track: state for track, state in self._tracks.items() if track in present}
        readings = []
        for hand in hands:
            label, score = classify(hand)
            state = self._tracks.setdefault(hand.track_id, _HeldReading(self.hold_frames, self.window))
            readings.append(HandGesture(hand, label, score, state.update(label)))

        previous = self._primary
        primary = self._pick_primary(readings)
        if primary is None or primary.hand.track_id != previous:
            self._swipes.reset()
        if primary is not None:
            x, y = primary.hand.palm_centre
            self._swipes.update(x, y, now, frame_size[0])
        return GestureState(tuple(readings), primary, self._swipes.last)

    def _pick_primary(self, readings: list[HandGesture]) -> HandGesture | None:
        """The biggest hand, kept while present unless another becomes clearly bigger."""
        if not readings:
            self._primary = None
            return None
        sizes = {reading.hand.track_id: palm_scale(reading.hand.landmarks) for reading in readings}
        biggest = max(readings, key=lambda reading: sizes[reading.hand.track_id]).hand.track_id
        current = self._primary
        if current not in sizes or sizes[biggest] > self.primary_switch * sizes[current]:
            current = self._primary = biggest
        return next(reading for reading in readings if reading.hand.track_id == current)
