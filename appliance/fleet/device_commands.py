"""The device's commands (screenshot, reload, reboot, set-config) over what the kiosk provides.

Each is a ``Command`` for the CommandHandler: arguments in, Outcome out.  What
touches the device (the screen, the content, systemd, the service) is injected,
so the commands are the same on a board and in a test that watches the argv.
"""

from __future__ import annotations

import base64
import logging
import subprocess
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import ApplianceError
from appliance.fleet import screenshot as shots
from appliance.fleet.commands import Command, Outcome
from appliance.fleet.setconfig import apply_settings

log = logging.getLogger(__name__)

REBOOT = ["systemctl", "reboot"]

Runner = Callable[[Sequence[str]], None]


def run_checked(argv: Sequence[str]) -> None:
    """Run ``argv``; ApplianceError with its own words when it fails."""
    try:
        subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        raise ApplianceError(f"{' '.join(argv)} exited with {exc.returncode}: "
                             f"{(exc.stderr or exc.stdout).strip() or 'no message'}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ApplianceError(f"{' '.join(argv)} could not run: {exc}") from exc


def device_commands(screen: Callable[[], np.ndarray], reload: Callable[[], None], restart: Callable[[], None],
                    config_path: Path, rollback: Callable[[], int], run: Runner = run_checked) -> dict[str, Command]:
    """The commands of the contract.

    ``screen()`` returns a copy of what the display shows (BGR uint8, safe to call from another
    thread); ``reload()`` re-reads campaigns and content; ``restart()`` restarts the service so a
    new configuration applies; ``config_path`` is the file the service loads; ``rollback()`` makes
    the previous campaign current and pins it (its version; ApplianceError when it cannot);
    ``run(argv)`` runs a system command (``systemctl reboot``).
    """
    return {
        "screenshot": partial(screenshot, screen),
        "reload": partial(reload_content, reload),
        "reboot": partial(reboot, run),
        "set-config": partial(set_config, config_path, restart),
        "rollback": partial(rollback_campaign, rollback),
    }


def screenshot(screen: Callable[[], np.ndarray], arguments: dict[str, Any]) -> Outcome:
    width = arguments.get("width", shots.DEFAULT_WIDTH)
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= shots.MAX_WIDTH:
        raise ApplianceError(f"width {width!r}: a whole number of pixels, 1 to {shots.MAX_WIDTH}")
    url = arguments.get("upload_url")
    frame = screen()
    if url is None:
        png = shots.encode_within(frame, width)
        return Outcome(fields={"width": png.width, "height": png.height, "bytes": len(png.data),
                               "png": base64.b64encode(png.data).decode("ascii")})
    if not isinstance(url, str):
        raise ApplianceError(f"upload_url {url!r} is not a URL")
    png = shots.encode(frame, width)
    status = shots.upload(url, png, str(arguments.get("upload_method", "PUT")).upper())
    return Outcome(fields={"width": png.width, "height": png.height, "bytes": len(png.data),
                           "url": shots.shown(url), "http_status": status})


def reload_content(reload: Callable[[], None], arguments: dict[str, Any]) -> Outcome:
    reload()
    return Outcome()


def rollback_campaign(rollback: Callable[[], int], arguments: dict[str, Any]) -> Outcome:
    """The previous campaign becomes current and stays, until a newer version is pushed (see campaigns.manager)."""
    return Outcome(fields={"version": rollback()})


def reboot(run: Runner, arguments: dict[str, Any]) -> Outcome:
    """Answered first: the reboot starts once the broker has the reply (or it timed out)."""
    return Outcome(fields={"rebooting": True}, after_reply=lambda: run(REBOOT))


def set_config(path: Path, restart: Callable[[], None], arguments: dict[str, Any]) -> Outcome:
    changed = apply_settings(path, arguments.get("set"))
    if not changed:
        return Outcome(fields={"changed": [], "restart_required": False})
    log.info("configuration %s changed remotely: %s; the service restarts to apply it", path, ", ".join(changed))
    return Outcome(fields={"changed": changed, "restart_required": True}, after_reply=restart)
