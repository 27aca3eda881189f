"""`make install HOST=user@board` and `make doctor HOST=…`: the package and the identity bundle over ssh.

Order matters: the identity goes first, so the service the package (re)starts
comes up with its certificate; then the package (``apt-get install ./deb``
resolves its Depends, which ``dpkg -i`` would not); then the unit is enabled and
restarted; then ``doctor`` reports.  The commands are built as argument lists
(``--dry-run`` prints them), and the host must look like ``[user@]host`` — a
value starting with '-' would be an ssh option.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

from appliance.errors import ApplianceError, command_line

#: user@host; neither part may start with "-" (ssh would read it as an option).
HOST = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9.:-]*$")
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
DOCTOR = "sudo /usr/bin/oivis doctor --config /etc/oivis/appliance.toml"


def check_host(host: str) -> str:
    if not HOST.match(host):
        raise ApplianceError(f"HOST {host!r}: use user@board (a name or an address)")
    return host


def _ssh(host: str, command: str) -> list[str]:
    return ["ssh", *SSH_OPTIONS, "--", host, command]


def install_commands(host: str, deb: Path, bundle: Path) -> list[list[str]]:
    """The steps of an install, each an argv; the identity tarball is piped into the second one."""
    check_host(host)
    if not deb.is_file():
        raise ApplianceError(f"{deb} does not exist: run `make package` first")
    if not (bundle / "appliance.toml").is_file() or not (bundle / "tls/device.pem").is_file():
        raise ApplianceError(f"{bundle} is not a signed identity bundle: run `make provision` first")
    # A fresh, private staging directory: a fixed name in /tmp could be prepared by another
    # user of the board to swap the package that apt then installs as root.
    staging = f"/tmp/oivis-install-{secrets.token_hex(8)}"
    remote_deb = f"{staging}/{deb.name}"
    unpack = (
        "umask 077 && sudo install -d -m 0755 /etc/oivis && "
        "sudo tar --no-same-owner --no-same-permissions -C /etc/oivis -xf - appliance.toml tls keys && "
        "sudo chown -R root:root /etc/oivis && sudo chmod 0755 /etc/oivis/tls /etc/oivis/keys && "
        "sudo chmod 0644 /etc/oivis/appliance.toml /etc/oivis/tls/ca.pem /etc/oivis/tls/device.pem && "
        "sudo chmod 0600 /etc/oivis/tls/device.key"
    )
    return [
        _ssh(host, f"mkdir -m 0700 {staging}"),
        _ssh(host, unpack),
        ["scp", *SSH_OPTIONS, "--", str(deb), f"{host}:{remote_deb}"],
        _ssh(host, f"sudo apt-get install -y --reinstall {shlex.quote(remote_deb)} && rm -rf {staging}"),
        _ssh(host, "sudo systemctl enable oivis-appliance.service && sudo systemctl restart oivis-appliance.service"),
        _ssh(host, DOCTOR),
    ]


def install(host: str, deb: Path, bundle: Path, dry_run: bool = False) -> int:
    commands = install_commands(host, deb, bundle)
    tar = ["tar", "-C", str(bundle), "-cf", "-", "appliance.toml", "tls", "keys"]
    for index, command in enumerate(commands):
        piped = index == 1
        print(("$ " + shlex.join(tar) + " | " if piped else "$ ") + shlex.join(command), flush=True)
        if dry_run:
            continue
        try:
            if piped:
                archive = subprocess.run(tar, stdout=subprocess.PIPE, check=True).stdout
                result = subprocess.run(command, input=archive)
            else:
                result = subprocess.run(command)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ApplianceError(f"cannot run {command[0]}: {exc} (apt-get install openssh-client tar)") from exc
        if result.returncode != 0:
            if command[-1] == DOCTOR:
                print("doctor found problems on the board (above); fix them and run `make doctor HOST=...`")
            else:
                print(f"step failed (exit {result.returncode}); nothing after it was run", file=sys.stderr)
            return result.returncode or 1
    return 0


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.remote", description=__doc__.split("\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    inst = steps.add_parser("install", help="identity bundle + package onto the board, enable, doctor")
    inst.add_argument("--host", required=True)
    inst.add_argument("--deb", type=Path, required=True)
    inst.add_argument("--bundle", type=Path, required=True)
    inst.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    doctor = steps.add_parser("doctor", help="run doctor on the board")
    doctor.add_argument("--host", required=True)
    doctor.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.step == "install":
        return install(args.host, args.deb, args.bundle, args.dry_run)
    command = _ssh(check_host(args.host), DOCTOR)
    print("$ " + shlex.join(command), flush=True)
    return 0 if args.dry_run else subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
