"""The device's photos in the operator's S3-compatible storage, through boto3.

Objects live at ``photos/<device_id>/<photo_id>.jpg``: the device's credentials need rights on that
prefix only.  Each carries S3 user metadata (``x-amz-meta-<name>`` headers, ``METADATA``), which the operator
console's share page reads with a HEAD and takes as authoritative: ``device`` (the uploading device's id),
``campaign`` and ``session`` (the labels the share queue carries; ``session`` absent when there is none),
values percent-encoded UTF-8 so that they stay ASCII on the wire, and ``expires``, when the short link stops
showing the photo: the upload's time plus ``[share] link_expiry_h``, ISO 8601 in UTC (``2025-05-01T14:03:00Z``).  A pre-signed GET is computed locally (no request), so it can be handed out before the
object exists.  The lifecycle rule (``photos/`` expires after the link's expiry rounded up to whole
days, S3 counts days) needs rights on the bucket: the operator sets it (``python -m appliance.share
lifecycle``), not the device.

Invariants: every failure of the storage leaves as a ``StorageError`` (a photo that cannot be read, as
a plain ``ApplianceError``) with one line that says what is wrong
(unreachable endpoint, refused credentials, missing bucket, denied prefix) and never carries a key,
a signature, a pre-signed URL or a photo id (a photo is named by its ``links.photo_tag``); the debug
lines of botocore (they print the Authorization header: the access key and request signatures) and of
urllib3's connection pool (it prints each request's path: the photo id) are never emitted, whatever the
appliance's log level;
requests are tried once with short timeouts (the upload queue retries, with backoff); boto3 is imported by
the first ``Store`` made (it is 20 MB of a process's memory: a kiosk that does not share never pays them).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from urllib.parse import quote, unquote

from appliance.digest import photo_tag
from appliance.errors import ApplianceError, one_line
from appliance.share.credentials import Keys

#: The lifecycle rule's ID: replaced in place, other rules of the bucket kept.
LIFECYCLE_RULE_ID = "oivis-photos-expiry"
PREFIX = "photos/"

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
#: The object's user metadata, each sent as ``x-amz-meta-<name>`` (see the module's docstring).
METADATA = ("device", "campaign", "session", "expires")
_EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class PhotoObject:
    """What a HEAD of a photo says: its metadata (None where the object has none: uploaded before it existed)."""

    device: str | None
    campaign: str | None
    session: str | None
    expires: datetime | None
    modified: datetime | None
    size: int


def object_metadata(device_id: str, labels: Mapping[str, str | None], expires: datetime) -> dict[str, str]:
    """The ``x-amz-meta-*`` values of a photo uploaded by ``device_id`` with the queue's ``labels``."""
    values = {"device": device_id, "campaign": labels.get("campaign") or "", "session": labels.get("session"),
              "expires": expires.astimezone(timezone.utc).strftime(_EXPIRES_FORMAT)}
    return {name: quote(str(value), safe=":") for name, value in values.items() if value is not None}


def read_metadata(metadata: Mapping[str, str], modified: datetime | None, size: int) -> PhotoObject:
    """The ``PhotoObject`` of a HEAD's ``Metadata`` (an unreadable expiry counts as none)."""
    values = {name: unquote(metadata[name]) if name in metadata else None for name in METADATA}
    try:
        expires = datetime.strptime(values["expires"] or "", _EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        expires = None
    return PhotoObject(values["device"], values["campaign"], values["session"], expires, modified, size)


class StorageError(ApplianceError):
    """The storage did not do what was asked; ``unreachable`` when it could not be reached at all."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def lifecycle_days(link_expiry_h: int) -> int:
    """Whole days an object must live for its link to work to the end."""
    return max(1, math.ceil(link_expiry_h / 24))


def _errors() -> ModuleType:
    """botocore's exceptions (imported when the first ``Store`` was made: only a store's calls raise them)."""
    import botocore.exceptions

    return botocore.exceptions


def _failed() -> tuple[type[Exception], ...]:
    """What a storage call raises: botocore's own errors and the storage's answers."""
    return _errors().BotoCoreError, _errors().ClientError


class Store:
    """``device_id``'s photos (the reading methods take another ``device_id`` for the console, which writes none);
    an upload's link expires ``link_expiry_h`` after it, by ``clock`` (wall-clock seconds)."""

    def __init__(self, endpoint_url: str | None, bucket: str, region: str, keys: Keys, device_id: str,
                 timeout_s: float = 5.0, link_expiry_h: int = 24, clock: Callable[[], float] = time.time) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.device_id = device_id
        self.link_expiry_s = link_expiry_h * 3600
        self._clock = clock
        for library in ("botocore", "boto3", "urllib3.connectionpool"):
            logging.getLogger(library).setLevel(max(logging.INFO, logging.getLogger(library).level))
        import boto3
        from botocore.config import Config as BotoConfig

        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
            config=BotoConfig(connect_timeout=timeout_s, read_timeout=2 * timeout_s, retries={"total_max_attempts": 1},
                              signature_version="s3v4", s3={"addressing_style": "path"}))

    def key(self, photo_id: str, device_id: str | None = None) -> str:
        return f"{PREFIX}{device_id or self.device_id}/{photo_id}.jpg"

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the links ``presigned_get`` makes (path-style: the endpoint's own)."""
        scheme, _, rest = self._client.meta.endpoint_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    def _failure(self, exc: Exception, doing: str) -> StorageError:
        where = self.endpoint_url or "AWS S3"
        if isinstance(exc, _errors().ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _CREDENTIAL_CODES:
                return StorageError(f"{doing}: the storage at {where} refused the credentials ({code}); "
                                    "check s3-access-key and s3-secret-key")
            if code == "NoSuchBucket":
                return StorageError(f"{doing}: bucket {self.bucket!r} does not exist at {where}")
            if code in {"AccessDenied", "403"}:
                return StorageError(f"{doing}: access denied to {self.bucket}/{PREFIX}{self.device_id}/ at {where} "
                                    "(are the credentials this device's?)")
            return StorageError(f"{doing}: the storage at {where} answered {code or status}")
        if isinstance(exc, _errors().EndpointConnectionError):
            return StorageError(f"{doing}: storage unreachable at {where}", unreachable=True)
        return StorageError(f"{doing}: storage at {where} failed: {one_line(type(exc).__name__)}", unreachable=True)

    def upload(self, photo_id: str, path: Path, labels: Mapping[str, str | None] | None = None) -> None:
        """``path`` as the photo, with its metadata (``labels``: the queue's campaign and session)."""
        expires = datetime.fromtimestamp(self._clock() + self.link_expiry_s, timezone.utc)
        try:
            with path.open("rb") as body:
                self._client.put_object(Bucket=self.bucket, Key=self.key(photo_id), Body=body,
                                        ContentType="image/jpeg", CacheControl="private, no-store",
                                        Metadata=object_metadata(self.device_id, labels or {}, expires))
        except _failed() as exc:
            raise self._failure(exc, f"upload of photo {photo_tag(photo_id)}") from None
        except OSError as exc:  # the device's side, not the storage's: no retry helps
            raise ApplianceError(f"upload of photo {photo_tag(photo_id)}: cannot read its file in {path.parent}: "
                                 f"{exc.strerror}") from None

    def presigned_get(self, photo_id: str, expiry_s: int, device_id: str | None = None,
                      download_as: str | None = None) -> str:
        """A link that GETs the photo until ``expiry_s`` from now (with ``download_as``, as an attachment of that
        file name); secret: never log it."""
        params = {"Bucket": self.bucket, "Key": self.key(photo_id, device_id)}
        if download_as is not None:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expiry_s)

    def head(self, photo_id: str, device_id: str | None = None) -> PhotoObject | None:
        """The photo's metadata; None when there is no such object (never uploaded, or deleted)."""
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=self.key(photo_id, device_id))
        except _errors().ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._failure(exc, f"photo {photo_tag(photo_id)}") from None
        except _errors().BotoCoreError as exc:
            raise self._failure(exc, f"photo {photo_tag(photo_id)}") from None
        return read_metadata(answer.get("Metadata", {}), answer.get("LastModified"), answer.get("ContentLength", 0))

    def probe(self) -> None:
        """Reachable, credentials accepted and the bucket there: a GET of a key that never exists in the
        device's prefix must answer NoSuchKey (a HEAD could not tell a missing bucket from a missing key)."""
        try:
            self._client.get_object(Bucket=self.bucket, Key=f"{PREFIX}{self.device_id}/.probe")
        except _errors().ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                return
            raise self._failure(exc, "storage check") from None
        except _errors().BotoCoreError as exc:
            raise self._failure(exc, "storage check") from None

    def ensure_lifecycle(self, link_expiry_h: int) -> tuple[dict, bool]:
        """The rule expiring ``photos/`` after ``lifecycle_days``, put unless already so; other rules kept.

        Returns the rule and whether it was changed.  Needs the bucket's lifecycle rights (the operator's)."""
        rule = {"ID": LIFECYCLE_RULE_ID, "Filter": {"Prefix": PREFIX}, "Status": "Enabled",
                "Expiration": {"Days": lifecycle_days(link_expiry_h)}}
        try:
            rules = self.lifecycle_rules()
            if rule in rules:
                return rule, False
            kept = [other for other in rules if other.get("ID") != LIFECYCLE_RULE_ID]
            self._client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                            LifecycleConfiguration={"Rules": [*kept, rule]})
        except _failed() as exc:
            raise self._failure(exc, "lifecycle rule") from None
        return rule, True

    def lifecycle_rules(self) -> list[dict]:
        try:
            return self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        except _errors().ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return []
            raise self._failure(exc, "lifecycle rule") from None
        except _errors().BotoCoreError as exc:
            raise self._failure(exc, "lifecycle rule") from None
