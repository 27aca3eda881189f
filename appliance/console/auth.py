"""Who may use the console: users with argon2 password hashes and roles, login sessions, login throttling.

Invariants:

- Roles are ordered: viewer (reads everything) < operator (also pushes campaigns and sends commands) < admin
  (also manages users).  ``allows(role, needed)`` is the only comparison.
- A password is stored only as its argon2id hash (argon2-cffi's defaults; rehashed at login when they change).
- A session is a random 256-bit token held by the browser's cookie; the database keeps only its SHA-256, so a
  copy of the database opens no session.  Each session has its own CSRF token (random, compared in constant
  time).  A session ends at logout, when its user is disabled or removed, or ``session_hours`` after its last use.
- Password checks (logins, and the current password when changing it) are throttled, counting failures within
  ``WINDOW_S``: a name from one address after ``MAX_FAILURES``, a name from anywhere after ``MAX_NAME_FAILURES``,
  an address (an office behind one NAT) after ``MAX_ADDRESS_FAILURES``; then every check of that key is refused,
  the right password too, until the window has passed, so guessing is bounded while a stranger's five tries cannot
  lock a user out.  The failures live in the database (every console process behind a proxy shares them), and
  each check holds its keys' advisory locks while it counts and records, so parallel guesses are each counted.
  A failed login never says whether the user exists.
- ``housekeeping`` deletes sessions unused for ``session_hours`` and failures older than the window.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.errors import ApplianceError

ROLES = ("viewer", "operator", "admin")
MAX_FAILURES = 5
MAX_NAME_FAILURES = 50
MAX_ADDRESS_FAILURES = 20
WINDOW_S = 15 * 60
MIN_PASSWORD = 10
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS console_users (name text PRIMARY KEY, password_hash text NOT NULL, "
    "role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')), timezone text, "
    "disabled boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS console_sessions (token_hash bytea PRIMARY KEY, "
    "name text NOT NULL REFERENCES console_users (name) ON DELETE CASCADE, csrf text NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now(), last_used timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS console_login_failures (key text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX IF NOT EXISTS console_login_failures_key ON console_login_failures (key, at)",
)

_hasher = PasswordHasher()


class LoginRefused(ApplianceError):
    """Wrong name or password (``throttled`` when too many attempts were made)."""

    def __init__(self, message: str, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


@dataclass(frozen=True)
class User:
    name: str
    role: str
    timezone: str | None = None

    def allows(self, needed: str) -> bool:
        return allows(self.role, needed)


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


def allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ApplianceError(f"user name {name!r}: 1 to 64 of a-z 0-9 . _ @ -, starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ApplianceError(f"role {role!r}: one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ApplianceError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def new_password() -> str:
    return secrets.token_urlsafe(12)


def add_user(conn: Any, name: str, password: str, role: str) -> User:
    check_name(name), check_role(role), check_password(password)
    inserted = conn.execute("INSERT INTO console_users (name, password_hash, role) VALUES (%s, %s, %s) "
                            "ON CONFLICT (name) DO NOTHING", (name, _hasher.hash(password), role)).rowcount
    if not inserted:
        raise ApplianceError(f"user {name!r} exists already")
    return User(name, role)


def set_password(conn: Any, name: str, password: str) -> None:
    check_password(password)
    if not conn.execute("UPDATE console_users SET password_hash = %s WHERE name = %s",
                        (_hasher.hash(password), name)).rowcount:
        raise ApplianceError(f"no user {name!r}")
    conn.execute("DELETE FROM console_sessions WHERE name = %s", (name,))


def update_user(conn: Any, name: str, role: str | None = None, disabled: bool | None = None,
                timezone_name: str | None = None) -> None:
    if role is not None:
        check_role(role)
    if not conn.execute("UPDATE console_users SET role = coalesce(%s, role), disabled = coalesce(%s, disabled), "
                        "timezone = coalesce(%s, timezone) WHERE name = %s",
                        (role, disabled, timezone_name, name)).rowcount:
        raise ApplianceError(f"no user {name!r}")
    if disabled or role is not None:
        conn.execute("DELETE FROM console_sessions WHERE name = %s", (name,))


def users(conn: Any) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT name, role, disabled, created_at, timezone FROM console_users ORDER BY name")
    return [dict(zip(("name", "role", "disabled", "created_at", "timezone"), row, strict=True)) for row in rows]


def has_users(conn: Any) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM console_users)").fetchone()[0]


def _throttle_keys(name: str, address: str) -> dict[str, int]:
    """Each key a password check of ``name`` from ``address`` counts under, with its limit."""
    return {f"login:{name.lower()}@{address}": MAX_FAILURES, f"user:{name.lower()}": MAX_NAME_FAILURES,
            f"addr:{address}": MAX_ADDRESS_FAILURES}


def _checked(conn: Any, name: str, password: str, address: str, now: datetime) -> tuple[Any, ...]:
    """The user's row when ``password`` is theirs, within the throttle; ``LoginRefused`` otherwise (a failure
    is committed before it is raised, so it counts even though the caller's transaction ends in it)."""
    keys = _throttle_keys(name, address)
    for key in sorted(keys):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
    since = now - timedelta(seconds=WINDOW_S)
    failures = conn.execute("SELECT key, count(*), min(at) FROM console_login_failures WHERE key = ANY(%s) "
                            "AND at > %s GROUP BY key", (list(keys), since)).fetchall()
    over = [first for key, count, first in failures if count >= keys[key]]
    if over:
        conn.commit()
        wait = min(over) + timedelta(seconds=WINDOW_S) - now
        raise LoginRefused(f"Too many failed attempts: try again in {max(1, round(wait.total_seconds() / 60))} "
                           "min.", throttled=True)
    row = _verified(conn, name, password)
    if row is None:
        conn.execute("INSERT INTO console_login_failures (key, at) SELECT unnest(%s::text[]), %s", (list(keys), now))
        conn.commit()
        raise LoginRefused("Wrong user name or password.")
    conn.execute("DELETE FROM console_login_failures WHERE key = %s", (next(iter(keys)),))
    return row


def login(conn: Any, name: str, password: str, address: str, now: datetime) -> tuple[str, Session]:
    """A new session's cookie token and the session, or ``LoginRefused``."""
    row = _checked(conn, name, password, address, now)
    if _hasher.check_needs_rehash(row[0]):
        conn.execute("UPDATE console_users SET password_hash = %s WHERE name = %s", (_hasher.hash(password), name))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute("INSERT INTO console_sessions (token_hash, name, csrf, created_at, last_used) "
                 "VALUES (%s, %s, %s, %s, %s)", (_digest(token), name, csrf, now, now))
    return token, Session(User(name, row[1], row[2]), csrf)


def _verified(conn: Any, name: str, password: str) -> tuple[Any, ...] | None:
    """The user's row (hash, role, zone) when ``password`` is theirs and they are enabled, else None."""
    row = conn.execute("SELECT password_hash, role, timezone FROM console_users WHERE name = %s AND NOT disabled",
                       (name,)).fetchone()
    if row is None:
        _hasher.hash(password)  # the same work whether the user exists or not
        return None
    try:
        return row if _hasher.verify(row[0], password) else None
    except (VerificationError, InvalidHashError):
        return None


def change_password(conn: Any, name: str, old: str, new: str, address: str, now: datetime) -> None:
    """``new`` for ``old`` (checked, throttled as a login); every session of the user ends."""
    check_password(new)
    try:
        _checked(conn, name, old, address, now)
    except LoginRefused as exc:
        raise LoginRefused("The current password is wrong." if not exc.throttled else str(exc), exc.throttled) \
            from None
    set_password(conn, name, new)


def session(conn: Any, token: str | None, now: datetime, hours: float) -> Session | None:
    """The live session ``token`` opens (its last use moved to ``now``), or None."""
    if not token:
        return None
    row = conn.execute(
        "UPDATE console_sessions s SET last_used = %s FROM console_users u "
        "WHERE s.token_hash = %s AND u.name = s.name AND NOT u.disabled AND s.last_used > %s "
        "RETURNING u.name, u.role, u.timezone, s.csrf",
        (now, _digest(token), now - timedelta(hours=hours))).fetchone()
    return None if row is None else Session(User(row[0], row[1], row[2]), row[3])


def logout(conn: Any, token: str | None) -> None:
    if token:
        conn.execute("DELETE FROM console_sessions WHERE token_hash = %s", (_digest(token),))


def housekeeping(conn: Any, now: datetime, hours: float) -> None:
    """Sessions unused for ``hours`` and login failures older than the window, deleted."""
    conn.execute("DELETE FROM console_sessions WHERE last_used < %s", (now - timedelta(hours=hours),))
    conn.execute("DELETE FROM console_login_failures WHERE at < %s", (now - timedelta(seconds=WINDOW_S),))


def same_token(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
