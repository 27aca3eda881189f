"""`make check-arm64`'s Python half: the arm64 root's Debian packages, and the emulated `analyze` against the native one.

``include`` prints the packages the arm64 root is bootstrapped with (``mmdebstrap --include``): ``python3`` and
every package the .deb takes from Debian (``requirements/debian.txt``, the same list as its Depends), so the
.deb installs in that root with no download.

``compare NATIVE ARM64`` reads two `analyze` outputs (JSON Lines, one object per image, in the same order) and
requires the same results: the same images (by file name) and sizes, person coverage within
COVERAGE_TOLERANCE, the same number of hands with the same handedness and gesture, the same number of poses
and faces, and every hand, pose and face box within BOX_TOLERANCE_PX on each coordinate.  Scores and
landmarks are not compared (the boxes are made from the landmarks).  Each difference is one line naming the
image and the field; the exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePath

from appliance.errors import ApplianceError, command_line
from appliance.tools.package import debian_depends

#: Largest difference allowed on each box coordinate, in input pixels.
BOX_TOLERANCE_PX = 1.0
#: Largest difference allowed on the person coverage (the fraction of pixels whose mask is >= 128).
COVERAGE_TOLERANCE = 0.002
#: The lists of detections whose boxes are compared, each entry a {"box": [...]} object.
DETECTIONS = ("hands", "poses", "faces")


def root_packages() -> list[str]:
    """``python3`` and the Debian packages of the .deb's Depends, in requirements/debian.txt's order."""
    return ["python3", *(depend.split(" ", 1)[0] for depend in debian_depends())]


def read_results(path: Path) -> list[dict]:
    """The JSON objects of an `analyze` output, one per non-empty line; a line that is not an object is refused."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ApplianceError(f"cannot read the analyze output {path} ({exc})") from exc
    results = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ApplianceError(f"{path}:{number}: not JSON ({exc}): {line[:100]}") from exc
        if not isinstance(record, dict):
            raise ApplianceError(f"{path}:{number}: not a JSON object: {line[:100]}")
        results.append(record)
    if not results:
        raise ApplianceError(f"{path} holds no analyze result")
    return results


def _box_differences(where: str, native: list[float], arm64: list[float]) -> list[str]:
    if len(native) != len(arm64):
        return [f"{where}: {len(native)} coordinates natively, {len(arm64)} on arm64"]
    gap = max(abs(a - b) for a, b in zip(native, arm64, strict=True))
    if gap > BOX_TOLERANCE_PX:
        return [f"{where} differs by {gap:.2f} px (> {BOX_TOLERANCE_PX:g} px): native {native}, arm64 {arm64}"]
    return []


def image_differences(native: dict, arm64: dict) -> list[str]:
    """What differs between one image's native and arm64 results, one line each naming the image and the field."""
    name = PurePath(native.get("path", "?")).name
    if PurePath(arm64.get("path", "?")).name != name:
        return [f"{name}: the arm64 result is for {arm64.get('path')!r}, another image"]
    errors = [f"{name}: {side} could not analyse it: {record['error']}"
              for side, record in (("native", native), ("arm64", arm64)) if "error" in record]
    if errors:
        return errors
    if native["size"] != arm64["size"]:
        return [f"{name}: size {native['size']} natively, {arm64['size']} on arm64"]
    lines = []
    coverage = native["person"]["coverage"], arm64["person"]["coverage"]
    if abs(coverage[0] - coverage[1]) > COVERAGE_TOLERANCE:
        lines.append(f"{name}: person.coverage {coverage[0]} natively, {coverage[1]} on arm64 "
                     f"(> {COVERAGE_TOLERANCE:g} apart)")
    for field in DETECTIONS:
        found = native[field], arm64[field]
        if len(found[0]) != len(found[1]):
            lines.append(f"{name}: {len(found[0])} {field} natively, {len(found[1])} on arm64")
            continue
        for index, (ours, theirs) in enumerate(zip(*found, strict=True)):
            where = f"{name}: {field}[{index}]"
            if field == "hands":
                lines += [f"{where}.{key} {ours[key]!r} natively, {theirs[key]!r} on arm64"
                          for key in ("handedness", "gesture") if ours[key] != theirs[key]]
            lines += _box_differences(f"{where}.box", ours["box"], theirs["box"])
    return lines


def differences(native: list[dict], arm64: list[dict]) -> list[str]:
    """Every difference between two analyze outputs of the same images in the same order."""
    if len(native) != len(arm64):
        return [f"{len(native)} results natively, {len(arm64)} on arm64 (the same images must be analysed)"]
    return [line for pair in zip(native, arm64, strict=True) for line in image_differences(*pair)]


def summary(native: dict, arm64: dict) -> str:
    """One row of the comparison table: coverage, hands and gestures on both sides, the largest box gap."""
    if "error" in native or "error" in arm64:
        return f"{PurePath(native.get('path', '?')).name:<24} error"
    gaps = [abs(a - b) for field in DETECTIONS for ours, theirs in zip(native[field], arm64[field], strict=False)
            for a, b in zip(ours["box"], theirs["box"], strict=False)]
    def gestures(record: dict) -> str:
        return ",".join(hand["gesture"] for hand in record["hands"]) or "-"
    return (f"{PurePath(native['path']).name:<24} {native['person']['coverage']:>8.4f} {arm64['person']['coverage']:>8.4f}"
            f" {gestures(native):>14} {gestures(arm64):>14} {len(native['poses']):>3}/{len(arm64['poses']):<3}"
            f" {len(native['faces']):>3}/{len(arm64['faces']):<3} {max(gaps, default=0.0):>8.2f}")


def compare(native_path: Path, arm64_path: Path) -> int:
    native, arm64 = read_results(native_path), read_results(arm64_path)
    print(f"{'image':<24} {'coverage':>8} {'(arm64)':>8} {'gestures':>14} {'(arm64)':>14} {'poses':>7} {'faces':>7}"
          f" {'box gap':>8}")
    for pair in zip(native, arm64, strict=False):
        print(summary(*pair))
    found = differences(native, arm64)
    for line in found:
        print(f"arm64 differs: {line}", file=sys.stderr)
    if found:
        return 1
    print(f"arm64 matches native on {len(native)} image(s): coverage within {COVERAGE_TOLERANCE:g}, the same hands, "
          f"gestures, poses and faces, every box within {BOX_TOLERANCE_PX:g} px")
    return 0


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.arm64check", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("include", help="the arm64 root's Debian packages, comma-separated (mmdebstrap --include)")
    compared = commands.add_parser("compare", help="the native and the arm64 analyze outputs: the same results?")
    compared.add_argument("native", type=Path, help="analyze --json output on this machine")
    compared.add_argument("arm64", type=Path, help="analyze --json output in the arm64 root")
    args = parser.parse_args(argv)
    if args.command == "include":
        print(",".join(root_packages()))
        return 0
    return compare(args.native, args.arm64)


if __name__ == "__main__":
    sys.exit(main())
