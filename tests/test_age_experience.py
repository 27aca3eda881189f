"""The "AI guesses your age" experience through the test kit: bands beside faces (never over one, never a
child's number), thinking until enough guesses, gender only when the campaign asks, back and timeout, and
its event carrying no individual's age or gender.  Scripted faces, then the real estimator on real faces."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib

from appliance.alerts import Alerts
from appliance.content import Bundle
from appliance.experience.api import MENU, Action, FaceAge, Moment
from appliance.experience.registry import Registry, installed
from appliance.experience.testkit import FakeContext, face, moment, play
from appliance.experiences.age import experience
from appliance.experiences.age.config import AgeConfig
from appliance.experiences.age.scene import beside
from appliance.experiences.age.session import AgeSession
from appliance.inference.backend import BackendOptions, Inference
from appliance.kiosk.context import SceneContext
from appliance.kiosk.jobs import JobRunner
from appliance.kiosk.machine import NAVIGATION, Core, Machine
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.sources.base import Frame

ROOT = Path(__file__).resolve().parent.parent
ADULT = FaceAge(33.2, "30-40", 6, "female", 0.87)
CHILD = FaceAge(8.4, "kid", 6, "male", 0.7)
TEEN = FaceAge(15.1, "teen", 6)
EARLY = FaceAge(41.0, "35-45", 2)


def boxes(context: FakeContext, frame: int) -> list[tuple[int, int, int, int]]:
    return [call.args["rect"] for call in context.named("panel", frame)]


def overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_each_face_gets_its_band_beside_it_and_a_child_never_a_number() -> None:
    faces = [face((60, 40, 40, 50), 1, ADULT), face((200, 50, 30, 40), 2, CHILD), face((140, 60, 20, 25), 3, TEEN)]
    context = play(experience, {}, [moment(0.0, faces=faces), moment(0.1, faces=faces)])
    texts = context.texts(1)
    assert {"Looks 30-40", "Young star!", "Teen spirit!"} <= set(texts)
    assert not any(re.search(r"\d", text) for text in texts if text in ("Young star!", "Teen spirit!"))
    assert "woman" not in texts and "man" not in texts          # gender is off unless the campaign asks
    labels = boxes(context, 1)
    shown = context.stage
    faces_on_screen = []
    for one in faces:
        x, y, w, h = one.box
        corners = [shown.screen_point(point, (320, 180)) for point in ((x, y), (x + w, y + h))]
        xs, ys = sorted(c[0] for c in corners), sorted(c[1] for c in corners)
        faces_on_screen.append((xs[0], ys[0], xs[1] - xs[0], ys[1] - ys[0]))
    assert len(labels) == 3
    for label in labels:
        assert not any(overlaps(label, box) for box in faces_on_screen)
    assert not any(overlaps(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])
    lines = [context.canvas.box(call) for call in context.named("text", 1)
             if call.args["line"] in ("AI guesses your age", "Hold an open hand: menu")]
    assert len(lines) == 2 and not any(overlaps(line, box) for line in lines for box in labels + faces_on_screen)


def test_a_face_is_thinking_until_it_has_enough_guesses() -> None:
    context = play(experience, {"guesses": 3}, [moment(0.0, faces=[face((60, 40, 40, 50), 1, None)]),
                                                moment(0.1, faces=[face((60, 40, 40, 50), 1, EARLY)]),
                                                moment(0.2, faces=[face((60, 40, 40, 50), 1, FaceAge(41.0, "35-45",
                                                                                                     3))])])
    assert any(text.startswith("Thinking") for text in context.texts(0))
    assert any(text.startswith("Thinking") for text in context.texts(1)) and "Looks 35-45" not in context.texts(1)
    assert "Looks 35-45" in context.texts(2)


def test_gender_shows_only_when_the_campaign_turns_it_on() -> None:
    faces = [face((60, 40, 40, 50), 1, ADULT)]
    context = play(experience, {"gender": True, "woman": "Queen"}, [moment(0.0, faces=faces), moment(0.1, faces=faces)])
    assert "Queen" in context.texts(1)
    assert experience.needs_for(context.config).gender
    assert not experience.needs_for(FakeContext(experience, {}).config).gender


def test_an_open_palm_goes_back_and_the_event_has_counts_only() -> None:
    faces = [face((60, 40, 40, 50), 1, ADULT), face((200, 50, 30, 40), 2, CHILD)]
    context = play(experience, {}, [moment(0.0, faces=faces), moment(2.0, faces=faces),
                                    moment(5.0, faces=faces, actions=[Action.BACK])])
    assert context.target == MENU
    assert context.published("age_played") == [{"session": "test-session", "duration_s": 5.0, "faces": 2,
                                                 "reason": "palm"}]


def test_the_faces_labelled_are_counted_by_update_not_by_drawing() -> None:
    events: list[tuple[str, dict]] = []
    session = AgeSession(AgeConfig(), lambda kind, data: events.append((kind, dict(data))), 0.0)
    ready, thinking = face((60, 40, 40, 50), 1, ADULT), face((200, 50, 30, 40), 2, EARLY)
    session.update(1.0, [ready, thinking])                       # never drawn: the ready face still counts
    session.labels([face((300, 50, 30, 40), 3, CHILD)])          # drawn but never updated: not counted
    assert [label.ready for label in session.labels([ready, thinking])] == [True, False]
    session.end(2.0, "key")
    assert events == [("age_played", {"duration_s": 2.0, "faces": 1, "reason": "key"})]


def test_time_up_goes_back_to_the_menu() -> None:
    context = play(experience, {"play_s": 10}, [moment(float(t)) for t in range(13)])
    assert context.target == MENU and len(context.exits) == 1
    assert context.published("age_played") == [{"session": "test-session", "duration_s": 10.0, "faces": 0,
                                                 "reason": "timeout"}]


def test_a_shopper_walking_away_still_ends_the_run_once() -> None:
    context = play(experience, {}, [moment(0.0), moment(3.0)], end="left")
    assert [data["reason"] for data in context.published("age_played")] == ["left"]


def test_a_label_goes_beside_the_face_not_over_it() -> None:
    screen = (1920, 1080)
    assert beside((800, 300, 200, 260), (300, 80), screen, []) == (1024, 390)       # on the right
    assert beside((1600, 300, 200, 260), (300, 80), screen, []) == (1276, 390)      # no room right: left
    taken = [(1024, 380, 300, 100)]                                                 # right taken by a label
    assert beside((800, 300, 200, 260), (300, 80), screen, taken) == (476, 390)
    assert beside((0, 0, 1920, 1080), (300, 80), screen, []) is None                # no side free


def test_the_age_table_is_validated() -> None:
    with pytest.raises(ValueError, match="band"):
        FakeContext(experience, {"looks": "Looks young"})
    with pytest.raises(ValueError, match="extra"):
        FakeContext(experience, {"colour": "red"})


def test_the_default_campaign_offers_it_and_the_kiosk_finds_it() -> None:
    assert installed()["age"] is experience
    campaign = tomllib.loads((ROOT / "content" / "default" / "campaign.toml").read_text())
    assert "age" in campaign["experiences"]
    assert FakeContext(experience, campaign["age"]).config.gender is False


@pytest.fixture(scope="module")
def real_moments(astronaut: np.ndarray) -> list[Moment]:
    """The astronaut, live: faces and their smoothed ages from the real detector, mesh and estimator."""
    perceiver = Perceiver(Inference("auto", BackendOptions(threads=1, soc=None)))
    needs = Needs(hands=0, face=EVERY_FRAME, age=EVERY_FRAME, gender=True)
    return [Moment(index / 10.0, perceiver.process(Frame(astronaut, index, index / 10.0), needs))
            for index in range(8)]


def test_on_a_real_face_nothing_individual_reaches_an_event_or_a_log(real_moments: list[Moment],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    estimate = real_moments[-1].perception.faces[0].age
    assert estimate is not None and estimate.gender == "female"
    with caplog.at_level(logging.DEBUG):
        context = play(experience, {"gender": True}, real_moments)
    assert f"Looks {estimate.band}" in context.texts(7) and "woman" in context.texts(7)
    (event,) = context.events
    assert event[0] == "age_played" and set(event[1]) == {"session", "duration_s", "faces", "reason"}
    assert event[1]["faces"] == 1 and event[1]["reason"] == "left"
    said = json.dumps(context.events) + "\n".join(record.getMessage() for record in caplog.records)
    assert not re.search(rf"\b{round(estimate.age)}\b|{estimate.age:.1f}|male|{estimate.band}", said)


@pytest.mark.parametrize("gender", [False, True])
def test_the_kiosk_asks_for_the_gender_model_only_when_the_campaign_does(gender: bool) -> None:
    asked: list[Needs] = []
    drawn = FakeContext(experience)    # the test kit's canvas and stage stand in for the screen
    core = Core(lambda: None, lambda moment: None, asked.append,
                lambda name, bundle: SceneContext(name, bundle.configs.get(name), drawn.canvas, drawn.stage, None,
                                                  None, None, lambda kind, data: None, lambda: None), lambda: 1.0)
    machine = Machine(Registry.of([experience]), core, Alerts(), JobRunner(), lambda: "2026-11-30")
    machine.use(Bundle(Path("."), "test", (), ("age",), {"age": AgeConfig(gender=gender)}))
    machine.start(Moment(0.0, None))
    machine.step(Moment(0.1, None), False)
    assert machine.current == "age" and "AI guesses your age" in drawn.texts()
    assert asked[-1] == Needs(face=10, age=3, gender=gender).union(NAVIGATION)
