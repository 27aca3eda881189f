"""The kiosk, headless on SDL's dummy driver, with the real models, threads and content."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pygame
from bundles import offering

from appliance.compose import kiosk_session
from appliance.config import Config
from appliance.kiosk.display import DisplayMode
from appliance.kiosk.presence import Presence
from appliance.render.compositor import Compositor

REPO = Path(__file__).resolve().parents[1]


def config_for(source: str, content_dir: Path, **kiosk: object) -> Config:
    return Config.model_validate({
        "source": {"uri": source},
        "display": {"width": 960, "height": 540},
        "kiosk": {"content": str(content_dir), **kiosk},
    })


def screen(kiosk) -> np.ndarray:
    return pygame.surfarray.array3d(kiosk.display.surface).swapaxes(0, 1)


def test_a_person_in_front_brings_up_the_mirror_with_the_world_behind(astronaut_file: Path, content_dir: Path) -> None:
    with kiosk_session(config_for(f"image:{astronaut_file}", content_dir), DisplayMode.HEADLESS) as kiosk:
        assert kiosk.run(max_frames=25) == 0
        shot = screen(kiosk)
        assert kiosk.frames_shown == 25
        assert kiosk.display.size == (960, 540)
        assert kiosk.stats.summary()["segmentation"]["p50"] > 0
    # The astronaut (mirrored, centred) replaces the world in the middle; the world shows at the edges.
    empty = Compositor(kiosk.world, kiosk.bundle.directory, (960, 540)).compose_world(0.0)
    empty_rgb = cv2.cvtColor(empty, cv2.COLOR_BGR2RGB)
    centre = np.abs(shot[200:340, 400:560].astype(int) - empty_rgb[200:340, 400:560]).mean()
    assert centre > 30


def test_nobody_in_front_keeps_the_attract_scene(tmp_path: Path, content_dir: Path) -> None:
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((720, 1280, 3), (60, 90, 120), np.uint8))
    with kiosk_session(config_for(f"image:{wall}", content_dir), DisplayMode.HEADLESS) as kiosk:
        kiosk.run(max_frames=15)
        assert not kiosk._presence.present


def test_technician_keys_switch_worlds_and_quit(astronaut_file: Path, content_dir: Path) -> None:
    with kiosk_session(config_for(f"image:{astronaut_file}", content_dir), DisplayMode.HEADLESS) as kiosk:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT, mod=0))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F2, mod=0))
        kiosk.run(max_frames=5)
        assert kiosk.world_index == 1 and kiosk.overlay
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_LEFT, mod=0))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_LEFT, mod=0))
        kiosk.run(max_frames=10)
        assert kiosk.world_index == len(kiosk.bundle.scenes) - 1
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q, mod=pygame.KMOD_LCTRL))
        kiosk.run(max_frames=10_000)
        assert kiosk.frames_shown < 1000


def test_presence_needs_a_steady_person_and_forgives_short_gaps() -> None:
    presence = Presence(enter=0.04, leave=0.015, leave_after_s=2.0)
    assert not presence.update(0.3, 0.0)          # one frame is a passer-by
    assert not presence.update(0.0, 0.1)
    assert [presence.update(0.3, t) for t in (0.2, 0.3, 0.4)] == [False, False, True]
    assert presence.update(0.0, 1.0)              # stepped out...
    assert presence.update(0.2, 2.5)              # ...and back within the grace period
    assert presence.update(0.0, 3.0) and presence.update(0.0, 4.9)
    assert not presence.update(0.0, 5.1)


def test_cli_runs_the_kiosk_headless_for_n_frames(astronaut_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--headless", "--source", f"image:{astronaut_file}",
         "--frames", "20"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "model selfie_landscape on backend litert" in result.stderr
    assert "scene menu" in result.stderr


def test_missing_camera_shows_the_world_without_a_call_to_action_and_alerts_the_fleet(content_dir: Path) -> None:
    """Before: "Step in front of the screen" invited shoppers nobody could see, and "Camera reconnecting…"
    told the mall about it.  Now the world alone, and a ``camera`` alert for the fleet."""
    with kiosk_session(config_for("camera:63", content_dir), DisplayMode.HEADLESS) as kiosk:
        texts: list[str] = []
        draw_text = kiosk.display.text
        kiosk.display.text = lambda text, *args, **kwargs: (texts.append(text), draw_text(text, *args, **kwargs))
        pygame.time.set_timer(pygame.QUIT, 3600, loops=1)
        kiosk.run(max_frames=None)
        assert kiosk.frames_shown == 0
        assert "no camera at /dev/video63" in (kiosk.workers.problem or "")
        assert texts == []
        alerts = kiosk.alerts.wire()
        assert [alert["code"] for alert in alerts] == ["camera"] and "/dev/video63" in alerts[0]["reason"]


def test_run_for_n_frames_without_a_camera_ends_with_the_reason() -> None:
    result = subprocess.run([sys.executable, "-m", "appliance", "run", "--headless", "--source", "camera:63",
                             "--frames", "30"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: no camera at /dev/video63")


def test_a_window_never_outgrows_the_desktop() -> None:
    from appliance.kiosk.display import fit_window

    assert fit_window((1920, 1080), (1600, 1000)) == (1440, 810)
    assert fit_window((1280, 720), (3840, 2160)) == (1280, 720)


def fast_rps_bundle(content_dir: Path, target: Path, **rps: object) -> Path:
    """The default bundle with a quick countdown (and whatever else the test sets in [rps])."""
    shutil.copytree(content_dir, target)
    toml = target / "campaign.toml"
    extra = "".join(f"\n{key} = {value}" for key, value in {"beat_s": 0.05, **rps}.items())
    toml.write_text(toml.read_text().replace("rounds_to_win = 2", "rounds_to_win = 2" + extra))
    return target


def key(name: int) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=name, mod=0)


def test_the_keyboard_walks_attract_menu_rps_to_a_result(astronaut_file: Path, content_dir: Path,
                                                         tmp_path: Path) -> None:
    bundle = fast_rps_bundle(content_dir, tmp_path / "bundle", win_rate=1.0)
    with kiosk_session(config_for(f"image:{astronaut_file}", bundle), DisplayMode.HEADLESS) as kiosk:
        heard = []

        def on_event(event) -> None:
            heard.append(event)
            if event.type == "session_start":             # the menu is up: choose the second experience
                pygame.event.post(key(pygame.K_RIGHT))
                pygame.event.post(key(pygame.K_RETURN))
            elif event.type == "experience_chosen":       # in the game: keep throwing rock
                pygame.time.set_timer(key(pygame.K_r), 40)
            elif event.type == "rps_result":
                kiosk.stop()

        kiosk.events.subscribe(on_event)
        pygame.time.set_timer(pygame.QUIT, 30_000, loops=1)    # a safety net, never reached when it works
        try:
            kiosk.run()
        finally:
            pygame.time.set_timer(pygame.KEYDOWN, 0)
            pygame.time.set_timer(pygame.QUIT, 0)
    types = [event.type for event in heard]
    assert types == ["session_start", "experience_chosen", "rps_round", "rps_round", "rps_result"], types
    session = heard[0].data["session"]
    assert all(event.data["session"] == session for event in heard)
    assert {event.data["campaign"] for event in heard} == {kiosk.bundle.name}  # sessions too: split per campaign
    assert heard[1].data["experience"] == "rps"
    assert [(e.data["shopper"], e.data["star"], e.data["typed"]) for e in heard[2:4]] == [("rock", "scissors", True)] * 2
    assert heard[-1].data["winner"] == "shopper" and heard[-1].data["score"] == {"shopper": 2, "star": 0}
    assert kiosk.events.drain(100) == heard


def test_backspace_leaves_the_game_for_the_menu_and_the_mirror_can_be_chosen(
        astronaut_file: Path, content_dir: Path, tmp_path: Path) -> None:
    bundle = fast_rps_bundle(content_dir, tmp_path / "bundle")
    with kiosk_session(config_for(f"image:{astronaut_file}", bundle), DisplayMode.HEADLESS) as kiosk:
        def on_event(event) -> None:
            if event.type == "session_start":
                for name in (pygame.K_RIGHT, pygame.K_RETURN):   # the second offer: the game
                    pygame.event.post(key(name))
            elif event.type == "experience_chosen" and event.data["experience"] == "rps":
                pygame.event.post(key(pygame.K_BACKSPACE))
            elif event.type == "rps_abandon":
                pygame.event.post(key(pygame.K_RETURN))         # the menu again, on the mirror
            elif event.type == "experience_chosen":
                kiosk.stop()

        kiosk.events.subscribe(on_event)
        pygame.time.set_timer(pygame.QUIT, 30_000, loops=1)
        try:
            kiosk.run()
        finally:
            pygame.time.set_timer(pygame.QUIT, 0)
    published = kiosk.events.drain(100)
    assert [(e.type, e.data.get("experience") or e.data.get("reason")) for e in published] == [
        ("session_start", None), ("experience_chosen", "rps"), ("rps_abandon", "key"),
        ("experience_chosen", "mirror")]


def test_the_hand_cursor_lands_where_the_mirrored_cover_fitted_hand_is(content_dir: Path) -> None:
    from appliance.content import load_bundle
    from appliance.render.compositor import Compositor

    world = load_bundle(content_dir).scenes[0]
    assert world.mirror
    compositor = Compositor(world, content_dir, (1920, 1080))
    assert compositor.screen_point((640, 360), (1280, 720)) == (960, 540)
    assert compositor.screen_point((0, 720), (1280, 720)) == (1920, 1080)    # camera's left is the screen's right
    x, y = compositor.screen_point((140, 0), (640, 480))                      # 4:3 is cropped top and bottom
    assert (x, y) == (1500, -180)


class ScriptedSchedule:
    """Stands in for the campaign scheduler: picks what the test says, records what the kiosk shows."""

    def __init__(self, picked: Path) -> None:
        self.picked = picked
        self.shown_bundles: list[Path] = []
        self.failures: list[tuple[Path, str]] = []

    def pick(self) -> Path:
        return self.picked

    def shown(self, bundle: Path) -> None:
        self.shown_bundles.append(bundle)

    def failed(self, bundle: Path, reason: str) -> None:
        self.failures.append((bundle, reason))


def test_the_kiosk_follows_the_schedule_and_reports_only_bundles_it_could_load(
        tmp_path: Path, content_dir: Path) -> None:
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((360, 640, 3), (60, 90, 120), np.uint8))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "campaign.toml").write_text('name = "Broken"\n[[scenes]]\nid = "x"\ntitle = "x"\nbackground = "gone.png"\n')
    other = tmp_path / "other"
    shutil.copytree(content_dir, other)
    (other / "campaign.toml").write_text((other / "campaign.toml").read_text().replace(
        'name = "OIVIS winter demo"', 'name = "Other"'))
    with kiosk_session(config_for(f"image:{wall}", content_dir), DisplayMode.HEADLESS) as kiosk:
        schedule = kiosk.bundle_source = ScriptedSchedule(broken)
        kiosk.run(max_frames=kiosk.frames_shown + 3)
        kiosk._bundle_checked = float("-inf")
        kiosk.run(max_frames=kiosk.frames_shown + 3)
        assert kiosk.bundle.directory == content_dir and schedule.shown_bundles == []
        assert [(bundle, "gone.png" in reason) for bundle, reason in schedule.failures] == [(broken, True)]
        schedule.picked = other
        kiosk._bundle_checked = float("-inf")
        kiosk.run(max_frames=kiosk.frames_shown + 3)
        assert kiosk.bundle.name == "Other" and schedule.shown_bundles == [other]


def test_a_world_that_cannot_be_built_falls_back_once_not_every_frame(
        tmp_path: Path, content_dir: Path, caplog) -> None:
    """Before: a campaign whose background did not decode was activated and the kiosk showed its
    failsafe screen for good, logging a traceback every frame.  Now the schedule is told once (the
    campaign side falls back to the last good campaign) and the kiosk shows what it picks next."""
    broken = tmp_path / "broken"
    shutil.copytree(content_dir, broken)
    background = broken / "campaign.toml"
    first = next(line for line in background.read_text().splitlines() if line.startswith("background = "))
    (broken / "not-a-picture.png").write_text("this is text, not a PNG")
    background.write_text(background.read_text().replace(first, 'background = "not-a-picture.png"', 1))

    class FallingBack(ScriptedSchedule):
        def failed(self, bundle: Path, reason: str) -> None:
            super().failed(bundle, reason)
            self.picked = content_dir

    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((360, 640, 3), (60, 90, 120), np.uint8))
    with kiosk_session(config_for(f"image:{wall}", broken), DisplayMode.HEADLESS) as kiosk:
        schedule = kiosk.bundle_source = FallingBack(broken)
        kiosk.run(max_frames=kiosk.frames_shown + 40)
        assert kiosk.bundle.directory == content_dir and schedule.shown_bundles == [content_dir]
    assert len(schedule.failures) == 1 and schedule.failures[0][0] == broken
    assert "not-a-picture.png" in schedule.failures[0][1]
    assert sum("failsafe" in record.getMessage() for record in caplog.records) <= 1


def test_an_experience_that_keeps_raising_is_quarantined_for_the_day_and_reported(
        astronaut_file: Path, content_dir: Path, tmp_path: Path, caplog) -> None:
    """Before: a scene raising in ``draw`` was re-entered every frame (37 failsafe draws and tracebacks in 30
    frames), its ``exit`` never called.  Now each failure is the failsafe state (the scene's exit is called),
    logged once a minute, and the third within a minute disables the experience for the day, with an alert."""
    from appliance.experience.api import API_VERSION, Card, Experience
    from appliance.experience.registry import Registry, installed
    from appliance.kiosk.failsafe import LIMIT

    exits: list[str] = []

    class BoomScene:
        def enter(self, context, moment) -> None:
            pass

        def update(self, context, moment) -> None:
            return None

        def draw(self, context, moment) -> None:
            raise RuntimeError("boom in draw")

        def exit(self, context, reason: str) -> None:
            exits.append(reason)

    boom = Experience(name="boom", api=API_VERSION, scene=BoomScene, card=lambda config: Card("Boom"))
    registry = Registry.of([*installed().experiences.values(), boom])
    bundle = offering(content_dir, tmp_path / "bundle", '["boom", "mirror"]')
    with kiosk_session(config_for(f"image:{astronaut_file}", bundle), DisplayMode.HEADLESS,
                       registry=registry) as kiosk:
        chosen: list[str] = []

        def on_event(event) -> None:
            if event.type == "experience_chosen":
                chosen.append(event.data["experience"])
                if event.data["experience"] == "mirror":
                    kiosk.stop()

        kiosk.events.subscribe(on_event)
        pygame.time.set_timer(key(pygame.K_RETURN), 300)
        pygame.time.set_timer(pygame.QUIT, 40_000, loops=1)
        try:
            kiosk.run()
        finally:
            pygame.time.set_timer(pygame.KEYDOWN, 0)
            pygame.time.set_timer(pygame.QUIT, 0)
        assert [offer.name for offer in kiosk.offers] == ["mirror"]
        alerts = kiosk.alerts.wire()
    assert chosen == ["boom"] * LIMIT + ["mirror"]
    assert exits == ["failed"] * LIMIT
    assert [alert["code"] for alert in alerts] == ["experience"]
    assert alerts[0]["reason"].startswith(f"boom disabled for the rest of the day after {LIMIT} failures")
    assert "boom in draw" in alerts[0]["reason"]
    logged = [record for record in caplog.records if "experience boom failed" in record.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_text_keeps_clear_of_every_face_the_mesh_finds(astronaut_file: Path, content_dir: Path) -> None:
    """Two shoppers' faces (meshes) and no pose: the layout protects both heads, not only the mask's one."""
    from appliance.experience.api import Perception
    from appliance.experience.testkit import face
    from appliance.sources.base import Frame

    with kiosk_session(config_for(f"image:{astronaut_file}", content_dir), DisplayMode.HEADLESS) as kiosk:
        assert kiosk.run(max_frames=3) == 0
        alpha = np.zeros((720, 1280), np.uint8)
        alpha[200:, 100:1180] = 255
        faces = (face((200, 220, 120, 150), 1), face((900, 240, 110, 140), 2))
        kiosk._frame_perception = Perception(Frame(np.zeros((720, 1280, 3), np.uint8), 0), alpha, 0.6, faces=faces)
        kiosk._layout = None
        protected = kiosk.layout.protected
        assert len(protected) == 2
        centres = sorted(x + w / 2 for x, y, w, h in protected)
        # the mirrored world puts the camera's left face on the screen's right, both on the 960-wide screen
        assert centres[0] < 480 < centres[1]


def test_fleet_screenshots_are_blank_while_the_experience_shown_guesses_ages(astronaut_file: Path,
                                                                            content_dir: Path) -> None:
    from appliance.experience.api import Needs
    from appliance.kiosk.app import ScreenRequest

    def screenshot(kiosk) -> np.ndarray:
        request = ScreenRequest()
        kiosk._grab_requests.append(request)
        kiosk._answer_screen_requests()   # as the render loop does at the end of a frame
        return request.image

    with kiosk_session(config_for(f"image:{astronaut_file}", content_dir), DisplayMode.HEADLESS) as kiosk:
        assert kiosk.run(max_frames=3) == 0
        assert screenshot(kiosk).any(), "the world and the shopper"
        kiosk._want(Needs(face=10, age=3))
        assert not screenshot(kiosk).any(), "a face with its age and gender on screen: never in a screenshot"
        kiosk._want(Needs())
        assert screenshot(kiosk).any()
