"""``menu``: a carousel of the experiences the campaign enables, in its order, over the live mirror.

Swipe (or the arrows) moves the carousel; a fist (or Enter) starts the experience
in the middle, once the reading time of the menu has passed (the core holds
CONFIRM back until then).  The title goes where it does not cover the shopper's head.
"""

from __future__ import annotations

from typing import Any

import cv2

from appliance.experience.api import API_VERSION, Action, Card, Context, Experience, Moment, Offer

HINT = "Swipe to choose · make a fist to start"
TITLE = "Choose your experience"


class MenuScene:
    def enter(self, context: Context, moment: Moment) -> None:
        self._selected = 0
        self._moved_at = moment.now
        context.new_screen()

    def update(self, context: Context, moment: Moment) -> str | None:
        offers = context.offers
        if not offers:
            return None
        for action in moment.actions:
            if action in (Action.NEXT, Action.PREVIOUS):
                step = 1 if action is Action.NEXT else -1
                self._selected = (self._selected + step) % len(offers)
                self._moved_at = moment.now
            elif action is Action.CONFIRM:
                chosen = offers[self._selected % len(offers)]
                context.publish("experience_chosen", {"experience": chosen.name})
                return chosen.name
        return None

    def draw(self, context: Context, moment: Moment) -> None:
        screen = context.stage.show(moment.perception)
        canvas = context.canvas
        width, height = canvas.size
        title_size = height // 12
        title_w, title_h = canvas.text_size(TITLE, title_size)
        centre = context.stage.layout.place((title_w, title_h), (0.5, 0.1))
        canvas.text(TITLE, centre, size=title_size, anchor="center", backdrop=True)
        card_w, card_h = int(width * 0.3), int(height * 0.3)
        top = int(height * 0.6)
        slide = max(0.0, 1.0 - (moment.now - self._moved_at) / 0.25)   # a swipe visibly moves the carousel
        offers = context.offers
        count = len(offers)
        for index, offer in enumerate(offers):
            offset = index - self._selected % max(1, count)
            if count > 2:   # a carousel: the neighbours wrap round, so the last offer shows left of the first
                offset = (offset + count // 2) % count - count // 2
            if abs(offset) > 1:
                continue
            self._card(context, screen, offer, offset, slide, (card_w, card_h), top)
        canvas.text(HINT, (width // 2, height - height // 22), size=height // 24, anchor="center", backdrop=True)
        context.stage.cursor(moment, 0.0)

    def _card(self, context: Context, screen: Any, offer: Offer, offset: int, slide: float, size: tuple[int, int],
              top: int) -> None:
        canvas, card = context.canvas, offer.card
        width, height = canvas.size
        selected = offset == 0
        scale = 1.0 if selected else 0.8
        w, h = int(size[0] * scale), int(size[1] * scale)
        centre_x = int(width / 2 + offset * width * 0.34 * (1 - 0.15 * slide))
        y = top + (size[1] - h) // 2
        canvas.panel((centre_x - w // 2, y, w, h), (20, 28, 60) if selected else (10, 12, 24),
                     opacity=0.85 if selected else 0.55, radius=h // 8,
                     border=(255, 210, 90) if selected else None)
        icon_h, icon_top = int(h * 0.42), y + int(h * 0.06)
        if card.live:   # the live card shows the screen itself: a linear resize is ~0.2 ms, an area one 40x that
            thumbnail = cv2.resize(screen, (icon_h * width // height, icon_h), interpolation=cv2.INTER_LINEAR)
            canvas.picture(thumbnail, (centre_x, icon_top), anchor="midtop")
        else:
            icon = context.icon(offer, icon_h)
            if icon is not None:
                canvas.blit(icon, (centre_x, icon_top), anchor="midtop")
        colour = (255, 255, 255) if selected else (170, 170, 180)
        canvas.text(card.title, (centre_x, y + int(h * 0.62)), size=int(h * 0.15), colour=colour, anchor="center")
        canvas.text(card.subtitle, (centre_x, y + int(h * 0.82)), size=int(h * 0.1), colour=colour, anchor="center")

    def exit(self, context: Context, reason: str) -> None:
        """Nothing to release."""


experience = Experience(name="menu", api=API_VERSION, scene=MenuScene, card=lambda config: Card("Menu"))
