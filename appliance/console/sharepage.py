"""The shopper's share page (``/p/<photo_id>``, public), its image, and the operators' call to action per campaign
(``/share-pages``).

A photo booth whose ``[share] short_link_base`` is the console's public URL shows ``<base>/p/<photo_id>`` in its
QR code, for the object ``photos/<device>/<photo_id>.jpg`` (``appliance.share.store``).  The id does not say the
device: the events ingest stored do (``photo_taken``, ``fusion_made`` and ``photo_shared`` carry ``photo_id``;
the partial expression index ``events_photo_id`` makes that an index probe per month partition), and a HEAD of
the object confirms it.  The object's metadata is authoritative for device, campaign, session and expiry; an
object without it (uploaded before it existed) takes the event's campaign and session and expires
``share_link_expiry_h`` after its upload.

What a link answers:

- not an id ``new_photo_id`` could make, or still named by no event ``share_wait_s`` after this console was
  first asked for it: 404, 'not found';
- named by no event yet (the device's spool may be seconds behind), or taken but not uploaded yet: 200, 'on
  its way', a page that reloads itself every ``REFRESH_S``;
- past its expiry, or its object gone once its upload was announced (``photo_shared``) or that long after it
  was taken: 410, 'this photo has expired, it was deleted as promised';
- else the page: the photo (``/p/<id>/photo.jpg`` answers 302 to a pre-signed GET living ``PRESIGN_S`` at most
  and never past the expiry; ``?download=1`` the same as an attachment), a download button, and the campaign's
  call to action (its ``share_pages`` row, else the default row ``''``, else none).

Invariants:

- A scan is recorded (``analytics.record_scan``: a ``qr_scanned`` event with the object's device, campaign and
  session) once per phone: when the page is shown to a browser without this photo's ``SCAN_COOKIE`` (path
  ``/p/<id>``, kept until the link's expiry).  Reloads, the image and the 'on its way' page do not count.
- Every public answer is rate-limited per client address (``ratelimit``; 429 with ``Retry-After``), is never
  cached, indexed (``X-Robots-Tag``) or referred from (``Referrer-Policy: no-referrer``), and carries its own
  Content-Security-Policy: no script at all, images from the console and the photo storage only.
- A photo id never reaches a log line: lines name a photo by ``photo_tag``, and ``REDACT`` (installed on the
  access log and the app's failure log when this module is imported) rewrites any ``/p/<id>`` to its tag.
- A call to action is plain text (autoescaped) and an ``https://`` link checked here; only operators change
  it, each change audited with the change.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from appliance.console import analytics, auth, web
from appliance.console.ratelimit import FirstSeen, TokenBuckets, client_key
from appliance.digest import photo_tag
from appliance.errors import ApplianceError
from appliance.ops.rollups import MAX_TEXT
from appliance.share.credentials import load_keys
from appliance.share.links import check_photo_id
from appliance.share.store import StorageError, Store

log = logging.getLogger(__name__)
router = APIRouter()

#: The events that name a photo (with ``data.photo_id``) and its device.
PHOTO_EVENTS = ("photo_taken", "fusion_made", "photo_shared")
_TYPES = ", ".join(f"'{kind}'" for kind in PHOTO_EVENTS)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS share_pages (campaign text PRIMARY KEY, headline text NOT NULL, body text NOT NULL, "
    "link_label text NOT NULL, link_url text NOT NULL, coupon text NOT NULL, updated_by text NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now())",
    f"CREATE INDEX IF NOT EXISTS events_photo_id ON events ((data->>'photo_id')) WHERE type IN ({_TYPES})",
)
#: The types are literals (not a parameter) so that the planner matches the index's predicate.
LOOKUP = (f"SELECT device, type, ts, data->>'campaign', data->>'session' FROM events "
          f"WHERE data->>'photo_id' = %s AND type IN ({_TYPES}) ORDER BY ts DESC LIMIT 20")
CALL_TO_ACTION = ("SELECT headline, body, link_label, link_url, coupon FROM share_pages WHERE campaign IN (%s, '') "
                  "ORDER BY campaign = '' LIMIT 1")
#: Devices whose prefix is tried for one id (a device could name another's photo in its own events).
MAX_DEVICES = 3
PRESIGN_S = 300
REFRESH_S = 5
SCAN_COOKIE = "oivis_scan"
DOWNLOAD_NAME = "photo.jpg"

SHOWN, COMING, EXPIRED, MISSING = "shown", "coming", "expired", "missing"
STATUS = {COMING: 200, EXPIRED: 410, MISSING: 404, "limited": 429, "unavailable": 503}

HEADLINE_MAX, BODY_MAX, LABEL_MAX, URL_MAX, COUPON_MAX = 80, 400, 40, 500, 40

_LINK = re.compile(r"/p/([A-Za-z0-9_-]{16,64})")


class _Redact(logging.Filter):
    """Rewrites ``/p/<id>`` in a record's message and string arguments to ``/p/<tag>``."""

    @staticmethod
    def _clean(value: Any) -> Any:
        return _LINK.sub(lambda match: f"/p/<{photo_tag(match.group(1))}>", value) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(value) for value in record.args)
        return True


REDACT = _Redact()
for _name in ("uvicorn.access", "appliance.console.app"):
    if REDACT not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(REDACT)


@dataclass(frozen=True)
class Photo:
    """A photo the page may show: where it is and what its scan is counted for."""

    photo_id: str = field(repr=False)
    device: str
    campaign: str
    session: str | None
    expires: datetime


@dataclass(frozen=True)
class CallToAction:
    campaign: str
    headline: str
    body: str = ""
    link_label: str = ""
    link_url: str = ""
    coupon: str = ""


def _digest(photo_id: str) -> bytes:
    return hashlib.sha256(photo_id.encode()).digest()[:16]


class SharePages:
    """What the public routes share in one console process: the storage, the rate limit, first requests."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.buckets = TokenBuckets(settings.share_rate_per_min / 60.0, settings.share_burst)
        self.asked = FirstSeen()
        self.store: Store | None = None
        self.problem: str | None = None
        images = "'self'"
        if not settings.share_bucket:
            self.problem = "no share_bucket is set"
        else:
            try:
                keys = load_keys(settings.share_credentials, os.environ)
                self.store = Store(settings.share_endpoint, settings.share_bucket, settings.share_region, keys,
                                   device_id="-")
                images = f"'self' {self.store.origin}"
            except ApplianceError as exc:
                self.problem = str(exc)
        if self.problem:
            log.warning("share pages: off: %s", self.problem)
        self.policy = (f"default-src 'none'; img-src {images}; style-src 'self'; form-action 'none'; "
                       "frame-ancestors 'none'; base-uri 'none'")

    def find(self, console: Any, photo_id: str) -> tuple[str, Photo | None]:
        """What the link shows now (SHOWN with its ``Photo``, else COMING, EXPIRED or MISSING); StorageError
        when the storage does not answer."""
        assert self.store is not None
        with console.db.connection() as conn:
            rows = conn.execute(LOOKUP, (photo_id,)).fetchall()
        now = console.clock()
        if not rows:
            waited = self.asked.since(_digest(photo_id), time.monotonic())
            return (COMING if waited < self.settings.share_wait_s else MISSING), None
        shared = [row for row in rows if row[1] == "photo_shared"]
        devices = list(dict.fromkeys(row[0] for row in [*shared, *rows]))[:MAX_DEVICES]
        for device in devices:
            found = self.store.head(photo_id, device)
            if found is not None:
                break
        else:
            fallback = timedelta(hours=self.settings.share_link_expiry_h)
            return (EXPIRED if shared or now - min(row[2] for row in rows) >= fallback else COMING), None
        if found.device is not None and found.device != device:
            log.warning("share page: photo %s under %s says it is %s's: counted for %s", photo_tag(photo_id),
                        device, found.device, device)
        event = next(row for row in rows if row[0] == device)
        campaign, session = (found.campaign or "", found.session) if found.device is not None else (
            event[3] or "", event[4])
        expires = found.expires or (found.modified or event[2]) + timedelta(hours=self.settings.share_link_expiry_h)
        if now >= expires:
            return EXPIRED, None
        return SHOWN, Photo(photo_id, device, campaign[:MAX_TEXT], session, expires)


_LOCK = threading.Lock()


def _pages(request: Request) -> SharePages:
    state = request.app.state
    with _LOCK:
        if getattr(state, "share_pages", None) is None:
            state.share_pages = SharePages(state.console.settings)
        return state.share_pages


def _public(response: Response, pages: SharePages) -> Response:
    response.headers["Content-Security-Policy"] = pages.policy
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow, noarchive"
    response.headers["Cache-Control"] = "no-store"
    return response


def _status_page(request: Request, pages: SharePages, kind: str, retry_after_s: int | None = None) -> Response:
    response = web.render(request, "share_status.html", status_code=STATUS[kind], kind=kind, refresh_s=REFRESH_S)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return _public(response, pages)


def _limited(request: Request, pages: SharePages) -> Response | None:
    wait = pages.buckets.take(client_key(request.client.host if request.client else None), time.monotonic())
    return _status_page(request, pages, "limited", max(1, math.ceil(wait))) if wait else None


def _lookup(request: Request, pages: SharePages, photo_id: str) -> tuple[str, Photo | None] | Response:
    """The link's state, or the answer that ends the request (rate limit, bad id, sharing off, storage down)."""
    limited = _limited(request, pages)
    if limited is not None:
        return limited
    try:
        check_photo_id(photo_id)
    except ValueError:
        return _status_page(request, pages, MISSING)
    if pages.store is None:
        return _status_page(request, pages, "unavailable")
    try:
        return pages.find(request.app.state.console, photo_id)
    except StorageError as exc:
        log.warning("share page: photo %s cannot be shown: %s", photo_tag(photo_id), exc)
        return _status_page(request, pages, "unavailable")


def call_to_action(conn: Any, campaign: str) -> CallToAction | None:
    row = conn.execute(CALL_TO_ACTION, (campaign,)).fetchone()
    return None if row is None else CallToAction(campaign, *row)


@router.get("/p/{photo_id}")
def share_page(request: Request, photo_id: str) -> Response:
    pages = _pages(request)
    answer = _lookup(request, pages, photo_id)
    if isinstance(answer, Response):
        return answer
    state, photo = answer
    if photo is None:
        return _status_page(request, pages, state)
    console = request.app.state.console
    first_visit = SCAN_COOKIE not in request.cookies
    with console.db.connection() as conn:
        action = call_to_action(conn, photo.campaign)
        if first_visit:
            analytics.record_scan(conn, photo.device, photo.campaign, photo.session, photo.photo_id, console.clock())
    if first_visit:
        log.debug("share page: photo %s scanned (screen %s)", photo_tag(photo_id), photo.device)
    response = web.render(request, "share.html", photo_id=photo_id, photo=photo, action=action)
    if first_visit:
        response.set_cookie(SCAN_COOKIE, "1", path=f"/p/{photo_id}", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https",
                            max_age=max(60, int((photo.expires - console.clock()).total_seconds())))
    return _public(response, pages)


@router.get("/p/{photo_id}/photo.jpg")
def share_photo(request: Request, photo_id: str, download: bool = False) -> Response:
    pages = _pages(request)
    answer = _lookup(request, pages, photo_id)
    if isinstance(answer, Response):
        return answer
    state, photo = answer
    if photo is None:
        return _public(Response(status_code=STATUS[state]), pages)
    assert pages.store is not None
    life = min(PRESIGN_S, max(1, int((photo.expires - request.app.state.console.clock()).total_seconds())))
    url = pages.store.presigned_get(photo_id, life, photo.device, DOWNLOAD_NAME if download else None)
    return _public(RedirectResponse(url, status_code=302), pages)


@router.get("/p/{rest:path}")
def share_not_found(request: Request, rest: str) -> Response:  # noqa: ARG001 - the path is not a share link
    pages = _pages(request)
    return _limited(request, pages) or _status_page(request, pages, MISSING)


# -- the operators' page ------------------------------------------------------------------------------------------

def _plain(value: str, what: str, limit: int, lines: bool = False) -> str:
    text = value.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise ApplianceError(f"the {what} is {len(text)} characters long: {limit} at most")
    if any(unicodedata.category(char).startswith("C") and not (lines and char == "\n") for char in text):
        raise ApplianceError(f"the {what} holds control characters: plain text only")
    return text


def checked_url(value: str) -> str:
    """``value`` when it is an https:// link to a host (no user, no spaces), else ApplianceError."""
    url = _plain(value, "link", URL_MAX)
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc or any(char.isspace() for char in url):
        raise ApplianceError(f"the link {url!r} is not an https:// address of a web page (e.g. "
                             "https://instagram.com/yourstore)")
    return url


def checked(campaign: str, headline: str, body: str, link_label: str, link_url: str, coupon: str) -> CallToAction:
    """The form's call to action, checked (ApplianceError naming the field that is wrong)."""
    action = CallToAction(_plain(campaign, "campaign", MAX_TEXT), _plain(headline, "headline", HEADLINE_MAX),
                          _plain(body, "text", BODY_MAX, lines=True), _plain(link_label, "link's label", LABEL_MAX),
                          checked_url(link_url), _plain(coupon, "coupon code", COUPON_MAX))
    if not action.headline:
        raise ApplianceError("a call to action needs a headline")
    if action.link_label and not action.link_url:
        raise ApplianceError(f"the link's label {action.link_label!r} needs its https:// link")
    return action


def _rows(conn: Any) -> list[dict[str, Any]]:
    cursor = conn.execute("SELECT campaign, headline, body, link_label, link_url, coupon, updated_by, updated_at "
                          "FROM share_pages ORDER BY campaign <> '', campaign")
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _campaigns(conn: Any) -> list[str]:
    """Campaigns the fleet played lately (for the form's suggestions)."""
    return [row[0] for row in conn.execute(
        "SELECT DISTINCT campaign FROM fleet_hours WHERE type = 'session_start' AND campaign <> '' "
        "AND hour >= now() - interval '90 days' ORDER BY 1 LIMIT 200").fetchall()]


def _editor(request: Request, user: auth.User, form: dict[str, str] | None = None, problem: str = "",
            status_code: int = 200, message: str = "") -> Response:
    console = request.app.state.console
    with console.db.connection() as conn:
        rows, campaigns = _rows(conn), _campaigns(conn)
    edit = request.query_params.get("edit")
    if form is None:
        form = next((row for row in rows if row["campaign"] == edit), {"campaign": edit or ""})
    return web.render(request, "share_pages.html", status_code=status_code, rows=rows, campaigns=campaigns,
                      form=form, problem=problem, sharing=_pages(request).problem, can_edit=user.allows("operator"),
                      message=message)


@router.get("/share-pages")
def share_pages(request: Request, user: auth.User = Depends(web.viewer), saved: str = "") -> Response:
    return _editor(request, user, message={"saved": "Saved.", "deleted": "Deleted."}.get(saved, ""))


@router.post("/share-pages")
def save_share_page(request: Request, user: auth.User = Depends(web.operator), campaign: str = Form(""),
                    headline: str = Form(""), body: str = Form(""), link_label: str = Form(""),
                    link_url: str = Form(""), coupon: str = Form("")) -> Response:
    form = {"campaign": campaign, "headline": headline, "body": body, "link_label": link_label,
            "link_url": link_url, "coupon": coupon}
    try:
        action = checked(**form)
    except ApplianceError as exc:
        return _editor(request, user, form, str(exc), status_code=400)
    with request.app.state.console.db.connection() as conn:
        conn.execute("INSERT INTO share_pages (campaign, headline, body, link_label, link_url, coupon, updated_by) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (campaign) DO UPDATE SET "
                     "headline = excluded.headline, body = excluded.body, link_label = excluded.link_label, "
                     "link_url = excluded.link_url, coupon = excluded.coupon, updated_by = excluded.updated_by, "
                     "updated_at = now()",
                     (action.campaign, action.headline, action.body, action.link_label, action.link_url,
                      action.coupon, user.name))
        web.audit(conn, user, "share page saved", action.campaign or "(default)",
                  {"headline": action.headline, "link_url": action.link_url, "coupon": action.coupon})
    return RedirectResponse("/share-pages?saved=saved", status_code=303)


@router.post("/share-pages/delete")
def delete_share_page(request: Request, user: auth.User = Depends(web.operator),
                      campaign: str = Form("")) -> Response:
    with request.app.state.console.db.connection() as conn:
        deleted = conn.execute("DELETE FROM share_pages WHERE campaign = %s", (campaign,)).rowcount
        if deleted:
            web.audit(conn, user, "share page deleted", campaign or "(default)")
    return RedirectResponse("/share-pages?saved=deleted", status_code=303)
