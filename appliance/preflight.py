"""The one validation of a configuration: every check ``run`` makes before it starts anything.

``config check``, ``run`` (and so the service at start) and the fleet's
``set-config`` all call ``require``: a configuration that passes here does not
fail at start for a reason that could have been seen in it.  Rules about
values alone (ranges, a ramp whose ends are ordered, a device id) are in the
model itself (``appliance.config``); what needs this machine is here: the
inference backend exists, the source names a camera or a file that exists,
the content bundle loads, the operators' keys parse, the fleet's TLS files
load.  Each problem names its key (and its line, when the file has one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2

from appliance.config import DEFAULT_CONFIG_PATH, Config, load_config
from appliance.content import VIDEO_SUFFIXES, load_bundle
from appliance.errors import ApplianceError, one_line
from appliance.media import open_video, read_image
from appliance.tomlfile import InvalidFile, Location, key_lines, key_path, line_of

Problem = tuple[Location, str]


def _backend(config: Config) -> str | None:
    from appliance.inference.backend import Registry

    return Registry.discover().refusal(config.inference.backend)


def _source(config: Config) -> str | None:
    from appliance.sources.open import parse_source

    spec = parse_source(config.source.uri)
    if spec.kind in ("video", "image") and not Path(spec.value).is_file():
        return f"{spec.value} does not exist"
    return None


def _content(config: Config) -> str | None:
    """The bundle loads and every medium it names decodes within the limits (a video: its header and
    first frame; the whole file is the campaign check's job, too slow for every start)."""
    bundle = load_bundle(config.kiosk.content)
    for name in bundle.media():
        path = bundle.directory / name
        if path.suffix.lower() in VIDEO_SUFFIXES:
            capture, _ = open_video(path, config.media)
            capture.release()
        else:
            read_image(path, cv2.IMREAD_UNCHANGED, config.media)
    return None


def _trusted_keys(config: Config) -> str | None:
    from appliance.campaigns.signing import load_trusted_keys

    if config.fleet.broker:
        load_trusted_keys(config.campaigns.trusted_keys)
    return None


def _broker(config: Config) -> str | None:
    from appliance.fleet.link import parse_broker

    if config.fleet.broker:
        parse_broker(config.fleet.broker)
    return None


def _tls(config: Config) -> str | None:
    from appliance.fleet.connect_failure import TlsFiles

    fleet = config.fleet
    if fleet.broker and fleet.tls:
        TlsFiles(fleet.ca_file, fleet.cert_file, fleet.key_file).context()
    return None


#: Each check with the key it is about.
CHECKS: tuple[tuple[Location, Callable[[Config], str | None]], ...] = (
    (("inference", "backend"), _backend),
    (("source", "uri"), _source),
    (("kiosk", "content"), _content),
    (("campaigns", "trusted_keys"), _trusted_keys),
    (("fleet", "broker"), _broker),
    (("fleet", "cert_file"), _tls),
)


def problems(config: Config) -> list[Problem]:
    """Every check's problem, with the key it is about; empty when ``run`` would start."""
    found: list[Problem] = []
    for location, check in CHECKS:
        try:
            problem = check(config)
        except ApplianceError as exc:
            problem = one_line(exc)
        if problem:
            found.append((location, problem.removeprefix(f"{key_path(location)}: ")))
    return found + _lane_backends(config)


def _lane_backends(config: Config) -> list[Problem]:
    """Each ``[inference.models.<name>] backend`` that does not exist here, at its own key."""
    lanes = [(name, lane.backend) for name, lane in config.inference.models.items() if lane.backend]
    if not lanes:
        return []
    from appliance.inference.backend import Registry

    registry = Registry.discover()
    return [(("inference", "models", name, "backend"), refusal) for name, backend in lanes
            if (refusal := registry.refusal(backend))]


def require(config: Config, path: Path | None) -> Config:
    """``config`` when nothing would stop ``run``; InvalidFile listing each problem (key and line) otherwise.

    ``path`` is the file ``config`` came from (None: the defaults and the command line only)."""
    found = problems(config)
    if not found:
        return config
    try:
        lines = key_lines(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
    except (OSError, UnicodeDecodeError):
        lines = {}
    messages = []
    for location, problem in found:
        line = line_of(lines, location)
        messages.append(f"{key_path(location)}: {problem}" + (f" (line {line})" if line else ""))
    raise InvalidFile(path if path is not None else "the configuration", messages)


def run_config(path: Path | None, source: str | None = None, backend: str | None = None) -> Config:
    """The configuration ``run`` starts with: the file (``path``, else the device's own when it has one, else
    the defaults), the command line's ``source`` and ``backend`` over it, and every check above passed."""
    path = path or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None)
    config = load_config(path)
    if source:
        config = config.model_copy(update={"source": config.source.model_copy(update={"uri": source})})
    if backend:
        config = config.model_copy(update={"inference": config.inference.model_copy(update={"backend": backend})})
    return require(config, path)
