"""Rock–paper–scissors against the campaign's star: the game as a pure, time-driven state machine.

No pygame and no clock of its own: ``update(now, gestures)`` is called every
frame with the newest gesture state, so tests script a game with a fake clock.
A round is: countdown words, "shoot", then a short grace window in which the
shopper's *held* gesture is read (held readings settle a few frames after the
hand does).  A missing or unreadable hand retries the round; it never loses it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from appliance.experience.api import GestureState, Hold, held_gesture

Move = Literal["rock", "paper", "scissors"]
Outcome = Literal["win", "lose", "draw"]     # from the shopper's side
MOVES: tuple[Move, ...] = ("rock", "paper", "scissors")
BEATS: dict[Move, Move] = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
BEATEN_BY: dict[Move, Move] = {loser: winner for winner, loser in BEATS.items()}
WORDS = ("Rock", "Paper", "Scissors", "Shoot!")

Publish = Callable[[str, dict[str, Any]], object]


class Phase(Enum):
    INTRO = "intro"            # the star introduces the game
    COUNTDOWN = "countdown"    # the words, then the grace window after "shoot"
    SHOW_HAND = "show_hand"    # nothing readable at the shoot: the round is retried
    ROUND = "round"            # both moves and the round's outcome on screen
    RESULT = "result"          # somebody reached rounds_to_win
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Rules:
    """The game's settings.  The pauses are counted in beats, so one tempo (``beat_s``) paces it all;
    the grace window and the palm hold are in seconds, as they wait on the hand tracker, not the game."""

    rounds_to_win: int = 2
    win_rate: float | None = None   # P(shopper wins a round); None = the star throws uniformly at random
    beat_s: float = 0.7             # one countdown word
    grace_s: float = 0.35           # after "shoot", for the held reading to settle
    intro_beats: float = 2.5
    round_beats: float = 3.0        # the round's outcome on screen
    show_hand_beats: float = 2.3
    abandon_hold_s: float = 1.0     # an open palm held this long quits
    max_retries: int = 4            # unreadable rounds in a row before the game gives up


@dataclass(frozen=True)
class Throw:
    round: int
    shopper: Move
    star: Move
    outcome: Outcome
    typed: bool                     # from the technician's keyboard, not the camera


def outcome(shopper: Move, star: Move) -> Outcome:
    if shopper == star:
        return "draw"
    return "win" if BEATS[shopper] == star else "lose"


def star_move(shopper: Move, rng: random.Random, win_rate: float | None) -> Move:
    """The star's throw.  With a win rate the star answers the shopper's move: the shopper wins
    with ``win_rate``, and the rest is split evenly between draws and losses, so 1/3 plays like
    the uniform game while a prize campaign controls how many rounds (and so prizes) are won."""
    if win_rate is None:
        return rng.choice(MOVES)
    draw_rate = (1.0 - win_rate) / 2
    roll = rng.random()
    if roll < win_rate:
        return BEATS[shopper]
    if roll < win_rate + draw_rate:
        return shopper
    return BEATEN_BY[shopper]


class RpsGame:
    """One best-of game; publishes ``rps_round``, ``rps_result`` and ``rps_abandon``."""

    def __init__(self, rules: Rules, rng: random.Random, publish: Publish, now: float) -> None:
        self.rules = rules
        self.rng = rng
        self.publish = publish
        self.phase = Phase.INTRO
        self.since = now
        self.round = 1
        self.score = {"shopper": 0, "star": 0}
        self.last: Throw | None = None
        self.retries = 0
        self._seen: Move | None = None
        self._typed: Move | None = None
        self._palm = Hold(rules.abandon_hold_s)

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.RESULT, Phase.ABANDONED)

    @property
    def winner(self) -> Literal["shopper", "star"] | None:
        if self.phase is not Phase.RESULT:
            return None
        return "shopper" if self.score["shopper"] >= self.rules.rounds_to_win else "star"

    @property
    def shoot_at(self) -> float:
        """When "shoot" is said in the current countdown."""
        return self.since + (len(WORDS) - 1) * self.rules.beat_s

    def word(self, now: float) -> str | None:
        """The countdown word on screen now, None outside the countdown."""
        if self.phase is not Phase.COUNTDOWN:
            return None
        return WORDS[min(len(WORDS) - 1, max(0, int((now - self.since) / self.rules.beat_s)))]

    def throw(self, move: Move) -> None:
        """A typed throw: it stands for the shopper's hand in the current (or next) round."""
        if not self.finished:
            self._typed = move

    def abandon(self, now: float, reason: str) -> None:
        if self.finished:
            return
        self._enter(Phase.ABANDONED, now)
        self.publish("rps_abandon", {"reason": reason, "round": self.round, "score": dict(self.score)})

    def abandon_progress(self, now: float) -> float:
        return self._palm.progress(now)

    def update(self, now: float, gestures: GestureState) -> None:
        if self.finished:
            return
        held = held_gesture(gestures)
        if self._in_throw_window(now):
            # A palm here is a throw, not a wish to quit; it must be lowered before it can quit.
            self._palm.consume()
        if self._palm.update(held == "paper", now):
            self.abandon(now, "palm")
            return
        elapsed = now - self.since
        if self.phase is Phase.INTRO and elapsed >= self.rules.intro_beats * self.rules.beat_s:
            self._enter(Phase.COUNTDOWN, now)
        elif self.phase is Phase.COUNTDOWN:
            self._count_down(now, held)
        elif self.phase is Phase.SHOW_HAND and elapsed >= self.rules.show_hand_beats * self.rules.beat_s:
            self._enter(Phase.COUNTDOWN, now)
        elif self.phase is Phase.ROUND and elapsed >= self.rules.round_beats * self.rules.beat_s:
            if max(self.score.values()) >= self.rules.rounds_to_win:
                self._enter(Phase.RESULT, now)
                self.publish("rps_result", {"score": dict(self.score), "winner": self.winner,
                                            "rounds": self.round - 1})
            else:
                self._enter(Phase.COUNTDOWN, now)

    def _in_throw_window(self, now: float) -> bool:
        """From the word "scissors" until the round is read: when a palm is a move."""
        return self.phase is Phase.COUNTDOWN and now >= self.shoot_at - self.rules.beat_s

    def _count_down(self, now: float, held: str | None) -> None:
        if now < self.shoot_at:
            return
        if held in MOVES:
            self._seen = held  # the latest readable move in the window wins: hands settle late
        if now < self.shoot_at + self.rules.grace_s:
            return
        move, typed = (self._typed, True) if self._typed else (self._seen, False)
        if move is None:
            self.retries += 1
            if self.retries > self.rules.max_retries:
                self.abandon(now, "no_hand")
            else:
                self._enter(Phase.SHOW_HAND, now)
            return
        star = star_move(move, self.rng, self.rules.win_rate)
        result = outcome(move, star)
        if result == "win":
            self.score["shopper"] += 1
        elif result == "lose":
            self.score["star"] += 1
        self.last = Throw(self.round, move, star, result, typed)
        self.publish("rps_round", {"round": self.round, "shopper": move, "star": star, "outcome": result,
                                   "typed": typed, "score": dict(self.score)})
        self.round += 1
        self.retries = 0
        self._typed = None
        self._enter(Phase.ROUND, now)

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase, self.since = phase, now
        self._seen = None
