"""`make package`: a .deb with the code, models, content, unit, udev rule, wheels and maintainer scripts,
installed into (and purged from) a scratch root with dpkg --root; `make install`'s ssh commands."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from test_provisioning import make

from appliance.errors import ApplianceError
from appliance.service.package import (
    applies,
    build_package,
    download_command,
    missing_wheels,
    project_name,
    requirements,
)
from appliance.service.remote import DOCTOR, install_commands


def wheelhouse(directory: Path) -> Path:
    """A wheel file per top-level requirement (empty wheels: this build's contents are what is checked;
    the board's pip install from real wheels cannot run on this x86 machine)."""
    directory.mkdir()
    for requirement in requirements():
        if applies(requirement, "3.11"):
            with zipfile.ZipFile(directory / f"{project_name(requirement)}-1.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr("METADATA", "")
    return directory


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    scratch = tmp_path_factory.mktemp("package")
    result = make("package", f"ARCH={host_arch()}", f"WHEELHOUSE={wheelhouse(scratch / 'wheels')}",
                  f"DIST={scratch / 'dist'}")
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
                 "/opt/oivis/requirements.txt", "/opt/oivis/wheels/numpy-1.0-py3-none-any.whl",
                 "/opt/oivis/bin/oivis-setup-venv", "/usr/bin/oivis",
                 "/lib/systemd/system/oivis-appliance.service", "/lib/udev/rules.d/70-oivis-camera.rules",
                 "/usr/share/polkit-1/rules.d/50-oivis-reboot.rules"):
        assert path in files, path
    assert not any("__pycache__" in path for path in files)
    assert not any(path.endswith(".rknn") for path in files)  # NPU models only in arm64 packages

    fields = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout
    assert f"Architecture: {host_arch()}" in fields
    assert "python3-systemd" in fields and "python3 (<< 3.12)" in fields


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
    assert "numpy>=1.24" in missing_wheels(empty, requirements(), "3.11")
    assert not any(req.startswith("tomli") for req in missing_wheels(empty, requirements(), "3.11"))
    assert any(req.startswith("tomli") for req in missing_wheels(empty, requirements(), "3.10"))
    with pytest.raises(ApplianceError, match="no wheel for"):
        build_package("arm64", "3.11", tmp_path / "dist", empty)
    wheel = tmp_path / "rknn_toolkit_lite2-2.5.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    wheel.touch()
    with pytest.raises(ApplianceError, match="arm64 boards only"):
        build_package("amd64", "3.11", tmp_path / "dist", empty, rknn_wheel=wheel)


def test_wheels_are_downloaded_for_the_boards_platform(tmp_path: Path) -> None:
    wheel = tmp_path / "rknn_toolkit_lite2-2.5.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    command = download_command("arm64", "3.11", tmp_path, wheel)
    joined = shlex.join(command)
    assert "--only-binary=:all: --platform manylinux_2_36_aarch64 --platform manylinux_2_35_aarch64" in joined
    assert "--platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --python-version 3.11" in joined
    assert "--abi cp311" in joined and command[-1] == str(wheel)


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
