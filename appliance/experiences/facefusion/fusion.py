"""Face fusion: the shopper's inner face warped onto a template portrait's face, triangle by triangle, its colour
and light made the template's, blended in without a seam; the template's hair, ears, neck and clothes kept.

Pure functions of images and face meshes (468 points, MediaPipe's topology, in the image's pixels); no model runs
here (the meshes come from perception), so it runs off the loop in a job.

Invariants:

- Triangles: a Delaunay triangulation (``cv2.Subdiv2D``) of the template's own mesh points, made once per template
  (``prepare``), triangles kept when their centre lies inside the face oval.  The same index triples are then
  laid on the shopper's mesh.  (The wheel ships the mesh's tesselation as 2556 edges, not triangles; a Delaunay
  of the template fits its geometry and needs no extra file.)
- The warp is one remap: every template pixel inside the oval takes the inverse affine map of its triangle to
  the shopper's image.  A triangle whose shopper-side twin is folded (its orientation flipped) or degenerate
  (area under ``DEGENERATE`` of its template area, scaled: a sliver stretched four times or more) takes the
  whole face's similarity map instead, so no pixel is left unmapped (no black spots).
- The mouth: when the shopper's inner-lip opening (``INNER_LIPS``, its area over the face's width squared) is
  under ``MOUTH_SHUT`` of the template's, the template keeps its own mouth opening (its teeth, its dark):
  the blend's weight is cut out of the template's inner-lip polygon, feathered, grown by ``MOUTH_GROW``.
  Otherwise a closed mouth's lip line would be stretched across an open poster mouth, a striped smear.
- Only the inner face changes: the blend's weight is the face oval (its forehead cut halfway down to the brows,
  ``FOREHEAD_CUT``, so fringes stay out) eroded by three feather widths, then feathered, so beyond the oval the
  output is the template itself, bit for bit.
- Colour and light: inside the face the warped face's Lab mean and spread become the template's (Reinhard's
  transfer, the photo booth's), then its lightness is scaled by the template's broad shading (a wide blur of
  both lightnesses), bounded.
- A face is refused (``refusal``) when turned more than ``MAX_YAW`` (the mesh's yaw, from its depth), tilted
  more than ``MAX_ROLL`` or nodded out of ``PITCH_RANGE``, smaller than ``MIN_FACE_PX`` across, or cut by
  the image's edge: ``fuse`` raises ``FaceRefused`` with the screen's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.experience.api import Face, lab_statistics, transfer

#: The mesh's face outline, in order round the face (MediaPipe's FACEMESH_FACE_OVAL as a polygon).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_CHEEK, LEFT_CHEEK, FOREHEAD, CHIN = 234, 454, 10, 152   # the subject's right cheek is the image's left
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
RIGHT_BROW_TOP, LEFT_BROW_TOP = 105, 334
#: The inner lips' outline, in order round the mouth's opening (MediaPipe's inner-lip indices).
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
#: A shopper's mouth opening under this share of the template's (both over their face's width squared) counts
#: as shut: the template keeps its own mouth opening.
MOUTH_SHUT = 0.5
#: The template's kept mouth opening is grown by this share of the face's width (over the inner lips' edge,
#: where the mesh's line and the picture's may differ by a pixel or two).
MOUTH_GROW = 0.01
#: The blend's outline over the forehead is pulled down toward the brows by this share of its height above them,
#: so a fringe of the shopper's hair stays out and the template's hairline stays in.
FOREHEAD_CUT = 0.5
#: The turn refused: the mesh's yaw (from its depth across the cheeks).  The face mesh flattens turned faces
#: toward frontal: the devset's pose_sitting.jpg, turned about 55° by eye, reads 33°; so 30° here is about 45°.
MAX_YAW = 30.0
MAX_ROLL = 30.0
#: The forehead-to-chin line's lean in the mesh's depth: frontal faces read 11..18°; beyond this range the
#: shopper looks far up or down.
PITCH_RANGE = (-15.0, 40.0)
#: The narrowest face fused (cheek to cheek, pixels of the still): below it the template's face would be a
#: blown-up blur.
MIN_FACE_PX = 80.0
#: Oval points this close to the image's edge (pixels) count as cut off.
EDGE_PX = 2.0
#: A shopper triangle under this share of its template twin's area is degenerate.
DEGENERATE = 0.25
#: The blend's feather (Gaussian sigma) as a share of the template face's width.
FEATHER = 0.02
#: The lighting's blur (sigma) as a share of the face's width, and the bounds of the gain it gives.
LIGHT_BLUR, LIGHT_GAIN = 0.2, (0.7, 1.4)


class FaceRefused(ApplianceError):
    """The face cannot be fused (turned, too small, cut off); ``line`` is what the screen says."""

    def __init__(self, reason: str, line: str) -> None:
        super().__init__(reason)
        self.line = line


@dataclass(frozen=True)
class Pose:
    """A face mesh's turn (yaw), nod (pitch) and tilt (roll), degrees."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class TemplateFace:
    """The template portrait (BGR) with its face: mesh points (468, 2), the oval's triangles (n, 3)."""

    image: np.ndarray
    points: np.ndarray
    triangles: np.ndarray

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.points[LEFT_CHEEK] - self.points[RIGHT_CHEEK]))


@dataclass(frozen=True)
class Fused:
    """The fused picture, the blend's weight (float 0..1 at the template's size), the shopper's face warped onto
    the template's (before colour), how many triangles took the whole face's map (folded or degenerate), and
    whether the template kept its own mouth opening (the shopper's mouth shut, see the module's invariants)."""

    image: np.ndarray
    weight: np.ndarray
    warped: np.ndarray
    folded: int
    kept_mouth: bool


def pose(landmarks: np.ndarray) -> Pose:
    """The mesh's yaw from its depth across the cheeks, pitch from the depth along forehead to chin, roll from the
    eyes' line; z is on x's scale (the mesh's convention), so the angles are the mesh's own."""
    mesh = landmarks.astype(np.float64)
    right, left = mesh[RIGHT_CHEEK], mesh[LEFT_CHEEK]
    top, bottom = mesh[FOREHEAD], mesh[CHIN]
    eye_r, eye_l = mesh[RIGHT_EYE_OUTER], mesh[LEFT_EYE_OUTER]
    return Pose(float(np.degrees(np.arctan2(left[2] - right[2], left[0] - right[0]))),
                float(np.degrees(np.arctan2(bottom[2] - top[2], bottom[1] - top[1]))),
                float(np.degrees(np.arctan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0]))))


def refusal(landmarks: np.ndarray, size: tuple[int, int]) -> FaceRefused | None:
    """Why this face (a mesh in an image of ``size`` (w, h)) cannot be fused, or None when it can."""
    turn = pose(landmarks)
    if abs(turn.yaw) > MAX_YAW or abs(turn.roll) > MAX_ROLL or not PITCH_RANGE[0] <= turn.pitch <= PITCH_RANGE[1]:
        return FaceRefused(f"the face is turned (yaw {turn.yaw:.0f}°, pitch {turn.pitch:.0f}°, roll {turn.roll:.0f}°; "
                           f"at most {MAX_YAW:.0f}° of yaw and {MAX_ROLL:.0f}° of roll)", "Look at the screen")
    points = landmarks[:, :2]
    width = float(np.linalg.norm(points[LEFT_CHEEK] - points[RIGHT_CHEEK]))
    if width < MIN_FACE_PX:
        return FaceRefused(f"the face is {width:.0f} px across (at least {MIN_FACE_PX:.0f})", "Come a little closer")
    oval = points[list(FACE_OVAL)]
    if (oval.min() < EDGE_PX or oval[:, 0].max() > size[0] - 1 - EDGE_PX
            or oval[:, 1].max() > size[1] - 1 - EDGE_PX):
        return FaceRefused("the face is cut by the picture's edge", "Step into the middle")
    return None


def prepare(image: np.ndarray, landmarks: np.ndarray) -> TemplateFace:
    """The template and its face, triangulated once (see the module's invariants)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ApplianceError(f"a fusion template is BGR uint8 HxWx3, got {image.dtype} {image.shape}")
    points = landmarks[:, :2].astype(np.float32)
    height, width = image.shape[:2]
    low = np.floor(points.min(axis=0)) - 2
    high = np.ceil(points.max(axis=0)) + 2
    subdiv = cv2.Subdiv2D((int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1))
    for point in points:
        subdiv.insert((float(point[0]), float(point[1])))
    corners = subdiv.getTriangleList().reshape(-1, 3, 2)
    distances = np.linalg.norm(corners[:, :, None, :] - points[None, None, :, :], axis=3)
    indices, gaps = distances.argmin(axis=2), distances.min(axis=2)
    oval = points[list(FACE_OVAL)].reshape(-1, 1, 2)
    keep = []
    for triangle, gap in zip(indices, gaps, strict=True):
        if gap.max() > 0.5 or len(set(triangle.tolist())) < 3:   # a corner of the outer bounding triangle
            continue
        centre = points[triangle].mean(axis=0)
        if cv2.pointPolygonTest(oval, (float(centre[0]), float(centre[1])), False) >= 0:
            keep.append(triangle)
    if not keep or not (0 <= low[0] and 0 <= low[1] and high[0] <= width + 2 and high[1] <= height + 2):
        raise ApplianceError("the template's face is not wholly inside the template")
    return TemplateFace(image, points, np.array(keep, np.int32))


def template_face(image: np.ndarray, faces: Sequence[Face], name: str) -> TemplateFace:
    """The template ``name`` (its pixels and the faces the still face stage found in it, largest first) prepared;
    an ApplianceError naming it when it has no face, or one that cannot be fused onto."""
    if not faces:
        raise ApplianceError(f"fusion template {name}: no face found in it (a portrait facing the camera)")
    problem = refusal(faces[0].landmarks, (image.shape[1], image.shape[0]))
    if problem is not None:
        raise ApplianceError(f"fusion template {name}: its face cannot be fused onto ({problem})")
    return prepare(image, faces[0].landmarks)


def _signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, k]].astype(np.float64) for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _crop(template: TemplateFace) -> tuple[int, int, int, int]:
    """The template's region fused: the oval's bounds and a feather's margin, inside the image."""
    oval = template.points[list(FACE_OVAL)]
    margin = 4 * FEATHER * template.width + 2
    height, width = template.image.shape[:2]
    x0, y0 = (max(0, int(np.floor(v - margin))) for v in oval.min(axis=0))
    x1 = min(width, int(np.ceil(oval[:, 0].max() + margin)) + 1)
    y1 = min(height, int(np.ceil(oval[:, 1].max() + margin)) + 1)
    return x0, y0, x1, y1


def warp(template: TemplateFace, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, int]:
    """The shopper's face (``image`` with its mesh) drawn on the template's face region (x0, y0, x1, y1 of
    ``_crop``), and how many triangles took the whole face's map."""
    x0, y0, x1, y1 = _crop(template)
    source = landmarks[:, :2].astype(np.float32)
    target = template.points - np.float32([x0, y0])
    triangles = template.triangles
    template_area, shopper_area = _signed_areas(target, triangles), _signed_areas(source, triangles)
    scale = float(np.linalg.norm(source[LEFT_CHEEK] - source[RIGHT_CHEEK])) / template.width
    folded = (np.sign(template_area) != np.sign(shopper_area)) | (
        np.abs(shopper_area) < DEGENERATE * np.abs(template_area) * scale * scale)
    oval = list(FACE_OVAL)
    whole, _ = cv2.estimateAffinePartial2D(target[oval], source[oval])
    if whole is None:
        raise ApplianceError("the shopper's face mesh is degenerate")
    maps = np.empty((len(triangles) + 1, 2, 3), np.float64)
    maps[-1] = whole
    labels = np.full((y1 - y0, x1 - x0), len(triangles), np.int32)
    for number, triangle in enumerate(triangles):
        if folded[number]:
            maps[number] = whole
            continue
        maps[number] = cv2.getAffineTransform(target[triangle], source[triangle])
        cv2.fillConvexPoly(labels, np.round(target[triangle]).astype(np.int32), number)
    ys, xs = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float64)
    chosen = maps[labels]
    map_x = (chosen[..., 0, 0] * xs + chosen[..., 0, 1] * ys + chosen[..., 0, 2]).astype(np.float32)
    map_y = (chosen[..., 1, 0] * xs + chosen[..., 1, 1] * ys + chosen[..., 1, 2]).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), int(folded.sum())


def _weight(template: TemplateFace, crop: tuple[int, int, int, int]) -> np.ndarray:
    """The blend's weight in the crop: the oval eroded by three feathers, feathered; zero beyond the oval."""
    x0, y0, x1, y1 = crop
    sigma = max(1.0, FEATHER * template.width)
    outline = template.points[list(FACE_OVAL)].copy()
    brows = min(template.points[RIGHT_BROW_TOP, 1], template.points[LEFT_BROW_TOP, 1])
    above = outline[:, 1] < brows
    outline[above, 1] = brows + (outline[above, 1] - brows) * (1 - FOREHEAD_CUT)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(outline - [x0, y0]).astype(np.int32)], 255)
    inset = int(np.ceil(3 * sigma))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1, 2 * inset + 1)))
    return cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), sigma)


def mouth_opening(points: np.ndarray) -> float:
    """The mesh's inner-lip opening: the polygon's area over the face's width (cheek to cheek) squared."""
    width = float(np.linalg.norm(points[LEFT_CHEEK, :2] - points[RIGHT_CHEEK, :2]))
    return abs(float(cv2.contourArea(points[list(INNER_LIPS), :2].astype(np.float32)))) / max(width, 1.0) ** 2


def _mouth(template: TemplateFace, crop: tuple[int, int, int, int]) -> np.ndarray:
    """The template's mouth opening in the crop (float 0..1): its inner-lip polygon grown and feathered."""
    x0, y0, x1, y1 = crop
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(template.points[list(INNER_LIPS)] - [x0, y0]).astype(np.int32)], 255)
    grow = max(1, round(MOUTH_GROW * template.width))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), max(1.0, FEATHER * template.width / 2))


def _blur_inside(channel: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """``channel``'s blur over ``inside`` only (normalised convolution: what lies outside does not bleed in)."""
    total = cv2.GaussianBlur(channel * inside, (0, 0), sigma)
    return total / np.maximum(cv2.GaussianBlur(inside, (0, 0), sigma), 1e-4)


def match_colour(face: np.ndarray, template: np.ndarray, inside: np.ndarray, width: float) -> np.ndarray:
    """``face`` (BGR uint8) given the Lab mean and spread of ``template`` over ``inside`` (weight 0..1, counted
    from one half: ``transfer``), then its lightness scaled by the template's broad shading; BGR uint8."""
    alpha = np.clip(inside * 255 + 0.5, 0, 255).astype(np.uint8)
    target = lab_statistics(template, alpha)
    if target is None:
        raise ApplianceError("the template's face has no pixels to take its colour from")
    face_lab = cv2.cvtColor(transfer(face, alpha, target, 1.0).astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
    template_lab = cv2.cvtColor(template.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
    sigma = max(1.0, LIGHT_BLUR * width)
    inside32 = (alpha >= 128).astype(np.float32)
    gain = _blur_inside(template_lab[..., 0], inside32, sigma) / np.maximum(
        _blur_inside(face_lab[..., 0], inside32, sigma), 1.0)
    face_lab[..., 0] = np.clip(face_lab[..., 0] * np.clip(gain, *LIGHT_GAIN), 0, 100)
    return np.clip(cv2.cvtColor(face_lab, cv2.COLOR_LAB2BGR) * 255 + 0.5, 0, 255).astype(np.uint8)


def fuse(template: TemplateFace, image: np.ndarray, landmarks: np.ndarray) -> Fused:
    """The shopper's face (``image``, BGR, with its 468-point mesh) fused into ``template``; ``FaceRefused`` when
    the face cannot be (see ``refusal``)."""
    refused = refusal(landmarks, (image.shape[1], image.shape[0]))
    if refused is not None:
        raise refused
    crop = _crop(template)
    x0, y0, x1, y1 = crop
    warped, folded = warp(template, image, landmarks)
    weight = _weight(template, crop)
    kept_mouth = mouth_opening(landmarks) < MOUTH_SHUT * mouth_opening(template.points)
    if kept_mouth:
        weight = weight * (1 - _mouth(template, crop))
    region = template.image[y0:y1, x0:x1]
    coloured = match_colour(warped, region, weight, template.width).astype(np.float32)
    alpha = weight[..., None]
    out = template.image.copy()
    out[y0:y1, x0:x1] = np.clip(region.astype(np.float32) * (1 - alpha) + coloured * alpha + 0.5, 0, 255
                                ).astype(np.uint8)
    full_weight = np.zeros(template.image.shape[:2], np.float32)
    full_weight[y0:y1, x0:x1] = weight
    full_warped = template.image.copy()
    full_warped[y0:y1, x0:x1] = warped
    return Fused(out, full_weight, full_warped, folded, kept_mouth)
