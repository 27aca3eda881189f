"""`make package`: a .deb with the code, models, content, unit, udev rule, wheels and maintainer scripts,
installed into (and purged from) a scratch root with dpkg --root; `make install`'s ssh commands; the
locks in requirements/ (every runtime dependency pinned with hashes, binary wheels for both boards) that
`make setup` and `make package` install from; the build plumbing of `make` (check-system.sh, `make bench`)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from test_provisioning import make

from appliance.errors import ApplianceError
from appliance.tomlfile import read_toml
from appliance.tools.package import (
    DEBIAN_PACKAGES,
    LOCK,
    RKNN,
    board_environment,
    board_pins,
    board_tags,
    build_package,
    debian_depends,
    download_command,
    fetch_wheels,
    pins_for,
    read_lock,
)
from appliance.tools.remote import DOCTOR, install_commands

REPO = Path(__file__).resolve().parents[1]
DEV_LOCK = REPO / "requirements/dev.txt"
WHEEL_INVENTORY = REPO / "requirements/pylock.device.toml"
BOARDS = ("arm64", "amd64")


def fake_wheel(directory: Path, name: str, version: str, tag: str = "py3-none-any", body: str = "") -> Path:
    """A small installable wheel named like the real one (the real files are 100+ MB per board)."""
    dist = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    path = directory / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist}.dist-info/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  f"Tag: {tag}\n")
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
        wheel.writestr(f"{dist}.dist-info/test.txt", body)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheelhouse_and_lock(directory: Path, arch: str) -> tuple[Path, Path]:
    """A wheel per pin the real lock gives the board, and a lock of the same pins with those wheels' hashes."""
    wheels = directory / "wheels"
    wheels.mkdir(parents=True)
    lines = []
    for pin in board_pins(arch, "3.11"):
        wheel = fake_wheel(wheels, pin.name, pin.version)
        lines.append(f"{pin.name}=={pin.version} \\\n    --hash=sha256:{sha256(wheel)}\n    # via test\n")
    lock = directory / "lock.txt"
    lock.write_text("# a lock like `make lock` writes\n" + "".join(lines))
    return wheels, lock


def package_command(arch: str, wheels: Path, lock: Path, out: Path) -> list[str]:
    """`make package`'s Python entry (technician.mk runs it with the default --lock, requirements/device.txt)."""
    return [sys.executable, "-m", "appliance.tools.package", "--arch", arch, "--python", "3.11",
            "--wheelhouse", str(wheels), "--lock", str(lock), "--out", str(out)]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    scratch = tmp_path_factory.mktemp("package")
    wheels, lock = wheelhouse_and_lock(scratch, host_arch())
    result = subprocess.run(package_command(host_arch(), wheels, lock, scratch / "dist"), cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (scratch / "dist").glob("oivis-appliance_*.deb")
    return built


def host_arch() -> str:
    """This machine's Debian architecture: the package the test builds installs here."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def test_the_package_carries_everything_the_board_needs(deb: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    files = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {"root/root"}
    for path in ("/opt/oivis/app/appliance/cli.py", "/opt/oivis/app/appliance/service/notify.py",
                 "/opt/oivis/app/models/manifest.toml", "/opt/oivis/app/models/cache/selfie_segmentation_landscape.tflite",
                 "/opt/oivis/app/content/default/campaign.toml", "/opt/oivis/app/content/default/street.png",
                 "/opt/oivis/requirements.txt", "/opt/oivis/wheels/numpy-2.4.6-py3-none-any.whl",
                 "/opt/oivis/bin/oivis-setup-venv", "/usr/bin/oivis",
                 "/lib/systemd/system/oivis-appliance.service", "/lib/udev/rules.d/70-oivis-camera.rules",
                 "/usr/share/polkit-1/rules.d/50-oivis-reboot.rules"):
        assert path in files, path
    assert not any("__pycache__" in path for path in files)
    assert not any(path.endswith(".rknn") for path in files)  # NPU models only in arm64 packages

    fields = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout
    assert f"Architecture: {host_arch()}" in fields
    assert "python3 (>= 3.11), python3 (<< 3.12)" in fields
    # Debian's packages with their bookworm versions (python3-systemd: journald and sd_notify on the board)
    assert "python3-systemd (>= 235-1+b2)" in fields and "python3-venv (>= 3.11.2-1+b1)" in fields
    depends = re.search(r"^Depends: (.*)$", fields, re.MULTILINE).group(1).split(", ")
    assert all(re.fullmatch(r"[a-z0-9.+-]+ \((>=|<<) [0-9][^)]*\)", dependency) for dependency in depends), depends


def test_maintainer_scripts(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "--control", str(deb), str(tmp_path / "DEBIAN")], check=True)
    for script in ("postinst", "prerm", "postrm"):
        path = tmp_path / "DEBIAN" / script
        assert path.stat().st_mode & 0o111, f"{script} is not executable"
        subprocess.run(["sh", "-n", str(path)], check=True)
    postinst = (tmp_path / "DEBIAN/postinst").read_text()
    assert "useradd" in postinst and "video render input" in postinst
    assert "chgrp oivis /etc/oivis" in postinst  # the fleet's set-config rewrites the configuration
    assert "oivis-setup-venv" in postinst and 'enable "$UNIT"' in postinst
    assert 'systemctl stop "$UNIT"' in (tmp_path / "DEBIAN/prerm").read_text()
    assert '"$ROOT/var/lib/oivis" "$ROOT/etc/oivis"' in (tmp_path / "DEBIAN/postrm").read_text()


def scratch_root(root: Path) -> Path:
    for directory in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
        (root / directory).mkdir(parents=True)
    for name in ("status", "available"):
        (root / "var/lib/dpkg" / name).touch()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\nrender:x:105:\ninput:x:106:\n")
    (root / "etc/gshadow").write_text("root:*::\nvideo:*::\nrender:*::\ninput:*::\n")
    return root


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless",
                           "--force-depends", "--log=/dev/null", *args], capture_output=True, text=True)


def test_installs_into_a_scratch_root_and_purges_cleanly(deb: Path, tmp_path: Path) -> None:
    """dpkg --root with the maintainer scripts run against the root ($DPKG_ROOT): the user, its groups,
    the enabled unit; the virtualenv step is the board's (it cannot run for a foreign root)."""
    root = scratch_root(tmp_path / "root")
    installed = dpkg(root, "--install", str(deb))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "oivis:" in (root / "etc/passwd").read_text()
    groups = (root / "etc/group").read_text()
    for group in ("video", "render", "input"):
        assert f"{group}:x:" in groups and groups.split(f"{group}:x:")[1].split("\n")[0].endswith("oivis")
    assert (root / "etc/systemd/system/multi-user.target.wants/oivis-appliance.service").is_symlink()
    assert (root / "opt/oivis/app/appliance/__init__.py").is_file()
    assert "virtualenv is built on the board" in installed.stdout

    (root / "var/lib/oivis").mkdir(parents=True)
    (root / "etc/oivis/tls").mkdir(parents=True)
    purged = dpkg(root, "--purge", "oivis-appliance")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not (root / "opt/oivis/app").exists()
    assert not (root / "var/lib/oivis").exists() and not (root / "etc/oivis").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/oivis-appliance.service").exists()


def test_an_incomplete_wheelhouse_and_rknn_on_x86_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ApplianceError, match=r"no wheel for arm64 / Python 3.11 with a locked hash for: .*numpy==2"):
        build_package("arm64", "3.11", tmp_path / "dist", empty)
    wheel = tmp_path / "rknn_toolkit_lite2-2.5.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    wheel.touch()
    with pytest.raises(ApplianceError, match="arm64 boards only"):
        build_package("amd64", "3.11", tmp_path / "dist", empty, rknn_wheel=wheel)


def test_the_device_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """Every requirement pyproject.toml gives the device (and the NPU boards' binding) resolves, in the lock,
    to exactly one pin that satisfies it, for both boards and for development machines' Pythons."""
    project = read_toml(REPO / "pyproject.toml")["project"]
    wanted = [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["npu"]]
    pins = read_lock(LOCK)
    assert all(len(pin.hashes) >= 1 for pin in pins)
    assert "systemd-python" not in {pin.name for pin in pins}  # the boards take Debian's python3-systemd
    for arch, python in [(arch, "3.11") for arch in BOARDS] + [("amd64", "3.10"), ("amd64", "3.12")]:
        environment = board_environment(arch, python)
        chosen = {pin.name: pin for pin in board_pins(arch, python)}
        for requirement in wanted:
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                assert canonicalize_name(requirement.name) not in chosen, (requirement, arch, python)
                continue
            pin = chosen.get(canonicalize_name(requirement.name))
            assert pin is not None, f"{requirement} is not locked for {arch} / Python {python}: run `make lock`"
            assert requirement.specifier.contains(pin.version, prereleases=True), (requirement, pin.version)
    assert RKNN in {pin.name for pin in board_pins("arm64", "3.11")}
    assert RKNN not in {pin.name for pin in board_pins("amd64", "3.11")}
    assert "tomli" not in {pin.name for pin in board_pins("arm64", "3.11")}
    assert "tomli" in {pin.name for pin in board_pins("amd64", "3.10")}


def test_the_lock_holds_cp311_manylinux_wheels_for_both_boards() -> None:
    """For each board, every pin has a wheel its CPython 3.11 installs (binary for manylinux x86_64 / aarch64
    up to bookworm's glibc 2.36, or pure Python) whose sha256 the lock lists: pip on the board never builds."""
    inventory = read_toml(WHEEL_INVENTORY)["packages"]
    wheels = {(str(canonicalize_name(package["name"])), package["version"]):
              [(wheel["url"].rsplit("/", 1)[1], wheel["hashes"]["sha256"]) for wheel in package.get("wheels", [])]
              for package in inventory}
    for arch in BOARDS:
        tags = board_tags(arch, "3.11")
        for pin in board_pins(arch, "3.11"):
            files = wheels.get((pin.name, pin.version))
            assert files is not None, f"{pin.name}=={pin.version} is not in {WHEEL_INVENTORY.name}: run `make lock`"
            installable = [name for name, digest in files if parse_wheel_filename(name)[3] & tags and digest in pin.hashes]
            assert installable, f"no locked cp311 wheel of {pin.name}=={pin.version} for {arch}"


def test_the_development_lock_has_the_device_pins_and_builds_systemd_python() -> None:
    """`make setup` installs the development lock: the device's pins, same versions and hashes, plus the
    tools; systemd-python there is the version Debian ships to the boards as python3-systemd."""
    device = {(pin.name, pin.version, pin.marker): pin.hashes for pin in read_lock(LOCK)}
    development = {(pin.name, pin.version, pin.marker): pin.hashes for pin in read_lock(DEV_LOCK)}
    assert {(name, version) for name, version, _marker in device} <= {(n, v) for n, v, _m in development}
    for key, hashes in device.items():
        if key in development:
            assert development[key] == hashes, key
    (systemd,) = [pin for pin in read_lock(DEV_LOCK) if pin.name == "systemd-python"]
    assert systemd.version == "235" and systemd.marker == "sys_platform == 'linux'"
    assert "python3-systemd (>= 235-1+b2)" in debian_depends()
    assert f"python3-systemd {systemd.version}-" in DEBIAN_PACKAGES.read_text()
    for name in ("pytest", "ruff", "psycopg", "scikit-image", "packaging"):
        assert any(pin.name == name for pin in read_lock(DEV_LOCK)), name
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --disable-pip-version-check --require-hashes --requirement $(DEV_LOCK)" in makefile
    lock = make("-n", "lock").stdout
    assert "uv pip compile pyproject.toml --extra npu --generate-hashes --universal" in lock
    assert "--output-file requirements/device.txt" in lock and "--output-file requirements/dev.txt" in lock


def test_package_fetches_only_the_locked_wheels_and_refuses_a_changed_one(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `pip download` of fetch_wheels, offline from a local index (PIP_NO_INDEX, PIP_FIND_LINKS):
    it takes the pinned version although a newer one is there, and refuses a file whose hash changed."""
    index = tmp_path / "index"
    index.mkdir()
    locked = fake_wheel(index, "pygame", "2.6.1", "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64")
    fake_wheel(index, "pygame", "2.7.0", "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64")
    pure = fake_wheel(index, "paho-mqtt", "2.2.0")
    lock = tmp_path / "lock.txt"
    lock.write_text(f"paho-mqtt==2.2.0 \\\n    --hash=sha256:{sha256(pure)}\n"
                    f"pygame==2.6.1 ; platform_machine == 'aarch64' \\\n    --hash=sha256:{sha256(locked)}\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    cache = fetch_wheels("arm64", "3.11", tmp_path / "cache", lock)
    assert sorted(path.name for path in cache.iterdir()) == sorted([locked.name, pure.name])
    assert [path.name for path in fetch_wheels("amd64", "3.11", tmp_path / "x86", lock).iterdir()] == [pure.name]

    fake_wheel(index, "pygame", "2.6.1", "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64", body="changed")
    with pytest.raises(ApplianceError, match="could not fetch the locked wheels"):
        fetch_wheels("arm64", "3.11", tmp_path / "cache-2", lock)


def test_wheels_are_downloaded_for_the_boards_platform_from_the_lock(tmp_path: Path) -> None:
    command = download_command("arm64", "3.11", tmp_path, tmp_path / "requirements.txt")
    joined = shlex.join(command)
    assert "--require-hashes --no-deps --only-binary=:all:" in joined
    assert "--platform manylinux_2_36_aarch64 --platform manylinux_2_35_aarch64" in joined
    assert "--platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --python-version 3.11" in joined
    assert "--abi cp311" in joined and command[-2:] == ["--requirement", str(tmp_path / "requirements.txt")]
    # `make package` runs the Python entry without --lock: the repository's device lock
    dry = make("-n", "package", "ARCH=arm64")
    assert "-m appliance.tools.package --arch arm64 --python 3.11" in dry.stdout and "--lock" not in dry.stdout
    assert LOCK == REPO / "requirements/device.txt"


def test_two_builds_of_the_same_commit_ship_the_same_wheels(tmp_path: Path) -> None:
    """A reused wheel cache holds other versions and other platforms' files: each build takes exactly the
    locked ones, so both packages carry the same files and the same hashed requirements."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    wheels, lock = wheelhouse_and_lock(tmp_path, "arm64")
    fake_wheel(wheels, "numpy", "2.5.5", "cp311-cp311-manylinux_2_27_aarch64")       # newer, not locked
    fake_wheel(wheels, "numpy", "2.4.6", "cp311-cp311-manylinux_2_27_x86_64")        # the other board's
    contents = []
    for build in ("first", "second"):
        result = subprocess.run(package_command("arm64", wheels, lock, tmp_path / build), cwd=REPO,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        (built,) = (tmp_path / build).glob("*.deb")
        unpacked = tmp_path / f"{build}-root"
        subprocess.run(["dpkg-deb", "--extract", str(built), str(unpacked)], check=True)
        contents.append((sorted(path.name for path in (unpacked / "opt/oivis/wheels").iterdir()),
                         (unpacked / "opt/oivis/requirements.txt").read_text()))
    assert contents[0] == contents[1]
    names, requirements = contents[0]
    pins = board_pins("arm64", "3.11", lock)
    assert len(names) == len(pins) and "numpy-2.4.6-py3-none-any.whl" in names
    assert requirements.count("--hash=sha256:") == len(pins) and "numpy==2.4.6 --hash=sha256:" in requirements
    assert "rknn-toolkit-lite2==2.5.0" in requirements


def test_a_rockchip_wheel_takes_the_place_of_the_locked_binding(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path, "rknn-toolkit-lite2", "2.5.1", "cp311-cp311-manylinux_2_17_aarch64")
    (rknn,) = [pin for pin in pins_for("arm64", "3.11", LOCK, wheel) if pin.name == RKNN]
    assert rknn.version == "2.5.1" and rknn.hashes == {sha256(wheel)}
    with pytest.raises(ApplianceError, match="does not exist"):
        pins_for("arm64", "3.11", LOCK, tmp_path / "absent.whl")


def test_make_bench_takes_the_media_from_OIVIS_TEST_MEDIA(tmp_path: Path) -> None:
    """`make bench` in a clone that does not sit beside shared/: the media come from OIVIS_TEST_MEDIA, and a
    missing source is one line naming it, before anything is installed."""
    (tmp_path / "kiosk_fist_thumbup_720p.mp4").touch()
    dry = make("-n", "bench", f"OIVIS_TEST_MEDIA={tmp_path}")
    assert f"-m appliance bench {tmp_path}/kiosk_fist_thumbup_720p.mp4 --frames 300" in dry.stdout, dry.stdout
    missing = make("bench", f"OIVIS_TEST_MEDIA={tmp_path / 'elsewhere'}")
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[0] == (
        f"no bench source {tmp_path / 'elsewhere'}/kiosk_fist_thumbup_720p.mp4: "
        "set OIVIS_TEST_MEDIA=path/to/devset or BENCH_SOURCE=clip.mp4")


def check_system(path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("sh"), str(REPO / "provisioning/check-system.sh")], capture_output=True, text=True,
                          env={"PATH": str(path), "PYTHON": sys.executable, **env})


def bin_with(directory: Path, *tools: str) -> Path:
    """A PATH directory holding only ``tools`` from this machine (others look missing to the script)."""
    directory.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        if found:
            (directory / tool).symlink_to(found)
    return directory


def test_check_system_names_the_packages_systemd_python_builds_with(tmp_path: Path) -> None:
    """Without pkg-config, libsystemd's headers and a compiler, `make setup` says which package is missing and
    how to install it, one line each, and stops (no apt-get here: nothing is installed)."""
    path = bin_with(tmp_path / "bin", "id")
    result = check_system(path, BUILD_SYSTEMD_PYTHON="1", EXTRA_PACKAGES="mosquitto:/nonexistent/mosquitto")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    for package in ("pkg-config", "gcc", "mosquitto"):
        assert f"missing system package: {package} — install it with: sudo apt-get install -y {package}" in lines
    assert all(line.startswith("missing system package: ") for line in lines), lines
    assert check_system(path).returncode == 0  # without BUILD_SYSTEMD_PYTHON only Python and its venv count


def test_check_system_installs_what_is_missing_as_root_with_apt(tmp_path: Path) -> None:
    """CI on a fresh Debian machine (root, apt-get there): the missing packages are installed, then checked
    again.  apt-get is a recorder here that lays the package's file down: the test must not change this
    machine's packages."""
    if os.geteuid() != 0:
        pytest.skip("only root installs packages")
    path = bin_with(tmp_path / "bin", "id", "mkdir", "touch")
    record, broker = tmp_path / "apt.log", tmp_path / "sbin/mosquitto"
    (path / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {record}\n'
                                  f'case "$1" in install) mkdir -p {broker.parent}; touch {broker};; esac\n')
    (path / "apt-get").chmod(0o755)
    result = check_system(path, EXTRA_PACKAGES=f"mosquitto:{broker}")
    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == ["update -qq", "install -y -qq mosquitto"]
    assert result.stderr.splitlines()[0] == "installing missing system packages: mosquitto (apt-get as root)"

    broker.unlink()
    (path / "apt-get").write_text("#!/bin/sh\nexit 0\n")  # installs nothing: the line, and exit 1
    result = check_system(path, EXTRA_PACKAGES=f"mosquitto:{broker}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ("missing system package: mosquitto — install it with: "
                                              "sudo apt-get install -y mosquitto")


def identity_bundle(directory: Path) -> Path:
    """The files `make install` checks for in a provisioned device's bundle (empty: not read here)."""
    (directory / "tls").mkdir(parents=True)
    (directory / "appliance.toml").touch()
    (directory / "tls/device.pem").touch()
    return directory


def test_install_sends_the_identity_first_then_the_package_then_runs_doctor(tmp_path: Path) -> None:
    package = tmp_path / "oivis-appliance_0.1.0_arm64.deb"
    package.touch()
    bundle = identity_bundle(tmp_path / "bundle")
    commands = install_commands("pi@10.0.0.7", package, bundle)
    assert [command[0] for command in commands] == ["ssh", "ssh", "scp", "ssh", "ssh", "ssh"]
    assert "tar --no-same-owner" in commands[1][-1] and "chmod 0600 /etc/oivis/tls/device.key" in commands[1][-1]
    staging = commands[0][-1].removeprefix("mkdir -m 0700 ")
    assert re.fullmatch(r"/tmp/oivis-install-[0-9a-f]{16}", staging)  # fresh and private: no swapped package
    assert staging != install_commands("pi@10.0.0.7", package, bundle)[0][-1].removeprefix("mkdir -m 0700 ")
    assert commands[1][-1].startswith("umask 077")
    assert commands[2][-1] == f"pi@10.0.0.7:{staging}/oivis-appliance_0.1.0_arm64.deb"
    assert commands[3][-1].startswith(f"sudo apt-get install -y --reinstall {staging}/")
    assert all(command[command.index("--") + 1] in ("pi@10.0.0.7", str(package)) for command in commands)
    assert "systemctl restart oivis-appliance.service" in commands[4][-1]
    assert commands[5][-1] == DOCTOR
    assert all("BatchMode=yes" in command for command in commands)
    for hostile in ("-oProxyCommand=touch /tmp/x", "-Jx@host", "-Ghost@h"):
        with pytest.raises(ApplianceError, match="HOST"):
            install_commands(hostile, package, bundle)
    with pytest.raises(ApplianceError, match="make provision"):
        install_commands("pi@board", package, tmp_path)


def test_make_install_dry_run_prints_the_commands(tmp_path: Path) -> None:
    package = tmp_path / "oivis.deb"
    package.touch()
    bundle = identity_bundle(tmp_path / "devices/d1")
    result = make("install", "HOST=pi@board", "DEVICE_ID=d1", f"DEVICES_DIR={tmp_path / 'devices'}",
                  f"DEB={package}", "DRY_RUN=1")
    assert result.returncode == 0, result.stderr
    assert f"$ tar -C {bundle} -cf - appliance.toml tls keys | ssh" in result.stdout
    assert "sudo /usr/bin/oivis doctor" in result.stdout


def test_the_board_finds_the_built_in_experiences_in_the_package(deb: Path, tmp_path: Path) -> None:
    """/opt/oivis/app is on the board's sys.path, not installed by pip: without the staged dist-info the
    kiosk found no experience at all (no attract, no menu, every campaign with [rps] refused)."""
    from importlib.metadata import distributions

    from appliance.experience.registry import GROUP, load

    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    app = tmp_path / "opt/oivis/app"
    (found,) = distributions(path=[str(app)])
    assert found.metadata["Name"] == "oivis-appliance"
    registry = load(entry for entry in found.entry_points if entry.group == GROUP)
    assert registry.names() == ["age", "attract", "fusion", "menu", "mirror", "photo", "pose", "rps"]
    assert not registry.skipped
    setup = (tmp_path / "opt/oivis/bin/oivis-setup-venv").read_text()
    assert "/var/lib/oivis/plugins" in setup  # plug-ins outside the venv that each upgrade rebuilds
