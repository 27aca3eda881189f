"""A third-party experience installed for real: tests/plugins/oivis-quiz built and pip-installed into a
directory of its own, found through its entry point, enabled by a campaign, and tested with the test kit.

The plug-in goes in with ``pip install --no-deps --target`` (a copy of its source, so the build leaves
nothing in the tree); subprocesses see it through PYTHONPATH, which is how ``importlib.metadata``
finds its dist-info, exactly as in a venv's site-packages.  This process never has it installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from bundles import offering

from appliance.content.bundle import load_bundle
from appliance.experience import registry
from appliance.experience.api import API_VERSION
from appliance.tomlfile import InvalidFile

PLUGIN = Path(__file__).resolve().parent / "plugins" / "oivis-quiz"
QUIZ_TABLE = """
[quiz]
question = "Which planet has the most moons?"
answers = ["Jupiter", "Saturn", "Mars"]
correct = 1
badge = "star.png"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the plug-in is pip-installed into."""
    work = tmp_path_factory.mktemp("quiz")
    source = work / "oivis-quiz"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info", "build"))
    target = work / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(source)]
    installed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, f"{' '.join(command)} failed:\n{installed.stdout}\n{installed.stderr}"
    return target


def run(code: str, site: Path | None, cwd: Path | None = None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    command = [sys.executable, *(["-c", code] if code else []), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def campaign(content_dir: Path, tmp_path: Path, experiences: str, table: str) -> Path:
    """A copy of the default campaign offering ``experiences``, with ``table`` at its end."""
    return offering(content_dir, tmp_path / "bundle", experiences, table)


def test_the_installed_plugin_is_found_and_a_campaign_offers_it(site: Path, content_dir: Path,
                                                                tmp_path: Path) -> None:
    assert (site / "oivis_quiz-0.1.0.dist-info" / "entry_points.txt").is_file()
    bundle = campaign(content_dir, tmp_path, '["mirror", "quiz", "rps"]', QUIZ_TABLE)
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from importlib.metadata import entry_points
        from appliance.content.bundle import load_bundle
        from appliance.experience import registry
        found = registry.load(entry_points(group=registry.GROUP))
        bundle = load_bundle(Path({str(bundle)!r}))   # against this environment's experiences, as the kiosk loads it
        print(json.dumps({{"names": found.names(), "skipped": dict(found.skipped),
                          "module": sys.modules[type(found["quiz"].scene()).__module__].__file__,
                          "offered": list(bundle.experiences), "quiz": bundle.configs["quiz"].model_dump(),
                          "media": bundle.media()}}))
    """)
    done = run(code, site)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    assert "quiz" in answer["names"] and not answer["skipped"]
    assert answer["module"] == str(site / "oivis_quiz" / "__init__.py")
    assert answer["offered"] == ["mirror", "quiz", "rps"]
    assert answer["quiz"]["answers"] == ["Jupiter", "Saturn", "Mars"] and answer["quiz"]["correct"] == 1
    assert "star.png" in answer["media"]    # the badge ships with the campaign


def test_a_campaign_table_with_a_mistake_is_refused_by_the_plugins_model(site: Path, content_dir: Path,
                                                                        tmp_path: Path) -> None:
    bundle = campaign(content_dir, tmp_path, '["quiz"]', QUIZ_TABLE.replace("correct = 1", "correct = 1\ncolor = 2"))
    done = run(f"from pathlib import Path\nfrom appliance.content.bundle import load_bundle\n"
               f"load_bundle(Path({str(bundle)!r}))", site)
    assert done.returncode != 0
    assert "quiz.color" in done.stderr and "line" in done.stderr


def test_a_campaign_enabling_quiz_without_the_plugin_is_refused(content_dir: Path, tmp_path: Path) -> None:
    assert "quiz" not in registry.installed()   # this process: the appliance alone
    listed = campaign(content_dir, tmp_path / "listed", '["mirror", "quiz"]', "")
    line = next(number for number, text in enumerate((listed / "campaign.toml").read_text().splitlines(), 1)
                if text.startswith("experiences = "))
    with pytest.raises(InvalidFile, match=rf"experiences\[1\]: no experience 'quiz' .*\(line {line}\)"):
        load_bundle(listed)
    tabled = campaign(content_dir, tmp_path / "tabled", '["mirror"]', QUIZ_TABLE)
    with pytest.raises(InvalidFile, match=r"\[quiz\]: no experience 'quiz' .*\(line \d+\)"):
        load_bundle(tabled)


def test_the_plugins_own_tests_pass_with_the_test_kit(site: Path, tmp_path: Path) -> None:
    # From elsewhere, so the plug-in comes from where pip put it, not from its source directory.
    done = run("", site, tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_plugins_for_another_api_or_that_do_not_import_are_skipped_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "future_plugin.py").write_text(textwrap.dedent("""
        from appliance.experience.api import Card, Experience
        experience = Experience(name="future", api="2.0", scene=object, card=lambda config: Card("Future"))
    """))
    (tmp_path / "broken_plugin.py").write_text("import a_module_nobody_installed\n")
    (tmp_path / "fine_plugin.py").write_text(textwrap.dedent("""
        from appliance.experience.api import Card, Experience
        experience = Experience(name="fine", api="1.0", scene=object, card=lambda config: Card("Fine"))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    group = registry.GROUP
    entries = [EntryPoint("future", "future_plugin:experience", group),
               EntryPoint("broken", "broken_plugin:experience", group),
               EntryPoint("fine", "fine_plugin:experience", group)]
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        found = registry.load(entries)
    assert found.names() == ["fine"]
    assert found.skipped["future"] == f"needs experience API 2.0; this kiosk runs {API_VERSION}"
    assert found.skipped["broken"].startswith("it does not import: ModuleNotFoundError")
    logged = [record.getMessage() for record in caplog.records]
    assert any("'future'" in line and "needs experience API 2.0" in line for line in logged)
    assert any("'broken'" in line and "a_module_nobody_installed" in line for line in logged)


def test_quiz_in_the_real_kiosk(site: Path, content_dir: Path, astronaut_file: Path, tmp_path: Path) -> None:
    """The installed quiz on the real menu, played with the technician's keys: chosen second, answered with →
    and Enter, its result up for its 4 s, then the menu again; every event in the shopper's session."""
    bundle = campaign(content_dir, tmp_path, '["mirror", "quiz", "rps"]', QUIZ_TABLE)
    code = textwrap.dedent(f"""
        import json
        import threading
        import pygame
        from appliance.compose import kiosk_session
        from appliance.config import Config
        from appliance.kiosk.display import DisplayMode

        config = Config.model_validate({{"source": {{"uri": "image:{astronaut_file}"}},
                                         "display": {{"width": 960, "height": 540}},
                                         "kiosk": {{"content": {str(bundle)!r}}}}})
        def key(name):
            return pygame.event.Event(pygame.KEYDOWN, key=name, mod=0)
        with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
            seen = {{}}
            def on_event(event):
                if event.type == "session_start":                  # the menu: the quiz is second
                    seen["offers"] = [offer.name for offer in kiosk.offers]
                    pygame.event.post(key(pygame.K_RIGHT))
                    pygame.event.post(key(pygame.K_RETURN))
                elif event.type == "experience_chosen":            # the question: the second answer
                    pygame.event.post(key(pygame.K_RIGHT))
                    pygame.event.post(key(pygame.K_RETURN))
                elif event.type == "quiz_answered":                # the result stays 4 s, then the menu
                    seen["answered_in"] = kiosk.current
                    threading.Timer(3.0, lambda: seen.setdefault("after_3s", kiosk.current)).start()
                    pygame.time.set_timer(pygame.QUIT, 5_000, loops=1)
            kiosk.events.subscribe(on_event)
            pygame.time.set_timer(pygame.QUIT, 60_000, loops=1)   # a safety net
            kiosk.run()
            events = [(event.type, event.data) for event in kiosk.events.drain(100)]
            print(json.dumps({{"events": events, "current": kiosk.current, **seen}}))
    """)
    done = run(code, site)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["offers"] == ["mirror", "quiz", "rps"]
    types = [kind for kind, _ in answer["events"]]
    assert types[:3] == ["session_start", "experience_chosen", "quiz_answered"], types
    chosen, answered = answer["events"][1][1], answer["events"][2][1]
    assert chosen["experience"] == "quiz" and answer["answered_in"] == "quiz"
    assert (answered["correct"], answered["answer"]) == (True, 1)
    assert len({data["session"] for _, data in answer["events"]}) == 1
    assert answer["after_3s"] == "quiz" and answer["current"] == "menu"   # the result was up for its 4 s
