"""The console's settings: a TOML file (``--config``), each key overridable on the command line.

Invariants: every path is absolute once loaded (relative ones are taken from the file's directory, or the
working directory for command-line values); a key that does not exist or holds a wrong value is refused with
its name and line (``appliance.tomlfile.validated``); nothing here is secret — the signing key, the TLS key and
the storage's credentials are named by path (or by systemd credential), never held in the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.config import TopicPrefix
from appliance.fleet.topics import DEFAULT_PREFIX
from appliance.tomlfile import read_toml, validated

#: Where systemd puts credentials (``LoadCredential=`` / ``LoadCredentialEncrypted=``) for the unit's process.
CREDENTIALS = "CREDENTIALS_DIRECTORY"
SIGNING_KEY_CREDENTIAL = "operator.key"
#: In the data directory, on a database without users: the first admin's name and password (mode 0600).
FIRST_RUN_FILE = "first-run-password"


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    db: str = Field("postgresql://postgres@127.0.0.1:5432/oivis", description="the fleet's PostgreSQL database "
                    "(the one ingest fills)")
    listen: str = Field("127.0.0.1:8600", description="host:port the web server binds (behind a reverse proxy in "
                        "production)")
    data_dir: Path = Field(Path("/var/lib/oivis-console"), description="uploaded campaigns, first-run password")
    public_url: str = Field("http://127.0.0.1:8600", description="the console's address as phones and screens reach "
                            "it: share links /p/<id> and campaign assets")
    proxy: bool = Field(False, description="behind a reverse proxy on this host: trust its X-Forwarded-For/-Proto")
    timezone: str = Field("UTC", description="the time zone of users who have not chosen one (IANA name)")
    broker: str | None = Field(None, description="host:port of the fleet's broker (the operators' listener)")
    tls: bool = Field(True, description="mutual TLS to the broker; false only for development brokers")
    ca_file: Path = Field(Path("/etc/oivis-console/tls/ca.pem"), description="CA of the broker's certificate")
    cert_file: Path = Field(Path("/etc/oivis-console/tls/console.pem"), description="the console's certificate "
                            "(operators' CA)")
    key_file: Path = Field(Path("/etc/oivis-console/tls/console.key"), description="the console's TLS key")
    topic_prefix: TopicPrefix = Field(DEFAULT_PREFIX, description="the screens' [fleet] topic_prefix")
    signing_key: Path | None = Field(None, description="the operator's Ed25519 campaign key (keygen's operator.key, "
                                     "mode 0600); default: systemd's credential operator.key, else "
                                     "DATA_DIR/operator.key")
    share_endpoint: str | None = Field(None, description="the photo storage's S3 endpoint URL (None: AWS)")
    share_bucket: str | None = Field(None, description="the bucket the photo booth uploads to (share pages off "
                                     "when unset)")
    share_region: str = Field("us-east-1", description="the bucket's region")
    share_credentials: Path | None = Field(None, description="directory with s3-access-key and s3-secret-key "
                                           "(the booth's format; read-only rights on photos/ suffice)")
    share_link_expiry_h: int = Field(24, ge=1, le=168, description="hours a share link shows a photo whose object "
                                     "carries no expiry metadata (the booths' [share] link_expiry_h)")
    share_wait_s: float = Field(600.0, ge=0, le=86400, description="how long a share link whose photo no event has "
                                "named yet says 'on its way' (refreshing) before it is 'not found'")
    share_rate_per_min: float = Field(60.0, gt=0, description="share page requests a client address may make per "
                                      "minute, on average (429 beyond)")
    share_burst: int = Field(30, ge=1, description="share page requests a client address may make at once")
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="how long a login lasts without use")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("timezone")
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris)") from exc
        return value

    @field_validator("listen", "broker")
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} is not host:port")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def signing_key_path(self) -> Path:
        """Where the campaign key is read: the setting, else systemd's credential, else the data directory."""
        if self.signing_key is not None:
            return self.signing_key
        credentials = os.environ.get(CREDENTIALS)
        if credentials and (Path(credentials) / SIGNING_KEY_CREDENTIAL).exists():
            return Path(credentials) / SIGNING_KEY_CREDENTIAL
        return self.data_dir / "operator.key"


PATHS = ("data_dir", "ca_file", "cert_file", "key_file", "signing_key", "share_credentials")


def load(path: Path | None, overrides: dict[str, object]) -> ConsoleSettings:
    """The file's settings (none: the defaults) with ``overrides`` (None values ignored) on top."""
    data: dict[str, object] = {}
    base = Path.cwd()
    if path is not None:
        data = read_toml(path)
        base = path.resolve().parent
        for key in PATHS:
            if isinstance(data.get(key), str):
                data[key] = str(base / Path(str(data[key])).expanduser())
    for key, value in overrides.items():
        if value is not None:
            data[key] = str(Path.cwd() / Path(str(value))) if key in PATHS else value
    return validated(ConsoleSettings, data, path or Path("(command line)"))
