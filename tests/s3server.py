"""A real S3 server for the tests: SeaweedFS's ``weed server -s3`` on 127.0.0.1, in a temporary directory.

``S3Server(dir).start()`` runs master, volume, filer and S3 gateway in one process on free ports,
with identities from an ``-s3.config`` JSON: an admin (every action) and one identity per device
whose actions are limited to ``<bucket>/photos/<device_id>/*`` (read, write, tagging) — the
prefix-scoped credentials the appliance gets.  ``create_bucket`` makes the bucket as the admin.

Invariants: every port is picked free on 127.0.0.1 and kept across ``stop``/``start``, so a
stopped server comes back at the same endpoint with the same data; ``stop`` never waits more than a
few seconds (weed ignores SIGTERM for over 30 s: SIGTERM, a short wait, then SIGKILL); the
process's output goes to ``weed.log`` in the directory, quoted when it does not come up.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

WEED = Path(sys.executable).with_name("weed")
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str

    def write(self, directory: Path) -> Path:
        """The pair as the appliance reads it: ``s3-access-key`` and ``s3-secret-key`` files."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "s3-access-key").write_text(self.access_key + "\n")
        (directory / "s3-secret-key").write_text(self.secret_key + "\n")
        return directory


def _new_keys() -> Keys:
    return Keys("AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class S3Server:
    def __init__(self, directory: Path, bucket: str = "oivis-photos", devices: tuple[str, ...] = ("dev-1",)) -> None:
        self.directory = directory
        self.bucket = bucket
        self.admin = _new_keys()
        self.devices = {device: _new_keys() for device in devices}
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def _identities(self) -> dict[str, object]:
        admin = {"name": "admin", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                 "credentials": [{"accessKey": self.admin.access_key, "secretKey": self.admin.secret_key}]}
        devices = [{"name": device, "credentials": [{"accessKey": keys.access_key, "secretKey": keys.secret_key}],
                    "actions": [f"{action}:{self.bucket}/photos/{device}/*" for action in ("Read", "Write", "Tagging")]}
                   for device, keys in self.devices.items()]
        return {"identities": [admin, *devices]}

    def start(self) -> S3Server:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        config.write_text(json.dumps(self._identities(), indent=2))
        p = self.ports
        command = [
            str(WEED), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64", "-volume.max=4", "-volume.preStopSeconds=0",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false", "-s3.iam=false",
        ]
        log = (self.directory / "weed.log").open("ab")
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"weed exited with {self._process.returncode}:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"weed's S3 gateway did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        """The gateway answers with its filer and a volume behind it (an admin can list the buckets)."""
        try:
            self.admin_client().list_buckets()
            return True
        except Exception:  # noqa: BLE001 - not up yet, whatever the reason
            return False

    def admin_client(self):  # noqa: ANN201 - a boto3 client
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=self.admin.access_key, aws_secret_access_key=self.admin.secret_key,
                            config=Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 1}))

    def create_bucket(self) -> None:
        """The bucket, created by the admin (retried while the volume server is still joining)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.admin_client()
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="ready", Body=b"ready")
                client.delete_object(Bucket=self.bucket, Key="ready")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10.0)

    def log_tail(self, lines: int = 40) -> str:
        path = self.directory / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a plain GET, as a phone scanning the QR would make it."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
