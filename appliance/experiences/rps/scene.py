"""The rock–paper–scissors scene: the game of ``rps.py`` drawn over the live mirror, with the star beside."""

from __future__ import annotations

import math

from appliance.experience.api import MENU, Action, Context, Moment, TextBlock
from appliance.experiences.result import ResultScreen
from appliance.experiences.rps.config import RpsConfig
from appliance.experiences.rps.game import Phase, RpsGame, Rules

#: How long the result stays up unless the shopper makes a fist.
RESULT_S = 6.0
#: A fist on the result screen counts only after this, so the final throw cannot skip it.
RESULT_MIN_S = 1.0
#: The technician's keys standing in for throws (``Moment.inputs``).
KEYS = {"r": "rock", "p": "paper", "s": "scissors"}
GOLD, WHITE, SOFT = (255, 214, 90), (255, 255, 255), (220, 220, 230)


class RpsScene:
    """Drives the game from gestures (and R/P/S, Backspace), draws it, and leaves for the menu at its end."""

    def enter(self, context: Context, moment: Moment) -> None:
        config: RpsConfig = context.config
        self._spec = config
        rules = Rules(rounds_to_win=config.rounds_to_win, win_rate=config.win_rate, beat_s=config.beat_s,
                      intro_beats=config.intro_s / config.beat_s)
        self.game = RpsGame(rules, context.rng, context.publish, moment.now)
        self._result_screen = ResultScreen(RESULT_S, RESULT_MIN_S)
        self._now = moment.now

    def update(self, context: Context, moment: Moment) -> str | None:
        game, self._now = self.game, moment.now
        for move in moment.inputs:
            game.throw(move)
        if Action.BACK in moment.typed:
            game.abandon(moment.now, "key")
        game.update(moment.now, moment.gestures)
        if game.phase is Phase.ABANDONED:
            return MENU
        if game.phase is Phase.RESULT and self._result_screen.over(context, moment, game.since):
            return MENU
        return None

    def draw(self, context: Context, moment: Moment) -> None:
        context.stage.show(moment.perception)
        self._draw_star(context, moment.now)
        self._draw_score(context)
        self._draw_message(context, moment.now)
        context.stage.cursor(moment, self.game.abandon_progress(moment.now))

    def _mood(self) -> str:
        """The star is happy when it wins, sad when it loses: the whole game at the end, else the round."""
        game = self.game
        if game.phase is Phase.RESULT:
            return "happy" if game.winner == "star" else "sad"
        if game.phase is Phase.ROUND and game.last:
            return {"win": "sad", "lose": "happy", "draw": "neutral"}[game.last.outcome]
        return "neutral"

    def _draw_star(self, context: Context, now: float) -> None:
        width, height = context.canvas.size
        mood = self._mood()
        path = {"happy": self._spec.star_happy_image, "sad": self._spec.star_sad_image}.get(mood)
        star = context.image(path or self._spec.star_image, int(height * 0.42))
        elapsed = now - self.game.since
        angle, lift, scale = 0.0, 0.0, 1.0
        if mood == "happy":                        # jumping for joy
            lift = abs(math.sin(elapsed * 6.0)) * height * 0.05
            angle = 6.0 * math.sin(elapsed * 6.0)
        elif mood == "sad":                        # slumping
            angle = -8.0 * min(1.0, elapsed * 2.0)
            lift = -height * 0.03 * min(1.0, elapsed * 2.0)
        elif self.game.phase is Phase.COUNTDOWN:   # bouncing to the beat
            beat = (elapsed / self.game.rules.beat_s) % 1.0
            scale = 1.0 + 0.06 * max(0.0, 1.0 - beat * 4)
        centre = (int(width * 0.85), int(height * 0.62 - lift))
        context.canvas.blit(star, centre, angle=angle, scale=scale)
        context.canvas.text(self._spec.star_name, (int(width * 0.85), int(height * 0.87)), size=height // 18,
                           colour=GOLD, anchor="center", backdrop=True)

    def _draw_score(self, context: Context) -> None:
        canvas = context.canvas
        width, height = canvas.size
        score = self.game.score
        line = f"You  {score['shopper']}  –  {score['star']}  {self._spec.star_name}"
        size = height // 14
        centre = context.stage.layout.place(canvas.text_size(line, size), (0.5, 1 / 14))
        canvas.text(line, centre, size=size, anchor="center", backdrop=True)

    def _draw_message(self, context: Context, now: float) -> None:
        game, display = self.game, TextBlock(context)
        width, height = context.canvas.size
        centre_x, big, small = int(width * 0.42), height // 6, height // 20
        name = self._spec.star_name
        if game.phase is Phase.INTRO:
            display.text(f"Beat {name}!", (centre_x, int(height * 0.36)), size=big, colour=GOLD, anchor="center",
                         backdrop=True)
            display.text(f"First to {game.rules.rounds_to_win} wins · show your hand at SHOOT",
                         (centre_x, int(height * 0.52)), size=small, anchor="center", backdrop=True)
            display.text("Hold an open hand to quit", (centre_x, int(height * 0.6)), size=small * 3 // 4,
                         colour=SOFT, anchor="center", backdrop=True)
        elif game.phase is Phase.COUNTDOWN:
            word = game.word(now) or ""
            beat = ((now - game.since) / game.rules.beat_s) % 1.0 if now < game.shoot_at else 0.0
            size = int(big * (1.25 - 0.25 * min(1.0, beat * 3)))
            display.text(word, (centre_x, int(height * 0.4)), size=size, colour=GOLD if word == "Shoot!" else WHITE,
                         anchor="center", backdrop=True)
            display.text(f"Round {game.round}", (centre_x, int(height * 0.56)), size=small, colour=SOFT,
                         anchor="center", backdrop=True)
        elif game.phase is Phase.SHOW_HAND:
            display.text("Show your hand!", (centre_x, int(height * 0.38)), size=big, colour=GOLD,
                         anchor="center", backdrop=True)
            display.text("Make rock, paper or scissors at SHOOT", (centre_x, int(height * 0.54)), size=small,
                         anchor="center", backdrop=True)
        elif game.phase is Phase.ROUND and game.last:
            last = game.last
            verdict = {"win": "You win this round!", "lose": f"{name} wins this round",
                       "draw": "Draw, again!"}[last.outcome]
            display.text(verdict, (centre_x, int(height * 0.38)), size=big * 2 // 3, colour=GOLD, anchor="center",
                         backdrop=True)
            display.text(f"You: {last.shopper.upper()}   ·   {name}: {last.star.upper()}",
                         (centre_x, int(height * 0.52)), size=small, anchor="center", backdrop=True)
        elif game.phase is Phase.RESULT:
            won = game.winner == "shopper"
            display.text("You win!" if won else f"{name} wins!", (centre_x, int(height * 0.36)), size=big * 5 // 4,
                         colour=GOLD, anchor="center", backdrop=True)
            display.text("Congratulations!" if won else "So close! Try again?", (centre_x, int(height * 0.52)),
                         size=small * 3 // 2, anchor="center", backdrop=True)
            if now - game.since >= RESULT_MIN_S:
                display.text("Make a fist to continue", (centre_x, int(height * 0.62)), size=small,
                             colour=SOFT, anchor="center", backdrop=True)
        display.draw()

    def exit(self, context: Context, reason: str) -> None:
        """A game left unfinished (the shopper walked away, the scene failed, the campaign changed) is
        abandoned, so its events say so; a finished one has nothing to release."""
        if hasattr(self, "game"):   # enter may have failed before the game existed
            self.game.abandon(self._now, reason)
