"""Logging in and out, one's own account (time zone, password), the users (admin) and the audit log (operator).

Invariants: the login form carries its own CSRF token (double submit: a random cookie and the same value in the
form), since there is no session yet; a successful login replaces any earlier session cookie (no fixation); the
session cookie is HttpOnly, SameSite=Lax, and Secure unless the console is reached over plain HTTP on the
loopback (the trial); ``next`` only ever leads back into the console (a path, never another site).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from appliance.console import auth, web
from appliance.console.settings import FIRST_RUN_FILE
from appliance.errors import ApplianceError

router = APIRouter()
AUDIT_PAGE = 100


def _next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.url.hostname not in {"127.0.0.1", "localhost", "::1"}


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(request: Request, next_path: str, message: str = "", status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = web.render(request, "login.html", status_code=status_code, next=next_path, login_token=token,
                          message=message)
    response.set_cookie(web.LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        max_age=3600)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
    if request.state.session is not None:
        return RedirectResponse(_next(next), status_code=303)
    return _login_page(request, _next(next))


@router.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), login_token: str = Form(""),
          timezone_name: str = Form("", alias="timezone"), next: str = Form("/")) -> Response:  # noqa: A002
    console = request.app.state.console
    if not auth.same_token(request.cookies.get(web.LOGIN_COOKIE, ""), login_token):
        return _login_page(request, _next(next), "The login form had expired: please try again.", 400)
    try:
        with console.db.connection() as conn:
            token, session = auth.login(conn, name.strip().lower(), password, _client(request), console.clock())
            if session.user.timezone is None and timezone_name in available_timezones():
                auth.update_user(conn, session.user.name, timezone_name=timezone_name)
            auth.logout(conn, request.cookies.get(web.SESSION_COOKIE))  # the browser's earlier session, if any
            auth.housekeeping(conn, console.clock(), console.settings.session_hours)
    except auth.LoginRefused as exc:
        return _login_page(request, _next(next), str(exc), 429 if exc.throttled else 401)
    response = RedirectResponse(_next(next), status_code=303)
    response.set_cookie(web.SESSION_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request),
                        max_age=int(console.settings.session_hours * 3600))
    response.delete_cookie(web.LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    with request.app.state.console.db.connection() as conn:
        auth.logout(conn, request.cookies.get(web.SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(web.SESSION_COOKIE)
    return response


@router.get("/")
def home(user: auth.User = Depends(web.viewer)) -> Response:
    return RedirectResponse("/fleet", status_code=303)


@router.get("/account")
def account(request: Request, user: auth.User = Depends(web.viewer), message: str = "") -> Response:
    return web.render(request, "account.html", zones=sorted(available_timezones()), message=message,
                      current_zone=web.zone(request).key)


@router.post("/account")
def update_account(request: Request, user: auth.User = Depends(web.viewer), timezone_name: str = Form(
        "", alias="timezone"), password: str = Form(""), new_password: str = Form("")) -> Response:
    console = request.app.state.console
    with console.db.connection() as conn:
        if timezone_name:
            if timezone_name not in available_timezones():
                raise ApplianceError(f"{timezone_name!r} is not a time zone")
            auth.update_user(conn, user.name, timezone_name=timezone_name)
        if new_password:
            auth.change_password(conn, user.name, password, new_password, _client(request), console.clock())
            _forget_first_run(console.settings.data_dir, user.name)
            return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/account?message=Saved.", status_code=303)


def _forget_first_run(data_dir: Path, name: str) -> None:
    """The first-run password file goes once its user has chosen a password of their own."""
    path = data_dir / FIRST_RUN_FILE
    try:
        if path.read_text(encoding="utf-8").split()[:1] == [name]:
            path.unlink()
    except OSError:
        pass


@router.get("/users")
def users(request: Request, user: auth.User = Depends(web.admin), message: str = "") -> Response:
    with request.app.state.console.db.connection() as conn:
        rows = auth.users(conn)
    return web.render(request, "users.html", users=rows, roles=auth.ROLES, message=message)


@router.post("/users")
def add_user(request: Request, user: auth.User = Depends(web.admin), name: str = Form(...),
             role: str = Form(...)) -> Response:
    password = auth.new_password()
    with request.app.state.console.db.connection() as conn:
        auth.add_user(conn, name.strip().lower(), password, role)
        web.audit(conn, user, "user.add", name, {"role": role})
        rows = auth.users(conn)
    # The one time the password is shown: to the admin who hands it over (never logged, never stored in clear).
    return web.render(request, "users.html", users=rows, roles=auth.ROLES, created={"name": name, "password": password})


@router.post("/users/{name}")
def change_user(request: Request, name: str, user: auth.User = Depends(web.admin), role: str = Form(""),
                disabled: str = Form("")) -> Response:
    if name == user.name:
        raise HTTPException(400, "You cannot change your own role or disable yourself; ask another admin.")
    change: dict[str, Any] = {"role": role or None, "disabled": {"yes": True, "no": False}.get(disabled)}
    with request.app.state.console.db.connection() as conn:
        auth.update_user(conn, name, **change)
        web.audit(conn, user, "user.change", name, {k: v for k, v in change.items() if v is not None})
    return RedirectResponse("/users?message=Saved.", status_code=303)


@router.get("/audit")
def audit_log(request: Request, user: auth.User = Depends(web.operator), before: int | None = None) -> Response:
    with request.app.state.console.db.connection() as conn:
        rows = conn.execute("SELECT id, at, user_name, action, target, detail FROM console_audit "
                            "WHERE %s::bigint IS NULL OR id < %s ORDER BY id DESC LIMIT %s",
                            (before, before, AUDIT_PAGE)).fetchall()
    entries = [dict(zip(("id", "at", "user", "action", "target", "detail"), row, strict=True)) for row in rows]
    older = entries[-1]["id"] if len(entries) == AUDIT_PAGE else None
    return web.render(request, "audit.html", entries=entries, older=older)
