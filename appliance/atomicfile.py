"""Replacing a file so that a power cut leaves either the old contents or the new, never a torn mix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from appliance.errors import ApplianceError

#: Private keys: created with it (a temporary file from mkstemp is 0600 from the start),
#: so a key is never readable by others, not even for a moment, and never keeps an old mode.
SECRET_MODE = 0o600


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, rename it over ``path``.

    The rename is atomic only within one file system, hence the temporary file in the
    same directory; the directory is synced too, or the rename itself could be lost.
    ``mode`` defaults to the replaced file's permissions (0o644 for a new file).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode is None:
            mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fchmod(stream.fileno(), mode)
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise ApplianceError(f"cannot write {path}: {exc} (is the directory writable and the disk not full?)") from exc
