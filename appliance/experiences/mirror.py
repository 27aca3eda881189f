"""``mirror``: the shopper, live, inside the current world; a victory sign or a swipe for another world.

The world's title shows for a few seconds after entering and after each switch,
placed where it does not cover the shopper's head.
"""

from __future__ import annotations

from appliance.experience.api import API_VERSION, MENU, Action, Card, Context, Experience, Moment

TITLE_S = 3.0
HINT = "Victory sign or swipe: another world · hold an open hand: menu"


class MirrorScene:
    def enter(self, context: Context, moment: Moment) -> None:
        self._title_until = moment.now + TITLE_S

    def update(self, context: Context, moment: Moment) -> str | None:
        if Action.BACK in moment.actions:
            return MENU
        steps = [{Action.PREVIOUS: -1, Action.NEXT: 1, Action.SWITCH: 1}[action] for action in moment.actions
                 if action in (Action.PREVIOUS, Action.NEXT, Action.SWITCH)]
        for step in steps:
            context.stage.switch_world(step)
        if steps:
            self._title_until = moment.now + TITLE_S
        return None

    def draw(self, context: Context, moment: Moment) -> None:
        if moment.perception is None:
            return
        context.stage.show(moment.perception)
        canvas = context.canvas
        width, height = canvas.size
        if moment.now < self._title_until:
            size = height // 16
            title = context.stage.world.title
            box = canvas.text_size(title, size)
            centre = context.stage.layout.place((box[0], box[1] * 2), (0.5, 5 / 6))
            canvas.text(title, (centre[0], centre[1] - box[1] // 2), size=size, anchor="center", backdrop=True)
            canvas.text(HINT, (width // 2, height - height // 12), size=height // 30, anchor="center",
                        backdrop=True)
        context.stage.cursor(moment, moment.hold_progress)

    def exit(self, context: Context, reason: str) -> None:
        """Nothing to release."""


experience = Experience(name="mirror", api=API_VERSION, scene=MirrorScene,
                        card=lambda config: Card("Live mirror", "Step into our worlds", live=True), offered="always",
                        reads_screen=False)
