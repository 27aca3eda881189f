"""Each tracked face's age guesses, smoothed: the number shown does not jump from one guess to the next.

Invariants: a track keeps at most ``WINDOW`` guesses (the newest); its age is their median (one odd
guess, a blink or a turned head, moves it little), its gender the mean probability of "male" over the
guesses that have one.  Tracks no longer seen are forgotten at once (``keep``): nothing of a face that
left stays in memory.  Nothing here is logged, and ``FaceAge`` withholds its values from its repr.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from statistics import fmean, median

from appliance.perception.age import AgeGuess, age_range
from appliance.perception.face import FaceAge

#: Guesses a track's smoothed age stands on at most: about three seconds at 3 guesses a second.
WINDOW = 9


class AgeTracks:
    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError(f"age window {window}: at least one guess")
        self.window = window
        self._guesses: dict[int, deque[AgeGuess]] = {}

    def add(self, track_id: int, guess: AgeGuess) -> None:
        self._guesses.setdefault(track_id, deque(maxlen=self.window)).append(guess)

    def keep(self, track_ids: Iterable[int]) -> None:
        """Forget every track but ``track_ids`` (the faces still tracked)."""
        kept = set(track_ids)
        for gone in [track for track in self._guesses if track not in kept]:
            del self._guesses[gone]

    def estimate(self, track_id: int) -> FaceAge | None:
        """The track's smoothed age (and gender, when its guesses have one), or None before its first guess."""
        guesses = self._guesses.get(track_id)
        if not guesses:
            return None
        return smoothed(guesses)

    def __len__(self) -> int:
        return len(self._guesses)


def smoothed(guesses: Iterable[AgeGuess]) -> FaceAge:
    """One face's guesses as one estimate (a still's single guess included)."""
    guesses = list(guesses)
    age = float(median(guess.age for guess in guesses))
    males = [guess.gender_score if guess.gender == "male" else 1.0 - guess.gender_score
             for guess in guesses if guess.gender is not None and guess.gender_score is not None]
    gender = score = None
    if males:
        male = fmean(males)
        gender, score = ("male", male) if male > 0.5 else ("female", 1.0 - male)
    return FaceAge(age, age_range(age), len(guesses), gender, score)
