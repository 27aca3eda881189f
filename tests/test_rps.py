"""Rock–paper–scissors as a pure state machine: scripted hands, a fake clock, a seeded or scripted star."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest
from scripted import frames, state

from appliance.events import EventBus
from appliance.experiences.rps.game import BEATS, MOVES, Phase, RpsGame, Rules, outcome, star_move
from appliance.perception.hand import GestureState

RULES = Rules(beat_s=0.7, grace_s=0.35)


class Rolls(random.Random):
    """A star whose dice are scripted: ``random()`` returns the given rolls in turn."""

    def __init__(self, rolls: list[float]) -> None:
        super().__init__(0)
        self.rolls = list(rolls)

    def random(self) -> float:
        return self.rolls.pop(0)


def new_game(rules: Rules = RULES, rng: random.Random | None = None) -> tuple[RpsGame, EventBus]:
    bus = EventBus()
    return RpsGame(rules, rng or random.Random(1), bus.publish, now=0.0), bus


def play(game: RpsGame, hand: Callable[[float, RpsGame], GestureState], until: float, start: float = 0.0,
         stop: Callable[[RpsGame], bool] = lambda game: game.finished) -> float:
    """Feed the game 30 frames a second until ``stop`` or ``until``; returns the time reached."""
    for now in frames(start, until):
        game.update(now, hand(now, game))
        if stop(game):
            return now
    return until


def in_countdown(game: RpsGame) -> bool:
    return game.phase is Phase.COUNTDOWN


def throws(move: str) -> Callable[[float, RpsGame], GestureState]:
    """A shopper who pumps a fist through the countdown and shows ``move`` on "shoot" (settling takes 150 ms)."""
    def hand(now: float, game: RpsGame) -> GestureState:
        if game.phase is not Phase.COUNTDOWN or now < game.shoot_at:
            return state("rock")
        return state(move if now >= game.shoot_at + 0.15 else None, label=move)
    return hand


def events(bus: EventBus, kind: str) -> list[dict]:
    return [event.data for event in bus.drain(1000) if event.type == kind]


def test_outcomes() -> None:
    assert [outcome("rock", star) for star in MOVES] == ["draw", "lose", "win"]
    assert all(outcome(move, BEATS[move]) == "win" and outcome(BEATS[move], move) == "lose" for move in MOVES)


def test_a_shopper_who_always_wins_takes_the_game_two_nil() -> None:
    game, bus = new_game(Rules(win_rate=1.0))
    play(game, throws("paper"), until=30.0)
    assert game.phase is Phase.RESULT and game.winner == "shopper"
    published = bus.drain(100)
    rounds = [event.data for event in published if event.type == "rps_round"]
    assert rounds == [
        {"round": 1, "shopper": "paper", "star": "rock", "outcome": "win", "typed": False,
         "score": {"shopper": 1, "star": 0}},
        {"round": 2, "shopper": "paper", "star": "rock", "outcome": "win", "typed": False,
         "score": {"shopper": 2, "star": 0}},
    ]
    assert [event.type for event in published][-1] == "rps_result"
    assert published[-1].data == {"score": {"shopper": 2, "star": 0}, "winner": "shopper", "rounds": 2}


def test_the_move_is_read_after_shoot_and_the_round_shown() -> None:
    game, _ = new_game(Rules(win_rate=1.0))
    start = play(game, throws("scissors"), until=10.0, stop=in_countdown)
    assert abs(start - RULES.intro_beats * RULES.beat_s) < 0.04
    assert [game.word(start + beat * 0.7 + 0.1) for beat in range(5)] == ["Rock", "Paper", "Scissors", "Shoot!",
                                                                          "Shoot!"]
    play(game, throws("scissors"), until=game.shoot_at + RULES.grace_s - 0.02, start=start)
    assert game.phase is Phase.COUNTDOWN, "the grace window is still open"
    play(game, throws("scissors"), until=game.shoot_at + RULES.grace_s + 0.05, start=game.shoot_at + RULES.grace_s)
    assert game.phase is Phase.ROUND and game.last.shopper == "scissors" and game.last.star == "paper"


def test_draws_replay_and_the_star_can_win_best_of_three() -> None:
    # win_rate 1/3: a roll below 1/3 is a shopper win, below 2/3 a draw, else a loss.
    game, bus = new_game(Rules(win_rate=1 / 3), Rolls([0.5, 0.1, 0.9, 0.5, 0.8]))
    play(game, throws("rock"), until=60.0)
    published = bus.drain(100)
    rounds = [event.data for event in published if event.type == "rps_round"]
    assert [r["outcome"] for r in rounds] == ["draw", "win", "lose", "draw", "lose"]
    assert [r["round"] for r in rounds] == [1, 2, 3, 4, 5]
    assert [r["star"] for r in rounds] == ["rock", "scissors", "paper", "rock", "paper"]
    assert game.winner == "star"
    assert published[-1].type == "rps_result"
    assert published[-1].data == {"score": {"shopper": 1, "star": 2}, "winner": "star", "rounds": 5}


@pytest.mark.parametrize("win_rate", [0.0, 0.1, 0.5, 0.8, 1.0])
def test_the_configured_win_rate_holds_over_many_rounds(win_rate: float) -> None:
    rng, shopper_rng = random.Random(2024), random.Random(7)
    tally = Counter(outcome(move, star_move(move, rng, win_rate))
                    for move in (shopper_rng.choice(MOVES) for _ in range(2000)))
    assert abs(tally["win"] / 2000 - win_rate) < 0.035
    assert abs(tally["draw"] / 2000 - (1 - win_rate) / 2) < 0.035


def test_a_uniform_star_throws_each_move_a_third_of_the_time_whatever_the_shopper_does() -> None:
    rng = random.Random(5)
    tally = Counter(star_move("rock", rng, None) for _ in range(3000))
    assert all(abs(tally[move] / 3000 - 1 / 3) < 0.035 for move in MOVES)


def test_seeded_games_are_repeatable() -> None:
    results = []
    for _ in range(2):
        game, bus = new_game(Rules(), random.Random(99))
        play(game, throws("rock"), until=60.0)
        results.append([(e.data["star"], e.data["outcome"]) for e in bus.drain(100) if e.type == "rps_round"])
    assert results[0] == results[1] and len(results[0]) >= 2


@pytest.mark.parametrize("shown", [None, "other", "point", "thumb_up", "thumb_down", "no hand"])
def test_no_readable_hand_at_shoot_retries_the_round_never_loses_it(shown: str | None) -> None:
    game, bus = new_game(Rules(win_rate=0.0))

    def hand(now: float, game: RpsGame) -> GestureState:
        if shown == "no hand":
            return state(hand=False)
        return state(shown, label=shown or "rock")

    play(game, hand, until=RULES.intro_beats * 0.7 + 4 * 0.7)
    assert game.phase is Phase.SHOW_HAND
    assert game.score == {"shopper": 0, "star": 0} and game.round == 1 and game.retries == 1
    assert events(bus, "rps_round") == []
    # The shopper shows a hand for the retry: round 1 is played then.
    play(game, throws("rock"), until=game.since + 10.0, start=game.since, stop=lambda game: game.last is not None)
    assert game.last.round == 1 and game.retries == 0


def test_the_latest_readable_move_in_the_grace_window_counts() -> None:
    game, _ = new_game(Rules(win_rate=1.0))

    def late_paper(now: float, game: RpsGame) -> GestureState:
        # still a held fist at "shoot", the paper reading settles 250 ms later
        if game.phase is Phase.COUNTDOWN and now >= game.shoot_at + 0.25:
            return state("paper")
        return state("rock")

    play(game, late_paper, until=10.0, stop=lambda game: game.last is not None)
    assert game.last.shopper == "paper"


def test_a_stalled_loop_still_reads_the_hand() -> None:
    game, _ = new_game(Rules(win_rate=1.0))
    game.update(0.0, state("rock"))
    game.update(RULES.intro_beats * 0.7, state("rock"))     # countdown starts
    game.update(game.shoot_at - 0.5, state("rock"))
    game.update(game.shoot_at + 0.6, state("scissors"))     # one frame, already past the grace window
    assert game.phase is Phase.ROUND and game.last.shopper == "scissors"


def test_an_open_palm_held_a_second_abandons() -> None:
    game, bus = new_game()
    script = lambda now, game: state("paper") if now >= 0.5 else state(hand=False)  # noqa: E731
    progress = []
    for now in frames(0.0, 3.0):
        game.update(now, script(now, game))
        progress.append(game.abandon_progress(now))
        if game.finished:
            break
    assert game.phase is Phase.ABANDONED and 1.5 <= now < 1.55
    assert 0.4 < progress[int(1.0 * 30)] < 0.6
    assert events(bus, "rps_abandon") == [{"reason": "palm", "round": 1, "score": {"shopper": 0, "star": 0}}]


def test_a_palm_thrown_as_paper_and_kept_up_does_not_abandon() -> None:
    game, bus = new_game(Rules(win_rate=0.5), random.Random(3))

    def keeps_paper(now: float, game: RpsGame) -> GestureState:
        shot = game.phase is not Phase.INTRO and (game.phase is not Phase.COUNTDOWN or now >= game.shoot_at - 0.4)
        return state("paper") if shot else state("rock")

    play(game, keeps_paper, until=game.since + 1.75 + 2.1 + 0.35 + 2.0)
    assert game.phase is Phase.ROUND and game.last.shopper == "paper"
    assert game.abandon_progress(game.since + 1.0) == 0.0
    assert events(bus, "rps_abandon") == []


def test_a_shopper_who_never_shows_a_hand_is_let_go() -> None:
    game, bus = new_game()
    play(game, lambda now, game: state(hand=False), until=120.0)
    assert game.phase is Phase.ABANDONED
    assert events(bus, "rps_abandon")[0]["reason"] == "no_hand"


def test_typed_throws_play_without_a_camera() -> None:
    game, bus = new_game(Rules(win_rate=0.0), Rolls([0.9, 0.9]))
    for now in frames(0.0, 30.0):
        game.throw("scissors")
        game.update(now, state(hand=False))
        if game.finished:
            break
    assert game.winner == "star"
    rounds = events(bus, "rps_round")
    assert [(r["shopper"], r["star"], r["typed"]) for r in rounds] == [("scissors", "rock", True)] * 2


def test_abandon_is_published_once_and_ends_the_game() -> None:
    game, bus = new_game()
    game.abandon(0.3, "left")
    game.abandon(0.4, "key")
    game.update(5.0, state("rock"))
    assert game.phase is Phase.ABANDONED
    assert [e["reason"] for e in events(bus, "rps_abandon")] == ["left"]
