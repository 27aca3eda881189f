"""Side-by-side speed of the appliance and the reference on the same video, in alternating rounds.

This machine is shared and noisy, so absolute milliseconds drift between runs;
running both implementations in turn, several times, and comparing their ratio
is what says "no slower than the reference".  Run with ``make bench-compare``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def _json_of(command: list[str]) -> dict:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--reference-python", required=True, help="python of the venv with mediapipe")
    parser.add_argument("--frames", type=int, default=185)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    ratios = []
    print(f"{'round':<7}{'reference p50':>15}{'appliance p50':>15}{'ratio':>8}   (selfie segmentation, ms/frame)")
    for round_number in range(1, args.rounds + 1):
        reference = _json_of([args.reference_python, str(here / "selfie_reference.py"), str(args.video),
                              "--frames", str(args.frames)])
        ours = _json_of([sys.executable, "-m", "appliance", "bench", str(args.video), "--frames",
                         str(args.frames), "--json"])["stages"]["segmentation"]
        ratio = ours["p50"] / reference["p50"]
        ratios.append(ratio)
        print(f"{round_number:<7}{reference['p50']:>15.2f}{ours['p50']:>15.2f}{ratio:>8.2f}")
    print(f"median ratio appliance/reference: {statistics.median(ratios):.2f} (below 1 = faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
