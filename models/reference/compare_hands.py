"""Hand detection recall of the appliance and the reference, side by side, at simulated distances.

The devset's kiosk video shows one hand in frames 28–194 and none in 0–22.  Both
implementations track it at full size and shrunk (``distance.at_distance``):
recall is the share of hand frames with a hand found, false alarms the hand-free
frames with one.  The per-frame cost of each (p50, ms; the reference's
conversions included, ours the ``hands`` stage) is printed beside it, and the
gestures the appliance held.  ``--profile cpu-board`` runs the appliance on an
RK3399's schedule (perception/profile.py).  Run with ``make eval-hands
[PROFILE=cpu-board]``.
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
from appliance.perception.pipeline import Perceiver
from appliance.perception.profile import CHOICES, Profile, choose
from appliance.sources.base import Frame

HAND_FRAMES = slice(28, 195)
EMPTY_FRAMES = slice(0, 23)


def ours(video: str, scale: float, profile: Profile) -> tuple[list[int], list[float], set[str]]:
    """Hands found per frame, the hands stage's ms per frame and the gestures held, under ``profile``."""
    perceiver = Perceiver(Inference(), profile=profile)
    counts, timings, held = [], [], set()
    try:
        for index, image in enumerate(frames(video, scale)):
            perception = perceiver.process(Frame(image, index, index / 25.0))
            counts.append(len(perception.gestures.hands))
            timings.append(perception.timings_ms["hands"])
            held.update(hand.held for hand in perception.gestures.hands if hand.held)
    finally:
        perceiver.close()
    return counts, timings, held


def reference(video: str, scale: float, python: str) -> tuple[list[int], list[float]]:
    script = Path(__file__).with_name("hands_reference.py")
    result = subprocess.run([python, str(script), video, "--scale", str(scale)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: the reference failed: {result.stderr.strip().splitlines()[-1:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["hands_per_frame"], report["ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--reference-python", required=True)
    parser.add_argument("--scales", default="1.0,0.6,0.4,0.3")
    parser.add_argument("--profile", default="full", choices=CHOICES[1:],
                        help="the appliance's perception profile (cpu-board: an RK3399's schedule)")
    args = parser.parse_args()
    profile = choose(args.profile, None)
    print(f"profile {profile.describe()}")
    print(f"{'scale':<7}{'reference recall':>18}{'appliance recall':>18}{'ref false':>11}{'our false':>11}"
          f"{'ref ms p50':>12}{'our ms p50':>12}  our gestures held")
    for scale in (float(s) for s in args.scales.split(",")):
        their_counts, their_ms = reference(args.video, scale, args.reference_python)
        our_counts, our_ms, held = ours(args.video, scale, profile)
        theirs, mine = np.array(their_counts) > 0, np.array(our_counts) > 0
        print(f"{scale:<7}{theirs[HAND_FRAMES].mean():>18.3f}{mine[HAND_FRAMES].mean():>18.3f}"
              f"{int(theirs[EMPTY_FRAMES].sum()):>11}{int(mine[EMPTY_FRAMES].sum()):>11}"
              f"{np.median(their_ms[10:]):>12.2f}{np.median(our_ms[10:]):>12.2f}  {', '.join(sorted(held))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
