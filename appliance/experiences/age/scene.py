"""The "AI guesses your age" scene: the shopper in the campaign's world, a label beside each face.

Invariants: drawing only (the run is ``session.AgeSession``); a label goes beside its face's box as
the screen shows it (``Stage.screen_point``: mirrored or not as the world is), on the right, else the
left, above or below, never over any face (its mesh's box grown by ``HAIR`` each side: hair and
ears) and never over another label; when no side is free the stage's layout places it clear of the
heads it knows.  The title and the hint go where the layout puts them clear of the heads, else lower,
never over a label.
An open palm held (or Backspace) goes back to the menu; the run's time up, too.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.experience.api import MENU, Action, Context, Face, Moment, screen_corners
from appliance.experiences.age.config import AgeConfig
from appliance.experiences.age.session import AgeSession, Label

Box = tuple[int, int, int, int]
GOLD, WHITE, SOFT, INK = (255, 214, 90), (255, 255, 255), (220, 220, 230), (10, 12, 24)
GAP = 24          # pixels between a face and its label
MARGIN = 16       # pixels kept free at the screen's edges
HAIR = 0.2        # of a face's mesh width, added each side (and above) for hair and ears


def beside(face: Box, size: tuple[int, int], screen: tuple[int, int], avoid: Sequence[Box]) -> tuple[int, int] | None:
    """The top-left of a ``size`` box right of ``face``, else left, above, below, on screen and off every box
    of ``avoid`` (the faces, labels already placed); None when no side is free."""
    x, y, w, h = face
    lw, lh = size
    middle_y, middle_x = y + h // 2 - lh // 2, x + w // 2 - lw // 2
    for left, top in ((x + w + GAP, middle_y), (x - GAP - lw, middle_y), (middle_x, y - GAP - lh),
                      (middle_x, y + h + GAP)):
        top = min(max(top, MARGIN), screen[1] - MARGIN - lh)
        left = min(max(left, MARGIN), screen[0] - MARGIN - lw)
        if left < MARGIN or top < MARGIN:
            continue
        if not any(_overlap((left, top, lw, lh), other) for other in (face, *avoid)):
            return left, top
    return None


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


class AgeScene:
    def enter(self, context: Context, moment: Moment) -> None:
        self.config: AgeConfig = context.config if context.config is not None else AgeConfig()   # no table
        self.session = AgeSession(self.config, context.publish, moment.now)
        self._now = moment.now

    def update(self, context: Context, moment: Moment) -> str | None:
        self._now = moment.now
        self.session.update(moment.now, moment.perception.faces if moment.perception is not None else ())
        if Action.BACK in moment.actions:
            self.session.end(moment.now, "palm" if Action.BACK not in moment.typed else "key")
        return MENU if self.session.ended else None

    def draw(self, context: Context, moment: Moment) -> None:
        context.stage.show(moment.perception)
        height = context.canvas.size[1]
        placed: list[Box] = []
        if moment.perception is not None:
            frame = moment.perception.frame.image.shape[1::-1]
            faces = self.session.labels(moment.perception.faces)
            placed = self._draw_labels(context, faces, frame, moment.now)
        self._line(context, self.config.title, height // 14, GOLD, ((0.5, 1 / 12), (0.5, 0.2), (0.5, 0.8)), placed)
        if self.config.hint:
            self._line(context, self.config.hint, height // 30, SOFT, ((0.5, 13 / 14), (0.5, 0.8)), placed)
        context.stage.cursor(moment, moment.hold_progress)

    @staticmethod
    def _line(context: Context, line: str, size: int, colour: tuple[int, int, int],
              prefer: tuple[tuple[float, float], ...], avoid: list[Box]) -> None:
        """One line where the layout puts it for the first of ``prefer`` that keeps it off ``avoid``."""
        w, h = context.canvas.text_size(line, size)
        for where in prefer:
            centre = context.stage.layout.place((w, h), where)
            if not any(_overlap((centre[0] - w // 2, centre[1] - h // 2, w, h), box) for box in avoid):
                break
        context.canvas.text(line, centre, size=size, colour=colour, anchor="center", backdrop=True)

    def _draw_labels(self, context: Context, labels: list[Label], frame: tuple[int, int], now: float) -> list[Box]:
        """Each label beside its face; returns the faces' and the labels' boxes."""
        canvas = context.canvas
        screen = canvas.size
        shown = [(label, box) for label in labels if (box := self._screen_box(context, label.face, frame)) is not None]
        faces = [box for _, box in shown]
        placed: list[Box] = []
        size = screen[1] // 18
        for label, face in shown:
            lines = label.lines if label.ready else (label.lines[0] + "." * (1 + int(now * 2) % 3),)
            widths = [canvas.text_size(line, size)[0] for line in lines]
            line_h = canvas.text_size(lines[0], size)[1]
            box_size = (max(widths) + size, line_h * len(lines) + size // 2)
            spot = beside(face, box_size, screen, [*faces, *placed])
            if spot is None:
                cx, cy = context.stage.layout.place(box_size, ((face[0] + face[2] / 2) / screen[0],
                                                               (face[1] + face[3] / 2) / screen[1]))
                spot = (cx - box_size[0] // 2, cy - box_size[1] // 2)
            rect = (*spot, *box_size)
            placed.append(rect)
            canvas.panel(rect, INK, opacity=0.65, radius=size // 3, border=GOLD if label.ready else None)
            for row, line in enumerate(lines):
                centre = (spot[0] + box_size[0] // 2, spot[1] + size // 4 + line_h * row + line_h // 2)
                canvas.text(line, centre, size=size, colour=GOLD if label.ready and row == 0 else WHITE,
                            anchor="center")
        return [*faces, *placed]

    @staticmethod
    def _screen_box(context: Context, face: Face, frame: tuple[int, int]) -> Box | None:
        x, y, w, h = face.box
        corners = screen_corners(context.stage, (x - HAIR * w, y - HAIR * w, w * (1 + 2 * HAIR), h + HAIR * w), frame)
        if corners is None:
            return None
        left, top, right, bottom = corners
        return round(left), round(top), round(right - left), round(bottom - top)

    def exit(self, context: Context, reason: str) -> None:
        """A run left without ending (the shopper walked away, the scene failed) still says how it went."""
        if hasattr(self, "session"):
            self.session.end(self._now, reason)
