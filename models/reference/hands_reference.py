"""Hands of the reference implementation on a video, per frame (runs in .venv-ref).

MediaPipe 0.10.21's legacy ``Hands`` in tracking mode (max 2 hands, model
complexity 1), the configuration of the devset's reference outputs, on the
video shrunk by ``--scale`` (a shopper further away).  Prints one JSON object:
{"hands_per_frame": [n, ...], "ms": [per-frame ms, ...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import mediapipe as mp
from distance import frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    counts, timings = [], []
    with mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=2, model_complexity=1) as hands:
        for frame in frames(args.video, args.scale):
            started = time.perf_counter()
            result = hands.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            timings.append((time.perf_counter() - started) * 1000)
            counts.append(len(result.multi_hand_landmarks or []))
    print(json.dumps({"hands_per_frame": counts, "ms": timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
