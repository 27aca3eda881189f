"""The experiences' state machine, on the render loop: which experience runs, its context, the failsafe
state and the quarantine.

Invariants:

- At any time exactly one of: a run of an experience (``current`` names it), the plain world
  (attract is unavailable: ``current`` is None and the core draws the world alone), or the
  failsafe state (``failsafe`` is set).
- Every call into an experience — ``Experience.scene`` and ``card``, ``enter``, ``update``,
  ``draw``, ``exit`` — is made inside ``guarded``: its exception becomes the failsafe state and
  never leaves ``step`` or ``start``.  The failure counts against that experience
  (``appliance.kiosk.failsafe``); a failure of the core's own drawing counts against none.
- Where a target leads is decided by ``resolve``: a quarantined or missing menu (or a menu with
  nothing to offer) leads to the first offer or attract, anything quarantined or not offered to
  attract, an unavailable attract to the plain world.  A target that resolves to what runs now is
  no switch.
- A run is entered with the experience's needs joined with the navigation's (hands, for the
  gestures every experience but attract is driven by), and a reading time for a fist's CONFIRM.
- Offers are the campaign's enabled experiences that are installed, not quarantined today and
  whose card could be made (an icon that is not one of the experience's assets is dropped); they
  are made again when the campaign or the day changes and when an experience is quarantined.
- A new day ends every quarantine, brings the experiences back to the menu and clears the alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.alerts import Alerts
from appliance.content import Bundle
from appliance.errors import ApplianceError, one_line
from appliance.experience.api import ATTRACT, MENU, Card, Moment, Needs, Offer, Scene
from appliance.experience.assets import asset_paths
from appliance.experience.registry import Registry
from appliance.kiosk.context import SceneContext
from appliance.kiosk.failsafe import Failsafe, LogGate, Quarantine, Streak

log = logging.getLogger(__name__)

#: What the kiosk's own navigation needs while any experience but attract runs (gestures).
NAVIGATION = Needs()


@dataclass(frozen=True)
class Core:
    """What the machine uses of the kiosk: drawing the failsafe screen and the plain world, asking
    perception for a run's needs, making an experience's context, the reading time."""

    draw_failsafe: Callable[[], None]
    draw_world: Callable[[Moment], None]
    want: Callable[[Needs], None]
    context: Callable[[str, Bundle], SceneContext]
    reading_s: Callable[[], float]


class Machine:
    def __init__(self, registry: Registry, core: Core, alerts: Alerts, jobs: Any,
                 today: Callable[[], str]) -> None:
        self.registry, self._core, self._alerts, self._jobs, self._today = registry, core, alerts, jobs, today
        self.quarantine = Quarantine()
        self.streak = Streak()
        self._log_gate = LogGate()
        self.failsafe: Failsafe | None = None
        self.current: str | None = None
        self._scene: Scene | None = None
        self.token = 0
        self.reading_until = float("-inf")
        self.day = today()
        self._bundle: Bundle | None = None
        self._contexts: dict[str, SceneContext] = {}
        self.offers: tuple[Offer, ...] = ()

    # -- the campaign and its offers -------------------------------------------------------------------

    def use(self, bundle: Bundle) -> None:
        """Contexts and offers for ``bundle`` (the run in progress, if any, is ended by the caller first)."""
        self._bundle = bundle
        self._contexts = {name: self._core.context(name, bundle) for name in self.registry.names()}
        self._refresh_offers()

    def switch_campaign(self, bundle: Bundle, moment: Moment) -> None:
        """The campaign changed (between sessions): the run ends as ``campaign``, attract starts on the new one."""
        self.guarded(lambda: self._leave("campaign"), moment)
        self.use(bundle)
        self.guarded(lambda: self._enter(self.resolve(ATTRACT), moment), moment)

    def _refresh_offers(self) -> None:
        offers = []
        bundle = self._bundle
        for name in bundle.experiences if bundle is not None else ():
            if name not in self.registry or self.quarantine.disabled(name, self._today()):
                continue
            config = bundle.configs.get(name)
            try:
                card = self.registry[name].card(config)
                if not isinstance(card, Card):
                    raise ApplianceError(f"its card() gave {type(card).__name__}, not a Card")
            except Exception as exc:  # noqa: BLE001 - a plug-in's card is its code: left out, never fatal
                log.error("experience %s: no menu card, not offered: %s", name, one_line(exc))
                continue
            if card.icon is not None and card.icon not in asset_paths(config, name):
                log.error("experience %s: card icon %r is not an asset of its table; shown without", name, card.icon)
                card = Card(card.title, card.subtitle, None, card.live)
            offers.append(Offer(name, card))
        self.offers = tuple(offers)
        for context in self._contexts.values():
            context.offers = self.offers

    def _new_day(self) -> None:
        day = self._today()
        if day != self.day:
            self.day = day
            self.quarantine.reasons(day)   # rolls the quarantine over
            self._alerts.clear("experience")
            self._refresh_offers()

    # -- runs ---------------------------------------------------------------------------------------------

    def _usable(self, name: str) -> bool:
        return name in self.registry and not self.quarantine.disabled(name, self._today())

    def resolve(self, target: str) -> str | None:
        """Where ``target`` really leads (see the module's invariants)."""
        if target == MENU and not (self._usable(MENU) and self.offers):
            target = self.offers[0].name if self.offers else ATTRACT
        if target not in (ATTRACT, MENU) and target not in {offer.name for offer in self.offers}:
            target = ATTRACT
        if not self._usable(target):
            target = ATTRACT
        return target if self._usable(target) else None

    def _enter(self, name: str | None, moment: Moment) -> None:
        self.current, self._scene = name, None
        self.token += 1
        self._jobs.open(self.token)
        self.reading_until = moment.now + self._core.reading_s()
        if name is None:
            log.info("scene world (no attract experience)")
            return
        experience = self.registry[name]
        needs = experience.needs_for(self._contexts[name].config)
        self._core.want(needs if name == ATTRACT else needs.union(NAVIGATION))
        log.info("scene %s", name)
        self._scene = experience.scene()
        self._scene.enter(self._contexts[name], moment)

    def _leave(self, reason: str) -> None:
        """End the current run: its jobs are cancelled, then its ``exit`` (which may raise: a failure)."""
        self._jobs.cancel(self.token)
        scene, self._scene = self._scene, None
        if scene is not None and self.current is not None:
            scene.exit(self._contexts[self.current], reason)

    def switch(self, target: str, reason: str, moment: Moment) -> None:
        """Leave the current run for ``target`` (unless it resolves to the same), guarded."""
        self.guarded(lambda: self._switch(target, reason, moment), moment)

    def _switch(self, target: str, reason: str, moment: Moment) -> None:
        name = self.resolve(target)
        if name == self.current and self.failsafe is None and (self._scene is not None or name is None):
            return
        self._leave(reason)
        self._enter(name, moment)

    def start(self, moment: Moment) -> None:
        """A fresh start at attract (each ``Kiosk.run``): the run in progress ends as ``stopped``."""
        self.failsafe = None

        def restart() -> None:
            self._leave("stopped")
            self._enter(self.resolve(ATTRACT), moment)

        self.guarded(restart, moment)

    def stop(self) -> None:
        """The kiosk stops: the run ends as ``stopped`` (a failing exit is only logged)."""
        try:
            self._leave("stopped")
        except Exception as exc:  # noqa: BLE001 - stopping: a failing exit is only logged
            log.error("experience %s: exit on stop failed: %s", self.current, one_line(exc))

    # -- the frame --------------------------------------------------------------------------------------

    def step(self, moment: Moment, away: bool) -> None:
        """One frame: the failsafe state, or where the run goes and its drawing."""
        self._new_day()
        if self.failsafe is not None:
            self._core.draw_failsafe()
            if self.failsafe.over(moment.now):
                self.failsafe = None
                self.switch(ATTRACT if away else MENU, "done", moment)
                if self.failsafe is None:
                    self._draw(moment)
            return
        self.guarded(lambda: self._frame(moment, away), moment)

    def _frame(self, moment: Moment, away: bool) -> None:
        if self.current in (ATTRACT, None):
            if self._scene is not None:
                self._scene.update(self._contexts[ATTRACT], moment)
            if not away:
                self._switch(MENU, "done", moment)
        elif away:
            self._switch(ATTRACT, "left", moment)
        else:
            target = self._scene.update(self._contexts[self.current], moment) if self._scene else MENU
            if target is not None:
                if target not in (ATTRACT, MENU) and target not in {offer.name for offer in self.offers}:
                    raise ApplianceError(f"experience {self.current} asked for {target!r}, which this campaign "
                                         "does not offer")
                self._switch(target, "done", moment)
        self._draw(moment)

    def _draw(self, moment: Moment) -> None:
        if self._scene is not None and self.current is not None:
            self.guarded(lambda: self._scene.draw(self._contexts[self.current], moment), moment)
        else:
            self.guarded(lambda: self._core.draw_world(moment), moment)

    def guarded(self, call: Callable[[], Any], moment: Moment) -> None:
        """``call``, its exception (if any) becoming the failsafe state (see ``_fail``)."""
        if self.failsafe is not None:
            return
        try:
            call()
        except Exception as error:  # noqa: BLE001 - an experience's failure is the failsafe state's to handle
            self._fail(error, moment)
            self._core.draw_failsafe()

    def _fail(self, error: Exception, moment: Moment) -> None:
        """The failsafe state: the failed scene's exit, one log line (rate-limited), the quarantine."""
        name, scene = self.current, self._scene
        reason = one_line(error)
        subject = f"experience {name}" if name is not None else "the kiosk's own drawing"
        allowed, held_back = self._log_gate.allow(name or "", moment.now)
        if allowed:
            more = f" ({held_back} more failures since the last report)" if held_back else ""
            log.error("%s failed, showing the failsafe screen%s: %s", subject, more, reason, exc_info=error)
        self._jobs.cancel(self.token)
        self._scene, self.current = None, None
        if scene is not None and name is not None:
            try:
                scene.exit(self._contexts[name], "failed")
            except Exception as exc:  # noqa: BLE001 - already failing: its exit's failure is only logged
                log.error("experience %s: exit after a failure failed too: %s", name, one_line(exc))
        self.streak.failed(moment.now)
        self.failsafe = Failsafe(name or "", reason, moment.now)
        if name is not None and self.quarantine.failed(name, moment.now, self._today(), reason):
            reasons = self.quarantine.reasons(self._today())
            log.error("%s", reasons[-1])
            self._alerts.raise_alert("experience", "; ".join(reasons))
            self._refresh_offers()
