"""`python -m appliance doctor`: the device's health, one row per check, with the fix for each failure.

pibooth's users lose days to "camera not detected" and "video system not
initialized"; this names such problems on the spot.  A check that does not
apply here (no NPU on an x86 machine, no fleet configured, no systemd) is a
``skip`` with its reason and does not fail the run; the exit status is 0 only
when nothing failed.  Each check is a small function returning a ``Check``,
so a broken probe fails its own row, never the whole table.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from appliance.campaigns.clock import system_clock_synced
from appliance.config import Config, load_config
from appliance.errors import ApplianceError
from appliance.experience.api import API_VERSION, ATTRACT, MENU
from appliance.experience.registry import Registry, installed
from appliance.fleet import sysinfo
from appliance.fleet.link import parse_broker
from appliance.inference.backend import Registry as BackendRegistry
from appliance.inference.soc import core_mask_on, has_rknn_npu, read_soc
from appliance.perception.profile import choose as choose_profile

PASS, FAIL, SKIP = "pass", "FAIL", "skip"
NPU_VERSION = Path("/sys/kernel/debug/rknpu/version")
LIBRKNNRT = (Path("/usr/lib/librknnrt.so"), Path("/usr/lib/aarch64-linux-gnu/librknnrt.so"),
             Path("/usr/local/lib/librknnrt.so"))
MIN_FREE_BYTES = 1 << 30
BROKER_TIMEOUT_S = 5.0
DISPLAY_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_camera(config: Config) -> Check:
    kind, _, rest = config.source.uri.partition(":")
    if kind not in ("camera", "auto"):
        return Check("camera", SKIP, f"the source is {config.source.uri}, not a camera")
    index = int(rest or 0) if kind == "camera" and rest.isdigit() else 0
    node = Path(f"/dev/video{index}")
    if not node.exists():
        found = ", ".join(sorted(str(path) for path in Path("/dev").glob("video*"))) or "none"
        return Check("camera", FAIL, f"no {node} (video devices: {found})",
                     "plug the USB camera in (a powered port; `lsusb`, `dmesg | tail`), or set [source] uri")
    import cv2

    capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
    try:
        if not capture.isOpened():
            return Check("camera", FAIL, f"{node} exists but cannot be opened",
                         "the service may hold it (stop it first: systemctl stop oivis-appliance); otherwise "
                         "check permissions: the user must be in group 'video'")
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        return Check("camera", FAIL, f"{node} opened but delivered no frame",
                     "replug the camera; try another USB port or cable; `v4l2-ctl -d /dev/video0 --all`")
    return Check("camera", PASS, f"{node}: {image.shape[1]}x{image.shape[0]} frame read")


def display_driver(environ: Mapping[str, str]) -> str | None:
    """The SDL driver the kiosk would use here, or None on a machine without any display."""
    if environ.get("SDL_VIDEODRIVER"):
        return environ["SDL_VIDEODRIVER"]
    if any(Path("/dev/dri").glob("card*")):
        return "kmsdrm"
    if environ.get("WAYLAND_DISPLAY"):
        return "wayland"
    if environ.get("DISPLAY"):
        return "x11"
    return None


def check_display(environ: Mapping[str, str] = os.environ) -> Check:
    driver = display_driver(environ)
    if driver is None or driver in ("dummy", "offscreen"):
        return Check("display", SKIP, "headless: no /dev/dri card and no DISPLAY (the kiosk runs with --headless)")
    probe = ("import pygame; pygame.display.init(); "
             "print(pygame.display.get_driver(), *pygame.display.get_desktop_sizes()[0])")
    env = {**environ, "SDL_VIDEODRIVER": driver, "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    try:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                                timeout=DISPLAY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Check("display", FAIL, f"SDL {driver} did not initialise within {DISPLAY_TIMEOUT_S:.0f} s",
                     "check the HDMI cable and that the screen is on")
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("display", FAIL, f"SDL {driver}: {last}",
                     "kmsdrm: the user must be in groups 'video' and 'render', and nothing else may hold the "
                     "screen (a desktop: systemctl disable --now gdm lightdm; the service itself: stop it first)")
    name, width, height = result.stdout.split()
    return Check("display", PASS, f"SDL {name}, {width}x{height}")


def check_npu(soc: str | None, version_file: Path = NPU_VERSION) -> Check:
    if not has_rknn_npu(soc):
        return Check("NPU driver", SKIP, f"no RKNN NPU on this machine ({soc or 'not a Rockchip board'})")
    try:
        text = version_file.read_text().strip()
    except PermissionError:
        return Check("NPU driver", FAIL, f"{version_file} is not readable", "run doctor as root (sudo)")
    except OSError:
        return Check("NPU driver", FAIL, f"no {version_file}",
                     "use the vendor kernel with the rknpu driver; mount debugfs (mount -t debugfs none "
                     "/sys/kernel/debug)")
    return Check("NPU driver", PASS, text)


def librknnrt_version(paths: tuple[Path, ...] = LIBRKNNRT) -> tuple[Path, str] | None:
    """The runtime's version, from the string it embeds (``librknnrt version: 2.5.0 (...)``)."""
    for path in paths:
        if path.is_file():
            found = re.search(rb"librknnrt version: ([0-9]+(?:\.[0-9]+)+)", path.read_bytes())
            return path, found.group(1).decode() if found else "unknown"
    return None


def models_toolkit_version(rknn_dir: Path, soc: str) -> str | None:
    """The toolkit version the board's .rknn files were built with (they record ``compiler version: X``)."""
    versions = set()
    for model in rknn_dir.glob(f"*-{soc}.rknn"):
        found = re.search(rb"compiler version: ([0-9]+(?:\.[0-9]+)+)", model.read_bytes())
        if found:
            versions.add(found.group(1).decode())
    return max(versions, key=_version) if versions else None


def check_runtime(soc: str | None, rknn_dir: Path, paths: tuple[Path, ...] = LIBRKNNRT) -> Check:
    if not has_rknn_npu(soc):
        return Check("librknnrt", SKIP, "no RKNN NPU on this machine")
    wanted = models_toolkit_version(rknn_dir, soc)
    if wanted is None:
        return Check("librknnrt", FAIL, f"no .rknn models for {soc} in {rknn_dir}",
                     f"build them (make rknn-models SOC={soc}) and reinstall the package; until then the CPU runs them")
    found = librknnrt_version(paths)
    if found is None:
        return Check("librknnrt", FAIL, "librknnrt.so not found",
                     f"install Rockchip's librknnrt {wanted} or newer to /usr/lib (rknn-toolkit2 release, runtime/)")
    path, have = found
    if have == "unknown" or _version(have) < _version(wanted):
        return Check("librknnrt", FAIL, f"{path} is {have}, the models were built with toolkit {wanted}",
                     f"install librknnrt {wanted} or newer (an older one fails with 'Invalid RKNN model version')")
    return Check("librknnrt", PASS, f"{have} (models built with {wanted})")


def _by_key(config: Config, setting: str) -> list[tuple[str, str]]:
    """``setting`` of ``[inference]`` and of each lane that sets it, each with the key it stands under."""
    lanes = ((f"[inference.models.{model}]", getattr(lane, setting)) for model, lane in config.inference.models.items())
    return [("[inference]", getattr(config.inference, setting)), *((key, value) for key, value in lanes if value)]


def check_npu_backend(config: Config, soc: str | None) -> Check:
    """``rknn`` asked for (for all models or one lane) on a board without an RKNN NPU (RK3399, x86): every
    model would fall back or fail to load."""
    asked = [key for key, backend in _by_key(config, "backend") if backend == "rknn"]
    if has_rknn_npu(soc):
        for key, mask in _by_key(config, "core_mask"):
            try:
                core_mask_on(soc, mask)
            except ApplianceError as exc:
                return Check("NPU backend", FAIL, f"{key} {exc}", "give each model one of the board's cores "
                             '(or core_mask = "auto")')
    if not asked:
        return Check("NPU backend", SKIP, f"backend {config.inference.backend}: no model asks for the NPU")
    if not has_rknn_npu(soc):
        return Check("NPU backend", FAIL, f"{', '.join(asked)} backend = \"rknn\" on {soc or 'a machine'} "
                     "without an RKNN NPU", 'set backend = "auto" (or "litert"): an RK3399 runs the models on '
                     "its CPU cores")
    return Check("NPU backend", PASS, f"rknn on {soc} for {', '.join(asked)}")


def check_profile(config: Config, soc: str | None) -> Check:
    """What perception this board will run (``[inference] profile``, ``auto`` decided by its SoC)."""
    return Check("perception", PASS, choose_profile(config.inference.profile, soc).describe())


def check_npu_load(soc: str | None, path: Path = sysinfo.NPU_LOAD) -> Check:
    """Each NPU core's load, where the driver shows it (debugfs, root)."""
    if not has_rknn_npu(soc):
        return Check("NPU load", SKIP, "no RKNN NPU on this machine")
    cores = sysinfo.npu_load(path)
    if cores is None:
        return Check("NPU load", SKIP, f"{path} not readable (run doctor as root with debugfs mounted to see it)")
    return Check("NPU load", PASS, ", ".join(f"{core} {percent} %" for core, percent in sorted(cores.items())))


#: Rockchip SoCs throttle their clocks from about this temperature.
THROTTLE_C = 85.0


def check_thermal(root: Path = sysinfo.THERMAL) -> Check:
    """The hottest thermal zone against the throttling point: a hot enclosure slows the screen before it fails."""
    zones = sysinfo.temperatures_c(root)
    if not zones:
        return Check("thermal", SKIP, f"no thermal zones in {root}")
    hottest = max(zones, key=zones.__getitem__)
    readings = ", ".join(f"{zone} {celsius:.0f} °C" for zone, celsius in zones.items())
    if zones[hottest] >= THROTTLE_C:
        return Check("thermal", FAIL, f"{hottest} at {zones[hottest]:.0f} °C, the SoC throttles ({readings})",
                     "cool the enclosure: a heatsink on the SoC, vents or a fan; keep the screen out of direct sun")
    return Check("thermal", PASS, readings)


#: The CPU backends every board needs (.tflite models through LiteRT, .onnx ones through onnxruntime).
CPU_BACKENDS = ("litert", "onnx")


def check_backends(registry: BackendRegistry) -> Check:
    """The inference backends found, with their runtimes' versions; a CPU one missing fails (the NPU's is optional)."""
    missing = [name for name in CPU_BACKENDS if name not in registry.plugins]
    if missing:
        reasons = "; ".join(f"{name}: {registry.unavailable.get(name, 'not installed')}" for name in missing)
        return Check("backends", FAIL, reasons, "reinstall the appliance (its venv lacks ai-edge-litert or onnxruntime)")
    return Check("backends", PASS, registry.describe())


def check_models() -> Check:
    from appliance.inference.fetch import missing_or_corrupt
    from appliance.inference.manifest import Manifest

    manifest = Manifest.load()
    bad = missing_or_corrupt(manifest)
    if bad:
        return Check("models", FAIL, f"missing or corrupt: {', '.join(bad)}",
                     "reinstall the package (apt-get install --reinstall oivis-appliance); on a checkout: make models")
    return Check("models", PASS, f"{len(manifest.models)} verified against the manifest")


def check_broker(config: Config, timeout: float = BROKER_TIMEOUT_S) -> Check:
    """A real MQTT connection with the device's own certificate: the broker must answer CONNACK success."""
    fleet = config.fleet
    if not fleet.broker:
        return Check("broker", SKIP, "fleet not configured ([fleet] broker is absent)")
    import paho.mqtt.client as mqtt

    host, port = parse_broker(fleet.broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{config.device_id}-doctor",
                         protocol=mqtt.MQTTv5)
    answer: list = []
    client.on_connect = lambda _client, _userdata, _flags, reason, _properties: answer.append(reason)
    try:
        if fleet.tls:
            for path in (fleet.ca_file, fleet.cert_file, fleet.key_file):
                if not os.access(path, os.R_OK):
                    return Check("broker", FAIL, f"cannot read {path}",
                                 "install the identity bundle (make install) and run doctor as root (sudo)")
            client.tls_set(ca_certs=str(fleet.ca_file), certfile=str(fleet.cert_file), keyfile=str(fleet.key_file))
        client.connect(host, port, keepalive=10)
        deadline = time.monotonic() + timeout
        while not answer and time.monotonic() < deadline:
            if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                return Check("broker", FAIL, f"{fleet.broker} closed the connection before answering",
                             "the broker refused this device's certificate: is it signed by the fleet CA, "
                             "and not expired? (openssl x509 -in /etc/oivis/tls/device.pem -noout -dates)")
    except ssl.SSLCertVerificationError as exc:
        return Check("broker", FAIL, f"the broker's certificate is not trusted: {exc.verify_message}",
                     f"ca_file ({fleet.ca_file}) must be the CA that signed the broker; the clock must be right")
    except (ssl.SSLError, ConnectionResetError) as exc:
        return Check("broker", FAIL, f"TLS with {fleet.broker} failed: {exc}",
                     "check the device certificate and key (make provision) and the broker's TLS port")
    except (OSError, ValueError) as exc:
        return Check("broker", FAIL, f"{fleet.broker} unreachable: {exc}",
                     "check the network, DNS and that the firewall lets this port out")
    finally:
        client.disconnect()
    if not answer:
        return Check("broker", FAIL, f"no answer from {fleet.broker} within {timeout:.0f} s",
                     "the port may not be an MQTT broker; check BROKER in the configuration")
    if answer[0].is_failure:
        return Check("broker", FAIL, f"{fleet.broker} refused the connection: {answer[0]}",
                     "the broker's ACL or identity mapping does not accept this device id")
    return Check("broker", PASS, f"{fleet.broker}: MQTT over {'TLS' if fleet.tls else 'plain TCP'} accepted")


def check_disk(state_dir: Path, minimum: int = MIN_FREE_BYTES) -> Check:
    probe = state_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / (1 << 30):.1f} GiB free for {state_dir}"
    if free < minimum:
        return Check("disk", FAIL, detail, f"free space (at least {minimum / (1 << 30):.0f} GiB): old photos, "
                     "journal (journalctl --vacuum-size=100M), apt caches (apt-get clean)")
    return Check("disk", PASS, detail)


def check_clock(synced: Callable[[], bool] = system_clock_synced) -> Check:
    """The same test the campaign scheduler trusts (timesyncd's flag, else the kernel's clock status)."""
    if synced():
        return Check("clock", PASS, "synchronised (NTP)")
    return Check("clock", FAIL, "not synchronised",
                 "enable time sync (timedatectl set-ntp true) and let NTP out (UDP 123): TLS and campaign "
                 "schedules need the right time")


def check_experiences(registry: Registry) -> Check:
    """The experience plug-ins installed, and any that were skipped with why (a campaign enabling one fails)."""
    names = ", ".join(registry.names()) or "none"
    if registry.skipped:
        skipped = "; ".join(f"{name}: {reason}" for name, reason in sorted(registry.skipped.items()))
        return Check("experiences", FAIL, f"{names}; skipped {skipped}",
                     "install a version of each skipped plug-in made for this appliance's experience API "
                     f"({API_VERSION}), or uninstall it (pip uninstall in the appliance's venv)")
    missing = [role for role in (ATTRACT, MENU) if role not in registry]
    if missing:
        return Check("experiences", FAIL, f"{names}: no {' and no '.join(missing)}",
                     "reinstall the appliance: its built-in experiences are missing")
    return Check("experiences", PASS, names)


def check_printer(config: Config) -> Check:
    """The photo booth's CUPS queue can print now, and the scheduler keeps no printed photo in its spool."""
    printing = config.printing
    if not printing.enabled:
        return Check("printer", SKIP, "printing off ([printing] enabled = false)")
    from appliance.printing.printer import Printer
    from appliance.printing.setup import Scheduler

    printer = Printer(printing.queue, printing.server)
    state = printer.state()
    queue = state.queue or printing.queue or "booth"
    server = f" --server {printing.server}" if printing.server else ""
    default = "" if printing.queue else " --default"
    setup = (f"python -m appliance.printing setup --queue {queue} --uri URI --driver MODEL "
             f"--media {printing.media}{server}{default} (python -m appliance.printing devices / drivers list them)")
    if state.problem:
        if state.unreachable:
            fix = "systemctl start cups" + (f" (or check [printing] server = {printing.server})" if server else "")
        elif not state.present:
            fix = setup
        elif state.stopped:
            fix = f"load paper / clear the jam, then cupsenable {queue}"
        elif not state.accepting:
            fix = f"cupsaccept {queue}"
        else:
            fix = f"see the printer's panel; lpstat -l -p {queue}"
        return Check("printer", FAIL, state.problem, fix)
    scheduler = Scheduler(printing.server)
    try:
        kept = scheduler.job_files_kept()
    except ApplianceError as exc:
        return Check("printer", FAIL, f"{queue} ready, but cupsd.conf cannot be read: {exc}",
                     "run doctor as root (sudo)")
    if kept is not None:
        return Check("printer", FAIL, f"{queue} ready, but CUPS keeps printed job files (PreserveJobFiles {kept}): "
                     "the photos stay in its spool", f"{setup}, or cupsctl PreserveJobFiles=No")
    media = printer.media_default() or "none"
    return Check("printer", PASS, f"{queue}: enabled and accepting jobs, media default {media}, "
                 "no job files kept")


def run_checks(config: Config) -> list[Check]:
    soc = read_soc()
    from appliance.inference.manifest import Manifest

    probes: list[tuple[str, Callable[[], Check]]] = [
        ("camera", lambda: check_camera(config)),
        ("display", check_display),
        ("NPU driver", lambda: check_npu(soc)),
        ("librknnrt", lambda: check_runtime(soc, Manifest.load().cache_dir / "rknn")),
        ("NPU backend", lambda: check_npu_backend(config, soc)),
        ("NPU load", lambda: check_npu_load(soc)),
        ("perception", lambda: check_profile(config, soc)),
        ("thermal", check_thermal),
        ("backends", lambda: check_backends(BackendRegistry.discover())),
        ("models", check_models),
        ("experiences", lambda: check_experiences(installed())),
        ("broker", lambda: check_broker(config)),
        ("disk", lambda: check_disk(config.paths.state_dir)),
        ("clock", check_clock),
        ("printer", lambda: check_printer(config)),
    ]
    results = []
    for name, probe in probes:
        try:
            results.append(probe())
        except Exception as exc:  # noqa: BLE001 - a broken probe fails its own row, never the table
            results.append(Check(name, FAIL, f"the check itself failed: {exc!r}", "report this with the output"))
    return results


def format_table(results: list[Check]) -> str:
    width = max(len(check.name) for check in results)
    lines = [f"{check.name:<{width}}  {check.status:<4}  {check.detail}" for check in results]
    fixes = [f"  {check.name}: {check.fix}" for check in results if check.status == FAIL and check.fix]
    failed = sum(check.status == FAIL for check in results)
    lines.append("")
    lines.append(f"{failed} check(s) failed" if failed else "all checks passed")
    if fixes:
        lines += ["", "how to fix:", *fixes]
    return "\n".join(lines)


def run_doctor(config_path: Path | None, out: TextIO) -> int:
    try:
        config = load_config(config_path)
        results = [Check("config", PASS, str(config_path or "defaults (no /etc/oivis/appliance.toml)"))]
    except ApplianceError as exc:
        config = Config()
        results = [Check("config", FAIL, str(exc), "fix the file: python -m appliance config check FILE")]
    results += run_checks(config)
    print(format_table(results), file=out)
    return 1 if any(check.status == FAIL for check in results) else 0
