"""The quiz through the appliance's test kit only: no models, no display, no broker."""

from __future__ import annotations

import pytest
from oivis_quiz import RESULT_S, experience
from pydantic import ValidationError

from appliance.experience.api import MENU, Action
from appliance.experience.testkit import FakeContext, moment, offer, play

TABLE = {"question": "Which planet has the most moons?", "answers": ["Jupiter", "Saturn", "Mars"], "correct": 1,
         "badge": "badge.png"}
NEXT, PREVIOUS, CONFIRM, BACK = Action.NEXT, Action.PREVIOUS, Action.CONFIRM, Action.BACK


def test_a_right_answer_is_published_shown_with_the_badge_and_leads_back_to_the_menu() -> None:
    script = [moment(0.0), moment(0.5, actions=(NEXT,)), moment(1.0, actions=(CONFIRM,)), moment(1.1),
              moment(1.0 + RESULT_S - 0.1), moment(1.0 + RESULT_S)]
    context = play(experience, TABLE, script)
    assert (context.target, context.exits) == (MENU, ["done"])
    assert context.published("quiz_answered") == [{"session": "test-session", "correct": True, "answer": 1}]
    assert "Right!" in context.texts(3) and "The answer: Saturn" in context.texts(3)
    assert [call.args["image"].asset for call in context.named("blit", 3)] == ["badge.png"]
    assert len(context.named("new_screen", 2)) == 1    # the result is a new screen: the answering fist cannot skip it
    assert context.exits == ["done"]


def test_a_wrong_answer_shows_no_badge_and_swipes_wrap_around() -> None:
    script = [moment(0.0), moment(0.5, actions=(PREVIOUS,)), moment(1.0, actions=(CONFIRM,)), moment(1.1)]
    result = play(experience, TABLE, script)
    assert result.published("quiz_answered") == [{"session": "test-session", "correct": False, "answer": 2}]
    assert "Not quite" in result.texts(3)
    assert not result.named("blit")
    assert result.target is None and result.exits == ["left"]


def test_a_fist_while_the_question_is_read_does_not_answer_but_enter_does() -> None:
    context = FakeContext(experience, TABLE, reading_s=1.5)
    play(experience, None, [moment(0.0), moment(0.5, actions=(CONFIRM,)), moment(1.0)], context=context)
    assert not context.published("quiz_answered")
    assert all(text != "Swipe to choose · make a fist to answer" for text in context.texts())   # no invitation yet

    context = FakeContext(experience, TABLE, reading_s=1.5)
    play(experience, None, [moment(0.0), moment(0.5, actions=(CONFIRM,), typed=(CONFIRM,))], context=context)
    assert context.published("quiz_answered") == [{"session": "test-session", "correct": False, "answer": 0}]


def test_the_hint_shows_once_a_fist_counts_and_a_fist_on_the_result_goes_back() -> None:
    context = FakeContext(experience, TABLE, reading_s=1.0)
    script = [moment(0.0), moment(1.2), moment(1.3, actions=(CONFIRM,)), moment(1.8, actions=(CONFIRM,)),
              moment(2.4, actions=(CONFIRM,))]
    result = play(experience, None, script, context=context)
    assert "Swipe to choose · make a fist to answer" in context.texts(1)
    assert len(context.published("quiz_answered")) == 1
    assert result.target == MENU and context.frame == 4   # the fist at 1.8 s was held back, the one at 2.4 s counted


def test_an_open_palm_before_answering_goes_back_without_an_answer() -> None:
    result = play(experience, TABLE, [moment(0.0), moment(0.4, actions=(BACK,))])
    assert result.target == MENU and not result.events


def test_the_answers_keep_clear_of_the_shoppers_head() -> None:
    context = FakeContext(experience, TABLE)
    context.stage.head = (760, 420, 400, 300)   # a head in the middle of the screen, where the answers would go
    play(experience, None, [moment(0.0)], context=context)
    for call in context.named("panel"):
        x, y, w, h = call.args["rect"]
        assert x + w <= 760 or x >= 1160 or y + h <= 420 or y >= 720


def test_the_menu_card_and_a_campaign_table_with_mistakes() -> None:
    assert offer(experience, TABLE).card.icon == "badge.png"
    assert offer(experience, {**TABLE, "badge": None}).card.subtitle == TABLE["question"]
    with pytest.raises(ValidationError, match="colour"):
        FakeContext(experience, {**TABLE, "colour": "red"})
    with pytest.raises(ValidationError, match="correct = 3 but there are 3 answers"):
        FakeContext(experience, {**TABLE, "correct": 3})
    with pytest.raises(ValidationError, match="answers"):
        FakeContext(experience, {**TABLE, "answers": ["a", "b", "c", "d", "e"]})
    with pytest.raises(ValidationError, match="answers"):
        FakeContext(experience, {**TABLE, "answers": ["only one"]})


def test_the_badge_is_the_only_image_it_may_draw() -> None:
    context = FakeContext(experience, TABLE)
    with pytest.raises(KeyError, match="not an asset of its \\[quiz\\] table"):
        context.image("other.png", 100)
