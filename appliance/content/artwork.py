"""Procedural artwork for the default bundle: drawn, not copied, so no licence is needed.

Images are built as float RGB (or premultiplied RGBA) in 0..1 and converted to
8-bit BGR(A) only when written; each drawing takes a seeded generator so the
result is the same on every machine.  The star's poses are drawn from their own
33 MediaPipe landmarks (``pose_landmarks``), so the picture and the landmarks a
campaign gives for it agree exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


def _gradient(height: int, width: int, stops: Sequence[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """A vertical gradient through (position 0..1, RGB 0..255) stops."""
    rows = np.linspace(0.0, 1.0, height)
    positions = [position for position, _ in stops]
    columns = [np.interp(rows, positions, [rgb[c] / 255.0 for _, rgb in stops]) for c in range(3)]
    return np.broadcast_to(np.stack(columns, axis=1)[:, None, :], (height, width, 3)).astype(np.float32)


def _soften(layer: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian glow, blurred at quarter resolution because full-size kernels are slow."""
    height, width = layer.shape[:2]
    small = cv2.resize(layer, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _vignette(height: int, width: int, strength: float) -> np.ndarray:
    y, x = np.ogrid[-1.0 : 1.0 : complex(height), -1.0 : 1.0 : complex(width)]
    return (1.0 - strength * (x * x + y * y) / 2.0).astype(np.float32)[..., None]


def _bgr8(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)[..., ::-1])


def _over(canvas: np.ndarray, coverage: np.ndarray, rgb: tuple[float, float, float] | np.ndarray,
          opacity: float = 1.0) -> None:
    """Paint a colour (or an HxWx3 colour field) through a 0..255 coverage mask onto a premultiplied RGBA canvas."""
    amount = (coverage.astype(np.float32) * (opacity / 255.0))[..., None]
    canvas[..., :3] = canvas[..., :3] * (1.0 - amount) + amount * np.asarray(rgb, np.float32)
    canvas[..., 3:] = canvas[..., 3:] * (1.0 - amount) + amount


def _bgra8(canvas: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downsample a premultiplied canvas (drawn oversized for smooth edges) and un-premultiply."""
    small = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    alpha = small[..., 3:]
    rgb = np.where(alpha > 1e-4, small[..., :3] / np.maximum(alpha, 1e-4), 0.0)
    return np.ascontiguousarray(np.concatenate([_bgr8(rgb), _bgr8(np.repeat(alpha, 3, axis=2))[..., :1]], axis=2))


def _snowflake(mask: np.ndarray, center: tuple[int, int], radius: int, thickness: int) -> None:
    """A six-armed flake with side branches, drawn into a coverage mask."""
    cx, cy = center
    for arm in range(6):
        angle = math.radians(90 + 60 * arm)
        dx, dy = math.cos(angle), -math.sin(angle)
        tip = (round(cx + dx * radius), round(cy + dy * radius))
        cv2.line(mask, center, tip, 255, thickness, cv2.LINE_AA)
        for side in (-1, 1):
            bx, by = cx + dx * radius * 0.6, cy + dy * radius * 0.6
            branch = math.radians(90 + 60 * arm + side * 45)
            end = (round(bx + math.cos(branch) * radius * 0.32), round(by - math.sin(branch) * radius * 0.32))
            cv2.line(mask, (round(bx), round(by)), end, 255, max(1, thickness * 3 // 4), cv2.LINE_AA)


def draw_street(rng: np.random.Generator, width: int = 1920, height: int = 1080) -> np.ndarray:
    """Snowy night street: sky, moon, skyline, lit buildings with snowy roofs, lamps, snow."""
    ground = int(height * 0.74)
    sky = [(0.0, (5, 9, 28)), (0.45, (22, 32, 76)), (ground / height, (92, 74, 120)), (1.0, (92, 74, 120))]
    image = _gradient(height, width, sky).copy()

    stars = np.zeros((height, width), np.float32)
    count = 320
    stars[rng.integers(0, int(height * 0.55), count), rng.integers(0, width, count)] = rng.uniform(0.25, 1.0, count)
    image += cv2.GaussianBlur(stars, (3, 3), 0.6)[..., None] * 2.0

    moon = (int(width * 0.2), int(height * 0.13))
    glow = np.zeros_like(image)
    cv2.circle(glow, moon, 80, (1.0, 0.95, 0.85), -1)
    image += _soften(glow, 70) * 0.6
    cv2.circle(image, moon, 54, (0.96, 0.95, 0.88), -1, cv2.LINE_AA)
    cv2.circle(image, (moon[0] - 16, moon[1] - 10), 12, (0.86, 0.86, 0.8), -1, cv2.LINE_AA)

    x = 0
    while x < width:
        w, h = int(rng.integers(70, 170)), int(rng.integers(120, 320))
        cv2.rectangle(image, (x, ground - h), (x + w, ground), (0.16, 0.17, 0.30), -1)
        x += w

    windows = np.zeros_like(image)
    street_gap = (int(width * 0.40), int(width * 0.60))
    x = -40
    while x < width:
        w, h = int(rng.integers(190, 330)), int(rng.integers(330, 620))
        if x + w > street_gap[0] and x < street_gap[1]:
            x = street_gap[1]
            continue
        shade = rng.uniform(0.05, 0.09)
        cv2.rectangle(image, (x, ground - h), (x + w, ground), (shade, shade * 1.1, shade * 1.8), -1)
        for wy in range(ground - h + 36, ground - 60, 58):
            for wx in range(x + 24, x + w - 40, 46):
                if rng.random() < 0.5:
                    warmth = rng.uniform(0.65, 1.0)
                    lit = (1.0 * warmth, 0.76 * warmth, 0.42 * warmth)
                    cv2.rectangle(windows, (wx, wy), (wx + 20, wy + 30), lit, -1)
                else:
                    cv2.rectangle(image, (wx, wy), (wx + 20, wy + 30), (0.11, 0.12, 0.2), -1)
        roof = (0.86, 0.9, 0.97)
        cv2.rectangle(image, (x - 6, ground - h - 10), (x + w + 6, ground - h + 4), roof, -1, cv2.LINE_AA)
        cv2.ellipse(image, (x + w // 2, ground - h - 9), (w // 2 + 6, 8), 0, 180, 360, roof, -1, cv2.LINE_AA)
        x += w + int(rng.integers(0, 40))
    image = np.where(windows > 0, windows, image) + _soften(windows, 24) * 0.5

    rows = ground + np.arange(height - ground)
    snow = _gradient(height - ground, width, [(0.0, (168, 178, 214)), (1.0, (232, 238, 250))])
    coarse = rng.normal(0, 1, (6, 24)).astype(np.float32)
    drift = cv2.resize(coarse, (width, height - ground), interpolation=cv2.INTER_CUBIC)
    snow = snow + (drift * 0.015)[..., None]
    sparkle = (rng.random((height - ground, width)) > 0.9985).astype(np.float32)
    image[rows] = snow + sparkle[..., None] * 0.35
    image[ground : ground + 6] *= np.linspace(0.8, 1.0, 6, dtype=np.float32)[:, None, None]

    light = np.zeros_like(image)
    base_y = int(height * 0.93)
    for lamp_x in (int(width * f) for f in (0.09, 0.32, 0.68, 0.91)):
        top = int(height * 0.48)
        post = (0.07, 0.07, 0.1)
        cv2.rectangle(image, (lamp_x - 5, top), (lamp_x + 5, base_y), post, -1, cv2.LINE_AA)
        cv2.rectangle(image, (lamp_x - 11, base_y - 24), (lamp_x + 11, base_y), post, -1, cv2.LINE_AA)
        head = np.array([[lamp_x - 22, top - 4], [lamp_x + 22, top - 4],
                         [lamp_x + 14, top - 44], [lamp_x - 14, top - 44]])
        cv2.fillConvexPoly(image, head, post, cv2.LINE_AA)
        cv2.rectangle(image, (lamp_x - 13, top - 38), (lamp_x + 13, top - 8), (1.0, 0.9, 0.66), -1, cv2.LINE_AA)
        cv2.ellipse(image, (lamp_x, top - 46), (20, 7), 0, 180, 360, (0.9, 0.93, 0.98), -1, cv2.LINE_AA)
        cv2.circle(light, (lamp_x, top - 22), 46, (1.0, 0.82, 0.55), -1)
        cv2.ellipse(light, (lamp_x, base_y + 8), (220, 34), 0, 0, 360, (0.7, 0.55, 0.35), -1)
    image += _soften(light, 60) * 0.9
    _garlands(image, [int(width * f) for f in (0.09, 0.32, 0.68, 0.91)], int(height * 0.48) - 30)
    return _bgr8(image * _vignette(height, width, 0.35))


#: The festive bulbs' colours along a garland, in turn (RGB 0..1).
BULBS = ((1.0, 0.78, 0.35), (1.0, 0.35, 0.3), (0.45, 0.85, 1.0), (0.55, 1.0, 0.5))


def _garlands(image: np.ndarray, posts: Sequence[int], top: int, sag: float = 70.0) -> None:
    """Strings of coloured bulbs hung between neighbouring lamp posts (and across the street), each a
    catenary-like sag with a dark wire, bright bulb cores and a soft glow around them."""
    wire = (0.05, 0.05, 0.08)
    glow = np.zeros_like(image)
    for left, right in zip(posts, posts[1:], strict=False):
        xs = np.linspace(left, right, 64)
        ys = top + sag * (1.0 - ((xs - (left + right) / 2) / ((right - left) / 2)) ** 2)
        cv2.polylines(image, [np.round(np.stack([xs, ys], axis=1)).astype(np.int32)], False, wire, 2, cv2.LINE_AA)
        count = max(4, (right - left) // 38)
        for k in range(1, count):
            x = left + (right - left) * k / count
            y = top + sag * (1.0 - ((x - (left + right) / 2) / ((right - left) / 2)) ** 2) + 7
            colour = BULBS[k % len(BULBS)]
            cv2.circle(image, (round(x), round(y)), 6, colour, -1, cv2.LINE_AA)
            cv2.circle(image, (round(x - 1.5), round(y - 1.5)), 2, (1.0, 1.0, 0.95), -1, cv2.LINE_AA)
            cv2.circle(glow, (round(x), round(y)), 16, colour, -1, cv2.LINE_AA)
    image += _soften(glow, 14) * 0.8


def draw_stage(rng: np.random.Generator, width: int = 1920, height: int = 1080) -> np.ndarray:
    """Warm theatre stage: folded red curtain, wooden floor, a spotlight on the centre."""
    floor = int(height * 0.72)
    x = np.arange(width, dtype=np.float32)
    folds = 0.5 + 0.5 * np.cos(2 * np.pi * x / 150.0 + 1.4 * np.sin(x / 270.0 + rng.uniform(0, 6)))
    folds = 0.35 + 0.65 * folds**1.5
    curtain = np.linspace(0.45, 1.0, floor, dtype=np.float32)[:, None, None] * folds[None, :, None]
    image = np.empty((height, width, 3), np.float32)
    image[:floor] = curtain * np.array([0.56, 0.06, 0.1], np.float32)

    boards = _gradient(height - floor, width, [(0.0, (58, 32, 18)), (1.0, (128, 76, 40))]).copy()
    depth = np.linspace(0.0, 1.0, 9) ** 2 * (height - floor)
    for y in depth[1:]:
        cv2.line(boards, (0, int(y)), (width, int(y)), (0.14, 0.08, 0.04), 2, cv2.LINE_AA)
    vanishing = (width // 2, -int(height * 0.9))
    for bx in range(-width, 2 * width, 140):
        start = (vanishing[0] + (bx - vanishing[0]) * (0 - vanishing[1]) // (height - floor - vanishing[1]), 0)
        cv2.line(boards, start, (bx, height - floor), (0.2, 0.11, 0.06), 1, cv2.LINE_AA)
    image[floor:] = boards
    image[floor - 8 : floor] = (0.08, 0.03, 0.02)

    valance = np.zeros((height, width), np.uint8)
    cv2.rectangle(valance, (0, 0), (width, 70), 255, -1)
    for sx in range(0, width + 160, 160):
        cv2.ellipse(valance, (sx, 70), (80, 46), 0, 0, 180, 255, -1, cv2.LINE_AA)
    trim = cv2.morphologyEx(valance, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
    shade = (valance.astype(np.float32) / 255.0)[..., None]
    image = image * (1 - shade) + shade * np.array([0.42, 0.04, 0.07], np.float32)
    image += (trim.astype(np.float32) / 255.0)[..., None] * np.array([0.85, 0.62, 0.22], np.float32)

    beams = np.zeros_like(image)
    mid = width // 2
    cone = np.array([[mid - 70, 0], [mid + 70, 0], [mid + 420, height], [mid - 420, height]])
    cv2.fillConvexPoly(beams, cone, (1.0, 0.93, 0.78))
    image += _soften(beams, 50) * 0.3
    pool = np.zeros_like(image)
    cv2.ellipse(pool, (width // 2, int(height * 0.86)), (430, 90), 0, 0, 360, (1.0, 0.9, 0.7), -1)
    cv2.ellipse(pool, (width // 2, int(height * 0.5)), (330, 420), 0, 0, 360, (0.7, 0.5, 0.35), -1)
    image += _soften(pool, 60) * 0.55
    side = np.zeros_like(image)
    magenta = np.array([[0, 0], [90, 0], [int(width * 0.42), floor], [int(width * 0.3), floor]])
    amber = np.array([[width - 90, 0], [width, 0], [int(width * 0.7), floor], [int(width * 0.58), floor]])
    cv2.fillConvexPoly(side, magenta, (0.9, 0.3, 0.7))
    cv2.fillConvexPoly(side, amber, (1.0, 0.6, 0.2))
    image += _soften(side, 40) * 0.18
    return _bgr8(image * _vignette(height, width, 0.6))


def aurora_frames(rng: np.random.Generator, width: int = 1280, height: int = 720, frames: int = 100):
    """Yield the frames of a seamless aurora loop: every moving term turns a whole number of
    cycles over the loop, and the large-scale shape stays still so the motion reads as slow."""
    small_w, small_h = width // 4, height // 4
    X, Y = np.meshgrid(np.linspace(0, 1, small_w, dtype=np.float32), np.linspace(0, 1, small_h, dtype=np.float32))
    sky = _gradient(small_h, small_w, [(0.0, (2, 5, 18)), (0.75, (8, 26, 46)), (1.0, (14, 36, 56))])
    bands = [
        dict(base=0.42, amp=0.08, freq=1.3, height=0.20, left=0.0, right=0.8,
             green=(0.25, 1.0, 0.55), top=(0.55, 0.3, 0.95)),
        dict(base=0.30, amp=0.06, freq=0.9, height=0.14, left=0.3, right=1.0,
             green=(0.3, 0.95, 0.7), top=(0.9, 0.35, 0.75)),
        dict(base=0.55, amp=0.05, freq=2.1, height=0.10, left=0.1, right=0.65,
             green=(0.2, 0.9, 0.5), top=(0.3, 0.5, 0.95)),
    ]
    phases = rng.uniform(0, 2 * np.pi, (len(bands), 4))

    horizon = np.zeros((height, width), np.uint8)
    hills = [(x, int(height * (0.8 + 0.06 * math.sin(x / 170) + 0.03 * math.sin(x / 53 + 1))))
             for x in range(0, width + 20, 20)]
    ridge = [(0, height), *hills, (width, height)]
    cv2.fillPoly(horizon, [np.array(ridge)], 255, cv2.LINE_AA)
    for _ in range(26):
        tx, ty, th = int(rng.integers(0, width)), int(height * rng.uniform(0.84, 0.98)), int(rng.integers(50, 130))
        cv2.fillConvexPoly(horizon, np.array([[tx, ty - th], [tx - th // 4, ty], [tx + th // 4, ty]]), 255, cv2.LINE_AA)
    land = horizon.astype(np.float32)
    sky_weight = 255.0 - land
    land_colour = np.full((height, width, 3), _bgr8(np.array([0.01, 0.02, 0.04], np.float32)), np.uint8)
    stars = np.zeros((height, width), np.float32)
    stars[rng.integers(0, int(height * 0.7), 220), rng.integers(0, width, 220)] = rng.uniform(0.2, 0.9, 220)
    stars = _bgr8(np.repeat(cv2.GaussianBlur(stars, (3, 3), 0.6)[..., None] * 2.0, 3, axis=2))

    for index in range(frames):
        turn = 2 * np.pi * index / frames
        light = np.zeros((small_h, small_w, 3), np.float32)
        for band, phase in zip(bands, phases, strict=True):
            centre = (band["base"] + band["amp"] * np.sin(2 * np.pi * band["freq"] * X + phase[0])
                      + 0.015 * np.sin(2 * np.pi * 3.0 * X + turn + phase[1]))
            above = centre - Y
            profile = np.where(above > 0, np.exp(-above / band["height"]), np.exp(-((above / 0.02) ** 2)))
            rays = 0.55 + 0.45 * np.sin(2 * np.pi * 11.0 * X + 2 * turn + phase[2] + 2 * np.sin(turn + phase[3])) ** 2
            span = np.clip(np.minimum(X - band["left"], band["right"] - X) / 0.15, 0, 1)
            mix = np.exp(-np.maximum(above, 0) / 0.07)[..., None]
            colour = mix * np.array(band["green"], np.float32) + (1 - mix) * np.array(band["top"], np.float32)
            light += (profile * rays * span * 0.8)[..., None] * colour
        frame = cv2.resize(_bgr8(sky + 1.0 - np.exp(-light)), (width, height), interpolation=cv2.INTER_CUBIC)
        yield cv2.blendLinear(cv2.add(frame, stars), land_colour, sky_weight, land)


def draw_logo(width: int = 700, height: int = 220) -> np.ndarray:
    """The OIVIS wordmark beside a snowflake emblem, white on transparent with a soft shadow."""
    big_w, big_h = width * 2, height * 2
    emblem = np.zeros((big_h, big_w), np.uint8)
    centre, radius = (big_h // 2, big_h // 2), int(big_h * 0.4)
    cv2.circle(emblem, centre, radius, 255, 18, cv2.LINE_AA)
    _snowflake(emblem, centre, int(radius * 0.7), 16)
    text = np.zeros_like(emblem)
    font, thickness = cv2.FONT_HERSHEY_DUPLEX, 22
    (text_w, text_h), _ = cv2.getTextSize("OIVIS", font, 1.0, thickness)
    scale = min(big_h * 0.5 / text_h, (big_w - big_h * 1.05) / text_w)
    (text_w, text_h), _ = cv2.getTextSize("OIVIS", font, scale, thickness)
    cv2.putText(text, "OIVIS", (int(big_h * 1.02), (big_h + text_h) // 2), font, scale, 255, thickness, cv2.LINE_AA)

    shadow = cv2.GaussianBlur(np.maximum(emblem, text), (0, 0), 10)
    shadow = np.roll(shadow, (8, 8), axis=(0, 1))
    canvas = np.zeros((big_h, big_w, 4), np.float32)
    _over(canvas, shadow, (0.0, 0.0, 0.0), opacity=0.6)
    _over(canvas, emblem, (0.45, 0.86, 1.0))
    _over(canvas, text, (1.0, 1.0, 1.0))
    return _bgra8(canvas, (width, height))


def draw_frame(width: int = 1920, height: int = 1080) -> np.ndarray:
    """A gold border with snowflake corners and a soft inner shadow; the middle stays clear."""
    canvas = np.zeros((height, width, 4), np.float32)
    border, fade = 26, 34
    inner = np.full((height, width), 255, np.uint8)
    cv2.rectangle(inner, (border, border), (width - border - 1, height - border - 1), 0, -1)
    distance = cv2.distanceTransform(255 - inner, cv2.DIST_L2, 5)
    shadow = (np.clip(1.0 - distance / fade, 0, 1) * 255).astype(np.uint8) * (inner == 0)
    _over(canvas, shadow, (0.0, 0.0, 0.0), opacity=0.45)
    across = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    down = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    ramp = across * 0.6 + down * 0.4
    gold = np.stack([0.78 + 0.2 * ramp, 0.6 + 0.26 * ramp, 0.25 + 0.28 * ramp], axis=2)
    amount = (inner.astype(np.float32) / 255.0)[..., None]
    canvas[..., :3] = canvas[..., :3] * (1 - amount) + amount * gold
    canvas[..., 3:] = canvas[..., 3:] * (1 - amount) + amount
    line = np.zeros((height, width), np.uint8)
    cv2.rectangle(line, (border + 14, border + 14), (width - border - 15, height - border - 15), 255, 3, cv2.LINE_AA)
    _over(canvas, line, (1.0, 0.93, 0.7), opacity=0.9)
    near, far_x, far_y = border + 40, width - border - 41, height - border - 41
    corners = ((near, near), (far_x, near), (near, far_y), (far_x, far_y))
    flakes = np.zeros((height, width), np.uint8)
    for cx, cy in corners:
        cv2.circle(flakes, (cx, cy), 30, 255, -1, cv2.LINE_AA)
    _over(canvas, flakes, (0.62, 0.46, 0.16))
    marks = np.zeros_like(flakes)
    for cx, cy in corners:
        _snowflake(marks, (cx, cy), 22, 3)
    _over(canvas, marks, (1.0, 1.0, 1.0))
    return _bgra8(canvas, (width, height))


#: Where draw_star_head puts the star: its centre and outer radius, as fractions of the picture's side.
STAR_CENTRE, STAR_OUTER = (0.5, 0.54), 0.44


def _star_mask(size: int, centre: tuple[float, float], outer: float, inner: float, roundness: float) -> np.ndarray:
    """A five-pointed star's coverage, its points rounded off (blur, then threshold) so it looks soft."""
    points = []
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = math.radians(-90 + 36 * k)
        points.append((centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle)))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(np.array(points)).astype(np.int32)], 255, cv2.LINE_AA)
    soft = cv2.GaussianBlur(mask, (0, 0), roundness)
    return cv2.GaussianBlur(np.where(soft > 140, 255, 0).astype(np.uint8), (0, 0), 1.5)


def draw_star_head(mood: str = "neutral", size: int = 640) -> np.ndarray:
    """Nova's head: a chubby golden star with a face, BGRA, square.

    ``mood`` is ``neutral``, ``happy`` (the star won: closed laughing eyes, open mouth, sparkles,
    warmer) or ``sad`` (the star lost: frown, raised inner brows, a tear, paler and cooler).
    """
    big = size * 2
    cx, cy = big * STAR_CENTRE[0], big * STAR_CENTRE[1]
    outer = big * STAR_OUTER
    body = {"neutral": (1.0, 0.8, 0.18), "happy": (1.0, 0.72, 0.12), "sad": (0.86, 0.82, 0.55)}[mood]
    rim = {"neutral": (0.86, 0.42, 0.08), "happy": (0.9, 0.36, 0.06), "sad": (0.55, 0.52, 0.5)}[mood]
    ink = (0.28, 0.14, 0.06)
    canvas = np.zeros((big, big, 4), np.float32)

    outline = _star_mask(big, (cx, cy), outer, outer * 0.56, big * 0.02)
    shadow = np.roll(cv2.GaussianBlur(outline, (0, 0), big * 0.012), (int(big * 0.02), int(big * 0.01)), (0, 1))
    _over(canvas, shadow, (0.0, 0.0, 0.0), opacity=0.35)
    _over(canvas, outline, rim)
    fill = _star_mask(big, (cx, cy + big * 0.004), outer * 0.93, outer * 0.56 * 0.9, big * 0.02)
    y, x = np.mgrid[0:big, 0:big].astype(np.float32)
    light = np.clip(1.0 - np.hypot(x - cx + outer * 0.35, y - cy + outer * 0.45) / (outer * 1.6), 0, 1)[..., None]
    shade = np.asarray(body, np.float32) * (0.82 + 0.18 * light) + 0.22 * light**2
    _over(canvas, fill, shade)

    face = np.zeros((big, big), np.uint8)
    eye_dx, eye_y, unit = outer * 0.2, cy - outer * 0.06, outer / 100
    thick = max(2, round(unit * 5))
    for side in (-1, 1):
        ex = round(cx + side * eye_dx)
        if mood == "happy":
            cv2.ellipse(face, (ex, round(eye_y + unit * 4)), (round(unit * 9), round(unit * 8)), 0, 200, 340,
                        255, thick, cv2.LINE_AA)
        else:
            cv2.ellipse(face, (ex, round(eye_y)), (round(unit * 7), round(unit * 11)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        if mood == "sad":
            brow_inner = (round(cx + side * eye_dx * 0.45), round(eye_y - unit * 19))
            brow_outer = (round(cx + side * eye_dx * 1.5), round(eye_y - unit * 13))
            cv2.line(face, brow_inner, brow_outer, 255, max(2, thick * 3 // 4), cv2.LINE_AA)
    mouth_y = round(cy + outer * 0.14)
    if mood == "happy":
        cv2.ellipse(face, (round(cx), mouth_y - round(unit * 3)), (round(unit * 17), round(unit * 15)), 0, 0, 180,
                    255, -1, cv2.LINE_AA)
    elif mood == "sad":
        cv2.ellipse(face, (round(cx), mouth_y + round(unit * 9)), (round(unit * 12), round(unit * 8)), 0, 200, 340,
                    255, thick, cv2.LINE_AA)
    else:
        cv2.ellipse(face, (round(cx), mouth_y - round(unit * 4)), (round(unit * 15), round(unit * 11)), 0, 20, 160,
                    255, thick, cv2.LINE_AA)
    _over(canvas, face, ink)

    details = np.zeros_like(face)
    if mood != "happy":
        for side in (-1, 1):
            spot = (round(cx + side * eye_dx + unit * 2.5), round(eye_y - unit * (4 if mood == "neutral" else -3)))
            cv2.circle(details, spot, round(unit * 2.6), 255, -1, cv2.LINE_AA)
        _over(canvas, details, (1.0, 1.0, 1.0))
    if mood == "happy":
        tongue = np.zeros_like(face)
        cv2.ellipse(tongue, (round(cx), mouth_y + round(unit * 9)), (round(unit * 9), round(unit * 5)), 0, 0, 360,
                    255, -1, cv2.LINE_AA)
        _over(canvas, np.minimum(tongue, face), (0.95, 0.42, 0.45))
    if mood != "sad":
        cheeks = np.zeros_like(face)
        for side in (-1, 1):
            cv2.ellipse(cheeks, (round(cx + side * eye_dx * 1.65), round(eye_y + unit * 16)),
                        (round(unit * 9), round(unit * 5)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        _over(canvas, cv2.GaussianBlur(cheeks, (0, 0), unit * 1.5), (1.0, 0.45, 0.45), opacity=0.55)
    else:
        tear = np.zeros_like(face)
        tx, ty = round(cx + eye_dx + unit * 3), round(eye_y + unit * 20)
        cv2.circle(tear, (tx, ty), round(unit * 4.5), 255, -1, cv2.LINE_AA)
        cv2.fillConvexPoly(tear, np.array([[tx - round(unit * 4.3), ty - round(unit)], [tx, ty - round(unit * 11)],
                                           [tx + round(unit * 4.3), ty - round(unit)]]), 255, cv2.LINE_AA)
        _over(canvas, tear, (0.45, 0.75, 1.0), opacity=0.9)
    if mood == "happy":
        sparkles = np.zeros_like(face)
        for sx, sy, radius in ((0.12, 0.2, 0.05), (0.86, 0.16, 0.04), (0.9, 0.62, 0.03), (0.08, 0.66, 0.035)):
            centre, length = (round(big * sx), round(big * sy)), round(big * radius)
            star4 = [(centre[0], centre[1] - length), (centre[0] + length // 4, centre[1] - length // 4),
                     (centre[0] + length, centre[1]), (centre[0] + length // 4, centre[1] + length // 4),
                     (centre[0], centre[1] + length), (centre[0] - length // 4, centre[1] + length // 4),
                     (centre[0] - length, centre[1]), (centre[0] - length // 4, centre[1] - length // 4)]
            cv2.fillPoly(sparkles, [np.array(star4)], 255, cv2.LINE_AA)
        _over(canvas, sparkles, (1.0, 0.95, 0.55))
    return _bgra8(canvas, (size, size))


@dataclass(frozen=True)
class Stance:
    """A pose of the star's body: each limb's two segments as angles in degrees from straight down,
    positive towards the picture's right (the person's left, facing the camera); 180 is straight up."""

    left_arm: tuple[float, float]     # upper arm, forearm (the person's left: the picture's right)
    right_arm: tuple[float, float]
    left_leg: tuple[float, float]     # thigh, shin
    right_leg: tuple[float, float]
    mood: str = "neutral"             # the star's face, as draw_star_head


#: The star's poses: a star jump, a T, a wave (the left hand up and waving, the right arm down).
STANCES = {
    "star-jump": Stance((145, 150), (-145, -150), (20, 20), (-20, -20), "happy"),
    "t": Stance((90, 90), (-90, -90), (4, 4), (-4, -4)),
    "wave": Stance((95, 165), (-25, -12), (7, 5), (-7, -5), "happy"),
}
#: The star's moods for rock–paper–scissors, each a stance of her own: hands on hips (the hero's
#: stance), both fists up cheering, arms hanging.
MOODS = {
    "neutral": Stance((45, -38), (-45, 38), (9, 7), (-9, -7)),
    "happy": Stance((150, 172), (-150, -172), (14, 10), (-14, -10), "happy"),
    "sad": Stance((7, -6), (-7, 6), (3, 2), (-3, -2), "sad"),
}
#: A pose picture's size (w, h); the body is measured in units (the star head's outer radius) from the
#: mid-hip, which stands at POSE_HIP (fractions of the picture), UNIT pixels to a unit.
POSE_SIZE, POSE_HIP, UNIT = (640, 800), (0.5, 0.56), 76.0
HIP, SHOULDER, NECK = 0.45, 0.8, 2.6          # half hip width, half shoulder width, mid-hip to mid-shoulder
UPPER_ARM, FOREARM, THIGH, SHIN = 1.25, 1.15, 1.7, 1.6
HEAD, HEAD_RADIUS = 1.2, 1.35                  # mid-shoulder to the head star's centre; its outer radius
#: The face's landmarks on draw_star_head's star, in outer radii from its centre (x towards the person's left).
FACE = {0: (0.0, 0.04), 1: (0.13, -0.06), 2: (0.2, -0.06), 3: (0.27, -0.06), 4: (-0.13, -0.06),
        5: (-0.2, -0.06), 6: (-0.27, -0.06), 7: (0.38, -0.04), 8: (-0.38, -0.04), 9: (0.15, 0.1), 10: (-0.15, 0.1)}


def _towards(degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    return np.array([math.sin(angle), math.cos(angle)])


def pose_landmarks(stance: Stance) -> np.ndarray:
    """The 33 MediaPipe landmarks of ``stance`` as (x, y) fractions of the picture, to 4 decimals."""
    points = np.zeros((33, 2))
    head = np.array([0.0, -NECK - HEAD])
    for index, (x, y) in FACE.items():
        points[index] = head + np.array((x, y)) * HEAD_RADIUS
    for side, arm, leg, first in ((1, stance.left_arm, stance.left_leg, 0), (-1, stance.right_arm, stance.right_leg, 1)):
        shoulder, hip = np.array([side * SHOULDER, -NECK]), np.array([side * HIP, 0.0])
        elbow = shoulder + UPPER_ARM * _towards(arm[0])
        hand = _towards(arm[1])
        wrist = elbow + FOREARM * hand
        thumb_side = side * np.array([hand[1], -hand[0]])
        knee = hip + THIGH * _towards(leg[0])
        ankle = knee + SHIN * _towards(leg[1])
        for index, point in ((11, shoulder), (13, elbow), (15, wrist), (17, wrist + 0.36 * hand - 0.12 * thumb_side),
                             (19, wrist + 0.44 * hand), (21, wrist + 0.22 * hand + 0.2 * thumb_side), (23, hip),
                             (25, knee), (27, ankle), (29, ankle + (-side * 0.05, 0.2)),
                             (31, ankle + (side * 0.3, 0.3))):
            points[index + first] = point
    fractions = (np.array(POSE_HIP) * POSE_SIZE + points * UNIT) / POSE_SIZE
    return np.round(fractions, 4)


def _paste(canvas: np.ndarray, bgra: np.ndarray, top_left: tuple[int, int]) -> None:
    """Lay an 8-bit BGRA picture over a premultiplied RGBA canvas, clipped to the canvas."""
    height, width = canvas.shape[:2]
    x, y = top_left
    left, top = max(0, -x), max(0, -y)
    right, bottom = min(bgra.shape[1], width - x), min(bgra.shape[0], height - y)
    piece = bgra[top:bottom, left:right].astype(np.float32) / 255.0
    alpha = piece[..., 3:]
    region = canvas[y + top : y + bottom, x + left : x + right]
    region[..., :3] = region[..., :3] * (1.0 - alpha) + piece[..., 2::-1] * alpha
    region[..., 3:] = region[..., 3:] * (1.0 - alpha) + alpha


def _capsule(mask: np.ndarray, a: np.ndarray, b: np.ndarray, radius_a: float, radius_b: float) -> None:
    """A tapered limb segment: two discs and the band tangent to both, anti-aliased."""
    along = b - a
    length = float(np.hypot(*along))
    across = np.array([-along[1], along[0]]) / max(length, 1e-6)
    band = np.array([a + across * radius_a, b + across * radius_b, b - across * radius_b, a - across * radius_a])
    cv2.fillConvexPoly(mask, np.round(band).astype(np.int32), 255, cv2.LINE_AA)
    for centre, radius in ((a, radius_a), (b, radius_b)):
        cv2.circle(mask, (round(centre[0]), round(centre[1])), round(radius), 255, -1, cv2.LINE_AA)


def _shade(mask: np.ndarray, colour: tuple[float, float, float], depth: float) -> np.ndarray:
    """A rounded part's colour field: darker towards its rim (``depth`` pixels in), a soft highlight
    up and to the left where the key light falls."""
    inside = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 5)
    form = np.sqrt(np.clip(inside / depth, 0.0, 1.0))[..., None]
    shift = round(depth * 0.45)
    lit = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, shift // 2))
    lit = np.roll(lit, (-shift, -shift), axis=(0, 1)) & mask
    gloss = cv2.GaussianBlur(lit, (0, 0), depth * 0.5).astype(np.float32)[..., None] / 255.0
    base = np.asarray(colour, np.float32)
    return base * (0.55 + 0.45 * form) + (1.0 - base) * gloss * 0.3


@functools.cache
def draw_star_pose(stance: Stance) -> np.ndarray:
    """Nova striking ``stance``: a superhero with a golden star for a head (draw_star_head), an indigo suit
    with a star on the chest and a gold belt, a red cape, white gloves and red boots, drawn on her own
    landmarks (pose_landmarks) at three times the size and reduced (smooth edges); BGRA, POSE_SIZE. Cached
    (draw_star crops three of them): callers must not write into the picture."""
    width, height = POSE_SIZE
    big = 3
    unit = big * UNIT
    points = pose_landmarks(stance) * (width * big, height * big)
    canvas_shape = (height * big, width * big)

    def blank() -> np.ndarray:
        return np.zeros(canvas_shape, np.uint8)

    def limb(joints: Sequence[int], radii: Sequence[float]) -> np.ndarray:
        mask = blank()
        for k in range(len(joints) - 1):
            _capsule(mask, points[joints[k]], points[joints[k + 1]], radii[k] * unit, radii[k + 1] * unit)
        return mask

    shoulders, hips = (points[11] + points[12]) / 2, (points[23] + points[24]) / 2
    head = points[0] - np.array(FACE[0]) * HEAD_RADIUS * unit      # the star's centre
    down = (hips - shoulders) / np.hypot(*(hips - shoulders))
    across = np.array([down[1], -down[0]])                          # towards the picture's right

    cape = blank()
    hem = [hips + down * 2.1 * unit + across * x * unit + (0.0, 0.12 * unit * math.sin(x * 5.0)) for x in
           np.linspace(1.35, -1.35, 9)]
    outline = [shoulders + across * 0.62 * unit - down * 0.1 * unit, *hem, shoulders - across * 0.62 * unit - down * 0.1 * unit]
    cv2.fillPoly(cape, [np.round(np.array(outline)).astype(np.int32)], 255, cv2.LINE_AA)

    torso = blank()
    chest = [points[11] + across * 0.22 * unit, points[12] - across * 0.22 * unit,
             points[24] - across * 0.12 * unit, points[23] + across * 0.12 * unit]
    cv2.fillConvexPoly(torso, np.round(np.array(chest)).astype(np.int32), 255, cv2.LINE_AA)
    for joint in (11, 12):
        cv2.circle(torso, (round(points[joint][0]), round(points[joint][1])), round(0.3 * unit), 255, -1, cv2.LINE_AA)
    _capsule(torso, shoulders, head + (0.0, 0.45 * HEAD_RADIUS * unit), 0.26 * unit, 0.22 * unit)

    belt = blank()
    _capsule(belt, points[24] - across * 0.1 * unit - down * 0.12 * unit,
             points[23] + across * 0.1 * unit - down * 0.12 * unit, 0.15 * unit, 0.15 * unit)
    belt &= torso
    emblem = blank()
    chest_star = [shoulders + down * 0.8 * unit + (math.cos(math.radians(-90 + 36 * k)) * r * unit,
                                                     math.sin(math.radians(-90 + 36 * k)) * r * unit)
                     for k, r in ((k, 0.42 if k % 2 == 0 else 0.18) for k in range(10))]
    cv2.fillPoly(emblem, [np.round(np.array(chest_star)).astype(np.int32)], 255, cv2.LINE_AA)

    legs = [limb((23, 25, 27), (0.34, 0.25, 0.2)), limb((24, 26, 28), (0.34, 0.25, 0.2))]
    boots = []
    for knee, ankle, toe in ((25, 27, 31), (26, 28, 32)):
        shin_low = points[ankle] + (points[knee] - points[ankle]) * 0.35
        mask = blank()
        _capsule(mask, shin_low, points[ankle], 0.25 * unit, 0.23 * unit)
        _capsule(mask, points[ankle], points[toe], 0.22 * unit, 0.17 * unit)
        boots.append(mask)
    arms = [limb((11, 13, 15), (0.25, 0.2, 0.17)), limb((12, 14, 16), (0.25, 0.2, 0.17))]
    gloves, cuffs = blank(), blank()
    for wrist, index, thumb in ((15, 19, 21), (16, 20, 22)):
        palm = (points[wrist] * 0.4 + points[index] * 0.6)
        cv2.circle(gloves, (round(palm[0]), round(palm[1])), round(0.27 * unit), 255, -1, cv2.LINE_AA)
        _capsule(gloves, points[wrist], points[thumb], 0.12 * unit, 0.1 * unit)
        toward = (points[wrist] - points[wrist - 2]) / max(np.hypot(*(points[wrist] - points[wrist - 2])), 1e-6)
        _capsule(cuffs, points[wrist] - toward * 0.12 * unit, points[wrist] + toward * 0.02 * unit, 0.21 * unit, 0.21 * unit)

    ink, indigo, sleeve = (0.1, 0.06, 0.2), (0.2, 0.2, 0.62), (0.24, 0.25, 0.7)
    gold, white, red, cape_red = (1.0, 0.76, 0.16), (0.98, 0.98, 1.0), (0.88, 0.14, 0.22), (0.62, 0.05, 0.16)
    depth = 0.22 * unit
    layers = [(cape, cape_red), *((leg, indigo) for leg in legs), *((boot, red) for boot in boots), (torso, indigo),
              (belt, gold), (emblem, gold), *((arm, sleeve) for arm in arms), (cuffs, gold), (gloves, white)]
    canvas = np.zeros((*canvas_shape, 4), np.float32)
    rim = np.ones((round(0.1 * unit),) * 2, np.uint8)
    silhouette = np.max([mask for mask, _ in layers], axis=0).astype(np.float32)
    shadow = np.roll(_soften(silhouette, 0.06 * unit), (round(0.02 * unit), round(0.06 * unit)), (0, 1))
    _over(canvas, shadow, (0.0, 0.0, 0.0), opacity=0.3)
    pad = round(0.1 * unit) + 2
    for mask, colour in layers:
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0:
            continue
        window = (slice(max(0, y - pad), y + h + pad), slice(max(0, x - pad), x + w + pad))
        part, region = mask[window], canvas[window]
        _over(region, cv2.dilate(part, rim), ink)
        _over(region, part, _shade(part, colour, depth))
    side = round(HEAD_RADIUS * unit / STAR_OUTER)
    top_left = (round(head[0] - STAR_CENTRE[0] * side), round(head[1] - STAR_CENTRE[1] * side))
    _paste(canvas, draw_star_head(stance.mood, side), top_left)
    return _bgra8(canvas, POSE_SIZE)


def draw_star(mood: str = "neutral") -> np.ndarray:
    """The rock–paper–scissors star: Nova in her ``mood``'s stance (MOODS), BGRA, cropped to the box that
    holds all three moods with MARGIN pixels around, so her feet stand on the picture's bottom edge (the
    scene's name label sits right under her) and the three pictures swap in place at one scale."""
    drawn = {name: draw_star_pose(stance) for name, stance in MOODS.items()}
    union = np.max([picture[..., 3] for picture in drawn.values()], axis=0)
    rows, columns = np.nonzero(union.any(axis=1))[0], np.nonzero(union.any(axis=0))[0]
    top, bottom = max(0, rows[0] - MARGIN), min(union.shape[0], rows[-1] + 1 + MARGIN)
    left, right = max(0, columns[0] - MARGIN), min(union.shape[1], columns[-1] + 1 + MARGIN)
    return np.ascontiguousarray(drawn[mood][top:bottom, left:right])


#: The transparent margin around the RPS star's pictures, in pixels.
MARGIN = 4
