"""Copies of the default campaign for tests that change what it offers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path


def offering(content_dir: Path, target: Path, experiences: str, table: str = "", without: tuple[str, ...] = ()
             ) -> Path:
    """A copy of the default bundle whose ``experiences`` list is ``experiences`` (TOML), without the tables named
    in ``without`` (and their sub-tables), with ``table`` appended."""
    shutil.copytree(content_dir, target)
    toml = target / "campaign.toml"
    text, count = re.subn(r"^experiences = .*$", f"experiences = {experiences}", toml.read_text(), count=1,
                          flags=re.MULTILINE)
    assert count == 1, "the default campaign lists its experiences at its top"
    for name in without:
        text, count = re.subn(rf"^\[\[?{name}[\].].*?(?=^\[(?!\[?{name}[\].])|\Z)", "", text,
                              flags=re.MULTILINE | re.DOTALL)
        assert count, f"the default campaign has a [{name}] table"
    toml.write_text(text + table)
    return target
