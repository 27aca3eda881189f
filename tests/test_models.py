"""The model manifest and cache: checksums are enforced, failures say what to do."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from appliance.digest import sha256_of
from appliance.errors import ApplianceError
from appliance.inference.fetch import _extract, fetch_models, missing_or_corrupt
from appliance.inference.manifest import Manifest, models_dir


@pytest.fixture()
def scratch_models(tmp_path: Path) -> Path:
    """A models directory with the real manifest and a copy of the verified cache."""
    shutil.copy(models_dir() / "manifest.toml", tmp_path / "manifest.toml")
    shutil.copytree(models_dir() / "cache", tmp_path / "cache", ignore=shutil.ignore_patterns("rknn"))
    return tmp_path


def test_every_manifest_model_is_cached_and_verified() -> None:
    manifest = Manifest.load()
    assert missing_or_corrupt(manifest) == []
    for name, spec in manifest.models.items():
        assert sha256_of(manifest.verified_path(name)) == spec.sha256


def test_normalisation_maps_uint8_onto_the_declared_range() -> None:
    manifest = Manifest.load()
    scale, offset = manifest.spec("selfie_landscape").normalisation
    assert (0 * scale + offset, 255 * scale + offset) == pytest.approx((0.0, 1.0))
    scale, offset = manifest.spec("pose_detection").normalisation
    assert (0 * scale + offset, 255 * scale + offset) == pytest.approx((-1.0, 1.0))


def test_corrupted_model_file_is_refused_with_the_fix(scratch_models: Path) -> None:
    manifest = Manifest.load(scratch_models)
    path = manifest.cached_path("selfie_landscape")
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ApplianceError, match="selfie_landscape.*sha256.*make models"):
        manifest.verified_path("selfie_landscape")
    assert missing_or_corrupt(manifest) == ["selfie_landscape"]


def test_missing_model_file_names_the_command_to_run(scratch_models: Path) -> None:
    manifest = Manifest.load(scratch_models)
    manifest.cached_path("hand_landmark_lite").unlink()
    with pytest.raises(ApplianceError, match="hand_landmark_lite is missing.*make models"):
        manifest.verified_path("hand_landmark_lite")


def test_extracting_a_member_with_the_wrong_checksum_fails_and_leaves_nothing(scratch_models: Path) -> None:
    manifest = Manifest.load(scratch_models)
    spec = manifest.spec("selfie_general")
    forged = scratch_models / "forged.whl"
    with zipfile.ZipFile(forged, "w") as archive:
        archive.writestr(spec.member, b"not the model")
    manifest.cached_path("selfie_general").unlink()
    with pytest.raises(ApplianceError, match="selfie_general: extracted sha256"):
        _extract(manifest, forged, ["selfie_general"], say=lambda _: None)
    assert not manifest.cached_path("selfie_general").exists()
    assert not list(manifest.cache_dir.glob("*.part"))


def test_unreachable_index_is_a_clear_error_not_a_fallback(scratch_models: Path, monkeypatch, tmp_path: Path) -> None:
    manifest = Manifest.load(scratch_models)
    manifest.cached_path("pose_detection").unlink()
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    monkeypatch.setenv("PIP_INDEX_URL", empty_index.as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    with pytest.raises(ApplianceError, match="could not download mediapipe==0.10.21"):
        fetch_models(manifest, say=lambda _: None)


def test_malformed_manifest_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text("[source]\npackage = 'mediapipe'\n")
    with pytest.raises(ApplianceError, match="manifest.toml is missing or misnames a field"):
        Manifest.load(tmp_path)
