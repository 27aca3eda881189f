"""The pose game's scene: the shoppers' skeletons over the live mirror, limbs turning green as they
match, the star's cut-out and skeleton beside, a countdown ring, and the text clear of faces.

Invariants: drawing only (the game is ``game.PoseGame``); every line of text goes through a
``TextBlock`` or the stage's layout; a skeleton is drawn where the stage says its camera points show
(``Stage.screen_point``: mirrored or not as the world is).  The poses are the newest perception's: asked
for 15 times a second, a skeleton may be a frame older than the image under it.  The star stands at the
side (in the middle, above the players, when two play) and is drawn before the players, so it never
hides a shopper.  Limbs are rows of overlapping dots (the API has no line).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from appliance.experience.api import LIMBS, MENU, Action, Context, Moment, TextBlock
from appliance.experiences.posegame.config import PoseConfig
from appliance.experiences.posegame.game import LEFT, RIGHT, SOLO, Phase, Player, PoseGame, Rules, Target
from appliance.experiences.posegame.scoring import SEEN, shopper_limbs
from appliance.experiences.result import ResultScreen

#: How long the result stays up unless a fist ends it earlier (not before RESULT_MIN_S).
RESULT_S, RESULT_MIN_S = 8.0, 1.0
GOLD, WHITE, SOFT, GREEN, GREY = (255, 214, 90), (255, 255, 255), (220, 220, 230), (60, 230, 110), (150, 150, 160)
RED = (255, 110, 90)
STAR_HEIGHT = 0.55          # of the screen's height
STAR_CENTRE = (0.85, 0.55)  # of the screen


class PoseScene:
    """Drives the game from the poses (Backspace, or an open hand outside a pose, quits), draws it, and
    leaves for the menu after the result."""

    def enter(self, context: Context, moment: Moment) -> None:
        config: PoseConfig = context.config
        self._spec, self._now, self._result_screen = config, moment.now, ResultScreen(RESULT_S, RESULT_MIN_S)
        count = config.round_size
        chosen = context.rng.sample(config.poses, count) if config.shuffle else config.poses[:count]
        self._star_h = int(context.canvas.size[1] * STAR_HEIGHT)
        self._images = [pose.image for pose in chosen]
        targets = [Target(pose.points(context.image(pose.image, self._star_h).get_size()), pose.name)
                   for pose in chosen]
        rules = Rules(seconds_per_pose=config.seconds_per_pose, tolerance_deg=config.tolerance_deg, legs=config.legs,
                      intro_s=config.intro_s, mirror=context.stage.world.mirror)
        self.game = PoseGame(rules, targets, context.publish, moment.now)

    def update(self, context: Context, moment: Moment) -> str | None:
        game, self._now = self.game, moment.now
        if Action.BACK in moment.typed:
            game.abandon(moment.now, "key")
        elif Action.BACK in moment.actions and game.phase is not Phase.POSE:   # in a pose an open hand is a pose
            game.abandon(moment.now, "palm")
        game.update(moment.now, moment.perception.poses if moment.perception is not None else ())
        if game.phase is Phase.ABANDONED:
            return MENU
        if game.phase is Phase.RESULT and self._result_screen.over(context, moment, game.since):
            return MENU
        return None

    def draw(self, context: Context, moment: Moment) -> None:
        context.stage.show(moment.perception)
        self._draw_star(context, moment.now)
        if moment.perception is not None and self.game.phase in (Phase.POSE, Phase.VERDICT):
            self._draw_players(context, moment.perception.frame.image.shape[1::-1])
        self._draw_text(context, moment.now)
        context.stage.cursor(moment, 0.0)

    def _draw_players(self, context: Context, frame: tuple[int, int]) -> None:
        for player in self.game.players:
            if player.pose is None:
                continue
            states = shopper_limbs(player.current) if player.current is not None else {}
            shown = [context.stage.screen_point((x, y), frame) for x, y in player.pose.landmarks[:, :2]]
            if None in shown:
                continue
            points = [(round(x), round(y)) for x, y in shown]
            visible = player.pose.landmarks[:, 3] >= SEEN
            for limb in LIMBS:
                state = states.get(limb)
                colour = GREEN if state else WHITE if state is False else GREY
                if visible[list(limb)].all():
                    self._bone(context, points[limb[0]], points[limb[1]], colour)

    def _draw_star(self, context: Context, now: float) -> None:
        canvas, game = context.canvas, self.game
        width, height = canvas.size
        duel = len(game.players) == 2   # in the middle, smaller and higher, between and above the two players
        centre = (width // 2, int(height * 0.3)) if duel else (int(width * STAR_CENTRE[0]), int(height * STAR_CENTRE[1]))
        mood = self._mood()
        reaction = {"happy": self._spec.star_happy_image, "sad": self._spec.star_sad_image}.get(mood)
        if reaction is not None:
            lift = abs(math.sin((now - game.since) * 6.0)) * height * 0.04 if mood == "happy" else 0.0
            canvas.blit(context.image(reaction, self._star_h), (centre[0], int(centre[1] - lift)))
        else:
            image = context.image(self._images[game.index], self._star_h)
            canvas.blit(image, centre)
            if game.phase in (Phase.POSE, Phase.VERDICT):
                w, h = image.get_size()
                origin = (centre[0] - w // 2, centre[1] - h // 2)
                star = game.target.points
                points = [(round(origin[0] + x), round(origin[1] + y)) for x, y in star[:, :2]]
                for a, b in LIMBS:
                    if star[a, 2] >= SEEN and star[b, 2] >= SEEN:
                        self._bone(context, points[a], points[b], GOLD)
        name = TextBlock(context)
        name.text(self._spec.star_name, (centre[0], centre[1] + self._star_h // 2 + height // 30), size=height // 18,
                  colour=GOLD, backdrop=True)
        name.draw()

    def _mood(self) -> str:
        if self.game.phase is not Phase.RESULT:
            return "neutral"
        return "happy" if max(player.score for player in self.game.players) >= 50 else "sad"

    @staticmethod
    def _bone(context: Context, start: tuple[int, int], end: tuple[int, int], colour: tuple[int, int, int]) -> None:
        radius = max(4, context.canvas.size[1] // 140)
        steps = max(1, math.ceil(math.dist(start, end) / radius))
        for t in np.linspace(0.0, 1.0, steps + 1):
            context.canvas.circle((round(start[0] + t * (end[0] - start[0])), round(start[1] + t * (end[1] - start[1]))),
                                  radius, colour)

    def _draw_text(self, context: Context, now: float) -> None:
        game, spec, block = self.game, self._spec, TextBlock(context)
        width, height = context.canvas.size
        x, big, line, small = int(width * 0.4), height // 7, height // 16, height // 22
        count = len(game.targets)
        if game.phase is Phase.INTRO:
            block.text(f"Copy {spec.star_name}!", (x, int(height * 0.3)), size=big, colour=GOLD, backdrop=True)
            block.text(f"{count} pose{'s' * (count > 1)} · {spec.seconds_per_pose:g} s each · make every limb green",
                       (x, int(height * 0.44)), size=line, backdrop=True)
            block.text("Two players? Stand side by side", (x, int(height * 0.52)), size=small, colour=SOFT,
                       backdrop=True)
            block.text("Hold an open hand to quit", (x, int(height * 0.58)), size=small, colour=SOFT, backdrop=True)
        elif game.phase is Phase.FIND:
            block.text("Step in front!", (x, int(height * 0.3)), size=big, colour=GOLD, backdrop=True)
            block.text(f"{spec.star_name} needs to see all of you" if spec.legs else
                       f"{spec.star_name} needs to see your arms", (x, int(height * 0.44)), size=line, backdrop=True)
        elif game.phase is Phase.POSE:
            title = f"Pose {game.index + 1} of {count}" + (f": {game.target.name}" if game.target.name else "")
            block.text(title, (x, int(height * 0.08)), size=line, colour=GOLD, backdrop=True)
            self._countdown(context, now)
            self._player_lines(context, lambda player: f"{player.current.score if player.current else 0}%")
        elif game.phase is Phase.VERDICT:
            verdicts = ["Matched!" if player.matched[-1] else "Time's up!" for player in game.players]
            block.text(verdicts[0] if len(set(verdicts)) == 1 else "Next pose…", (x, int(height * 0.15)), size=big,
                       colour=GOLD, backdrop=True)
            self._player_lines(context, lambda player: f"{player.points[-1]} points")
        elif game.phase is Phase.RESULT:
            self._result(block, x, height, now)
        block.draw()

    def _result(self, block: TextBlock, x: int, height: int, now: float) -> None:
        game, big, line, small = self.game, height // 7, height // 14, height // 22
        if len(game.players) == 1:
            score = game.players[0].score
            block.text(f"Score {score}", (x, int(height * 0.3)), size=big, colour=GOLD, backdrop=True)
            block.text(f"{self._spec.star_name} loves it!" if score >= 50 else "So close! Try again?",
                       (x, int(height * 0.45)), size=line, backdrop=True)
        else:
            left, right = game.players
            winner = game.winner
            block.text("A draw!" if winner == "draw" else f"{'Left' if winner == LEFT else 'Right'} player wins!",
                       (x, int(height * 0.3)), size=big, colour=GOLD, backdrop=True)
            block.text(f"Left {left.score}  ·  Right {right.score}", (x, int(height * 0.45)), size=line,
                       backdrop=True)
        if now - game.since >= RESULT_MIN_S:
            block.text("Make a fist to continue", (x, int(height * 0.55)), size=small, colour=SOFT, backdrop=True)

    def _player_lines(self, context: Context, line: Callable[[Player], str]) -> None:
        """Each player's live line near the bottom, on their own side with two players; green once matched."""
        canvas = context.canvas
        size = canvas.size[1] // 12
        for player in self.game.players:
            text = ("" if player.side == SOLO else f"{player.side.title()}: ") + line(player)
            prefer = {SOLO: 0.4, LEFT: 0.15, RIGHT: 0.6}[player.side]
            matched = player.matched[-1] if player.done_at is not None else (
                player.current is not None and player.current.matched)
            colour = GREEN if matched else WHITE
            centre = context.stage.layout.place(canvas.text_size(text, size), (prefer, 0.9))
            canvas.text(text, centre, size=size, colour=colour, anchor="center", backdrop=True)

    def _countdown(self, context: Context, now: float) -> None:
        """The seconds left, large, inside a ring that empties: top left, clear of the head."""
        canvas, game = context.canvas, self.game
        radius = canvas.size[1] // 10
        centre = context.stage.layout.place((2 * radius, 2 * radius), (0.08, 0.14))
        fraction = game.seconds_left(now) / game.rules.seconds_per_pose
        canvas.circle(centre, radius, (10, 12, 24), opacity=0.6)
        canvas.ring(centre, radius, fraction, GOLD if fraction > 0.3 else RED, max(6, radius // 5))
        canvas.text(f"{math.ceil(game.seconds_left(now))}", centre, size=radius, anchor="center")

    def exit(self, context: Context, reason: str) -> None:
        """A game left unfinished (the shopper walked away, the scene failed, the campaign changed) is
        abandoned, so its events say so; a finished one has nothing to release."""
        if hasattr(self, "game"):   # enter may have failed before the game existed
            self.game.abandon(self._now, reason)
