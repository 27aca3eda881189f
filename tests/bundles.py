"""Copies of the default campaign for tests that change what it offers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path


def offering(content_dir: Path, target: Path, experiences: str, table: str = "") -> Path:
    """A copy of the default bundle whose ``experiences`` list is ``experiences`` (TOML), with ``table`` appended."""
    shutil.copytree(content_dir, target)
    toml = target / "campaign.toml"
    text, count = re.subn(r"^experiences = .*$", f"experiences = {experiences}", toml.read_text(), count=1,
                          flags=re.MULTILINE)
    assert count == 1, "the default campaign lists its experiences at its top"
    toml.write_text(text + table)
    return target
