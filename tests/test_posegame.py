"""The pose game: its scoring on scripted bodies (rotated, scaled, moved, one arm off), the game as a pure
state machine with a fake clock (one player, two side by side, nobody), the experience through the test kit,
and the ``[pose]`` table's validation with key and line.  No models."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.events import EventBus
from appliance.experience.api import MENU, Action, Pose
from appliance.experience.registry import Registry
from appliance.experience.testkit import FakeContext, moment, play
from appliance.experiences.posegame import experience
from appliance.experiences.posegame.game import Phase, PoseGame, Rules, Target
from appliance.experiences.posegame.scoring import match, mirrored, shopper_limbs

UP, DOWN, OUT = 90.0, -90.0, 0.0


def body(left: tuple[float, float] = (DOWN, DOWN), right: tuple[float, float] = (DOWN, DOWN),
         left_leg: float = DOWN, right_leg: float = DOWN, visibility: float = 0.95) -> np.ndarray:
    """A person facing the camera (their left on the image's right), 33 × (x, y, visibility), shoulders 80 px
    apart around (0, -100), hips at y = 0.  Limb angles in degrees: 0 points away from the body's side, 90 up."""
    points = np.zeros((33, 3))
    points[:, 2] = visibility
    points[0:11, :2] = [0.0, -140.0]                 # the face, around the nose
    for side, (upper, fore), leg in ((+1, left, left_leg), (-1, right, right_leg)):
        first = 0 if side > 0 else 1                 # MediaPipe: left is odd (11, 13...), right even
        shoulder, hip = np.array([40.0 * side, -100.0]), np.array([25.0 * side, 0.0])
        elbow = shoulder + 50 * np.array([side * math.cos(math.radians(upper)), -math.sin(math.radians(upper))])
        wrist = elbow + 45 * np.array([side * math.cos(math.radians(fore)), -math.sin(math.radians(fore))])
        knee = hip + 60 * np.array([side * math.cos(math.radians(leg)), -math.sin(math.radians(leg))])
        ankle = knee + 60 * np.array([0.0, 1.0])
        points[11 + first, :2], points[13 + first, :2], points[15 + first, :2] = shoulder, elbow, wrist
        points[[17 + first, 19 + first, 21 + first], :2] = wrist
        points[23 + first, :2], points[25 + first, :2], points[27 + first, :2] = hip, knee, ankle
        points[[29 + first, 31 + first], :2] = ankle
    return points


def moved(points: np.ndarray, degrees: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)
          ) -> np.ndarray:
    turn = math.radians(degrees)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    out = points.copy()
    out[:, :2] = points[:, :2] @ rotation.T * scale + np.array(shift)
    return out


#: The star raises their left arm (on the right of their picture); copying it in the mirror, the shopper
#: raises their right arm.
STAR = body(left=(UP, UP))
COPY = mirrored(STAR)[:, :3]


def test_a_copy_scores_100_whatever_its_size_place_and_tilt() -> None:
    for degrees, scale, shift in ((0, 1, (0, 0)), (17, 1, (0, 0)), (0, 3.5, (0, 0)), (0, 1, (640, 360)),
                                  (-25, 0.4, (900, 100))):
        result = match(STAR, moved(COPY, degrees, scale, shift), tolerance=20)
        assert result.score == 100 and result.matched, (degrees, scale, shift)
        assert {part.name for part in result.parts} == {"left upper arm", "left forearm", "right upper arm",
                                                       "right forearm", "left thigh", "left shin", "right thigh",
                                                       "right shin", "torso"}


def test_the_mirror_is_respected_the_same_arm_as_the_star_is_wrong() -> None:
    result = match(STAR, STAR, tolerance=20)
    failed = {part.name for part in result.parts if not part.matched}
    assert failed == {"left upper arm", "left forearm", "right upper arm", "right forearm"}
    assert not result.matched and result.score < 60


def test_one_arm_off_fails_that_limb_only_and_it_is_the_shoppers_arm_that_turns_white() -> None:
    shopper = body(right=(UP, UP), left=(OUT, OUT))           # the copy's other arm held out sideways
    result = match(STAR, shopper, tolerance=20)
    failed = {part.name for part in result.parts if not part.matched}
    assert failed == {"right upper arm", "right forearm"}      # the star's right arm: down in the picture
    assert not result.matched and 50 < result.score < 100
    limbs = shopper_limbs(result)
    assert limbs[(11, 13)] is False and limbs[(13, 15)] is False   # the shopper's left arm is off
    assert all(limbs[limb] for limb in ((12, 14), (14, 16), (23, 25), (11, 12), (11, 23)))


def test_a_limb_close_enough_matches_and_the_tolerance_decides() -> None:
    near = body(right=(UP - 15, UP - 15))
    assert match(STAR, near, tolerance=20).matched
    assert not match(STAR, near, tolerance=10).matched
    assert match(STAR, near, tolerance=10).score < match(STAR, near, tolerance=20).score


def test_visibility_unseen_star_parts_are_not_scored_and_unseen_shopper_parts_fail() -> None:
    star = STAR.copy()
    star[[27, 28], 2] = 0.1                                       # the star's ankles are hidden
    result = match(star, COPY, tolerance=20)
    assert "left shin" not in {part.name for part in result.parts} and result.matched
    shopper = COPY.copy()
    shopper[[15, 16], 2] = 0.2                                    # the shopper's wrists are not seen
    result = match(STAR, shopper, tolerance=20)
    unseen = [part for part in result.parts if part.error is None]
    assert {part.name for part in unseen} == {"left forearm", "right forearm"} and not result.matched


def test_upper_body_scores_arms_only_and_needs_no_hips() -> None:
    shopper = COPY.copy()
    shopper[23:, 2] = 0.0                                         # seen from the waist up
    assert not match(STAR, shopper, tolerance=20, legs=True).seen
    result = match(STAR, shopper, tolerance=20, legs=False)
    assert result.matched and result.score == 100 and len(result.parts) == 4
    assert match(STAR, moved(shopper, 20, 2.0, (50, 50)), tolerance=20, legs=False).score == 100


def test_a_side_bend_is_the_torso_part() -> None:
    bent = COPY.copy()
    bent[[11, 12, 13, 14, 15, 16], :2] = moved(bent[[11, 12, 13, 14, 15, 16]], 30, 1.0, (0, 0))[:, :2]
    result = match(STAR, bent, tolerance=15)
    assert not next(part for part in result.parts if part.name == "torso").matched


# -- the game, with a fake clock -------------------------------------------------------------------------

def pose(points: np.ndarray, track: int, shift: float = 0.0, scale: float = 1.0) -> Pose:
    """A Pose in camera pixels: ``points`` scaled and moved to x = 640 + shift, y = 400."""
    placed = moved(points, 0, scale, (640 + shift, 400))
    landmarks = np.zeros((33, 4), np.float32)
    landmarks[:, [0, 1, 3]] = placed
    return Pose(0.9, landmarks, track)


def new_game(targets: int = 2, **rules: float) -> tuple[PoseGame, EventBus]:
    bus = EventBus()
    settings = {"seconds_per_pose": 5.0, "tolerance_deg": 20.0, "intro_s": 1.0, **rules}
    return PoseGame(Rules(**settings), [Target(STAR, f"pose {i + 1}") for i in range(targets)], bus.publish, 0.0), bus


def run(game: PoseGame, people: object, start: float, end: float) -> float:
    """Feed the game at 15 frames a second from ``start`` to ``end``; ``people(now)`` gives the poses."""
    now = start
    while now < end and not game.finished:
        game.update(now, people(now))  # type: ignore[operator]
        now = round(now + 1 / 15, 6)
    return now


def events(bus: EventBus) -> list[tuple[str, dict]]:
    return [(event.type, event.data) for event in bus.drain(1000)]


def test_one_shopper_matches_a_pose_after_holding_it_and_misses_the_next() -> None:
    game, bus = new_game()
    copying = lambda now: [pose(COPY, 7) if now >= 2.0 else pose(body(), 7)]   # noqa: E731
    run(game, copying, 0.0, 3.0)
    assert game.index == 1 or game.phase is Phase.VERDICT
    log = events(bus)
    assert log[0] == ("pose_round_started", {"players": 1, "poses": 2, "names": ["pose 1", "pose 2"],
                                             "seconds_per_pose": 5.0, "tolerance_deg": 20.0})
    kind, data = log[1]
    assert kind == "pose_matched" and data["player"] == "you" and data["score"] == 100 and data["pose"] == 1
    assert 1.45 <= data["seconds"] <= 1.6                        # copied at 2.0 s (round at 1.0), held 0.5 s
    run(game, lambda now: [pose(body(), 7)], 3.0, 20.0)          # arms down: never matches pose 2
    log = events(bus)
    missed = next(data for kind, data in log if kind == "pose_missed")
    assert missed["pose"] == 2 and missed["seconds"] == pytest.approx(5.0, abs=0.1) and missed["score"] == \
        missed["best"] // 2
    final = next(data for kind, data in log if kind == "pose_final")
    assert final == {"players": 1, "poses": 2, "scores": {"you": round((100 + missed["score"]) / 2)},
                     "matched": {"you": 1}, "winner": None}
    assert game.phase is Phase.RESULT


def test_a_flicker_shorter_than_the_hold_is_no_match() -> None:
    game, bus = new_game(targets=1)
    flicker = lambda now: [pose(COPY if 2.0 <= now < 2.3 else body(), 1)]   # noqa: E731
    run(game, flicker, 0.0, 6.5)
    assert [kind for kind, _ in events(bus)][:2] == ["pose_round_started", "pose_missed"]


def test_two_shoppers_side_by_side_are_scored_apart_and_the_better_wins() -> None:
    game, bus = new_game(targets=1)
    # Camera-left is the screen's right: the copying shopper (camera x 340) plays on the left of the screen.
    people = lambda now: [pose(body(), 2, shift=+300, scale=1.2), pose(COPY, 1, shift=-300)]   # noqa: E731
    run(game, people, 0.0, 10.0)
    log = dict((kind, data) for kind, data in events(bus) if kind != "pose_missed")
    assert log["pose_round_started"]["players"] == 2
    assert log["pose_matched"]["player"] == "right"
    assert log["pose_final"]["winner"] == "right" and log["pose_final"]["matched"] == {"left": 0, "right": 1}
    assert [player.side for player in game.players] == ["left", "right"]


def test_players_keep_their_side_when_their_track_ids_change() -> None:
    game, _ = new_game(targets=1)
    run(game, lambda now: [pose(body(), 1, shift=-300), pose(body(), 2, shift=300)], 0.0, 1.2)
    left, right = game.players
    game.update(1.3, [pose(body(), 9, shift=-280), pose(body(), 8, shift=310)])   # both lost and found again
    assert (left.track_id, right.track_id) == (8, 9)


def test_a_passer_by_far_behind_is_no_player() -> None:
    game, bus = new_game(targets=1)
    run(game, lambda now: [pose(body(), 1), pose(body(), 2, shift=400, scale=0.3)], 0.0, 1.5)
    assert events(bus)[0][1]["players"] == 1


def test_nobody_in_front_asks_to_step_in_then_gives_up() -> None:
    game, bus = new_game(find_s=3.0)
    run(game, lambda now: [], 0.0, 2.0)
    assert game.phase is Phase.FIND
    run(game, lambda now: [], 2.0, 6.0)
    assert game.phase is Phase.ABANDONED and events(bus) == [("pose_abandon", {"reason": "nobody", "pose": 1,
                                                                                 "players": 0})]


# -- the experience through the test kit --------------------------------------------------------------------

def normalised(points: np.ndarray) -> list[list[float]]:
    """The star's points as a campaign gives them: fractions of a square picture around the body."""
    return [[round(float(x + 200) / 400, 4), round(float(y + 250) / 400, 4), round(float(v), 2)] for x, y, v in points]


TABLE = {"star_name": "Nova", "poses_per_round": 2, "seconds_per_pose": 5.0, "intro_s": 1.0, "shuffle": False,
         "star_happy_image": "nova_happy.png",
         "poses": [{"image": "nova_arm.png", "name": "Wave", "landmarks": normalised(STAR)},
                   {"image": "nova_arm2.png", "landmarks": normalised(STAR)},
                   {"image": "nova_t.png", "landmarks": normalised(body(left=(OUT, OUT), right=(OUT, OUT)))}]}


def scripted(now: float, people: list[Pose], **kwargs: object) -> object:
    """The kit's moment with ``people`` as its poses (the kit's ``moment`` has no poses argument)."""
    frame = moment(now, **kwargs)  # type: ignore[arg-type]
    return replace(frame, perception=replace(frame.perception, poses=tuple(people), ran=("segmentation", "hands",
                                                                                           "pose")))


def test_the_pose_game_through_the_kit_matches_draws_green_limbs_and_ends_on_the_menu() -> None:
    copy = [pose(COPY, 3, scale=0.5)]
    script = [scripted(i / 10, copy) for i in range(0, 60)] + [scripted(6.0 + i / 10, copy, actions=(
        (Action.CONFIRM,) if i == 30 else ())) for i in range(0, 40)]
    context = play(experience, TABLE, script)
    assert context.target == MENU and context.exits == ["done"]
    assert [data["score"] for data in context.published("pose_matched")] == [100, 100]
    assert context.published("pose_final")[0]["scores"] == {"you": 100}
    matched_frame = next(call.frame for call in context.named("circle") if call.args["colour"] == (60, 230, 110))
    assert 10 < matched_frame < 25                        # green within the pose's first frames
    assert "Copy Nova!" in context.texts(0) and "Score 100" in context.texts()
    assert {call.args["asset"] for call in context.named("image")} >= {"nova_arm.png", "nova_arm2.png",
                                                                        "nova_happy.png"}


def test_two_shoppers_through_the_kit_each_have_a_skeleton_and_the_left_one_wins() -> None:
    people = [pose(COPY, 1, shift=+300, scale=0.5), pose(body(), 2, shift=-300, scale=0.5)]   # camera right: screen left
    context = play(experience, {**TABLE, "poses_per_round": 1}, [scripted(i / 10, people) for i in range(100)])
    assert context.published("pose_final")[0]["winner"] == "left"
    assert "Left player wins!" in context.texts() and "Left 100  ·  Right " in " ".join(context.texts())
    greens = [call.args["centre"][0] for call in context.named("circle", 20) if call.args["colour"] == (60, 230, 110)]
    assert greens and max(greens) < 960                   # the left player's limbs turn green, on the screen's left


def test_skeletons_land_where_the_kiosk_shows_the_camera_mirrored_or_not_and_cover_fitted() -> None:
    from appliance.render.fit import cover_point, shown_point

    for frame, screen in (((1280, 720), (1920, 1080)), ((640, 480), (1920, 1080)), ((1280, 720), (1080, 1920))):
        for point in ((0.0, 0.0), (100.5, 300.0), (frame[0] - 1.0, frame[1] / 2)):
            assert shown_point(point, frame, screen, True) == cover_point((frame[0] - point[0], point[1]), frame,
                                                                          screen)
            assert shown_point(point, frame, screen, False) == cover_point(point, frame, screen)


def test_a_world_that_does_not_mirror_compares_and_draws_the_camera_as_it_is() -> None:
    """Before: the game mirrored always; on a world with mirror = false the skeleton was drawn flipped and
    a shopper copying what they saw (the star's own arm) scored as wrong."""
    from appliance.experience.api import World

    table = {**TABLE, "poses_per_round": 1}
    as_shown = [pose(STAR[:, :3], 1, scale=0.5, shift=+200)]   # camera right: on a plain screen, the right
    context = FakeContext(experience, table, world=World("plain", "Plain", mirror=False))
    play(experience, table, [scripted(i / 10, as_shown) for i in range(60)], context=context)
    assert context.published("pose_matched") and not context.published("pose_missed")
    dots = [call.args["centre"][0] for call in context.named("circle", 20)
            if call.args["colour"] in ((60, 230, 110), (255, 255, 255))]
    assert dots and min(dots) > 960                      # drawn where the plain screen shows the camera's right
    mirrored_world = play(experience, table, [scripted(i / 10, as_shown) for i in range(60)])
    assert not mirrored_world.published("pose_matched")  # on a mirror the same arm is the wrong one


def test_two_players_are_left_and_right_as_the_screen_shows_them_mirrored_or_not() -> None:
    from appliance.experiences.posegame.game import players_in_front

    people = [pose(COPY, 1, shift=+300, scale=0.5), pose(body(), 2, shift=-300, scale=0.5)]
    assert [p.track_id for p in players_in_front(people, mirror=True)] == [1, 2]
    assert [p.track_id for p in players_in_front(people, mirror=False)] == [2, 1]


def test_the_text_keeps_clear_of_the_shoppers_head() -> None:
    context = FakeContext(experience, TABLE)
    context.stage.head = (660, 0, 400, 520)
    play(experience, TABLE, [scripted(i / 10, [pose(body(), 1)]) for i in range(30)], context=context)
    for call in context.named("text"):
        x, y, w, h = context.canvas.box(call)
        assert x + w <= 660 or x >= 1060 or y >= 520, call


def test_the_text_keeps_clear_of_both_players_heads() -> None:
    context = FakeContext(experience, TABLE)
    context.stage.heads = [(400, 60, 320, 420), (1200, 60, 320, 420)]
    people = [pose(COPY, 1, shift=+300, scale=0.5), pose(body(), 2, shift=-300, scale=0.5)]
    play(experience, TABLE, [scripted(i / 10, people) for i in range(60)], context=context)
    for call in context.named("text"):
        x, y, w, h = context.canvas.box(call)
        assert all(x + w <= hx or x >= hx + hw or y + h <= hy or y >= hy + hh
                   for hx, hy, hw, hh in context.stage.heads), call


def test_an_open_palm_quits_between_poses_but_not_during_one() -> None:
    people = [pose(body(), 1)]
    during = play(experience, TABLE, [scripted(i / 10, people, actions=(Action.BACK,) * (i == 20)) for i in
                                      range(25)])
    assert during.target is None
    before = play(experience, TABLE, [scripted(i / 10, people, actions=(Action.BACK,) * (i == 5)) for i in
                                      range(10)])
    assert before.target == MENU and before.published("pose_abandon") == [{"session": "test-session",
                                                                           "reason": "palm", "pose": 1,
                                                                           "players": 0}]


def test_walking_away_mid_game_publishes_the_abandon() -> None:
    context = play(experience, TABLE, [scripted(i / 10, [pose(body(), 1)]) for i in range(20)])
    assert context.exits == ["left"] and context.published("pose_abandon")[0]["reason"] == "left"


# -- the [pose] table ---------------------------------------------------------------------------------------

CAMPAIGN = """name = "test"
experiences = ["pose"]

[[scenes]]
id = "one"
title = "One"
background = "bg.png"

[pose]
star_name = "Nova"
{extra}
[[pose.poses]]
image = "nova.png"
landmarks = {landmarks}
"""


def bundle(tmp_path: Path, extra: str = "", landmarks: list | None = None) -> Path:
    rows = normalised(STAR) if landmarks is None else landmarks
    text = CAMPAIGN.format(extra=extra, landmarks="[\n" + "".join(f"  {row},\n" for row in rows) + "]")
    (tmp_path / "campaign.toml").write_text(text)
    for name in ("bg.png", "nova.png"):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 4), 200, np.uint8))
    return tmp_path


def test_a_valid_table_loads_with_its_assets(tmp_path: Path) -> None:
    loaded = load_bundle(bundle(tmp_path, "tolerance_deg = 35"), Registry.of([experience]))
    config = loaded.configs["pose"]
    assert config.tolerance_deg == 35 and config.poses[0].landmarks[11] == normalised(STAR)[11]
    assert ("pose.poses[0].image", "nova.png") in [(key, path) for key, path, _ in loaded.assets()]


@pytest.mark.parametrize(("extra", "landmarks", "message"), [
    ("tolerance_deg = 100", None, r"pose\.tolerance_deg: Input should be less than or equal to 60 \(line 11\)"),
    ("colour = 'red'", None, r"pose\.colour: unknown key \(line 11\)"),
    ("poses_per_round = 2", None, r"pose\.poses_per_round: 2 is more than the 1 pose\(s\) given \(line 11\)"),
    ("", normalised(STAR)[:32], r"pose\.poses\[0\]\.landmarks: List should have at least 33 items.*\(line 14\)"),
    ("", [[0.5, 0.5, 1.5]] * 33, r"pose\.poses\[0\]\.landmarks: landmark 0: visibility 1\.5 is not within 0\.\.1 \(line 14\)"),
    ("", [[0.5, 0.5, 0.0]] * 33, r"pose\.poses: poses\[0\] cannot be scored with legs = true: shoulders and hips.*\(line 12\)"),
])
def test_a_bad_table_is_refused_naming_the_key_and_line(tmp_path: Path, extra: str, landmarks: list | None,
                                                        message: str) -> None:
    with pytest.raises(ApplianceError, match=message):
        load_bundle(bundle(tmp_path, extra, landmarks), Registry.of([experience]))
