"""The pose game as a pure, time-driven state machine: copy the star's poses before each countdown ends.

No pygame and no clock of its own: ``update(now, poses)`` is called every frame with the
newest poses (camera frame, largest first), so tests script a game with a fake clock.

Invariants:

- The players are fixed when the introduction ends: the two largest people in front when
  there are two (left and right as the mirrored screen shows them), else one ("you").  Each
  frame a player takes the pose with its track id, else the unclaimed one nearest where it was.
- A pose is matched when every scored part stays within the tolerance for ``hold_s``; its
  points are its score then.  A pose not matched before its countdown ends earns half the best
  score reached.  A player's final score is the mean of its poses' points (0..100); with two
  players the higher wins (equal: a draw).
- Events: ``pose_round_started`` once the players are known, ``pose_matched`` / ``pose_missed``
  per pose and player, ``pose_final`` at the end, ``pose_abandon`` for a game left unfinished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from appliance.experience.api import Pose
from appliance.experiences.posegame.scoring import Match, match

Publish = Callable[[str, dict[str, Any]], object]
SOLO, LEFT, RIGHT = "you", "left", "right"
#: A person smaller than this share of the largest one's box is a passer-by, not a player.
PLAYER_AREA = 0.3


class Phase(Enum):
    INTRO = "intro"          # the star introduces the game
    FIND = "find"            # nobody seen when the introduction ended: step in front
    POSE = "pose"            # a pose to copy, its countdown running
    VERDICT = "verdict"      # the pose's outcome, before the next pose
    RESULT = "result"        # the final scores
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Target:
    """One star pose: its points (x, y pixels of the star's picture, visibility) and what it is called."""

    points: np.ndarray
    name: str = ""


@dataclass(frozen=True)
class Rules:
    seconds_per_pose: float = 10.0
    tolerance_deg: float = 25.0
    legs: bool = True
    intro_s: float = 4.0
    hold_s: float = 0.5           # every part within tolerance this long: matched (a flicker is not)
    verdict_s: float = 2.0        # the pose's outcome on screen
    find_s: float = 20.0          # nobody in front this long after the introduction: the game is given up
    mirror: bool = True           # the world shows the camera flipped (appliance.experience.api.World.mirror)


@dataclass
class Player:
    side: str
    track_id: int
    centre: float                 # the body's centre x as the screen shows it (camera x, negated when mirrored)
    points: list[int] = field(default_factory=list)      # per finished pose
    matched: list[bool] = field(default_factory=list)
    pose: Pose | None = None      # this frame's body, None when not seen
    current: Match | None = None  # this frame's match against the pose being copied
    best: int = 0
    holding_since: float | None = None
    done_at: float | None = None  # when this pose was matched

    @property
    def score(self) -> int:
        return round(sum(self.points) / len(self.points)) if self.points else 0


def screen_centre(pose: Pose, mirror: bool = True) -> float:
    """The body's centre x in the order the screen shows people left to right."""
    x, _, w, _ = pose.box
    return -(x + w / 2) if mirror else x + w / 2


def players_in_front(poses: Sequence[Pose], mirror: bool = True) -> list[Pose]:
    """The people big enough to play (at most two), ordered left to right as the screen shows them."""
    if not poses:
        return []
    largest = max(pose.area for pose in poses)
    big = sorted((pose for pose in poses if pose.area >= PLAYER_AREA * largest), key=lambda pose: -pose.area)[:2]
    return sorted(big, key=lambda pose: screen_centre(pose, mirror))


class PoseGame:
    """One game of ``targets`` (the poses to copy, in order)."""

    def __init__(self, rules: Rules, targets: Sequence[Target], publish: Publish, now: float) -> None:
        if not targets:
            raise ValueError("a pose game needs at least one pose")
        self.rules, self.targets, self.publish = rules, tuple(targets), publish
        self.phase, self.since = Phase.INTRO, now
        self.index = 0                # the pose being copied (or just judged)
        self.players: list[Player] = []

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.RESULT, Phase.ABANDONED)

    @property
    def target(self) -> Target:
        return self.targets[self.index]

    @property
    def winner(self) -> str | None:
        """``left``, ``right`` or ``draw`` at the end of a two-player game; None otherwise."""
        if self.phase is not Phase.RESULT or len(self.players) < 2:
            return None
        left, right = self.players
        return LEFT if left.score > right.score else RIGHT if right.score > left.score else "draw"

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.rules.seconds_per_pose - (now - self.since)) if self.phase is Phase.POSE else 0.0

    def abandon(self, now: float, reason: str) -> None:
        if self.finished:
            return
        self._enter(Phase.ABANDONED, now)
        self.publish("pose_abandon", {"reason": reason, "pose": self.index + 1, "players": len(self.players)})

    def update(self, now: float, poses: Sequence[Pose]) -> None:
        if self.finished:
            return
        elapsed = now - self.since
        if (self.phase is Phase.INTRO and elapsed >= self.rules.intro_s) or self.phase is Phase.FIND:
            self._start(now, poses)
        elif self.phase is Phase.POSE:
            self._follow(poses)
            self._judge(now)
        elif self.phase is Phase.VERDICT:
            self._follow(poses)
            if elapsed >= self.rules.verdict_s:
                self._next(now)

    def _start(self, now: float, poses: Sequence[Pose]) -> None:
        front = players_in_front(poses, self.rules.mirror)
        if not front:
            if self.phase is not Phase.FIND:
                self._enter(Phase.FIND, now)
            elif now - self.since >= self.rules.find_s:
                self.abandon(now, "nobody")
            return
        sides = (SOLO,) if len(front) == 1 else (LEFT, RIGHT)
        self.players = [Player(side, pose.track_id, screen_centre(pose, self.rules.mirror)) for side, pose in zip(sides, front,
                                                                                                 strict=True)]
        self.publish("pose_round_started", {"players": len(self.players), "poses": len(self.targets),
                                            "names": [target.name for target in self.targets],
                                            "seconds_per_pose": self.rules.seconds_per_pose,
                                            "tolerance_deg": self.rules.tolerance_deg})
        self._enter(Phase.POSE, now)
        self._follow(poses)

    def _follow(self, poses: Sequence[Pose]) -> None:
        """Give each player this frame's body: its track id's, else the nearest unclaimed big enough one."""
        free = list(players_in_front(poses, self.rules.mirror))
        for player in self.players:
            player.pose = next((pose for pose in free if pose.track_id == player.track_id), None)
            if player.pose is not None:
                free.remove(player.pose)
        for player in self.players:
            if player.pose is None and free:
                player.pose = min(free, key=lambda pose: abs(screen_centre(pose, self.rules.mirror) - player.centre))
                free.remove(player.pose)
            if player.pose is not None:
                player.track_id, player.centre = player.pose.track_id, screen_centre(player.pose, self.rules.mirror)

    def _judge(self, now: float) -> None:
        rules = self.rules
        for player in self.players:
            if player.done_at is not None:
                continue
            pose = player.pose
            player.current = None if pose is None else match(self.target.points, pose.landmarks[:, [0, 1, 3]],
                                                             rules.tolerance_deg, rules.legs, rules.mirror)
            if player.current is None or not player.current.matched:
                player.holding_since = None
                player.best = max(player.best, player.current.score if player.current else 0)
                continue
            player.best = max(player.best, player.current.score)
            player.holding_since = now if player.holding_since is None else player.holding_since
            if now - player.holding_since >= rules.hold_s:
                self._settle(player, True, now)
        if all(player.done_at is not None for player in self.players):
            self._enter(Phase.VERDICT, now)
        elif now - self.since >= rules.seconds_per_pose:
            for player in self.players:
                if player.done_at is None:
                    self._settle(player, False, now)
            self._enter(Phase.VERDICT, now)

    def _settle(self, player: Player, matched: bool, now: float) -> None:
        seconds = round(now - self.since, 2)
        points = player.current.score if matched and player.current else player.best // 2
        player.points.append(points)
        player.matched.append(matched)
        player.done_at = now
        data = {"pose": self.index + 1, "name": self.target.name, "player": player.side, "score": points,
                "seconds": seconds, "players": len(self.players)}
        self.publish("pose_matched" if matched else "pose_missed", data if matched else
                     {**data, "best": player.best})

    def _next(self, now: float) -> None:
        if self.index + 1 >= len(self.targets):
            self._enter(Phase.RESULT, now)
            self.publish("pose_final", {
                "players": len(self.players), "poses": len(self.targets),
                "scores": {player.side: player.score for player in self.players},
                "matched": {player.side: sum(player.matched) for player in self.players},
                "winner": self.winner})
            return
        self.index += 1
        for player in self.players:
            player.best, player.holding_since, player.done_at, player.current = 0, None, None, None
        self._enter(Phase.POSE, now)

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase, self.since = phase, now
