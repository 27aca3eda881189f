"""The experience test kit (appliance.experience.testkit) on the built-in experiences, and its own rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from appliance.experience.api import MENU, Action, Card, Experience
from appliance.experience.testkit import FakeContext, gestures, moment, offer, play
from appliance.experiences.menu import experience as menu
from appliance.experiences.mirror import experience as mirror
from appliance.experiences.rps import experience as rps

STAR = {"star_name": "Nova", "star_image": "star.png", "star_sad_image": "sad.png", "intro_s": 0.5,
        "beat_s": 0.1, "rounds_to_win": 1, "win_rate": 1.0}
OFFERS = (offer(mirror), offer(rps, STAR))


def frames(start: float, end: float, step: float = 0.05, **kwargs) -> list:
    return [moment(round(start + i * step, 3), **kwargs) for i in range(round((end - start) / step))]


def test_the_menu_shows_the_offers_and_a_fist_starts_the_one_in_the_middle() -> None:
    context = FakeContext(menu, offers=OFFERS)
    result = play(menu, None, [moment(0.0), moment(0.5, actions=(Action.NEXT,)), moment(1.0),
                               moment(1.5, actions=(Action.CONFIRM,))], context=context)
    assert (result.target, result.exits) == ("rps", ["done"])
    assert context.published("experience_chosen") == [{"session": "test-session", "experience": "rps"}]
    assert {"Choose your experience", "Live mirror", "Rock · Paper · Scissors", "Beat Nova!"} <= set(context.texts(0))
    selected = [call.args["rect"] for call in context.named("panel", 2) if call.args["border"] is not None]
    assert len(selected) == 1 and selected[0][0] + selected[0][2] // 2 == 960   # rps moved to the middle
    assert [call.args["image"].asset for call in context.named("blit", 2)] == ["star.png"]   # rps's icon
    assert context.named("picture", 0)          # the live card shows the screen itself
    assert len(context.named("new_screen", 0)) == 1


def test_the_carousel_wraps_round_so_the_last_offer_shows_left_of_the_first() -> None:
    third = Experience(name="third", api="1.0", scene=object, card=lambda config: Card("Third"))
    context = FakeContext(menu, offers=(*OFFERS, offer(third)))
    play(menu, None, [moment(0.0)], context=context)
    titles = {call.args["line"]: call.args["position"][0] for call in context.named("text", 0)}
    assert titles["Third"] < titles["Live mirror"] == 960 < titles["Rock · Paper · Scissors"]


def test_the_menu_title_keeps_clear_of_the_head() -> None:
    context = FakeContext(menu, offers=OFFERS)
    context.stage.head = (860, 40, 200, 260)    # the head right where the title prefers to be
    play(menu, None, [moment(0.0)], context=context)
    (title,) = [call for call in context.named("text") if call.args["line"] == "Choose your experience"]
    x, y = title.args["position"]
    assert y - 54 >= 40 + 260   # moved below the head (too wide to go beside it), not drawn over it


def test_a_target_the_campaign_does_not_offer_fails_the_scene() -> None:
    leaving = Experience("leaver", "1.0", Leaver, lambda config: Card("Leaver"))
    context = FakeContext(leaving)
    with pytest.raises(ValueError, match="asked for 'rps', which is not offered"):
        play(leaving, None, [moment(0.0), moment(0.1)], context=context)
    assert context.published("left") == [{"session": "test-session", "reason": "failed"}]


class Leaver:
    def enter(self, context, moment) -> None:
        pass

    def update(self, context, moment) -> str | None:
        return "rps"

    def draw(self, context, moment) -> None:
        pass

    def exit(self, context, reason) -> None:
        context.publish("left", {"reason": reason})


def test_rps_typed_rock_is_thrown_at_shoot_and_the_result_leads_back_to_the_menu() -> None:
    script = [moment(0.0), moment(0.1, inputs=("rock",)), *frames(0.15, 8.0)]
    context = play(rps, STAR, script)
    (round_,) = context.published("rps_round")
    assert (round_["shopper"], round_["typed"], round_["outcome"]) == ("rock", True, "win")
    assert context.published("rps_result")[0]["winner"] == "shopper"
    assert "You win!" in context.texts()
    assert any(call.args["image"].asset == "sad.png" for call in context.named("blit"))   # the star lost: sad
    assert context.target == MENU and context.exits == ["done"]


def test_rps_reads_a_held_paper_at_shoot_from_scripted_gestures() -> None:
    script = [moment(0.0), *frames(0.05, 0.8), *frames(0.8, 1.6, gestures=gestures("paper"))]
    result = play(rps, STAR, script)
    assert [event["shopper"] for event in result.published("rps_round")] == ["paper"]
    assert result.target is None and result.exits == ["left"]
    assert result.published("rps_abandon") == []   # finished: leaving then abandons nothing


def test_rps_left_midgame_publishes_the_abandon_with_the_reason() -> None:
    result = play(rps, STAR, [moment(0.0), moment(0.1)], end="left")
    assert result.published("rps_abandon")[0]["reason"] == "left"


def test_an_input_that_is_not_one_of_the_experiences_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="inputs"):
        play(rps, STAR, [moment(0.0), moment(0.1, inputs=("lizard",))])


class Broken:
    def enter(self, context, moment) -> None:
        self.job = None
        self.seen: list[bool] = []

    def update(self, context, moment) -> str | None:
        if self.job is None:
            self.job = context.jobs.submit(lambda: 6 * 7, "answer")
        self.seen.append(self.job.done)
        if self.job.done:
            context.publish("answer", {"value": self.job.result(), "seen": list(self.seen)})
        return None

    def draw(self, context, moment) -> None:
        if moment.now >= 1.0:
            context.canvas.text("bad", (0, 0), colour="red", shadow=True)   # no such argument in the API
        context.canvas.text(f"frame {len(self.seen)}", (10, 10))

    def exit(self, context, reason) -> None:
        context.publish("exit", {"reason": reason})


BROKEN = Experience("broken", "1.0", Broken, lambda config: Card("Broken"))


def test_a_scene_failing_inside_draw_fails_the_test_after_its_exit() -> None:
    context = FakeContext(BROKEN)
    with pytest.raises(TypeError, match="shadow"):
        play(BROKEN, None, [moment(0.0), moment(0.5), moment(1.0), moment(1.5)], context=context)
    assert context.exits == ["failed"] and context.published("exit") == [{"session": "test-session",
                                                                          "reason": "failed"}]
    assert context.texts() == ["frame 0", "frame 1"]


def test_jobs_are_done_only_from_the_next_frame_or_never_when_not_run() -> None:
    context = FakeContext(BROKEN)
    play(BROKEN, None, [moment(0.0), moment(0.1), moment(0.2)], context=context)
    (answer,) = context.published("answer")
    assert answer["value"] == 42 and answer["seen"] == [False, True]   # run at once, done only from the next frame

    waiting = FakeContext(BROKEN, run_jobs=False)
    play(BROKEN, None, [moment(0.0), moment(0.1), moment(0.2)], context=waiting)
    (job,) = waiting.jobs.submitted
    assert not job.done and not waiting.published("answer")
    with pytest.raises(ValueError, match="not done yet"):
        job.result()
    waiting.run_jobs()
    waiting.jobs.deliver()
    assert not job.done   # the scene exited: its job is dropped, as the kiosk drops it


def test_the_context_refuses_what_the_kiosk_would() -> None:
    with pytest.raises(ValidationError, match="star_colour"):
        FakeContext(rps, {**STAR, "star_colour": "gold"})
    with pytest.raises(ValueError, match="needs experience API 2.0"):
        FakeContext(Experience("future", "2.0", Broken, lambda config: Card("Future")))
    with pytest.raises(ValueError, match="has no config"):
        FakeContext(mirror, {"anything": 1})
    with pytest.raises(KeyError, match="'logo.png' is not an asset of its \\[rps\\] table"):
        FakeContext(rps, STAR).image("logo.png", 100)
