"""One validation for every door a configuration comes through (item 12), and a new configuration kept
only once the kiosk is ready with it (item 5).

Before: `config check` said "ok" to a backend, a source or a content folder that `run` then refused at
start, and set-config wrote such values, so every restart of the service failed, with the fleet link in
the same process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.compose import kiosk_session, watch_trial
from appliance.config import Config
from appliance.configtrial import ConfigTrial
from appliance.errors import ApplianceError
from appliance.fleet.setconfig import apply_settings
from appliance.kiosk.display import DisplayMode
from appliance.service.status import RESTART_STATUS

REPO = Path(__file__).resolve().parents[1]

BAD = {
    "backend": ('[inference]\nbackend = "bogus"\n', "inference.backend: unknown backend 'bogus'", 2),
    "lane backend": ('[inference.models.hand_landmark_full]\nthreads = 1\nbackend = "bogus"\n',
                     "inference.models.hand_landmark_full.backend: unknown backend 'bogus'", 3),
    "source": ('[source]\nuri = "vdeo:clip.mp4"\n', "source.uri: unknown source 'vdeo:clip.mp4'", 2),
    "content": ('[kiosk]\ncontent = "/nowhere/bundle"\n', "kiosk.content: /nowhere/bundle/campaign.toml does not "
                "exist", 2),
    "ramp": ('[segmentation]\nedge_low = 0.8\nedge_high = 0.4\n', "segmentation: edge_low 0.8 must be below "
             "edge_high 0.4", 1),
    "display": ('[display]\nwidth = 50000\n', "display.width: Input should be less than or equal to 7680", 2),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_config_check_refuses_what_run_refuses_naming_key_and_line(tmp_path: Path, capsys, case: str) -> None:
    text, problem, line = BAD[case]
    config = tmp_path / "appliance.toml"
    config.write_text(f'device_id = "mall-01-screen-3"\n{text}')
    assert main(["config", "check", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: {problem}" in err and f"(line {line + 1})" in err, err
    assert main(["run", "--config", str(config), "--headless", "--frames", "1"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and problem in err, err


def test_config_check_passes_a_good_file(tmp_path: Path, capsys, content_dir: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(f'device_id = "mall-01-screen-3"\n[kiosk]\ncontent = "{content_dir}"\n[source]\nuri = "demo"\n')
    assert main(["config", "check", str(config)]) == 0
    assert "ok — device mall-01-screen-3" in capsys.readouterr().out


ORIGINAL = 'device_id = "mall-01-screen-3"\n[source]\nuri = "demo"\n'


@pytest.mark.parametrize(("changes", "named"), [
    ({"inference": {"backend": "bogus"}}, "inference.backend: unknown backend 'bogus'"),
    ({"display": {"width": 50000}}, "display.width"),
    ({"source": {"uri": "camra:0"}}, "source.uri: unknown source 'camra:0'"),
    ({"source": {"uri": "video:/nowhere/clip.mp4"}}, "source.uri: /nowhere/clip.mp4 does not exist"),
])
def test_set_config_refuses_values_that_would_fail_at_start(tmp_path: Path, changes: dict, named: str) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(ORIGINAL)
    with pytest.raises(ApplianceError, match="refused, nothing changed") as refused:
        apply_settings(config, changes)
    assert named in str(refused.value)
    assert config.read_text() == ORIGINAL and sorted(p.name for p in tmp_path.iterdir()) == ["appliance.toml"]


def test_a_trial_counts_its_starts_then_the_last_good_file_comes_back(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(ORIGINAL)
    assert apply_settings(config, {"kiosk": {"attract_after_s": 9}}) == ["kiosk.attract_after_s"]
    trial = ConfigTrial(config)
    assert trial.pending and trial.good.read_text() == ORIGINAL
    assert trial.starting() is None and trial.starting() is None      # two starts that never got ready
    rollback = trial.starting()                                       # the third runs the last good file
    assert rollback is not None and rollback.changed == ["kiosk.attract_after_s"]
    assert "did not become ready in 2 starts" in rollback.reason
    assert config.read_text() == ORIGINAL and not trial.pending
    assert trial.last_rollback() == rollback


def test_a_confirmed_trial_becomes_the_last_good_file(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(ORIGINAL)
    apply_settings(config, {"kiosk": {"attract_after_s": 9}})
    apply_settings(config, {"kiosk": {"attract_after_s": 8}})         # a second change before a restart
    trial = ConfigTrial(config)
    assert trial.good.read_text() == ORIGINAL, "the good file is the last one that reached ready"
    assert trial.starting() is None and trial.confirm()
    assert trial.good.read_text() == config.read_text() and "attract_after_s = 8" in config.read_text()
    assert not trial.pending and trial.last_rollback() is None


def test_a_trial_not_ready_by_its_deadline_is_rolled_back_and_the_service_restarted(
        tmp_path: Path, content_dir: Path) -> None:
    """The real kiosk, whose camera never comes: not ready by the deadline, so the render loop rolls the
    configuration back and stops asking for a restart; the next start reports it."""
    config = tmp_path / "appliance.toml"
    config.write_text(ORIGINAL)
    apply_settings(config, {"kiosk": {"attract_after_s": 9}})
    settings = Config.model_validate({"device_id": "mall-01-screen-3", "source": {"uri": "camera:63"},
                                      "display": {"width": 640, "height": 360}, "kiosk": {"content": str(content_dir)}})
    with kiosk_session(settings, DisplayMode.HEADLESS, config) as kiosk:
        watch_trial(kiosk, ConfigTrial(config), None, deadline_s=1.0)
        assert kiosk.run() == RESTART_STATUS
        assert not kiosk.readiness.ready
        assert "config_rolled_back" in [event.type for event in kiosk.events.drain(100)]
    assert config.read_text() == ORIGINAL and not ConfigTrial(config).pending

    with kiosk_session(settings, DisplayMode.HEADLESS, config) as restarted:
        watch_trial(restarted, ConfigTrial(config), None)
        alerts = restarted.alerts.wire()
    assert [alert["code"] for alert in alerts] == ["config"]
    assert "set-config of kiosk.attract_after_s rolled back" in alerts[0]["reason"]
    assert "not ready 1 s after starting" in alerts[0]["reason"]


def test_a_trial_ready_in_time_is_kept_and_clears_the_alert(tmp_path: Path, content_dir: Path,
                                                           astronaut_file: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(ORIGINAL)
    apply_settings(config, {"kiosk": {"attract_after_s": 9}})
    ConfigTrial(config).roll_back("an earlier failure")
    apply_settings(config, {"kiosk": {"attract_after_s": 7}})
    settings = Config.model_validate({"device_id": "mall-01-screen-3", "source": {"uri": f"image:{astronaut_file}"},
                                      "display": {"width": 640, "height": 360}, "kiosk": {"content": str(content_dir)}})
    with kiosk_session(settings, DisplayMode.HEADLESS, config) as kiosk:
        watch_trial(kiosk, ConfigTrial(config), None, deadline_s=60)
        assert [alert["code"] for alert in kiosk.alerts.wire()] == ["config"]
        assert kiosk.run(max_frames=3) == 0
        assert kiosk.readiness.ready and kiosk.alerts.wire() == []
    assert "attract_after_s = 7" in config.read_text() and not ConfigTrial(config).pending
    assert ConfigTrial(config).good.read_text() == config.read_text()


def test_run_rolls_back_a_trial_that_fails_at_start_and_starts_again_on_the_good_one(
        tmp_path: Path, content_dir: Path) -> None:
    """The real command: a configuration on trial whose camera never comes ends its start with an error;
    the file is rolled back and the service asked to restart, which then runs on the last good file."""
    config = tmp_path / "appliance.toml"
    config.write_text(f'device_id = "mall-01-screen-3"\n[kiosk]\ncontent = "{content_dir}"\n'
                      f'[source]\nuri = "demo"\n[display]\nwidth = 640\nheight = 360\n')
    good = config.read_text()
    apply_settings(config, {"source": {"uri": "camera:63"}})
    command = [sys.executable, "-m", "appliance", "run", "--config", str(config), "--headless", "--frames", "5"]
    failed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert failed.returncode == RESTART_STATUS, failed.stderr
    assert "rolled back to the last good one" in failed.stderr
    assert config.read_text() == good
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "alert config: set-config of source.uri rolled back" in again.stderr
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)
