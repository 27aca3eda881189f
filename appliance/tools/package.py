"""`make package`: the appliance as a Debian package for the board (dpkg-deb, no Debian tooling beyond it).

What goes in: the code and the models (verified against the manifest here, at
build time: a board never downloads models), the generated default content,
the unit and the udev rule, the maintainer scripts, and a wheelhouse for the
board's Python and architecture.  The virtualenv itself cannot be built here
for an arm64 board on an x86 laptop, so postinst builds it on the board from
those bundled wheels (``--no-index --require-hashes``: no network at the mall).

Invariants: the wheels are exactly the device lock's pins (``requirements/device.txt``,
made by ``make lock``) for the board's environment, each file one whose sha256 the
lock lists, so two builds of the same commit ship the same files; nothing
newer on PyPI, nothing stale from the cache, gets in.  The lock's markers are
evaluated here for the board (pip would evaluate them for this laptop).  The
wheels are fetched with ``pip download --require-hashes`` for the board's
platform tags, once, into a cache; ``--wheelhouse`` uses a prepared directory
instead (its files are checked against the lock the same way).  Debian packages
the board takes from Debian (python3-systemd: journald and sd_notify, through
``--system-site-packages``) are named in the control file's Depends with the
bookworm versions in ``requirements/debian.txt``.  ``--rknn-wheel`` puts a
Rockchip wheel of ``rknn-toolkit-lite2`` in place of the locked one (arm64 only).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from appliance import __version__
from appliance.content import load_bundle
from appliance.content.bundle import DEFAULT_BUNDLE_DIR
from appliance.errors import ApplianceError, command_line
from appliance.inference.fetch import missing_or_corrupt
from appliance.inference.manifest import Manifest
from appliance.tomlfile import read_toml

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "provisioning"
#: The device's Python packages, every one pinned with its hashes (`make lock`).
LOCK = REPO / "requirements/device.txt"
#: The Debian packages the board takes from Debian, with their bookworm versions.
DEBIAN_PACKAGES = REPO / "requirements/debian.txt"
PACKAGE = "oivis-appliance"
RKNN = "rknn-toolkit-lite2"
#: Debian architecture → the machine part of manylinux wheel tags.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
#: glibc of Debian 12 (bookworm), the boards' OS, down to the oldest tag wheels still use:
#: pip's --platform takes each tag literally (it does not widen manylinux_2_36 to older ones).
NEWEST_GLIBC_MINOR, OLDEST_GLIBC_MINOR = 36, 17
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")


@dataclass(frozen=True)
class Pin:
    """One locked requirement: ``name==version`` (name canonical), its marker, the sha256 hashes allowed."""

    name: str
    version: str
    marker: str | None
    hashes: frozenset[str]

    def line(self) -> str:
        """The pin as a requirements line for ``pip --require-hashes``."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash=sha256:{digest}" for digest in sorted(self.hashes))])


_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.!+_-]+)")
_HASH = re.compile(r"\s--hash=sha256:([0-9a-f]{64})(?=\s|$)")


def read_lock(path: Path = LOCK) -> list[Pin]:
    """The pins of a hashed requirements lock (``uv pip compile --generate-hashes`` output); an entry that is
    not ``name==version [; marker]`` with at least one sha256 is refused, naming it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ApplianceError(f"cannot read the lock {path} ({exc}): run `make lock`") from exc
    pins = []
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        hashes = frozenset(_HASH.findall(f" {entry}"))
        requirement, _, marker = _HASH.sub("", f" {entry}").strip().partition(";")
        match = _PIN.fullmatch(requirement.strip())
        if match is None or not hashes:
            raise ApplianceError(f"{path}: not a pinned and hashed requirement (`name==version [; marker] "
                                 f"--hash=sha256:...`, `make lock` writes them): {entry[:100]}")
        pins.append(Pin(str(canonicalize_name(match["name"])), match["version"], marker.strip() or None, hashes))
    if not pins:
        raise ApplianceError(f"the lock {path} pins nothing: run `make lock`")
    return pins


def board_environment(arch: str, python: str) -> dict[str, str]:
    """The marker environment of a board: Debian's CPython ``python`` on Linux/``arch``."""
    return {"implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": MACHINES[arch],
            "python_version": python, "python_full_version": f"{python}.0", "implementation_version": f"{python}.0"}


def board_pins(arch: str, python: str, lock: Path = LOCK) -> list[Pin]:
    """The lock's pins that apply to the board, exactly one per package."""
    environment = board_environment(arch, python)
    chosen: dict[str, Pin] = {}
    for pin in read_lock(lock):
        try:
            applies = pin.marker is None or Marker(pin.marker).evaluate(environment)
        except InvalidMarker as exc:
            raise ApplianceError(f"{lock}: {pin.name}=={pin.version} has an invalid marker {pin.marker!r}") from exc
        if not applies:
            continue
        if pin.name in chosen:
            raise ApplianceError(f"{lock} pins {pin.name} twice for {arch} / Python {python}: run `make lock`")
        chosen[pin.name] = pin
    return list(chosen.values())


def local_wheel_pin(wheel: Path) -> Pin:
    """A pin for a wheel file given by hand (Rockchip's rknn-toolkit-lite2): its name, version and sha256."""
    try:
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise ApplianceError(f"{wheel} is not a wheel file name ({exc})") from exc
    return Pin(str(name), str(version), None, frozenset({hashlib.sha256(wheel.read_bytes()).hexdigest()}))


def pins_for(arch: str, python: str, lock: Path, rknn_wheel: Path | None) -> list[Pin]:
    """What the board installs: the lock's pins, with ``rknn_wheel`` in place of the locked rknn-toolkit-lite2."""
    if arch not in MACHINES:
        raise ApplianceError(f"unknown architecture {arch!r} (use {' or '.join(MACHINES)})")
    pins = board_pins(arch, python, lock)
    if rknn_wheel is None:
        return pins
    if arch != "arm64":
        raise ApplianceError("rknn-toolkit-lite2 runs on arm64 boards only; drop RKNN_WHEEL for " + arch)
    if not rknn_wheel.is_file():
        raise ApplianceError(f"RKNN_WHEEL {rknn_wheel} does not exist")
    return [pin for pin in pins if pin.name != RKNN] + [local_wheel_pin(rknn_wheel)]


def platforms(arch: str) -> list[str]:
    """The manylinux platform tags a bookworm board of ``arch`` runs, newest first."""
    machine = MACHINES[arch]
    return [*(f"manylinux_2_{minor}_{machine}" for minor in range(NEWEST_GLIBC_MINOR, OLDEST_GLIBC_MINOR - 1, -1)),
            f"manylinux2014_{machine}"]


def board_tags(arch: str, python: str) -> frozenset[Tag]:
    """Every wheel tag the board's CPython ``python`` installs (binary for its platforms, or pure)."""
    version = tuple(int(part) for part in python.split(".")[:2])
    binary = cpython_tags(python_version=version, platforms=platforms(arch))
    pure = compatible_tags(python_version=version, interpreter=f"cp{version[0]}{version[1]}", platforms=platforms(arch))
    return frozenset([*binary, *pure])


def download_command(arch: str, python: str, dest: Path, requirements_file: Path) -> list[str]:
    """pip as a downloader for the board's platform: only the pinned binary wheels whose hashes the lock lists."""
    tag = python.replace(".", "")
    return [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--require-hashes", "--no-deps",
            "--only-binary=:all:", *(argument for platform in platforms(arch) for argument in ("--platform", platform)),
            "--python-version", python, "--implementation", "cp", "--abi", f"cp{tag}",
            "--dest", str(dest), "--requirement", str(requirements_file)]


def fetch_wheels(arch: str, python: str, cache: Path, lock: Path = LOCK, rknn_wheel: Path | None = None) -> Path:
    """Download the board's locked wheels into ``cache`` (pip skips the files already there)."""
    pins = [pin for pin in pins_for(arch, python, lock, rknn_wheel) if rknn_wheel is None or pin.name != RKNN]
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching the locked wheels for {arch} / Python {python} into {cache} (pip download, cached)")
    with tempfile.TemporaryDirectory(prefix="oivis-lock-") as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        requirements_file.write_text("".join(pin.line() + "\n" for pin in pins))
        result = subprocess.run(download_command(arch, python, cache, requirements_file), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-3:])
        raise ApplianceError(f"pip could not fetch the locked wheels for {arch} / Python {python}:\n{tail}")
    return cache


def select_wheels(wheelhouse: Path, pins: list[Pin], arch: str, python: str,
                  extra: tuple[Path, ...] = ()) -> dict[Pin, Path]:
    """For each pin, the wheel in ``wheelhouse`` (or ``extra``) of that name and version, installable on the
    board, whose sha256 the pin lists.  A pin without one is refused, naming it: older or newer versions
    (a reused cache) and wheels for other platforms are never taken."""
    tags = board_tags(arch, python)
    candidates: dict[tuple[str, str], list[Path]] = {}
    for wheel in sorted([*wheelhouse.glob("*.whl"), *extra]):
        try:
            name, version, _build, wheel_tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if wheel_tags & tags:
            candidates.setdefault((str(name), str(version)), []).append(wheel)
    chosen: dict[Pin, Path] = {}
    missing = []
    for pin in pins:
        for wheel in candidates.get((pin.name, pin.version), []):
            if hashlib.sha256(wheel.read_bytes()).hexdigest() in pin.hashes:
                chosen[pin] = wheel
                break
        else:
            missing.append(f"{pin.name}=={pin.version}")
    if missing:
        raise ApplianceError(f"the wheelhouse {wheelhouse} has no wheel for {arch} / Python {python} with a locked "
                             f"hash for: {', '.join(missing)}")
    return chosen


def board_requirements(chosen: dict[Pin, Path]) -> str:
    """The board's requirements file: each pin with the sha256 of the very file the package carries."""
    lines = [f"{pin.name}=={pin.version} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
             for pin, wheel in sorted(chosen.items(), key=lambda item: item[0].name)]
    return "".join(line + "\n" for line in lines)


def debian_depends(path: Path = DEBIAN_PACKAGES) -> list[str]:
    """``name (>= version)`` for each Debian package the board takes from Debian (one ``name version`` a line)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ApplianceError(f"cannot read {path} ({exc})") from exc
    depends = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ApplianceError(f"{path}:{number}: expected `package version`, got {line.strip()!r}")
        depends.append(f"{fields[0]} (>= {fields[1]})")
    return depends


def control(arch: str, version: str, python: str, installed_kb: int) -> str:
    major, minor = (int(part) for part in python.split(".")[:2])
    return (
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: OIVIS Edge <edge@oivis.invalid>\nSection: misc\nPriority: optional\n"
        f"Installed-Size: {installed_kb}\n"
        f"Depends: python3 (>= {major}.{minor}), python3 (<< {major}.{minor + 1}), {', '.join(debian_depends())}\n"
        "Description: OIVIS Edge interactive mall screen\n"
        " The kiosk (camera, segmentation, gestures, campaigns) as a systemd service,\n"
        f" with its models, default content and the wheels of its virtualenv (Python {python}).\n"
    )


def distribution_info(target: Path, version: str, pyproject: Path = REPO / "pyproject.toml") -> Path:
    """``oivis_appliance-<version>.dist-info`` in ``target`` (the board's /opt/oivis/app, on sys.path), with the
    entry points of ``pyproject``: how the board's kiosk finds its built-in experiences (group
    ``oivis.experiences``), exactly as an installed distribution would."""
    project = read_toml(pyproject)["project"]
    info = target / f"{PACKAGE.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n")
    groups = [f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
              for group, entries in sorted(project.get("entry-points", {}).items())]
    (info / "entry_points.txt").write_text("\n".join(groups))
    return info


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def stage(root: Path, arch: str, python: str, wheels: dict[Pin, Path], version: str) -> None:
    """Lay the package's files out under ``root`` as they land on the board (``wheels``: from select_wheels)."""
    manifest = Manifest.load()
    bad = missing_or_corrupt(manifest)
    if bad:
        raise ApplianceError(f"model(s) missing or corrupt: {', '.join(bad)}; run `make models` first")
    load_bundle(DEFAULT_BUNDLE_DIR)  # refuses ungenerated or broken default content, naming the file
    app = root / "opt/oivis/app"
    _copy_tree(REPO / "appliance", app / "appliance")
    distribution_info(app, version)
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

    wheelhouse = root / "opt/oivis/wheels"
    wheelhouse.mkdir(parents=True)
    for wheel in wheels.values():
        shutil.copy2(wheel, wheelhouse / wheel.name)
    (root / "opt/oivis/requirements.txt").write_text(board_requirements(wheels))

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
                  version: str = __version__, lock: Path = LOCK) -> Path:
    """Build ``out/oivis-appliance_<version>_<arch>.deb`` with the wheels ``lock`` pins and return its path."""
    extra = () if rknn_wheel is None else (rknn_wheel,)
    wheels = select_wheels(wheelhouse, pins_for(arch, python, lock, rknn_wheel), arch, python, extra)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{PACKAGE}_{version}_{arch}.deb"
    with tempfile.TemporaryDirectory(prefix="oivis-deb-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        stage(root, arch, python, wheels, version)
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
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.package", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="arm64", choices=sorted(MACHINES), help="the board's Debian architecture")
    parser.add_argument("--python", default="3.11", help="the board's python3 version (Debian 12: 3.11)")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--lock", type=Path, default=LOCK, help="the hashed lock of the device's packages")
    parser.add_argument("--wheelhouse", type=Path, help="prepared wheels (default: pip download, cached)")
    parser.add_argument("--wheel-cache", type=Path, default=PROVISIONING / "out/wheels")
    parser.add_argument("--rknn-wheel", type=Path,
                        help="a Rockchip rknn_toolkit_lite2 wheel in place of the locked one (arm64)")
    args = parser.parse_args(argv)
    wheelhouse = args.wheelhouse or fetch_wheels(
        args.arch, args.python, args.wheel_cache / f"{args.arch}-cp{args.python.replace('.', '')}",
        args.lock, args.rknn_wheel)
    print(build_package(args.arch, args.python, args.out, wheelhouse, args.rknn_wheel, lock=args.lock))


if __name__ == "__main__":
    sys.exit(main())
