"""Layout around the shopper's head: the head from the matte or landmarks, boxes placed clear of it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.render.layout import Layout, head_box, landmarks_box

SCREEN = (1920, 1080)


def intersects(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def box_at(centre: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    return centre[0] - size[0] // 2, centre[1] - size[1] // 2, size[0], size[1]


def shopper(arm: bool) -> np.ndarray:
    """A 640x480 matte: shoulders from row 300, a head 120 wide from row 120, optionally a raised arm (a 40 px
    column with an 70 px fist) from row 10 beside the head."""
    alpha = np.zeros((480, 640), np.uint8)
    cv2.ellipse(alpha, (320, 200), (60, 80), 0, 0, 360, 255, -1)
    alpha[270:300, 295:345] = 255
    alpha[300:, 140:500] = 255
    if arm:
        alpha[40:320, 420:460] = 255
        cv2.ellipse(alpha, (440, 45), (35, 35), 0, 0, 360, 255, -1)
    return alpha


@pytest.mark.parametrize("arm", [False, True])
def test_the_head_is_found_and_a_raised_arm_is_not_taken_for_it(arm: bool) -> None:
    x, y, w, h = head_box(shopper(arm))
    assert abs(x + w / 2 - 320) <= 12 and 100 <= y <= 125, (x, y, w, h)
    assert 120 <= w <= 170 and x <= 260 and x + w >= 380 and y + h >= 270


def test_nobody_has_no_head() -> None:
    assert head_box(np.zeros((480, 640), np.uint8)) is None
    assert head_box(np.full((480, 640), 100, np.uint8)) is None  # below the threshold


@pytest.mark.parametrize("image", ["portrait_white_bg.png", "pose_sitting.jpg", "face_group.jpg"])
@pytest.mark.parametrize("model", [0, 1])
def test_the_head_from_a_real_matte_holds_the_face_landmarks(media: Path, image: str, model: int) -> None:
    """The reference matte of a photo against the reference pose's face points (nose, eyes, ears, mouth)."""
    face = np.array(json.loads((media / "mediapipe_reference" / "reference.json").read_text())
                    ["images"][image]["pose"])[:11, :2]
    alpha = cv2.imread(str(media / "mediapipe_reference" / "masks" / f"{image}.selfie{model}.png"), cv2.IMREAD_GRAYSCALE)
    x, y, w, h = head_box(alpha)
    assert ((face[:, 0] >= x) & (face[:, 0] < x + w) & (face[:, 1] >= y) & (face[:, 1] < y + h)).all()
    if image != "face_group.jpg":  # two heads in one blob cut by the top edge: one box for both
        lx, ly, lw, lh = landmarks_box(face, alpha.shape[::-1])
        assert w * h <= 4 * lw * lh


def test_landmarks_give_a_head_box_around_them() -> None:
    points = np.array([[500, 300, 0.1], [560, 300, 0.2], [530, 340, 0.0], [np.nan, np.nan, 0.0]])
    x, y, w, h = landmarks_box(points, SCREEN)
    assert x < 500 and x + w > 560 and y < 300 and y + h > 340
    assert 70 <= w <= 80 and h == pytest.approx(1.3 * w, abs=2)
    assert landmarks_box(np.empty((0, 2)), SCREEN) is None
    assert landmarks_box([[0, 5], [30, 40]], SCREEN)[:2] == (0, 0)  # clipped to the frame


def test_a_box_goes_where_asked_without_a_head() -> None:
    layout = Layout(SCREEN, None)
    assert layout.place((400, 100), (0.5, 0.36)) == (960, 389)
    assert layout.place((400, 100), (0.0, 0.0)) == (24 + 200, 24 + 50)  # kept within the margin


@pytest.mark.parametrize("head", [(810, 250, 300, 390), (0, 0, 500, 600), (1400, 600, 520, 480)])
def test_a_box_keeps_off_the_head_and_on_screen(head: tuple[int, int, int, int]) -> None:
    layout = Layout(SCREEN, head)
    for prefer in [(0.5, 0.36), (0.5, 0.1), (0.1, 0.1), (0.9, 0.9), (0.5, 0.5)]:
        for size in [(700, 120), (300, 60), (1200, 300)]:
            box = box_at(layout.place(size, prefer), size)
            assert not intersects(box, layout.protected[0]), (head, prefer, size, box)
            assert box[0] >= 24 and box[1] >= 24 and box[0] + box[2] <= SCREEN[0] - 24 \
                and box[1] + box[3] <= SCREEN[1] - 24


def test_the_nearest_clear_spot_is_taken() -> None:
    layout = Layout(SCREEN, (810, 250, 300, 390), clearance=16)
    # A title wanted over the face goes just above or below the protected box, whichever is nearer.
    assert layout.place((700, 120), (0.5, 0.36)) == (960, 250 - 16 - 60)
    assert layout.place((700, 120), (0.5, 0.62)) == (960, 250 + 390 + 16 + 60)
    # Sideways when that is nearer: a card wanted beside the head slides off it horizontally.
    assert layout.place((300, 120), (0.45, 0.4)) == (810 - 16 - 150, 432)


def test_a_box_too_big_to_avoid_the_head_overlaps_it_least() -> None:
    layout = Layout(SCREEN, (810, 200, 300, 700), clearance=0)
    size = (1800, 400)
    box = box_at(layout.place(size, (0.5, 0.5)), size)
    covered = max(0, min(box[1] + box[3], 900) - max(box[1], 200)) * 300
    assert box[1] == 24 and covered == 300 * (424 - 200)  # at the top margin it covers the head least


def test_several_heads_are_all_kept_clear() -> None:
    """Two shoppers side by side: a title wanted between their heads goes above or below both."""
    heads = [(500, 200, 260, 340), (1160, 220, 260, 340)]
    layout = Layout(SCREEN, heads)
    box = box_at(layout.place((900, 120), (0.5, 0.3)), (900, 120))
    assert not any(intersects(box, protected) for protected in layout.protected)
