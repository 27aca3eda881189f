"""What the QR code shows: the photo's pre-signed GET, or the operator's short link.

Invariants: a photo id is random (``secrets.token_urlsafe``, 128 bits) and made only of URL- and
file-safe characters, so it is safe as a file name, an object key and a URL path segment; links are
never logged (a pre-signed one carries its signature), nor are photo ids (with a short link the id is
the link's only secret): log lines name a photo by its ``appliance.digest.photo_tag``.
"""

from __future__ import annotations

import re
import secrets

_PHOTO_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_photo_id() -> str:
    return secrets.token_urlsafe(16)


def check_photo_id(photo_id: str) -> str:
    """``photo_id`` when it is one ``new_photo_id`` could have made; ValueError otherwise (a caller's bug)."""
    if not _PHOTO_ID.fullmatch(photo_id):
        raise ValueError(f"photo id {photo_id!r} is not 16 to 64 URL-safe characters (use new_photo_id())")
    return photo_id


def short_link(base: str, photo_id: str) -> str:
    """``<base>/p/<photo_id>``, served by the operator console."""
    return f"{base.rstrip('/')}/p/{check_photo_id(photo_id)}"
