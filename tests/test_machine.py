"""The experiences' state machine with scripted time, presence and experiences: no models, no display."""

from __future__ import annotations

from pathlib import Path

from appliance.alerts import Alerts
from appliance.content import Bundle
from appliance.experience.api import API_VERSION, ATTRACT, MENU, Card, Experience, Moment, Needs
from appliance.experience.registry import Registry
from appliance.kiosk.context import SceneContext
from appliance.kiosk.failsafe import FAILSAFE_S, LIMIT, WATCHDOG_GRACE_S
from appliance.kiosk.jobs import JobRunner
from appliance.kiosk.machine import NAVIGATION, Core, Machine


class Recorder:
    """Experiences whose hooks record what happened and raise where the test says."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.raising: dict[tuple[str, str], Exception] = {}
        self.targets: dict[str, str | None] = {}

    def experience(self, name: str, needs: Needs = Needs()) -> Experience:
        recorder = self

        class Scene:
            def _hook(self, hook: str) -> None:
                recorder.calls.append((name, hook))
                if (name, hook) in recorder.raising:
                    raise recorder.raising[(name, hook)]

            def enter(self, context, moment) -> None:
                self._hook("enter")

            def update(self, context, moment) -> str | None:
                self._hook("update")
                return recorder.targets.get(name)

            def draw(self, context, moment) -> None:
                self._hook("draw")

            def exit(self, context, reason: str) -> None:
                self._hook(f"exit:{reason}")

        return Experience(name=name, api=API_VERSION, scene=Scene, card=lambda config: Card(name.title()),
                          needs=needs)

    def entered(self) -> list[str]:
        return [name for name, hook in self.calls if hook == "enter"]


class Rig:
    def __init__(self, names: tuple[str, ...], offered: tuple[str, ...], day: list[str] | None = None) -> None:
        self.recorder = Recorder()
        self.needs: list[Needs] = []
        self.failsafe_draws = 0
        self.world_draws = 0
        self.day = day or ["2026-11-30"]
        registry = Registry.of([self.recorder.experience(name, Needs(hands=0.0) if name == ATTRACT else Needs())
                                for name in names])
        core = Core(self._failsafe, self._world, self.needs.append,
                    lambda name, bundle: SceneContext(name, None, None, None, None, None, None, None, None),
                    lambda: 1.0)
        self.alerts = Alerts()
        self.machine = Machine(registry, core, self.alerts, JobRunner(), lambda: self.day[0])
        self.machine.use(Bundle(Path("."), "test", (), offered, {}))
        self.now = 0.0
        self.machine.start(Moment(self.now, None))

    def _failsafe(self) -> None:
        self.failsafe_draws += 1

    def _world(self, moment: Moment) -> None:
        self.world_draws += 1

    def frames(self, seconds: float, away: bool = False, fps: float = 10.0) -> None:
        for _ in range(int(seconds * fps)):
            self.now += 1 / fps
            self.machine.step(Moment(self.now, None), away)


def test_attract_then_the_menu_with_the_navigations_needs_and_back_to_attract_when_the_shopper_leaves() -> None:
    rig = Rig((ATTRACT, MENU, "game"), ("game",))
    rig.frames(0.3, away=True)
    rig.frames(0.3)
    assert rig.machine.current == MENU and rig.needs == [Needs(hands=0.0), NAVIGATION]
    rig.recorder.targets[MENU] = "game"
    rig.frames(0.1)
    assert rig.machine.current == "game" and ("menu", "exit:done") in rig.recorder.calls
    rig.frames(0.1, away=True)
    assert rig.machine.current == ATTRACT and ("game", "exit:left") in rig.recorder.calls
    assert rig.recorder.entered() == [ATTRACT, MENU, "game", ATTRACT]


def test_an_enter_that_raises_after_the_failsafe_never_escapes_and_is_quarantined() -> None:
    """Before: with the menu quarantined, the first offer's enter raising after the failsafe left the loop."""
    rig = Rig((ATTRACT, "boom"), ("boom",))       # no menu: the menu target leads to the first offer
    rig.recorder.raising[("boom", "enter")] = RuntimeError("boom in enter")
    rig.frames(FAILSAFE_S * (LIMIT + 1) + 1)      # never raises out of step
    assert rig.recorder.entered().count("boom") == LIMIT
    assert [offer.name for offer in rig.machine.offers] == [] and rig.machine.current == ATTRACT
    assert rig.alerts.wire()[0]["code"] == "experience"
    assert ("boom", "exit:failed") in rig.recorder.calls


def test_a_new_day_brings_a_quarantined_experience_back_and_clears_the_alert() -> None:
    rig = Rig((ATTRACT, MENU, "boom"), ("boom",))
    rig.recorder.raising[("boom", "draw")] = RuntimeError("boom in draw")
    rig.recorder.targets[MENU] = "boom"
    rig.frames(FAILSAFE_S * (LIMIT + 1) + 1)
    assert rig.machine.offers == () and rig.alerts.wire()
    rig.day[0] = "2026-12-01"
    rig.frames(0.1)
    assert [offer.name for offer in rig.machine.offers] == ["boom"] and rig.alerts.wire() == []


def test_nothing_to_offer_keeps_attract_without_entering_it_again_every_frame() -> None:
    rig = Rig((ATTRACT, MENU), ())
    rig.frames(2.0)
    assert rig.recorder.entered() == [ATTRACT] and rig.machine.current == ATTRACT


def test_the_core_failing_for_good_starves_the_watchdog_and_quarantines_nothing() -> None:
    rig = Rig((MENU,), ())                          # no attract: the core draws the world itself
    rig.failsafe_draws = 0
    original = rig.machine._core
    rig.machine._core = original.__class__(original.draw_failsafe, lambda moment: 1 / 0, original.want,
                                           original.context, original.reading_s)
    rig.frames(WATCHDOG_GRACE_S - 1, away=True)
    assert not rig.machine.streak.starving(rig.now) and rig.failsafe_draws > 0
    rig.frames(2, away=True)
    assert rig.machine.streak.starving(rig.now)
    assert rig.alerts.wire() == [] and rig.machine.quarantine.reasons(rig.day[0]) == []


def test_an_experience_asking_for_one_not_offered_fails() -> None:
    rig = Rig((ATTRACT, MENU, "game"), ("game",))
    rig.frames(0.2)
    rig.recorder.targets[MENU] = "elsewhere"
    rig.frames(0.1)
    assert rig.machine.failsafe is not None and "asked for 'elsewhere'" in rig.machine.failsafe.reason
