"""The console's web application: ``create_app(settings)`` wires the database, the fleet link and the pages.

Invariants: one ``Console`` per process holds what the pages share (settings, database, fleet link), reached by
routes as ``request.app.state.console``; every route passes ``web.guard`` (session, CSRF); every answer carries
the security headers (a strict Content-Security-Policy: scripts only from the console itself, no framing) and
pages behind a login are never cached; an ``ApplianceError`` becomes the error page with its one line, never a
trace, and the console keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from appliance.console import auth, web
from appliance.console.db import Database
from appliance.console.settings import ConsoleSettings
from appliance.errors import ApplianceError, one_line

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


class Console:
    """What the pages share.  ``fleet`` is the MQTT link (None when no broker is configured)."""

    def __init__(self, settings: ConsoleSettings, db: Database, fleet: Any = None,
                 clock: Callable[[], datetime] = auth.utcnow) -> None:
        self.settings = settings
        self.db = db
        self.fleet = fleet
        self.clock = clock

    def link_problem(self, things: str) -> str | None:
        """Why ``things`` (commands, campaigns) cannot reach the screens now, for the page; None when they can."""
        if self.fleet is None:
            return f"No broker is configured: {things} cannot be sent (serve --broker HOST:PORT)."
        if not self.fleet.connected():
            return f"The fleet's broker is not reachable right now: {things} cannot be sent until it is back."
        return None

    def session(self, token: str) -> auth.Session | None:
        with self.db.connection() as conn:
            return auth.session(conn, token, self.clock(), self.settings.session_hours)


def content_security_policy(settings: ConsoleSettings) -> str:
    images = ["'self'", "data:", "blob:"]
    if settings.share_endpoint:
        parts = urlsplit(settings.share_endpoint)
        images.append(f"{parts.scheme}://{parts.netloc}")
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src {' '.join(images)}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def create_app(console: Console, routers: list[Any]) -> FastAPI:
    app = FastAPI(title="OIVIS console", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(web.guard)])
    app.state.console = console
    plotly_js = _plotly_js()

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    policy = content_security_policy(console.settings)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/static/", "/assets/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(web.NotLoggedIn)
    async def to_login(request: Request, _: web.NotLoggedIn) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET" or request.headers.get("x-fragment"):
            target = "/"
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = web.render(request, "error.html", status_code=exc.status_code, message=str(exc.detail),
                              status=exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(ApplianceError)
    async def appliance_error(request: Request, exc: ApplianceError) -> Response:
        return web.render(request, "error.html", status_code=400, message=str(exc), status=400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, error['loc'][1:])) or 'request'}: {error['msg']}"
                             for error in exc.errors())
        return web.render(request, "error.html", status_code=400, status=400, message=f"Bad request: {problems}.")

    async def database_down(request: Request, exc: Exception) -> Response:
        log.error("%s %s: the database %s failed: %s", request.method, request.url.path, console.db.name,
                  one_line(str(exc)))
        return web.render(request, "error.html", status_code=503, status=503,
                          message=f"The fleet database ({console.db.name}) is not reachable right now; the console "
                                  "keeps trying. Try again in a moment.")

    for error in console.db.errors:  # by class: answered here, not re-raised to the server as a bug would be
        app.add_exception_handler(error, database_down)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return web.render(request, "error.html", status_code=500, status=500,
                          message="The console failed to answer this page; the error is in its log.")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        with console.db.connection() as conn:
            conn.execute("SELECT 1")
        return {"ok": True, "fleet": None if console.fleet is None else console.fleet.connected(),
                "at": datetime.now(timezone.utc).isoformat()}

    for router in routers:
        app.include_router(router)
    return app


def _plotly_js() -> Path:
    """The plotly wheel's own ``plotly.min.js``: charts work offline, from no CDN."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
