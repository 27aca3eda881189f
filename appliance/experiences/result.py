"""The built-in games' result screen: up for ``shown_s`` unless a fist ends it, not before ``min_s``.

Invariants: announced once as a screen that offers a choice (``Context.new_screen``: the kiosk then
holds a fist's CONFIRM for the reading time); ``over`` is pure in the time it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.experience.api import Action, Context, Moment


@dataclass
class ResultScreen:
    shown_s: float
    min_s: float = 1.0
    _announced: bool = False

    def over(self, context: Context, moment: Moment, since: float) -> bool:
        """Whether the result shown since ``since`` has been seen: its time is up, or a fist after ``min_s``."""
        if not self._announced:
            self._announced = True
            context.new_screen()
        shown = moment.now - since
        return shown >= self.shown_s or (shown >= self.min_s and Action.CONFIRM in moment.actions)
