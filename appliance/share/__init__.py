"""Taking the photo home: upload to the operator's S3-compatible storage, a link, a QR code.

Public API for the core's photo desk::

    from appliance.share import ShareService, new_photo_id, photo_tag, purge_queue, qr_image

    share = ShareService.from_config(config, device_id)   # None when [share] is off or has no bucket;
                                                          # ApplianceError (one line) when it cannot work
    purge_queue(config.paths.state_dir)                   # sharing off: delete what an earlier run queued
    photo_id = new_photo_id()                             # random, URL- and file-safe
    if share is not None and share.online:                # the storage answered lately: offer the QR
        ticket = share.submit(photo_id, jpeg_path)        # no disk, no network: the worker copies the photo
        picture = qr_image(ticket.url, 480)               # BGR square with its quiet zone
    share.done(photo_id)                                  # uploaded: the link works now
    share.to_announce(); share.announced(photo_id)        # uploads ended (restarts too), then said
    share.problem                                         # why it is offline, one line, or None
    share.stop()                                          # at shutdown; the queue stays on disk
    log.info("photo %s printed", photo_tag(photo_id))     # how a log line names a photo, never by its id

``ticket.url`` is the pre-signed GET (valid ``[share] link_expiry_h``) or, with ``short_link_base``,
``<short_link_base>/p/<photo_id>``; it is secret: show it, never log it, and with a short link the photo
id is its only secret, so logs name a photo by ``photo_tag``.  When offline, submit anyway if the photo
is to be shared later: the queue uploads it once the storage is back, within retention.

Invariants of the package: objects are ``photos/<device_id>/<photo_id>.jpg``; the device's copy is
deleted once uploaded, and after ``[share] retention_min`` whatever happens; the credentials come from
systemd credentials (``credentials.py``), never the configuration file, and never reach a log line.
The caller deletes its own file (e.g. the print copy) itself, not before ``done`` or ``stop``: the
queue's worker copies it after ``submit`` has returned.
"""

from appliance.digest import photo_tag
from appliance.share.links import new_photo_id
from appliance.share.qr import qr_image
from appliance.share.queue import purge_queue
from appliance.share.service import ShareService, ShareTicket

__all__ = ["ShareService", "ShareTicket", "new_photo_id", "photo_tag", "purge_queue", "qr_image"]
