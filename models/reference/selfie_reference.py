"""Time the reference implementation's live selfie segmentation on a video (runs in .venv-ref).

MediaPipe 0.10.21's legacy ``SelfieSegmentation(model_selection=1)``: the same
landscape model the appliance runs, timed per frame the way the devset's
reference timings were taken (BGR→RGB conversion and the full-size float mask
included).  Prints one JSON object: {"p50": ms, "p95": ms, "frames": n}.
Development tooling only: the appliance never depends on mediapipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import mediapipe as mp
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, default=185)
    args = parser.parse_args()
    capture = cv2.VideoCapture(args.video)
    if not capture.isOpened():
        print(f"error: cannot open {args.video}", file=sys.stderr)
        return 1
    timings = []
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1) as segmentation:
        while len(timings) < args.frames:
            ok, frame = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            started = time.perf_counter()
            mask = segmentation.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).segmentation_mask
            np.asarray(mask)
            timings.append((time.perf_counter() - started) * 1000)
    warm = timings[10:] or timings
    print(json.dumps({"frames": len(warm), "p50": round(float(np.percentile(warm, 50)), 3),
                      "p95": round(float(np.percentile(warm, 95)), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
