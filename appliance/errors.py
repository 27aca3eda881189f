"""The one exception type the edges (CLI, kiosk loop) turn into a single clear line."""


class ApplianceError(Exception):
    """A failure a person can act on: the message names what failed and what to do.

    Raised with context deep in the code (``raise ApplianceError(...) from exc``) and
    caught only at the edges, where it becomes one line on stderr and a non-zero
    exit (CLI) or an on-screen/state fallback (kiosk).
    """
