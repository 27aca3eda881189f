"""`make package`: the appliance as a Debian package for the board (dpkg-deb, no Debian tooling beyond it).

What goes in: the code and the models (verified against the manifest here, at
build time: a board never downloads models), the generated default content,
the unit and the udev rule, the maintainer scripts, and a wheelhouse for the
board's Python and architecture.  The virtualenv itself cannot be built here
for an arm64 board on an x86 laptop, so postinst builds it on the board from
those bundled wheels (``--no-index``: no network at the mall, the same versions
on every board).  The wheels are fetched with ``pip download`` for the target
platform tags, once, into a cache; ``--wheelhouse`` uses a prepared directory
instead.  ``rknn-toolkit-lite2`` is not on PyPI: on arm64 the technician passes
Rockchip's wheel (``--rknn-wheel``); without it the board runs LiteRT on the CPU.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance import __version__
from appliance.content import load_bundle
from appliance.content.bundle import DEFAULT_BUNDLE_DIR
from appliance.errors import ApplianceError, command_line
from appliance.inference.fetch import missing_or_corrupt
from appliance.inference.manifest import Manifest
from appliance.tomlfile import read_toml

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "provisioning"
PACKAGE = "oivis-appliance"
#: Debian architecture → the machine part of manylinux wheel tags.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
#: glibc of Debian 12 (bookworm), the boards' OS, down to the oldest tag wheels still use:
#: pip's --platform takes each tag literally (it does not widen manylinux_2_36 to older ones).
NEWEST_GLIBC_MINOR, OLDEST_GLIBC_MINOR = 36, 17
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")


def requirements() -> list[str]:
    """The runtime dependencies, as pyproject.toml declares them."""
    return list(read_toml(REPO / "pyproject.toml")["project"]["dependencies"])


def project_name(requirement: str) -> str:
    """``opencv-python-headless>=4.8`` → ``opencv_python_headless`` (wheel file names normalise so)."""
    return re.sub(r"[-_.]+", "_", re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]).lower()


def applies(requirement: str, python: str) -> bool:
    """False for a requirement whose ``python_version`` marker excludes the board's Python (``tomli``)."""
    marker = re.search(r";\s*python_version\s*(<=|>=|==|!=|<|>)\s*['\"]([\d.]+)['\"]\s*$", requirement)
    if marker is None:
        return True
    have = tuple(int(part) for part in python.split("."))
    want = tuple(int(part) for part in marker.group(2).split("."))
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want,
            "==": have == want, "!=": have != want}[marker.group(1)]


def missing_wheels(wheelhouse: Path, wanted: list[str], python: str) -> list[str]:
    """The requirements for the board's Python that have no wheel in ``wheelhouse`` (top level only:
    pip on the board resolves the rest and fails loudly if a dependency's wheel is absent)."""
    have = {wheel.name.split("-")[0].lower() for wheel in wheelhouse.glob("*.whl")}
    return [req for req in wanted if applies(req, python) and project_name(req) not in have]


def download_command(arch: str, python: str, dest: Path, rknn_wheel: Path | None) -> list[str]:
    """pip as a downloader for the board's platform: only binary wheels, nothing installed."""
    tag = python.replace(".", "")
    machine = MACHINES[arch]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(NEWEST_GLIBC_MINOR, OLDEST_GLIBC_MINOR - 1, -1)]
    platforms.append(f"manylinux2014_{machine}")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
               *(argument for platform in platforms for argument in ("--platform", platform)),
               "--python-version", python,
               "--implementation", "cp", "--abi", f"cp{tag}", "--dest", str(dest), *requirements()]
    if rknn_wheel is not None:
        command.append(str(rknn_wheel))
    return command


def fetch_wheels(arch: str, python: str, cache: Path, rknn_wheel: Path | None) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching wheels for {arch} / Python {python} into {cache} (pip download, cached)")
    result = subprocess.run(download_command(arch, python, cache, rknn_wheel), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-3:])
        raise ApplianceError(f"pip could not fetch the wheels for {arch} / Python {python}:\n{tail}")
    return cache


def control(arch: str, version: str, python: str, installed_kb: int) -> str:
    major, minor = (int(part) for part in python.split(".")[:2])
    return (
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: OIVIS Edge <edge@oivis.invalid>\nSection: misc\nPriority: optional\n"
        f"Installed-Size: {installed_kb}\n"
        f"Depends: python3 (>= {major}.{minor}), python3 (<< {major}.{minor + 1}), python3-venv, "
        "python3-systemd, passwd, systemd, udev\n"
        "Description: OIVIS Edge interactive mall screen\n"
        " The kiosk (camera, segmentation, gestures, campaigns) as a systemd service,\n"
        f" with its models, default content and the wheels of its virtualenv (Python {python}).\n"
    )


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def stage(root: Path, arch: str, python: str, wheelhouse: Path, rknn_wheel: Path | None, version: str) -> None:
    """Lay the package's files out under ``root`` as they land on the board."""
    manifest = Manifest.load()
    bad = missing_or_corrupt(manifest)
    if bad:
        raise ApplianceError(f"model(s) missing or corrupt: {', '.join(bad)}; run `make models` first")
    load_bundle(DEFAULT_BUNDLE_DIR)  # refuses ungenerated or broken default content, naming the file
    app = root / "opt/oivis/app"
    _copy_tree(REPO / "appliance", app / "appliance")
    (app / "models/cache").mkdir(parents=True)
    shutil.copy2(manifest.cache_dir.parent / "manifest.toml", app / "models/manifest.toml")
    for name in manifest.models:
        shutil.copy2(manifest.verified_path(name), app / "models/cache" / manifest.cached_path(name).name)
    rknn_models = sorted((manifest.cache_dir / "rknn").glob("*.rknn")) if arch == "arm64" else []
    if rknn_models:
        (app / "models/cache/rknn").mkdir()
        for model in rknn_models:
            shutil.copy2(model, app / "models/cache/rknn" / model.name)
    _copy_tree(DEFAULT_BUNDLE_DIR, app / "content/default")
    shutil.copy2(REPO / "README.md", app / "README.md")

    wheels = root / "opt/oivis/wheels"
    wheels.mkdir(parents=True)
    for wheel in sorted(wheelhouse.glob("*.whl")):
        shutil.copy2(wheel, wheels / wheel.name)
    wanted = requirements()
    if rknn_wheel is not None:
        shutil.copy2(rknn_wheel, wheels / rknn_wheel.name)
        wanted.append(f"rknn-toolkit-lite2 @ file:///opt/oivis/wheels/{rknn_wheel.name}")
    (root / "opt/oivis/requirements.txt").write_text("\n".join(wanted) + "\n")

    bin_dir = root / "opt/oivis/bin"
    bin_dir.mkdir()
    shutil.copy2(PROVISIONING / "debian/oivis-setup-venv", bin_dir / "oivis-setup-venv")
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(PROVISIONING / "debian/oivis", root / "usr/bin/oivis")
    units = root / "lib/systemd/system"
    units.mkdir(parents=True)
    shutil.copy2(PROVISIONING / "systemd/oivis-appliance.service", units)
    rules = root / "lib/udev/rules.d"
    rules.mkdir(parents=True)
    for rule in sorted((PROVISIONING / "udev").glob("*.rules")):
        shutil.copy2(rule, rules / rule.name)
    polkit = root / "usr/share/polkit-1/rules.d"
    polkit.mkdir(parents=True)
    for rule in sorted((PROVISIONING / "polkit").glob("*.rules")):
        shutil.copy2(rule, polkit / rule.name)

    debian = root / "DEBIAN"
    debian.mkdir()
    for script in MAINTAINER_SCRIPTS:
        shutil.copy2(PROVISIONING / "debian" / script, debian / script)
        (debian / script).chmod(0o755)
    for path in (bin_dir / "oivis-setup-venv", root / "usr/bin/oivis"):
        path.chmod(0o755)
    size_kb = sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) // 1024
    (debian / "control").write_text(control(arch, version, python, size_kb))


def build_package(arch: str, python: str, out: Path, wheelhouse: Path, rknn_wheel: Path | None = None,
                  version: str = __version__) -> Path:
    """Build ``out/oivis-appliance_<version>_<arch>.deb`` and return its path."""
    if arch not in MACHINES:
        raise ApplianceError(f"unknown architecture {arch!r} (use {' or '.join(MACHINES)})")
    if rknn_wheel is not None:
        if arch != "arm64":
            raise ApplianceError("rknn-toolkit-lite2 runs on arm64 boards only; drop RKNN_WHEEL for " + arch)
        if not rknn_wheel.is_file():
            raise ApplianceError(f"RKNN_WHEEL {rknn_wheel} does not exist")
    absent = missing_wheels(wheelhouse, requirements(), python)
    if absent:
        raise ApplianceError(f"the wheelhouse {wheelhouse} has no wheel for: {', '.join(absent)}")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{PACKAGE}_{version}_{arch}.deb"
    with tempfile.TemporaryDirectory(prefix="oivis-deb-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        stage(root, arch, python, wheelhouse, rknn_wheel, version)
        try:
            result = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(target)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            raise ApplianceError(f"cannot run dpkg-deb ({exc}): apt-get install dpkg") from exc
        if result.returncode != 0:
            raise ApplianceError(f"dpkg-deb failed: {result.stdout.strip()}")
    return target


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.service.package", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="arm64", choices=sorted(MACHINES), help="the board's Debian architecture")
    parser.add_argument("--python", default="3.11", help="the board's python3 version (Debian 12: 3.11)")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--wheelhouse", type=Path, help="prepared wheels (default: pip download, cached)")
    parser.add_argument("--wheel-cache", type=Path, default=PROVISIONING / "out/wheels")
    parser.add_argument("--rknn-wheel", type=Path, help="Rockchip's rknn_toolkit_lite2 wheel for the board (arm64)")
    args = parser.parse_args(argv)
    wheelhouse = args.wheelhouse or fetch_wheels(
        args.arch, args.python, args.wheel_cache / f"{args.arch}-cp{args.python.replace('.', '')}",
        args.rknn_wheel)
    if args.arch == "arm64" and args.rknn_wheel is None:
        print("note: no RKNN_WHEEL: the board will run the models on its CPU (LiteRT), not the NPU")
    print(build_package(args.arch, args.python, args.out, wheelhouse, args.rknn_wheel))


if __name__ == "__main__":
    sys.exit(main())
