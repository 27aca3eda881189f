"""The device's storage keys: systemd credentials, never the configuration file.

Lookup, per key file (``s3-access-key``, ``s3-secret-key``): ``$CREDENTIALS_DIRECTORY/<name>``
when the service was started with it (``LoadCredential=s3-access-key:/etc/oivis/s3/access-key``),
else ``<credentials_dir>/<name>`` from ``[share]`` (development, tests, root running ``config check``).

Invariants: a key's value never appears in an error, a log line or a ``repr``; errors name only the
file that is missing or empty and where it was looked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ApplianceError

ACCESS_KEY = "s3-access-key"
SECRET_KEY = "s3-secret-key"


@dataclass(frozen=True)
class Keys:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)


def _key(name: str, places: list[Path]) -> str:
    for directory in places:
        path = directory / name
        if path.is_file():
            try:
                value = path.read_text().strip()
            except OSError as exc:
                raise ApplianceError(f"cannot read the storage credential {path}: {exc.strerror}") from exc
            if not value:
                raise ApplianceError(f"the storage credential {path} is empty")
            return value
    where = " or ".join(str(directory) for directory in places) or "nowhere ($CREDENTIALS_DIRECTORY unset and "\
        "[share] credentials_dir absent)"
    raise ApplianceError(f"no storage credential {name!r}: looked in {where} (pass it with systemd "
                         f"LoadCredential={name}:PATH, or set [share] credentials_dir for development)")


def load_keys(credentials_dir: Path | None, environ: Mapping[str, str]) -> Keys:
    """Both keys, each from the first place that has it (see the module's docstring)."""
    places = [Path(directory) for directory in (environ.get("CREDENTIALS_DIRECTORY"), credentials_dir) if directory]
    return Keys(_key(ACCESS_KEY, places), _key(SECRET_KEY, places))
