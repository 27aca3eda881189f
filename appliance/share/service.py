"""The photo desk's one door to sharing: submit a finished photo, get the link for the QR code at once.

Invariants: ``submit`` and ``announced`` touch neither the disk nor the network (the queue's worker
copies the photo and writes the records; a pre-signed GET is signed locally, before the object exists,
by botocore with the keys given: no request); a ticket's ``url`` is left out of its ``repr`` and never
logged; ``from_config`` gives None when sharing is off (the
``[share]`` switch, or no bucket), and raises ``ApplianceError`` with one line when it is on but
cannot work (no credentials, state directory not writable).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.share.credentials import load_keys
from appliance.share.links import check_photo_id, short_link
from appliance.share.queue import ShareQueue, queue_directory
from appliance.share.store import Store

if TYPE_CHECKING:
    from appliance.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShareTicket:
    photo_id: str
    url: str = field(repr=False)


class ShareService:
    def __init__(self, store: Store, queue: ShareQueue, link_expiry_h: int, short_link_base: str | None) -> None:
        self.store = store
        self.queue = queue
        self.link_expiry_s = link_expiry_h * 3600
        self.short_link_base = short_link_base

    @classmethod
    def from_config(cls, config: Config, device_id: str | None = None,
                    environ: Mapping[str, str] | None = None) -> ShareService | None:
        share = config.share
        if not share.enabled or not share.bucket:
            log.info("share: off (%s)", "[share] enabled = false" if not share.enabled else "no [share] bucket")
            return None
        keys = load_keys(share.credentials_dir, os.environ if environ is None else environ)
        store = Store(share.endpoint_url, share.bucket, share.region, keys, device_id or config.device_id,
                      link_expiry_h=share.link_expiry_h)
        queue = ShareQueue(queue_directory(config.paths.state_dir), store, share.retention_min * 60)
        return cls(store, queue.start(), share.link_expiry_h, share.short_link_base)

    def submit(self, photo_id: str, jpeg: Path, labels: dict[str, str | None] | None = None) -> ShareTicket:
        """Queue the upload of ``jpeg`` as ``photo_id`` (``links.new_photo_id()``); the link to show.

        The queue's worker copies ``jpeg`` in its next round: keep the file until ``done`` (or ``stop`` has
        returned); one gone or unreadable by then is dropped with a warning and never ``done``.  ``labels``
        come back with the upload from ``to_announce``, across a restart."""
        check_photo_id(photo_id)
        self.queue.submit(photo_id, jpeg, labels)
        if self.short_link_base:
            return ShareTicket(photo_id, short_link(self.short_link_base, photo_id))
        return ShareTicket(photo_id, self.store.presigned_get(photo_id, self.link_expiry_s))

    @property
    def online(self) -> bool:
        """The storage answered last time it was asked: a QR code may be offered."""
        return self.queue.online is True

    @property
    def problem(self) -> str | None:
        """Why the storage is not available, on one line (for the health report), else None."""
        return self.queue.problem

    def done(self, photo_id: str) -> bool:
        """Uploaded (the link works); known until the photo's retention has passed."""
        return self.queue.done(photo_id)

    def to_announce(self) -> list[tuple[str, dict[str, str | None]]]:
        """Uploads done and not yet announced (from before a restart too), with their labels."""
        return self.queue.to_announce()

    def announced(self, photo_id: str) -> None:
        """``photo_id`` from ``to_announce`` was announced: its record may go with the retention."""
        self.queue.announced(photo_id)

    def stop(self) -> None:
        """At shutdown: what was submitted is in the queue on disk when this returns (uploaded after the start)."""
        self.queue.stop()
