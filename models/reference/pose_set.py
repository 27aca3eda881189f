"""A labelled multi-person pose set, composed at run time from the devset stills and scikit-image's people.

Nothing here is committed but this script: it writes the images and their
``labels.toml`` (the format ``python -m appliance eval pose`` reads) into OUT.
The people come from the devset (``pose_sitting.jpg``, ``portrait_white_bg.png``,
``face_group.jpg``: two children filling the frame, one behind the other's
shoulder; frame 100 of the kiosk video) and scikit-image's public-domain
``astronaut`` and ``camera`` (the cameraman).  The compositions are the cases a
full-frame detector struggles with: people side by side and touching, sitting,
one filling the frame, four small at a distance, an upper body at webcam distance;
two images hold nobody (false poses).

Invariant: each labelled box is where that person's pixels were placed (the
person's hand-measured box in the source, moved and scaled with the source), so
a pose belongs to it when its mid-shoulder point falls inside.
Run: ``python models/reference/pose_set.py OUT --media ../shared/devset``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

CANVAS_GREY = 20
#: The person in each source, hand-measured: (x, y, w, h) in the source's pixels.
PERSON_BOXES = {
    "astronaut": (20, 10, 350, 502),
    "camera": (0, 60, 400, 452),
    "pose_sitting": (150, 10, 700, 600),
    "portrait": (30, 50, 880, 1308),
    "kiosk": (200, 20, 800, 700),
}
#: face_group.jpg: the boy on the left, the girl behind his shoulder on the right.
FACE_GROUP_BOXES = ((0, 0, 660, 853), (540, 0, 690, 853))
KIOSK_FRAME = 100


class Person:
    """A source image and the box of the one person in it."""

    def __init__(self, image: np.ndarray, box: tuple[float, float, float, float]) -> None:
        self.image, self.box = image, box

    def mirrored(self) -> Person:
        x, y, w, h = self.box
        return Person(np.ascontiguousarray(self.image[:, ::-1]), (self.image.shape[1] - x - w, y, w, h))

    def scaled(self, height: int) -> Person:
        factor = height / self.image.shape[0]
        image = cv2.resize(self.image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return Person(image, tuple(value * factor for value in self.box))


def sources(media: Path) -> dict[str, Person]:
    def read(name: str) -> np.ndarray:
        image = cv2.imread(str(media / name), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"error: cannot read {media / name} (point --media at the devset)")
        return image

    capture = cv2.VideoCapture(str(media / "kiosk_fist_thumbup_720p.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, KIOSK_FRAME)
    ok, kiosk = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"error: cannot read frame {KIOSK_FRAME} of the kiosk video in {media}")
    images = {"astronaut": cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR),
              "camera": cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR),
              "pose_sitting": read("pose_sitting.jpg"), "portrait": read("portrait_white_bg.png"), "kiosk": kiosk}
    return {name: Person(image, PERSON_BOXES[name]) for name, image in images.items()}


def side_by_side(people: list[Person], height: int) -> tuple[np.ndarray, list[tuple]]:
    """The people scaled to one height and placed left to right, touching."""
    scaled = [person.scaled(height) for person in people]
    image = np.hstack([person.image for person in scaled])
    boxes, left = [], 0
    for person in scaled:
        x, y, w, h = person.box
        boxes.append((x + left, y, w, h))
        left += person.image.shape[1]
    return image, boxes


def far_away(people: list[Person], size: tuple[int, int], height: int) -> tuple[np.ndarray, list[tuple]]:
    """The people small, standing in a row at the bottom of a dark canvas (a few metres from the camera)."""
    row, boxes = side_by_side(people, height)
    width, canvas_height = size
    canvas = np.full((canvas_height, width, 3), CANVAS_GREY, np.uint8)
    left, top = (width - row.shape[1]) // 2, canvas_height - row.shape[0]
    canvas[top:, left:left + row.shape[1]] = row
    return canvas, [(x + left, y + top, w, h) for x, y, w, h in boxes]


def filling_the_frame(person: Person, crop: tuple[int, int, int, int], size: int) -> tuple[np.ndarray, list[tuple]]:
    """Head and shoulders cropped and enlarged to ``size``: a shopper right in front of the screen."""
    x, y, w, h = crop
    image = cv2.resize(person.image[y:y + h, x:x + w], (size, size), interpolation=cv2.INTER_CUBIC)
    return image, [(0, 0, size, size)]


def compose(media: Path) -> dict[str, tuple[np.ndarray, list[tuple]]]:
    """Image name → (BGR image, the people's boxes)."""
    p = sources(media)
    face_group = cv2.imread(str(media / "face_group.jpg"), cv2.IMREAD_COLOR)
    return {
        "astronaut_pair.png": side_by_side([p["astronaut"], p["astronaut"].mirrored()], 512),
        "astronaut_cameraman.png": side_by_side([p["astronaut"], p["camera"]], 512),
        "sitting_pair.jpg": side_by_side([p["pose_sitting"], p["pose_sitting"].mirrored()], 480),
        "trio.png": side_by_side([p["portrait"], p["astronaut"].mirrored(), p["camera"]], 512),
        "kiosk_pair.jpg": side_by_side([p["kiosk"], p["kiosk"].mirrored()], 540),
        "far_four.png": far_away([p["astronaut"], p["camera"], p["pose_sitting"], p["portrait"]], (1280, 720), 220),
        "close_up.png": filling_the_frame(p["astronaut"], (70, 20, 300, 300), 720),
        "face_group.jpg": (face_group, list(FACE_GROUP_BOXES)),
        "sitting.jpg": side_by_side([p["pose_sitting"]], 640),
        "portrait.png": side_by_side([p["portrait"]], 1024),
        "nobody_coffee.png": (cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), []),
        "nobody_cat.png": (cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), []),
    }


def labels_toml(composed: dict[str, tuple[np.ndarray, list[tuple]]]) -> str:
    lines = ["# People per image (eval pose): people = how many; boxes = [x, y, w, h] around each, in pixels.", ""]
    for name, (_, boxes) in composed.items():
        lines.append(f'[images."{name}"]')
        lines.append(f"people = {len(boxes)}")
        if boxes:
            lines.append("boxes = [" + ", ".join("[" + ", ".join(f"{value:.0f}" for value in box) + "]"
                                                 for box in boxes) + "]")
        lines.append("")
    return "\n".join(lines)


def build(out: Path, media: Path) -> Path:
    """Write the images and ``labels.toml`` into ``out``; returns the labels file."""
    out.mkdir(parents=True, exist_ok=True)
    composed = compose(media)
    for name, (image, _) in composed.items():
        if not cv2.imwrite(str(out / name), image):
            raise SystemExit(f"error: cannot write {out / name}")
    labels = out / "labels.toml"
    labels.write_text(labels_toml(composed))
    return labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--media", type=Path, default=Path("../shared/devset"))
    args = parser.parse_args()
    labels = build(args.out, args.media)
    print(f"{labels}: {len(compose(args.media))} labelled images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
