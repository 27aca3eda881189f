"""Taking the photo home: upload to the operator's S3-compatible storage, a link, a QR code.

Public API for the core's photo desk::

    from appliance.share import ShareService, new_photo_id, qr_image

    share = ShareService.from_config(config, device_id)   # None when [share] is off or has no bucket;
                                                          # ApplianceError (one line) when it cannot work
    photo_id = new_photo_id()                             # random, URL- and file-safe
    if share is not None and share.online:                # the storage answered lately: offer the QR
        ticket = share.submit(photo_id, jpeg_path)        # never blocks; the photo is copied into the queue
        picture = qr_image(ticket.url, 480)               # BGR square with its quiet zone
    share.done(photo_id)                                  # uploaded: the link works now
    share.discard(photo_id)                               # the device's copy goes now (upload cancelled)
    share.problem                                         # why it is offline, one line, or None
    share.stop()                                          # at shutdown; the queue stays on disk

``ticket.url`` is the pre-signed GET (valid ``[share] link_expiry_h``) or, with ``short_link_base``,
``<short_link_base>/p/<photo_id>``; it is secret: show it, never log it.  When offline, submit anyway if
the photo is to be shared later: the queue uploads it once the storage is back, within retention.

Invariants of the package: objects are ``photos/<device_id>/<photo_id>.jpg``; the device's copy is
deleted once uploaded, and after ``[share] retention_min`` whatever happens; the credentials come from
systemd credentials (``credentials.py``), never the configuration file, and never reach a log line.
The caller deletes its own file (e.g. the print copy) itself.
"""

from appliance.share.links import new_photo_id
from appliance.share.qr import qr_image
from appliance.share.service import ShareService, ShareTicket

__all__ = ["ShareService", "ShareTicket", "new_photo_id", "qr_image"]
