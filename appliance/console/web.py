"""What every page shares: the templates, the request's session, the role checks, CSRF, the audit log.

Invariants:

- ``guard`` runs before every route: it loads the request's session (or none) and refuses any request that may
  change something (not GET/HEAD/OPTIONS) without the session's CSRF token, in the form field ``csrf`` or the
  header ``X-CSRF-Token``; a multipart body is read only with a length of at most ``MAX_BODY_BYTES``.  The only
  exceptions are ``PUBLIC`` paths, which change nothing a session owns (the
  login form carries its own double-submit token; a share page records a scan).
- Pages need a role through ``viewer``/``operator``/``admin``: no session is a redirect to the login page
  (back to the page after it), a role too low is a 403 page; nothing of the page is computed before.
- Templates are autoescaped; a page never holds a secret (no key, token, password or pre-signed URL but the
  share page's own photo link).  Times are shown in the user's zone (``localtime``), else the console's.
- ``audit`` writes who did what to which target in the caller's transaction, so an action and its record commit
  together.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from appliance.console import auth

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: Paths open without a session (and free of the session's CSRF check).
PUBLIC = ("/login", "/p/", "/assets/", "/static/")
#: The largest form body read (a campaign zip of at most 2 GB, with the multipart framing).
MAX_BODY_BYTES = 2100 * 2**20
SESSION_COOKIE = "oivis_session"
LOGIN_COOKIE = "oivis_login"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS console_audit (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), "
    "user_name text NOT NULL, action text NOT NULL, target text NOT NULL, detail jsonb NOT NULL DEFAULT '{}')",
    "CREATE INDEX IF NOT EXISTS console_audit_at ON console_audit (at DESC)",
)

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


class NotLoggedIn(Exception):
    """No live session: answered with a redirect to the login page."""


def is_public(path: str) -> bool:
    return path == "/login" or any(path.startswith(prefix) for prefix in PUBLIC if prefix.endswith("/"))


async def guard(request: Request) -> None:
    console = request.app.state.console
    token = request.cookies.get(SESSION_COOKIE)
    request.state.session = await run_in_threadpool(console.session, token) if token else None
    if request.method in SAFE_METHODS or is_public(request.url.path):
        return
    session = request.state.session
    if session is None:
        raise NotLoggedIn
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise HTTPException(413, f"This upload is too large (or says no length): at most "
                                     f"{MAX_BODY_BYTES // 2**20} MB.")
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        given = (await request.form()).get("csrf")
    if not auth.same_token(session.csrf, given if isinstance(given, str) else None):
        raise HTTPException(403, "This form has expired (its security token did not match): reload the page.")


def _role(needed: str):
    def dependency(request: Request) -> auth.User:
        session = getattr(request.state, "session", None)
        if session is None:
            raise NotLoggedIn
        if not session.user.allows(needed):
            raise HTTPException(403, f"This needs the {needed} role; you are {session.user.role}.")
        return session.user
    dependency.__name__ = f"needs_{needed}"
    return dependency


viewer, operator, admin = _role("viewer"), _role("operator"), _role("admin")


def zone(request: Request) -> ZoneInfo:
    session = getattr(request.state, "session", None)
    name = (session.user.timezone if session is not None else None) or request.app.state.console.settings.timezone
    return ZoneInfo(name)


def render(request: Request, template: str, status_code: int = 200, **context: Any):
    session = getattr(request.state, "session", None)
    return templates.TemplateResponse(request, template, {"user": session.user if session else None, **context},
                                      status_code=status_code)


def audit(conn: Any, user: auth.User, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    conn.execute("INSERT INTO console_audit (user_name, action, target, detail) VALUES (%s, %s, %s, %s::jsonb)",
                 (user.name, action, target, json.dumps(detail or {}, default=str)))


@pass_context
def csrf_field(context: Any) -> Markup:
    session = getattr(context["request"].state, "session", None)
    token = session.csrf if session is not None else ""
    return Markup('<input type="hidden" name="csrf" value="{}">').format(token)


@pass_context
def localtime(context: Any, value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(zone(context["request"])).strftime(fmt)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago``: how long before ``now`` (default: the present)."""
    if value is None:
        return "never"
    seconds = ((now or datetime.now(timezone.utc)) - value).total_seconds()
    if seconds < 60:
        return "just now" if seconds < 5 else f"{int(seconds)} s ago"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


templates.env.globals["csrf_field"] = csrf_field
templates.env.filters["localtime"] = localtime
templates.env.filters["ago"] = ago
