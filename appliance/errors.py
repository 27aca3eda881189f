"""The one exception type the edges (CLI, kiosk loop) turn into a single clear line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


class ApplianceError(Exception):
    """A failure a person can act on: the message names what failed and what to do.

    Raised with context deep in the code (``raise ApplianceError(...) from exc``) and
    caught only at the edges, where it becomes one line on stderr and a non-zero
    exit (CLI) or an on-screen/state fallback (kiosk).
    """


def one_line(text: object) -> str:
    """``text`` (an exception, a server's message) on one line: runs of whitespace, newlines included,
    become one space.  PostgreSQL, TLS and subprocess errors come with line breaks and tabs."""
    return " ".join(str(text).split())


def command_line(main: Callable[P, int | None]) -> Callable[P, int]:
    """Make ``main`` a command-line edge: an ApplianceError becomes one ``error:`` line on stderr
    and exit status 1; Ctrl+C exits 130 without a traceback."""

    @functools.wraps(main)
    def edge(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except ApplianceError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return edge
