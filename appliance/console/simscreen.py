"""A simulated screen for the console's trial and tests: the device's own fleet code, a scripted shopper instead of
a camera.

What is real: the configuration file (``appliance.config``, as a kiosk reads it), the fleet side as
``FleetRuntime`` builds it — the Link (presence, birth, will), the campaign manager (signature checked
with the trusted keys, assets downloaded over HTTP from the document's URLs, verified, activated,
``state/reported``), the CommandHandler with the device's commands (``device_commands``), the
EventShipper over the on-disk spool and the HealthReporter — and the schedule's pick of the bundle
on screen.  What is simulated: the shopper (``Shopper``: sessions, experience choices, RPS rounds and
results, pose rounds and finals, photos taken, shared and printed, with the data fields the kiosk's
scenes publish, each experience event carrying ``session`` and ``campaign`` as ``Kiosk.publish``
does), the picture (the shown campaign's first world with the device id written on it: what the
screenshot command returns) and the machine: ``reboot`` and a ``set-config`` restart end the
process with ``RESTART_STATUS`` (the trial, like systemd, starts it again) instead of running
``systemctl``.

Time is compressed by ``speed``: a visit of a minute's simulated events goes out in ``60 / speed``
seconds, with the simulated durations (``dwell_s``) in the data.  ``python -m appliance.console.simscreen
--config FILE`` runs one until SIGINT/SIGTERM (exit 0) or a simulated restart (exit 75).
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.config import Config, load_config
from appliance.configtrial import ConfigTrial
from appliance.content import VIDEO_SUFFIXES, Bundle, load_bundle
from appliance.errors import ApplianceError, command_line, one_line
from appliance.events import EventBus
from appliance.experience.photo import ORIGINAL
from appliance.fleet.runtime import FleetRuntime
from appliance.media import open_video, read_image
from appliance.service.status import RESTART_STATUS
from appliance.share.links import new_photo_id
from appliance.stats import RateMeter, StageStats
from appliance.tomlwrite import dumps

log = logging.getLogger(__name__)

BACKEND = "simulated"
#: How often the screen's loop runs (its fps in the health report) and looks at the schedule.
LOOP_HZ = 10.0
PICK_EVERY_S = 1.0
DEFAULT_SESSIONS_PER_MINUTE = 4.0
DEFAULT_SPEED = 10.0
#: What each experience's scene publishes besides ``experience_chosen`` (the menu's).
RPS_MOVES = ("rock", "paper", "scissors")
GESTURES = ("swipe", "fist", "victory", "palm")


Step = tuple[float, str, dict[str, Any]]


@dataclass(frozen=True)
class Visit:
    """One shopper's visit: the session id and the steps (simulated seconds after the previous step, type, data)."""

    session: str
    steps: list[Step]


class Shopper:
    """Scripted shoppers: realistic visits of the experiences a campaign offers, from a seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def visit(self, experiences: Sequence[str], rounds_to_win: int = 2, poses: int = 3) -> Visit:
        rng = self.rng
        session = str(uuid.uuid4())
        steps: list[Step] = [(0.0, "session_start", {})]
        offered = [name for name in experiences if name != "menu"] or ["mirror"]
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            experience = rng.choice(offered)
            steps.append((rng.uniform(3, 12), "experience_chosen", {"experience": experience}))
            steps += self._play(experience, rounds_to_win, poses)
        dwell = sum(gap for gap, _, _ in steps) + rng.uniform(2, 10)
        gestures = {name: rng.randint(0, 6) for name in GESTURES}
        steps.append((dwell - sum(gap for gap, _, _ in steps), "session_end",
                      {"dwell_s": round(dwell, 2), "gestures": {k: v for k, v in gestures.items() if v}}))
        return Visit(session, steps)

    def _play(self, experience: str, rounds_to_win: int, poses: int) -> list[Step]:
        return {"rps": lambda: self._rps(rounds_to_win), "pose": lambda: self._pose(poses), "photo": self._photo,
                "fusion": self._fusion, "age": self._age}.get(experience, self._mirror)()

    def _mirror(self) -> list[Step]:
        return []

    def _rps(self, rounds_to_win: int) -> list[Step]:
        rng, steps = self.rng, []
        score = {"shopper": 0, "star": 0}
        number = 1
        while max(score.values()) < rounds_to_win:
            if rng.random() < 0.05:
                steps.append((rng.uniform(2, 6), "rps_abandon", {"reason": "walked_away", "round": number,
                                                                  "score": dict(score)}))
                return steps
            outcome = rng.choices(("win", "lose", "draw"), (0.36, 0.36, 0.28))[0]
            shopper = rng.choice(RPS_MOVES)
            star = {"draw": shopper, "win": RPS_MOVES[(RPS_MOVES.index(shopper) + 2) % 3],
                    "lose": RPS_MOVES[(RPS_MOVES.index(shopper) + 1) % 3]}[outcome]
            if outcome == "win":
                score["shopper"] += 1
            elif outcome == "lose":
                score["star"] += 1
            steps.append((rng.uniform(4, 7), "rps_round", {"round": number, "shopper": shopper, "star": star,
                                                          "outcome": outcome, "typed": False, "score": dict(score)}))
            number += 1
        winner = "shopper" if score["shopper"] >= rounds_to_win else "star"
        steps.append((rng.uniform(1, 3), "rps_result", {"score": dict(score), "winner": winner, "rounds": number - 1}))
        return steps

    def _pose(self, poses: int) -> list[Step]:
        rng = self.rng
        names = ["Star jump", "T", "Wave"][:poses] or ["Pose"]
        players = rng.choice((1, 1, 1, 2))
        sides = ["you"] if players == 1 else ["left", "right"]
        steps: list[Step] = [(rng.uniform(2, 4), "pose_round_started", {
            "players": players, "poses": len(names), "names": names, "seconds_per_pose": 10, "tolerance_deg": 30})]
        totals = dict.fromkeys(sides, 0)
        matched = dict.fromkeys(sides, 0)
        for index, name in enumerate(names, 1):
            for side in sides:
                hit = rng.random() < 0.7
                score = rng.randint(60, 100) if hit else rng.randint(10, 59) // 2
                totals[side] += score
                matched[side] += hit
                data = {"pose": index, "name": name, "player": side, "score": score,
                        "seconds": round(rng.uniform(2, 10), 2), "players": players}
                steps.append((rng.uniform(2, 10), "pose_matched" if hit else "pose_missed",
                              data if hit else {**data, "best": score * 2}))
        winner = None
        if players == 2:
            winner = "left" if totals["left"] > totals["right"] else "right" if totals["right"] > totals["left"] \
                else "draw"
        steps.append((rng.uniform(1, 3), "pose_final", {"players": players, "poses": len(names), "scores": totals,
                                                        "matched": matched, "winner": winner}))
        return steps

    def _photo(self) -> list[Step]:
        rng = self.rng
        photo_id = new_photo_id()
        steps: list[Step] = [(rng.uniform(5, 12), "photo_taken", {
            "photo_id": photo_id, "take": 1, "ms": rng.randint(900, 2500),
            "style": rng.choice((ORIGINAL, ORIGINAL, "Van Gogh", "Sunset oils", "Sepia"))})]
        if rng.random() < 0.6:
            steps.append((rng.uniform(3, 15), "photo_shared", {"photo_id": photo_id}))
        if rng.random() < 0.3:
            if rng.random() < 0.9:
                steps.append((rng.uniform(20, 40), "photo_printed", {"photo_id": photo_id}))
            else:
                steps.append((rng.uniform(20, 40), "print_failed", {"photo_id": photo_id, "reason": "out of paper"}))
        return steps

    def _fusion(self) -> list[Step]:
        rng = self.rng
        return [(rng.uniform(6, 15), "fusion_made", {"photo_id": new_photo_id(), "take": 1,
                                                      "ms": rng.randint(1500, 4000)})]

    def _age(self) -> list[Step]:
        rng = self.rng
        return [(rng.uniform(8, 30), "age_played", {"duration_s": round(rng.uniform(8, 30), 1),
                                                     "faces": rng.randint(1, 3), "reason": "menu"})]


def picture(bundle: Bundle | None, device_id: str, size: tuple[int, int], limits: Any) -> np.ndarray:
    """The screen's picture: ``bundle``'s first world (a drawn placeholder without one), ``device_id`` on it (BGR)."""
    width, height = size
    frame = None
    if bundle is not None and bundle.scenes:
        path = bundle.directory / bundle.scenes[0].background
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                capture, frame = open_video(path, limits)
                capture.release()
            else:
                frame = read_image(path, cv2.IMREAD_COLOR, limits)
        except ApplianceError as exc:
            log.warning("the world %s cannot be drawn (%s); a placeholder instead", path, exc)
    if frame is None:
        ramp = np.linspace(40, 120, width, dtype=np.uint8)
        frame = np.dstack([np.tile(ramp, (height, 1)), np.full((height, width), 60, np.uint8),
                           np.tile(ramp[::-1], (height, 1))])
    frame = cv2.resize(frame[:, :, :3], (width, height), interpolation=cv2.INTER_AREA)
    band = max(40, height // 8)
    frame[height - band:] = (frame[height - band:] * 0.35).astype(np.uint8)
    scale = band / 60
    lines = [device_id, bundle.name if bundle is not None else "no campaign"]
    for number, text in enumerate(lines):
        y = height - band + int(band * (0.45 + 0.42 * number))
        cv2.putText(frame, text, (band // 3, y), cv2.FONT_HERSHEY_SIMPLEX, scale * (0.8 if number else 1.0),
                    (255, 255, 255), max(1, round(2 * scale)), cv2.LINE_AA)
    return frame


def write_config(path: Path, device_id: str, fleet: dict[str, Any], trusted_key: Path, state_dir: Path,
                 content: Path | None = None, **tables: dict[str, Any]) -> Path:
    """A screen's configuration file (the kiosk's format: set-config merges into it); ``fleet`` holds the ``[fleet]``
    keys (broker, TLS files, timings), ``tables`` any further ones (``display``).  The schedule runs on this
    machine's clock, synchronised or not."""
    document: dict[str, Any] = {
        "device_id": device_id,
        "source": {"uri": "demo"},
        "fleet": {key: str(value) if isinstance(value, Path) else value for key, value in fleet.items()},
        "campaigns": {"trusted_keys": [str(trusted_key)], "require_synced_clock": False},
        "paths": {"state_dir": str(state_dir)},
        **tables,
    }
    if content is not None:
        document["kiosk"] = {"content": str(content)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(document), encoding="utf-8")
    return path


class SimulatedScreen:
    """The fleet.screen.Screen protocol over a scripted shopper; ``run`` until ``stop``; ``exit_status`` after."""

    def __init__(self, config: Config, config_path: Path, sessions_per_minute: float = DEFAULT_SESSIONS_PER_MINUTE,
                 speed: float = DEFAULT_SPEED, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not config.fleet.broker:
            raise ApplianceError(f"{config_path}: a simulated screen needs [fleet] broker")
        if sessions_per_minute <= 0 or speed <= 0:
            raise ApplianceError("sessions per minute and speed must be above 0")
        self.config = config
        self.config_path = config_path
        self.sessions_per_minute = sessions_per_minute
        self.speed = speed
        self.clock = clock
        self.shopper = Shopper(random.Random(seed))
        self.runtime = FleetRuntime(config, config_path)
        self.exit_status = 0
        self._events = EventBus()
        self._stats = StageStats()
        self._shown = RateMeter()
        self._stopped = threading.Event()
        self._reload = threading.Event()
        self._lock = threading.Lock()
        self._bundle: Bundle | None = None
        self._campaign = ""

    # -- fleet.screen.Screen -----------------------------------------------------------------------

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def stats(self) -> StageStats:
        return self._stats

    @property
    def shown(self) -> RateMeter:
        return self._shown

    @property
    def backend(self) -> str:
        return BACKEND

    def grab_screen(self, timeout: float = 2.0) -> np.ndarray:
        with self._lock:
            bundle = self._bundle
        display = self.config.display
        return picture(bundle, self.config.device_id, (display.width, display.height), self.config.media)

    def request_reload(self) -> None:
        self._reload.set()

    def stop(self, exit_status: int = 0) -> None:
        self.exit_status = exit_status
        self._stopped.set()

    # -- running ------------------------------------------------------------------------------------

    @property
    def campaign(self) -> str:
        """The name of the campaign on screen (what experience events carry)."""
        with self._lock:
            return self._campaign

    def publish(self, type: str, session: str, data: dict[str, Any]) -> None:
        """An event of ``session``, as the kiosk publishes it: each with the campaign shown."""
        self._events.publish(type, {"session": session, "campaign": self.campaign, **data})

    def run(self) -> int:
        """Start the fleet side, serve it until ``stop``, stop it; the exit status."""
        trial = ConfigTrial(self.config_path)
        trial.starting()
        runtime = self.runtime.start()
        try:
            self._show(runtime.schedule.pick())
            runtime.attach(self, run=self._simulated_system)
            self._loop(trial)
        finally:
            runtime.stop()
        return self.exit_status

    def _simulated_system(self, argv: Sequence[str]) -> None:
        log.warning("simulated: %s (this screen restarts instead)", " ".join(argv))
        self.stop(RESTART_STATUS)

    def _show(self, picked: Path) -> None:
        """Load ``picked`` as the kiosk would; one that fails goes back to the campaign side (its fall-back)."""
        try:
            bundle = load_bundle(picked)
        except ApplianceError as exc:
            log.error("campaign bundle %s cannot be shown: %s", picked, one_line(exc))
            self.runtime.schedule.failed(picked, one_line(exc))
            return
        with self._lock:
            changed = self._bundle is None or self._bundle.directory != bundle.directory
            self._bundle, self._campaign = bundle, bundle.name
        self.runtime.schedule.shown(bundle.directory)
        if changed:
            log.info("showing %s (%s)", bundle.name, bundle.directory)

    def _loop(self, trial: ConfigTrial) -> None:
        """Every tick: confirm a configuration on trial once registered, follow the schedule (each second, or at
        a reload), and publish the current visit's events that are due (a new visit after a pause)."""
        next_pick = self.clock() + PICK_EVERY_S
        next_visit = self.clock() + self._pause()
        pending: deque[tuple[float, str, dict[str, Any]]] = deque()
        session = ""
        confirmed = False
        while not self._stopped.wait(1.0 / LOOP_HZ):
            now = self.clock()
            self._shown.tick(now)
            if not confirmed and self.runtime.link.connected:
                trial.confirm()
                confirmed = True
            if now >= next_pick or self._reload.is_set():
                self._follow_schedule()
                next_pick = now + PICK_EVERY_S
            if not pending and now >= next_visit:
                visit, at = self._visit(), now
                session = visit.session
                for gap, type, data in visit.steps:
                    at += gap / self.speed
                    pending.append((at, type, data))
            while pending and pending[0][0] <= now:
                _, type, data = pending.popleft()
                self.publish(type, session, data)
                if not pending:
                    next_visit = now + self._pause()
            self._stats.add("simulate", (self.clock() - now) * 1000)

    def _follow_schedule(self) -> None:
        reload = self._reload.is_set()
        self._reload.clear()
        picked = self.runtime.schedule.pick()
        with self._lock:
            current = self._bundle.directory if self._bundle is not None else None
        if reload or picked != current:
            self._show(picked)

    def _visit(self) -> Visit:
        with self._lock:
            bundle = self._bundle
        experiences = bundle.experiences if bundle is not None else ()
        rps = bundle.configs.get("rps") if bundle is not None else None
        pose = bundle.configs.get("pose") if bundle is not None else None
        return self.shopper.visit(experiences, getattr(rps, "rounds_to_win", 2), len(getattr(pose, "poses", ())) or 3)

    def _pause(self) -> float:
        """Seconds until the next shopper (compressed): about ``sessions_per_minute`` visits a minute of real time."""
        return self.shopper.rng.expovariate(self.sessions_per_minute / 60.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m appliance.console.simscreen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="the screen's configuration (device_id, [fleet], [campaigns] trusted_keys, [paths])")
    parser.add_argument("--sessions-per-minute", type=float, default=DEFAULT_SESSIONS_PER_MINUTE, metavar="N",
                        help=f"shoppers a minute of real time, on average (default {DEFAULT_SESSIONS_PER_MINUTE:g})")
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED, metavar="X",
                        help=f"how much faster than a real visit a visit's events go out (default {DEFAULT_SPEED:g})")
    parser.add_argument("--seed", type=int, metavar="N", help="the shoppers' random seed (default: random)")
    return parser


@command_line
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    config = load_config(args.config)
    screen = SimulatedScreen(config, args.config, args.sessions_per_minute, args.speed, args.seed)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: screen.stop(0))
    return screen.run()


if __name__ == "__main__":
    sys.exit(main())
