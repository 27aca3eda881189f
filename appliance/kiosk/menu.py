"""The menu: a carousel of the experiences on offer, over the live mirror so the shopper stays in view."""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from appliance.content import Bundle
from appliance.kiosk.navigation import Action
from appliance.kiosk.tick import Stage, Tick

HINT = "Swipe to choose · make a fist to start"


@dataclass(frozen=True)
class Experience:
    scene: str
    title: str
    subtitle: str


def experiences(bundle: Bundle) -> list[Experience]:
    """What the campaign offers: the live mirror always, RPS when the campaign has a star."""
    offered = [Experience("mirror", "Live mirror", "Step into our worlds")]
    if bundle.rps:
        offered.append(Experience("rps", "Rock · Paper · Scissors", f"Beat {bundle.rps.star_name}!"))
    return offered


class MenuScene:
    """Swipe (or the arrows) moves the carousel; a fist (or Enter) starts the experience in the middle."""

    name = "menu"

    def enter(self, kiosk: Stage, tick: Tick) -> None:
        self._items = experiences(kiosk.bundle)
        self._selected = 0
        self._moved_at = tick.now

    def next_scene(self, kiosk: Stage, tick: Tick) -> str | None:
        if not tick.present or tick.source_problem:
            return "attract"
        for action in tick.actions:
            if action in (Action.NEXT, Action.PREVIOUS):
                step = 1 if action is Action.NEXT else -1
                self._selected = (self._selected + step) % len(self._items)
                self._moved_at = tick.now
            elif action is Action.CONFIRM:
                chosen = self._items[self._selected]
                kiosk.publish("experience_chosen", {"experience": chosen.scene})
                return chosen.scene
        return None

    def draw(self, kiosk: Stage, tick: Tick) -> None:
        perception = tick.perception
        if perception is not None:
            screen = kiosk.show_composite(perception.frame.image, perception.alpha, tick.now)
        else:
            screen = kiosk.show_composite(None, None, tick.now)
        display = kiosk.display
        width, height = display.size
        display.text("Choose your experience", (width // 2, height // 10), size=height // 12, anchor="center",
                     backdrop=True)
        card_w, card_h = int(width * 0.3), int(height * 0.3)
        top = int(height * 0.6)
        # A short slide after each move, so a swipe visibly moves the carousel.
        slide = max(0.0, 1.0 - (tick.now - self._moved_at) / 0.25)
        for index, item in enumerate(self._items):
            offset = index - self._selected
            if abs(offset) > 1:
                continue
            selected = offset == 0
            scale = 1.0 if selected else 0.8
            w, h = int(card_w * scale), int(card_h * scale)
            centre_x = int(width / 2 + offset * width * 0.34 * (1 - 0.15 * slide))
            y = top + (card_h - h) // 2
            display.panel((centre_x - w // 2, y, w, h), (20, 28, 60) if selected else (10, 12, 24),
                          opacity=0.85 if selected else 0.55, radius=h // 8,
                          border=(255, 210, 90) if selected else None)
            icon_h, icon_top = int(h * 0.42), y + int(h * 0.06)
            if item.scene == "rps" and kiosk.bundle.rps:
                display.blit(kiosk.image(kiosk.bundle.rps.star_image, icon_h), (centre_x, icon_top), anchor="midtop")
            elif item.scene == "mirror":
                # The mirror's card shows the mirror, live: a linear resize is ~0.2 ms, an area one 40x that.
                thumbnail = cv2.resize(screen, (icon_h * width // height, icon_h), interpolation=cv2.INTER_LINEAR)
                display.picture(thumbnail, (centre_x, icon_top), anchor="midtop")
            colour = (255, 255, 255) if selected else (170, 170, 180)
            display.text(item.title, (centre_x, y + int(h * 0.62)), size=int(h * 0.15), colour=colour,
                         anchor="center")
            display.text(item.subtitle, (centre_x, y + int(h * 0.82)), size=int(h * 0.1), colour=colour,
                         anchor="center")
        display.text(HINT, (width // 2, height - height // 22), size=height // 24, anchor="center", backdrop=True)
        kiosk.draw_hand(tick, 0.0)

    def exit(self, kiosk: Stage) -> None:
        """Nothing to release."""
