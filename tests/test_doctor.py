"""`python -m appliance doctor`: each check's pass / fail / skip with its fix, and the exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliance.config import Config
from appliance.doctor import (
    FAIL,
    PASS,
    SKIP,
    Check,
    check_backends,
    check_broker,
    check_camera,
    check_clock,
    check_disk,
    check_display,
    check_models,
    check_npu,
    check_npu_backend,
    check_npu_load,
    check_profile,
    check_runtime,
    check_thermal,
    format_table,
    models_toolkit_version,
)
from appliance.inference.backend import Registry as BackendRegistry
from appliance.perception.profile import FULL

REPO = Path(__file__).resolve().parents[1]
RKNN_HEADER = b"RKNN\0\0" + b"2.5.0(compiler version: 2.5.0 (74ea630ce@2026-09-29T14:54:20))" + b"\0" * 16


def test_camera_missing_fails_with_a_fix_and_file_sources_skip() -> None:
    missing = check_camera(Config.model_validate({"source": {"uri": "camera:63"}}))
    assert missing.status == FAIL and "/dev/video63" in missing.detail and "plug" in missing.fix
    assert check_camera(Config.model_validate({"source": {"uri": "video:/x.mp4"}})).status == SKIP


def test_display_is_skipped_headless_and_fails_with_a_fix_when_sdl_cannot_start() -> None:
    assert check_display({}).status == SKIP
    broken = check_display({"SDL_VIDEODRIVER": "kmsdrm"})  # no DRM device on this machine
    assert broken.status == FAIL and "render" in broken.fix


def test_npu_driver_and_runtime_against_the_models_toolkit(tmp_path: Path) -> None:
    assert check_npu("rk3399").status == SKIP and check_npu(None).status == SKIP
    version = tmp_path / "version"
    version.write_text("RKNPU driver: v0.9.8\n")
    assert check_npu("rk3588", version) == Check("NPU driver", PASS, "RKNPU driver: v0.9.8")
    assert check_npu("rk3588", tmp_path / "absent").status == FAIL

    models = tmp_path / "rknn"
    models.mkdir()
    (models / "selfie_landscape-rk3588.rknn").write_bytes(RKNN_HEADER)
    assert models_toolkit_version(models, "rk3588") == "2.5.0"
    runtime = tmp_path / "librknnrt.so"
    runtime.write_bytes(b"\x7fELF...librknnrt version: 2.3.0 (c949ad889d@2024-11-07T11:35:33)\0")
    old = check_runtime("rk3588", models, (runtime,))
    assert old.status == FAIL and "2.3.0" in old.detail and "Invalid RKNN model version" in old.fix
    runtime.write_bytes(b"librknnrt version: 2.5.0 (abc)\0")
    assert check_runtime("rk3588", models, (runtime,)).status == PASS
    assert check_runtime("rk3588", models, (tmp_path / "none.so",)).status == FAIL
    assert check_runtime("rk3588", tmp_path, (runtime,)).status == FAIL  # no .rknn for this SoC
    assert check_runtime(None, models, (runtime,)).status == SKIP


def test_an_npu_backend_asked_for_on_a_board_without_one_fails_with_the_fix() -> None:
    assert check_npu_backend(Config(), "rk3399").status == SKIP  # auto: nothing asks for the NPU
    everywhere = Config.model_validate({"inference": {"backend": "rknn"}})
    refused = check_npu_backend(everywhere, "rk3399")
    assert refused.status == FAIL and "[inference]" in refused.detail and "rk3399" in refused.detail
    assert 'backend = "auto"' in refused.fix
    one_lane = Config.model_validate({"inference": {"models": {"selfie_landscape": {"backend": "rknn"}}}})
    assert "[inference.models.selfie_landscape]" in check_npu_backend(one_lane, None).detail
    assert check_npu_backend(everywhere, "rk3588").status == PASS


def test_a_core_mask_the_board_lacks_fails_naming_its_key() -> None:
    third_core = Config.model_validate({"inference": {"models": {"pose_detection": {"core_mask": "2"}}}})
    refused = check_npu_backend(third_core, "rk3576")
    assert refused.status == FAIL and refused.detail.startswith("[inference.models.pose_detection] NPU core mask '2'")
    assert check_npu_backend(third_core, "rk3566").status == SKIP   # one core: every model shares it
    assert check_npu_backend(third_core, "rk3588").status == SKIP   # auto backend, a core it has


def test_the_perception_row_names_the_boards_profile() -> None:
    assert check_profile(Config(), "rk3399").detail.startswith("cpu-board: at most")
    assert check_profile(Config(), "rk3588").detail.startswith("npu-board: ")
    full = Config.model_validate({"inference": {"profile": "full"}})
    assert check_profile(full, "rk3399") == Check("perception", PASS, FULL.describe())


def test_npu_load_per_core_where_the_driver_shows_it(tmp_path: Path) -> None:
    load = tmp_path / "load"
    load.write_text("NPU load:  Core0: 12%, Core1:  0%, Core2: 57%,\n")
    assert check_npu_load("rk3588", load) == Check("NPU load", PASS, "core0 12 %, core1 0 %, core2 57 %")
    assert check_npu_load("rk3588", tmp_path / "absent").status == SKIP
    assert check_npu_load("rk3399", load).status == SKIP


def test_thermal_fails_at_the_throttling_point_naming_the_hot_zone(tmp_path: Path) -> None:
    assert check_thermal(tmp_path).status == SKIP
    for n, (kind, millidegrees) in enumerate((("soc-thermal", 61500), ("gpu-thermal", 58000))):
        zone = tmp_path / f"thermal_zone{n}"
        zone.mkdir()
        (zone / "type").write_text(f"{kind}\n")
        (zone / "temp").write_text(f"{millidegrees}\n")
    assert check_thermal(tmp_path) == Check("thermal", PASS, "soc-thermal 62 °C, gpu-thermal 58 °C")
    (tmp_path / "thermal_zone1" / "temp").write_text("87000\n")
    hot = check_thermal(tmp_path)
    assert hot.status == FAIL and hot.detail.startswith("gpu-thermal at 87 °C, the SoC throttles")
    assert "heatsink" in hot.fix


def test_the_shipped_rknn_files_record_their_toolkit_version() -> None:
    shipped = REPO / "models/cache/rknn"
    if not any(shipped.glob("*-rk3588.rknn")):
        return
    assert models_toolkit_version(shipped, "rk3588") == "2.5.0"


def test_models_disk_and_clock(tmp_path: Path) -> None:
    assert check_models().status == PASS
    assert check_disk(tmp_path / "not/yet/created").status == PASS
    assert check_disk(tmp_path, minimum=1 << 62).status == FAIL

    assert check_clock(lambda: True).status == PASS
    unsynced = check_clock(lambda: False)
    assert unsynced.status == FAIL and "set-ntp" in unsynced.fix


def test_broker_is_skipped_without_fleet_and_fails_unreachable_fast(tmp_path: Path) -> None:
    assert check_broker(Config()).status == SKIP
    plain = Config.model_validate({"fleet": {"broker": "127.0.0.1:9", "tls": False}})
    unreachable = check_broker(plain, timeout=1)
    assert unreachable.status == FAIL and "unreachable" in unreachable.detail
    no_files = Config.model_validate({"fleet": {"broker": "127.0.0.1:9", "ca_file": str(tmp_path / "ca.pem")}})
    assert "cannot read" in check_broker(no_files).detail


def test_table_lists_fixes_only_for_failures() -> None:
    table = format_table([Check("camera", FAIL, "no /dev/video0", "plug it in"), Check("npu", SKIP, "x86")])
    assert "camera  FAIL  no /dev/video0" in table and "  camera: plug it in" in table
    assert "1 check(s) failed" in table and "npu:" not in table.split("how to fix:")[1]


def test_doctor_exits_zero_when_nothing_fails(tmp_path: Path, astronaut_file: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(f'[source]\nuri = "image:{astronaut_file}"\n[paths]\nstate_dir = "{tmp_path}"\n')
    run = subprocess.run([sys.executable, "-m", "appliance", "doctor", "--config", str(config)],
                         capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"})
    assert "models" in run.stdout and "pass" in run.stdout
    failed = [line for line in run.stdout.splitlines() if "  FAIL  " in line]
    if Path("/run/systemd/system").is_dir() or Path("/dev/dri").exists():
        return  # a workstation: its clock / display rows depend on the machine
    from appliance.campaigns.clock import system_clock_synced

    expected = [] if system_clock_synced() else ["clock"]   # this sandbox's kernel clock may be unsynchronised
    assert [line.split()[0] for line in failed] == expected, run.stdout
    assert run.returncode == (1 if expected else 0)
    config.write_text('[source]\nuri = "camera:63"\nframerate = 3\n')
    broken = subprocess.run([sys.executable, "-m", "appliance", "doctor", "--config", str(config)],
                            capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"})
    assert broken.returncode == 1
    assert "source.framerate: unknown key (line 3)" in broken.stdout


def test_experiences_pass_with_the_built_ins_and_fail_naming_a_skipped_plug_in() -> None:
    from appliance.doctor import check_experiences
    from appliance.experience.registry import Registry, installed

    check = check_experiences(installed())
    assert check.status == PASS and check.detail == "age, attract, fusion, menu, mirror, photo, pose, rps"
    broken = Registry(installed().experiences, {"quiz": "needs experience API 2.0; this kiosk runs 1.1"})
    check = check_experiences(broken)
    assert check.status == FAIL and "skipped quiz: needs experience API 2.0" in check.detail
    assert "uninstall" in check.fix
    check = check_experiences(Registry.of([installed()["mirror"]]))
    assert check.status == FAIL and check.detail == "mirror: no attract and no menu"


def test_backends_pass_with_both_cpu_runtimes_and_fail_naming_a_missing_one() -> None:
    found = BackendRegistry.discover()
    check = check_backends(found)
    assert check.status == PASS and "litert (ai-edge-litert" in check.detail and "onnx (onnxruntime" in check.detail
    without_onnx = BackendRegistry({name: plugin for name, plugin in found.plugins.items() if name != "onnx"},
                                   {"onnx": "ModuleNotFoundError: No module named 'onnxruntime'"})
    check = check_backends(without_onnx)
    assert check.status == FAIL and check.detail == "onnx: ModuleNotFoundError: No module named 'onnxruntime'"
    assert "onnxruntime" in check.fix
