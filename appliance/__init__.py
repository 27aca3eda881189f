"""OIVIS Edge: the software of an interactive mall screen."""

__version__ = "0.1.0"
