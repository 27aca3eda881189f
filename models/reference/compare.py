"""Side-by-side speed of the appliance and the reference on the same video, in alternating rounds.

This machine is shared and noisy, so absolute milliseconds drift between runs;
running both implementations in turn, several times, and comparing their ratio
is what says how much faster than the reference the appliance is.  Each round
runs the reference's landscape selfie segmentation (``selfie_reference.py``),
the reference's hands in tracking mode (``hands_reference.py``, through
``compare_hands.reference``) and one ``python -m appliance bench --json``; the
order flips every round (reference first in odd rounds, appliance first in even
ones) so a drift in the machine's load does not favour one side.

Per round: segmentation p50 (ours / the reference's), hands p50 (ours / the
reference's, the reference's over the video's frames 10.. as ``make eval-hands``
takes them; ``--frames 185`` makes bench time the same frames 10–194 of the
devset's 195-frame kiosk video after its 10 warm-up frames) and the sum of our
segmentation, hands, composite and present p50s (bench's ``--compositor cpu``).  The
verdict per target uses the median over rounds: segmentation ratio at most
``SEGMENTATION_TARGET``, hands ratio at most ``HANDS_TARGET``, the sum at most
``FRAME_BUDGET_MS``.  Run with ``make bench-compare``; ``--json`` prints one JSON
summary instead of the table; ``--config`` runs the appliance under a TOML
configuration (e.g. a board's per-model [inference] threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from compare_hands import reference as reference_hands

#: Issue 16's targets: our p50 over the reference's, and our frame path's p50 sum (ms).
SEGMENTATION_TARGET = 0.6
HANDS_TARGET = 0.3
FRAME_BUDGET_MS = 13.0
#: The compositor the frame budget is measured with (bench --compositor).
COMPOSITOR = "cpu"
#: Our stages whose p50s make the frame path's sum.
FRAME_STAGES = ("segmentation", "hands", "composite", "present")
#: Frames the reference's hand timings skip (warm-up), as ``compare_hands`` does.
REFERENCE_WARMUP = 10


def _json_of(command: list[str]) -> dict:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def reference_round(video: Path, python: str, frames: int) -> dict:
    """The reference's segmentation and hands p50 (ms) on ``video``."""
    selfie = _json_of([python, str(Path(__file__).with_name("selfie_reference.py")), str(video),
                       "--frames", str(frames)])
    _, hand_ms = reference_hands(str(video), 1.0, python)
    return {"segmentation": selfie["p50"], "hands": round(statistics.median(hand_ms[REFERENCE_WARMUP:] or hand_ms), 3)}


def our_round(video: Path, frames: int, config: Path | None = None) -> dict:
    """Our p50 (ms) of each stage of the frame path, from one ``appliance bench --json`` with the CPU
    compositor (the budget's own terms, whatever the config's [display] would pick), under ``config`` when
    given (e.g. a board's [inference] threads)."""
    report = _json_of([sys.executable, "-m", "appliance", "bench", str(video), "--frames", str(frames),
                       "--compositor", COMPOSITOR, "--json", *(["--config", str(config)] if config else [])])
    stages = report["stages"]
    missing = [stage for stage in FRAME_STAGES if stage not in stages]
    if missing:
        raise SystemExit(f"error: bench reported no {', '.join(missing)} stage (it has {', '.join(stages)})")
    if report.get("compositor") != COMPOSITOR:
        raise SystemExit(f"error: bench ran compositor {report.get('compositor')!r}, not {COMPOSITOR!r}")
    return {stage: stages[stage]["p50"] for stage in FRAME_STAGES}


def one_round(number: int, video: Path, python: str, frames: int, config: Path | None = None) -> dict:
    """Both sides once, the reference first in odd rounds; their p50s, ratios and our frame path's sum."""
    if number % 2:
        theirs = reference_round(video, python, frames)
        ours = our_round(video, frames, config)
    else:
        ours = our_round(video, frames, config)
        theirs = reference_round(video, python, frames)
    return {
        "round": number,
        "first": "reference" if number % 2 else "appliance",
        "reference": theirs,
        "appliance": ours,
        "segmentation_ratio": round(ours["segmentation"] / theirs["segmentation"], 3),
        "hands_ratio": round(ours["hands"] / theirs["hands"], 3),
        "frame_ms": round(sum(ours.values()), 3),
    }


def summary(rounds: list[dict]) -> dict:
    """Medians over rounds and the verdict per target."""
    def median(pick) -> float:
        return round(statistics.median(pick(r) for r in rounds), 3)

    medians = {
        "reference": {key: median(lambda r, k=key: r["reference"][k]) for key in ("segmentation", "hands")},
        "appliance": {stage: median(lambda r, s=stage: r["appliance"][s]) for stage in FRAME_STAGES},
        "segmentation_ratio": median(lambda r: r["segmentation_ratio"]),
        "hands_ratio": median(lambda r: r["hands_ratio"]),
        "frame_ms": median(lambda r: r["frame_ms"]),
    }
    targets = {
        "segmentation_ratio": SEGMENTATION_TARGET,
        "hands_ratio": HANDS_TARGET,
        "frame_ms": FRAME_BUDGET_MS,
    }
    verdicts = {name: {"median": medians[name], "target": target, "met": medians[name] <= target}
                for name, target in targets.items()}
    return {"rounds": rounds, "median": medians, "targets": verdicts}


def table(result: dict) -> str:
    header = (f"{'round':<7}{'first':<11}{'seg ref':>9}{'seg ours':>10}{'ratio':>7}"
              f"{'hands ref':>11}{'hands ours':>12}{'ratio':>7}{'composite':>11}{'present':>9}{'sum':>8}")
    lines = ["p50 ms/frame; ratio = ours / reference; sum = our segmentation + hands + composite + present "
             f"({COMPOSITOR} compositor; config: {result['config'] or 'defaults'})", header]

    def row(label: str, first: str, theirs: dict, ours: dict, seg_ratio: float, hands_ratio: float,
            frame_ms: float) -> str:
        return (f"{label:<7}{first:<11}{theirs['segmentation']:>9.2f}{ours['segmentation']:>10.2f}"
                f"{seg_ratio:>7.2f}{theirs['hands']:>11.2f}{ours['hands']:>12.2f}{hands_ratio:>7.2f}"
                f"{ours['composite']:>11.2f}{ours['present']:>9.2f}{frame_ms:>8.2f}")

    for r in result["rounds"]:
        lines.append(row(str(r["round"]), r["first"], r["reference"], r["appliance"], r["segmentation_ratio"],
                         r["hands_ratio"], r["frame_ms"]))
    m = result["median"]
    lines.append(row("median", "", m["reference"], m["appliance"], m["segmentation_ratio"], m["hands_ratio"],
                     m["frame_ms"]))
    names = {"segmentation_ratio": ("segmentation ours/reference", ""),
             "hands_ratio": ("hands ours/reference", ""),
             "frame_ms": ("segmentation+hands+composite+present", " ms")}
    for key, verdict in result["targets"].items():
        label, unit = names[key]
        lines.append(f"{label}: {verdict['median']:.2f}{unit} (target <= {verdict['target']:g}{unit}): "
                     f"{'MET' if verdict['met'] else 'MISSED'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--reference-python", required=True, help="python of the venv with mediapipe")
    parser.add_argument("--frames", type=int, default=185)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--config", type=Path, help="the appliance's TOML configuration for its bench runs "
                        "(defaults apply without one)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary instead of the table")
    args = parser.parse_args()
    if args.frames < 1 or args.rounds < 1:
        raise SystemExit("error: --frames and --rounds must be at least 1")
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append(one_round(number, args.video, args.reference_python, args.frames, args.config))
        if not args.json:
            print(f"round {number} of {args.rounds} done", file=sys.stderr)
    result = {**summary(rounds), "config": str(args.config) if args.config else None}
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
