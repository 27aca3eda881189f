"""``attract``: nobody in front, the campaign's world without a person and an invitation to step in.

The core shows it whenever presence says nobody is there (and while no camera
works: then the world alone, with no call to action and no technical text in
public; the fleet gets a ``camera`` alert).  A technician previews the worlds
with the arrow keys.

It draws no person and reads no gesture, so it asks for no model: segmentation runs for presence
alone, at the presence rate (``appliance.perception.schedule``), and every frame only while
somebody may be stepping in.
"""

from __future__ import annotations

import math

from appliance.experience.api import API_VERSION, Action, Card, Context, Experience, Moment, Needs


class AttractScene:
    def enter(self, context: Context, moment: Moment) -> None:
        self._since = moment.now

    def update(self, context: Context, moment: Moment) -> str | None:
        for action in moment.typed:
            if action in (Action.PREVIOUS, Action.NEXT):
                context.stage.switch_world(1 if action is Action.NEXT else -1)
        return None

    def draw(self, context: Context, moment: Moment) -> None:
        context.stage.show(moment.perception, person=False)
        if moment.perception is None:   # no camera: nobody could answer the invitation
            return
        canvas = context.canvas
        width, height = canvas.size
        pulse = 0.75 + 0.25 * math.sin((moment.now - self._since) * 2.5)
        colour = (int(255 * pulse),) * 3
        canvas.text("Step in front of the screen", (width // 2, int(height * 0.42)), size=height // 12,
                    colour=colour, anchor="center", backdrop=True)
        canvas.text("and play with us", (width // 2, int(height * 0.52)), size=height // 18, anchor="center")

    def exit(self, context: Context, reason: str) -> None:
        """Nothing to release."""


experience = Experience(name="attract", api=API_VERSION, scene=AttractScene, card=lambda config: Card("Welcome"),
                        needs=Needs(segmentation=0.0, hands=0.0), reads_screen=False)
