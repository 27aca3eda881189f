"""``quiz``: one question from the campaign's ``[quiz]`` table, answered with a swipe and a fist.

A third-party experience plug-in: it imports ``appliance.experience.api`` only, and its
distribution names ``experience`` in the entry-point group ``oivis.experiences``.

Invariants:

- Swipes (or the arrows) move between the answers, wrapping; a fist (or Enter) answers the one
  selected.  The kiosk holds a fist's CONFIRM back while the question is being read
  (``moment.reading``): the hint inviting a fist shows only once it would count.
- Answering publishes ``quiz_answered`` {correct, answer (0-based index)} once, then the result
  shows ``RESULT_S`` seconds (the badge too, on a right answer, when the campaign has one) and the
  scene returns to the menu; the result is a new screen (``new_screen``), so the answering fist
  cannot skip it, and a later fist goes back at once.  An open palm held (BACK) before answering
  goes back to the menu with nothing published.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from appliance.experience.api import MENU, Action, Asset, Card, Context, Experience, ExperienceConfig, Moment, TextBlock

#: How long the result stays up unless the shopper makes a fist.
RESULT_S = 4.0
HINT = "Swipe to choose · make a fist to answer"
GOLD, WHITE, SOFT = (255, 214, 90), (255, 255, 255), (200, 200, 210)
Answer = Annotated[str, Field(min_length=1, max_length=48)]


class QuizConfig(ExperienceConfig):
    question: str = Field(min_length=1, max_length=120, description="The question, shown on top.")
    answers: tuple[Answer, ...] = Field(min_length=2, max_length=4, description="2 to 4 answers, in order.")
    correct: int = Field(ge=0, description="Index of the right answer in `answers` (0 is the first).")
    badge: Asset | None = Field(None, description="PNG with alpha shown on a right answer; absent: none.")

    @model_validator(mode="after")
    def _correct_is_an_answer(self) -> QuizConfig:
        if self.correct >= len(self.answers):
            raise ValueError(f"correct = {self.correct} but there are {len(self.answers)} answers (0 is the first)")
        return self


class QuizScene:
    def enter(self, context: Context, moment: Moment) -> None:
        self._config: QuizConfig = context.config
        self._selected = 0
        self._answered: int | None = None
        self._answered_at = moment.now

    def update(self, context: Context, moment: Moment) -> str | None:
        if self._answered is not None:
            over = moment.now - self._answered_at >= RESULT_S
            return MENU if over or Action.CONFIRM in moment.actions else None
        for action in moment.actions:
            if action is Action.BACK:
                return MENU
            if action in (Action.NEXT, Action.PREVIOUS):
                step = 1 if action is Action.NEXT else -1
                self._selected = (self._selected + step) % len(self._config.answers)
            elif action is Action.CONFIRM:
                self._answer(context, moment.now)
                return None
        return None

    def _answer(self, context: Context, now: float) -> None:
        self._answered, self._answered_at = self._selected, now
        correct = self._selected == self._config.correct
        context.publish("quiz_answered", {"correct": correct, "answer": self._selected})
        context.new_screen()

    def draw(self, context: Context, moment: Moment) -> None:
        context.stage.show(moment.perception)
        if self._answered is None:
            self._draw_question(context, moment)
        else:
            self._draw_result(context)
        context.stage.cursor(moment, moment.hold_progress)

    def _draw_question(self, context: Context, moment: Moment) -> None:
        canvas, config = context.canvas, self._config
        width, height = canvas.size
        title = TextBlock(context)
        title.text(config.question, (width // 2, height // 8), size=height // 14, colour=GOLD, backdrop=True)
        title.draw()
        row_h, size = height // 9, height // 20
        row_w = max(canvas.text_size(answer, size)[0] for answer in config.answers) + height // 8
        block = (row_w, row_h * len(config.answers))
        centre_x, centre_y = context.stage.layout.place(block, (0.5, 0.55))
        top = centre_y - block[1] // 2
        for index, answer in enumerate(config.answers):
            selected = index == self._selected
            y = top + index * row_h
            canvas.panel((centre_x - row_w // 2, y + row_h // 10, row_w, row_h * 4 // 5), (20, 28, 60),
                         opacity=0.85 if selected else 0.5, radius=row_h // 5, border=GOLD if selected else None)
            canvas.text(answer, (centre_x, y + row_h // 2), size=size, colour=WHITE if selected else SOFT,
                        anchor="center")
        if not moment.reading:
            canvas.text(HINT, (width // 2, height - height // 22), size=height // 26, anchor="center", backdrop=True)

    def _draw_result(self, context: Context) -> None:
        canvas, config = context.canvas, self._config
        width, height = canvas.size
        right = self._answered == config.correct
        message = TextBlock(context)
        message.text("Right!" if right else "Not quite", (width // 2, height // 3), size=height // 7,
                     colour=GOLD, backdrop=True)
        message.text(f"The answer: {config.answers[config.correct]}", (width // 2, height // 2), size=height // 18,
                     backdrop=True)
        message.draw()
        if right and config.badge is not None:
            canvas.blit(context.image(config.badge, height // 4), (width // 2, height * 3 // 4))

    def exit(self, context: Context, reason: str) -> None:
        """Nothing to release: an unanswered question publishes nothing."""


def card(config: QuizConfig) -> Card:
    return Card("Quiz", config.question if len(config.question) <= 40 else config.question[:39] + "…",
                icon=config.badge)


#: ``api`` is the version this plug-in was written for (a literal: the kiosk checks it against its own).
experience = Experience(name="quiz", api="1.0", scene=QuizScene, card=card, config=QuizConfig)
