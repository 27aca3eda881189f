"""A browser's side of the console over HTTP, for scripts and tests: a cookie jar, the login form, and forms posted
with the CSRF token of the last page read (as a browser posts the form it shows).

Invariants: redirects are followed (a login lands on its page); an HTTP error status is a ``Response`` like any
other, never an exception; only HTML answers replace ``last``, the page whose CSRF token the next post sends.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    url: str
    body: str
    headers: dict[str, str]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.last = ""

    def request(self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                method: str | None = None) -> Response:
        body = None if data is None else urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {}, method=method)
        try:
            with self._opener.open(request, timeout=30) as answer:
                response = Response(answer.status, answer.url, answer.read().decode("utf-8", "replace"),
                                    dict(answer.headers))
        except urllib.error.HTTPError as error:
            response = Response(error.code, error.url, error.read().decode("utf-8", "replace"), dict(error.headers))
        if response.headers.get("content-type", "").startswith("text/html"):
            self.last = response.body
        return response

    def get(self, path: str, **headers: str) -> Response:
        return self.request(path, headers=headers)

    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]*)"', self.last)
        return match.group(1) if match else ""

    def post(self, path: str, data: dict[str, str] | None = None, csrf: bool = True) -> Response:
        return self.request(path, {**({"csrf": self.csrf()} if csrf else {}), **(data or {})})

    def login(self, name: str, password: str, timezone: str = "") -> Response:
        page = self.get("/login")
        token = re.search(r'name="login_token" value="([^"]*)"', page.body)
        return self.request("/login", {"name": name, "password": password, "timezone": timezone, "next": "/fleet",
                                       "login_token": token.group(1) if token else ""})


def answers(url: str) -> bool:
    """Whether a web server answers ``url`` now (any status below 500), for waiting on one that starts."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False
