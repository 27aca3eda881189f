"""Hand detection recall of the appliance and the reference, side by side, at simulated distances.

The devset's kiosk video shows one hand in frames 28–194 and none in 0–22.  Both
implementations track it at full size and shrunk (``distance.at_distance``):
recall is the share of hand frames with a hand found, false alarms the hand-free
frames with one.  Run with ``make eval-hands``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from distance import frames

from appliance.inference.backend import Inference
from appliance.perception.hands_pipeline import LiveHands

HAND_FRAMES = slice(28, 195)
EMPTY_FRAMES = slice(0, 23)


def ours(video: str, scale: float) -> list[int]:
    hands = LiveHands(Inference())
    return [len(hands.update(frame).hands) for frame in frames(video, scale)]


def reference(video: str, scale: float, python: str) -> list[int]:
    script = Path(__file__).with_name("hands_reference.py")
    result = subprocess.run([python, str(script), video, "--scale", str(scale)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: the reference failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["hands_per_frame"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--reference-python", required=True)
    parser.add_argument("--scales", default="1.0,0.6,0.4,0.3")
    args = parser.parse_args()
    print(f"{'scale':<7}{'reference recall':>18}{'appliance recall':>18}{'ref false':>11}{'our false':>11}")
    for scale in (float(s) for s in args.scales.split(",")):
        theirs = np.array(reference(args.video, scale, args.reference_python)) > 0
        mine = np.array(ours(args.video, scale)) > 0
        print(f"{scale:<7}{theirs[HAND_FRAMES].mean():>18.3f}{mine[HAND_FRAMES].mean():>18.3f}"
              f"{int(theirs[EMPTY_FRAMES].sum()):>11}{int(mine[EMPTY_FRAMES].sum()):>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
