"""The console in a real browser: Chromium (Debian's, driven by Playwright) against the console process, a real
headless kiosk and the fleet's real services — mosquitto with the shipped configuration, ingest into PostgreSQL,
SeaweedFS for the booth's photos.

One environment serves the module (``env``), built from the trial's parts (``appliance.console.trial.Trial``: the
broker, ingest, the headless kiosk with the demo source) and the tests' console (``ConsoleServer``, with a
``console.toml`` for the share pages).  A second screen, the "booth", is a simulated screen run in this process
(``SimulatedScreen``: the device's own fleet code) whose shopper is silent: the events a test publishes through it
are the only ones of its campaign, so the charts' numbers are known.  Every test is a user's path through pages:
clicks, forms, what the page shows; the database is read only to wait for ingest and to count what a page
recorded.  Each main page is saved as a full-page screenshot in the module's temporary directory (``shots/``).

Chromium is ``/usr/bin/chromium`` (``.ci/run`` installs it); without it the module skips with the package to install.
"""

from __future__ import annotations

import csv
import re
import shutil
import threading
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import psycopg
import pytest
from broker import Broker, wait_for
from console_server import ConsoleServer, console_db
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright
from s3server import S3Server

from appliance.config import Config, PathsConfig, ShareConfig, load_config
from appliance.console.settings import FIRST_RUN_FILE
from appliance.console.simscreen import SimulatedScreen, write_config
from appliance.console.trial import KIOSK, Trial
from appliance.ops.testbroker import MOSQUITTO, OPERATOR, free_port
from appliance.share import ShareService, new_photo_id

CHROMIUM = Path("/usr/bin/chromium")
BOOTH = "demo-station-screen-7"
BOOTH_CAMPAIGN = "Spring selfie"
PUSHED_CAMPAIGN = "Browser spring sale"
#: Generous bounds for what other processes do (a kiosk starting on a busy two-core machine); never assertions.
SLOW_S = 120.0
PAGE_MS = 30_000


@dataclass
class Environment:
    trial: Trial
    console: ConsoleServer
    s3: S3Server
    booth: SimulatedScreen
    content: Path
    root: Path
    shots: Path
    published: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    scans: int = 0
    page_errors: list[str] = field(default_factory=list)

    def publish(self, type: str, session: str, **data: object) -> None:
        """An event of the booth's campaign, through its fleet link to ingest (as the kiosk publishes it)."""
        self.booth.publish(type, session, data)
        self.published.append((type, data))

    @property
    def db(self) -> str:
        return self.console.db

    def rows(self, query: str, *args: object) -> list[tuple]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(query, args).fetchall()

    def credentials(self) -> tuple[str, str]:
        """The first-run user and password, as ``serve`` wrote them."""
        name, password = (self.console.data_dir / FIRST_RUN_FILE).read_text().split()
        return name, password


def renamed_campaign(source: Path, target: Path, name: str) -> Path:
    """A copy of the campaign folder ``source`` under another name: a new campaign to the console and the screens."""
    shutil.copytree(source, target)
    toml = target / "campaign.toml"
    text = toml.read_text()
    toml.write_text(re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.M))
    assert f'name = "{name}"' in toml.read_text()
    return target


def booth_config(directory: Path, broker: Broker, trusted: Path, content: Path) -> Path:
    """The booth's configuration: the test broker, the console's key trusted, its own campaign on screen."""
    fleet = broker.fleet_config(broker.pki.client(BOOTH), health_period_s=10.0).model_dump(exclude_defaults=True)
    return write_config(directory / "appliance.toml", BOOTH, fleet, trusted, directory / "state",
                        renamed_campaign(content, directory / "content", BOOTH_CAMPAIGN))


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, or the module skips in one line (before anything is started)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def env(chromium: Path, tmp_path_factory: pytest.TempPathFactory, content_dir: Path) -> Iterator[Environment]:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    root = tmp_path_factory.mktemp("browser")
    shots = root / "shots"
    shots.mkdir()
    said = (root / "trial.txt").open("w")  # what the trial says, for a failure's reader
    trial = Trial(root / "trial", listen=f"127.0.0.1:{free_port()}", screens=(), kiosk=True, out=said)
    s3 = S3Server(root / "s3", devices=(BOOTH,))
    console: ConsoleServer | None = None
    booth: SimulatedScreen | None = None
    runner: threading.Thread | None = None
    with console_db() as url:
        try:
            s3.start()
            s3.create_bucket()
            trial.db_url = url
            broker = trial.start_broker()
            trial.start_ingest()
            private, public = trial.signing_keys()
            identity = broker.pki.service(OPERATOR)
            settings = root / "console.toml"
            settings.write_text(f'share_endpoint = "{s3.endpoint_url}"\nshare_bucket = "{s3.bucket}"\n'
                                f'share_credentials = "{s3.admin.write(root / "storage")}"\n')
            console = ConsoleServer(url, root / "console", "--config", str(settings), "--broker",
                                    broker.operator_address, "--ca", str(identity.ca), "--cert", str(identity.cert),
                                    "--key-file", str(identity.key), "--signing-key", str(private)).start()
            trial.start_screens()
            config = booth_config(root / "booth", broker, public, content_dir)
            booth = SimulatedScreen(load_config(config), config, sessions_per_minute=1e-6, seed=1)  # a silent shopper
            runner = threading.Thread(target=booth.run, name="booth", daemon=True)
            runner.start()
            trial.screens[0].wait_for(lambda: bool(trial.wait_registered(timeout=5)), "the kiosk registered",
                                      timeout=SLOW_S)
            yield Environment(trial, console, s3, booth, content_dir, root, shots)
        finally:
            if booth is not None and runner is not None:
                booth.stop()
                runner.join(30)
            if console is not None:
                console.stop()
            trial.stop()
            s3.stop()
            said.close()


@pytest.fixture(scope="module")
def browser(chromium: Path, env: Environment) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])  # root: no sandbox
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, env: Environment, path: str = "/fleet") -> None:
    """The login form, as a person fills it: the first-run credentials."""
    name, password = env.credentials()
    page.goto(env.console.base + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(env.console.base + path)


def watched(env: Environment, context: BrowserContext) -> BrowserContext:
    """``context`` with its pages' script errors and console errors (a CSP violation is one) kept in
    ``env.page_errors``, which every test ends without (``no_page_errors``)."""
    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: env.page_errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: message.type == "error" and env.page_errors.append(
            f"{page.url}: {message.text}"))
    context.on("page", watch)
    return context


@pytest.fixture(autouse=True)
def no_page_errors(env: Environment) -> Iterator[None]:
    yield
    errors, env.page_errors[:] = list(env.page_errors), []
    assert errors == [], "the browser reported errors"


@pytest.fixture(scope="module")
def operator(env: Environment, browser: Browser) -> Iterator[Page]:
    """The operator's tab, logged in through the form; confirmation dialogs (reboot, push to several) accepted."""
    context = watched(env, browser.new_context(viewport={"width": 1280, "height": 900}))
    context.set_default_timeout(PAGE_MS)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, env)
    try:
        yield page
    finally:
        context.close()


def shot(page: Page, env: Environment, name: str) -> None:
    page.screenshot(path=str(env.shots / f"{name}.png"), full_page=True)


def natural_width(page: Page, image: Locator) -> int:
    """The picture's width once the browser has it (scrolled to: lazy images load when seen)."""
    image.scroll_into_view_if_needed()
    return page.wait_for_function("img => img.complete && img.naturalWidth", arg=image.element_handle()).json_value()


def choose(page: Page, label: str, value: str) -> None:
    """Choose ``value`` in the filter menu ``label``, which sends its form itself once the page's script runs."""
    page.wait_for_load_state("load")
    page.get_by_label(label).select_option(value)


def fleet_row(page: Page, device: str) -> Locator:
    return page.locator("#screens tbody tr").filter(has=page.get_by_role("link", name=device, exact=True))


# -- tests, in the order a newcomer meets the pages ---------------------------------------------------------------


def test_log_in_with_the_first_run_password_and_see_the_kiosk_online_with_its_frame_rate(
        env: Environment, browser: Browser) -> None:
    context = watched(env, browser.new_context())
    try:
        page = context.new_page()
        page.goto(env.console.base + "/")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.get_by_label("User name").fill(env.credentials()[0])
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
        log_in(page, env)
        expect(page.get_by_role("heading", name="Fleet", exact=True)).to_be_visible()
        row = fleet_row(page, KIOSK)
        expect(row.locator(".pill").first).to_have_text("online", timeout=SLOW_S * 1000)
        fps = row.locator("td.num").first
        # its first health report, before a frame, says 0.0: a later one (the live refresh brings it) is above
        expect(fps).to_have_text(re.compile(r"^(?:[1-9]\d*\.\d|0\.[1-9])$"), timeout=SLOW_S * 1000)
        expect(fleet_row(page, BOOTH).locator(".pill").first).to_have_text("online")
        shot(page, env, "fleet")
        choose(page, "Site", "demo-station")
        expect(page).to_have_url(re.compile(r"site=demo-station"))
        expect(page.locator("#screens tbody tr")).to_have_count(1)
        expect(fleet_row(page, BOOTH)).to_have_count(1)
        choose(page, "Site", "demo-mall")
        expect(fleet_row(page, KIOSK)).to_have_count(1)
        expect(page.locator("#screens tbody tr")).to_have_count(1)
        page.get_by_role("link", name=KIOSK, exact=True).click()
        expect(page).to_have_url(f"{env.console.base}/screens/{KIOSK}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(KIOSK)
        expect(page.locator("dl.kv dt", has_text="Frame rate").locator("xpath=following-sibling::dd[1]")).to_have_text(
            re.compile(r"^[\d.]+ fps$"))
    finally:
        context.close()
    refusal = (f"{env.console.base}/login: Failed to load resource: the server responded with a status of 401 "
               "(Unauthorized)")
    assert env.page_errors.count(refusal) == 1, "Chromium reports the refused login's status"
    env.page_errors.remove(refusal)  # the only error expected


def test_a_screenshot_sent_from_the_screens_page_appears_on_it(env: Environment, operator: Page) -> None:
    page = operator
    page.goto(f"{env.console.base}/screens/{KIOSK}")
    page.get_by_role("button", name="Screenshot").click()
    expect(page).to_have_url(f"{env.console.base}/screens/{KIOSK}#commands")
    reply = page.locator("#commands tbody tr").filter(has_text="screenshot").first
    expect(reply.locator(".pill")).to_have_text("done", timeout=SLOW_S * 1000)  # the list refreshes itself
    picture = reply.locator("img.screenshot")
    expect(picture).to_be_visible()
    width = natural_width(page, picture)
    assert width > 0 and f"width {width}" in reply.inner_text()  # the picture is the one the kiosk described
    shot(page, env, "screen-with-screenshot")


def zipped(folder: Path, target: Path) -> Path:
    """``folder`` zipped as an operator zips it: the folder itself at the top."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return target


def test_a_campaign_uploaded_signed_and_pushed_is_applied_by_the_kiosk(env: Environment, operator: Page) -> None:
    page = operator
    campaign = renamed_campaign(env.content, env.root / "upload" / "spring-sale", PUSHED_CAMPAIGN)
    archive = zipped(campaign, env.root / "upload" / "spring-sale.zip")
    page.get_by_role("link", name="Campaigns", exact=True).click()
    page.get_by_label("Campaign zip").set_input_files(archive)
    page.get_by_role("button", name="Upload and check").click()
    expect(page).to_have_url(re.compile(r"/campaigns/[0-9a-f]{12}$"), timeout=SLOW_S * 1000)
    expect(page.get_by_role("heading", level=1)).to_have_text(PUSHED_CAMPAIGN)
    worlds = page.locator(".thumbs.worlds img")
    expect(worlds).to_have_count(3)
    for index in range(3):
        assert natural_width(page, worlds.nth(index)) > 0
    shot(page, env, "campaign-preview")
    page.get_by_label("One screen").check()
    page.get_by_label("Screen", exact=True).fill(KIOSK)
    page.get_by_role("button", name="Sign and push").click()  # its confirmation accepted (two screens known)
    expect(page).to_have_url(re.compile(r"/campaigns/pushes/\d+$"), timeout=SLOW_S * 1000)
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Rollout of version \d+$"))
    row = page.locator("table.rollout tr[data-device]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-device", KIOSK)
    # the kiosk downloads the assets from the console and applies them; the page refreshes itself
    expect(row.locator(".pill")).to_have_text("applied", timeout=SLOW_S * 1000)
    expect(page.locator('[data-status="applied"] .n')).to_have_text("1")
    expect(page.locator(".rollout-bar")).to_contain_text("1 of 1 screen applied")
    shot(page, env, "campaign-rollout")
    version = int(page.get_by_role("heading", level=1).inner_text().rsplit(" ", 1)[1])
    page.get_by_role("link", name=KIOSK, exact=True).click()
    expect(page.locator("dl.kv dt", has_text="Campaign").locator("xpath=following-sibling::dd[1]")).to_contain_text(
        f"v{version}")


def shared_photo(env: Environment, session: str, photo: Path) -> str:
    """The booth's whole path: the share service uploads the photo with the kiosk's labels, then the screen
    announces it (``photo_shared``) once uploaded, as the kiosk's keepsakes do; the QR code's link."""
    credentials = env.s3.devices[BOOTH].write(env.root / "booth" / "s3")
    share = ShareService.from_config(Config(device_id=BOOTH, share=ShareConfig(
        endpoint_url=env.s3.endpoint_url, bucket=env.s3.bucket, credentials_dir=credentials,
        short_link_base=env.console.base), paths=PathsConfig(state_dir=env.root / "booth" / "share")), BOOTH,
        environ={})
    assert share is not None
    photo_id = new_photo_id()
    try:
        ticket = share.submit(photo_id, photo, {"session": session, "campaign": BOOTH_CAMPAIGN})
        env.publish("photo_taken", session, photo_id=photo_id)
        wait_for(lambda: [labels for done, labels in share.to_announce() if done == photo_id], SLOW_S, "the upload")
        env.publish("photo_shared", session, photo_id=photo_id)
        share.announced(photo_id)
    finally:
        share.stop()
    return ticket.url


def test_a_shoppers_phone_opens_the_share_link_and_sees_the_photo_and_the_brands_offer(
        env: Environment, operator: Page, browser: Browser, astronaut: np.ndarray) -> None:
    page = operator
    page.get_by_role("link", name="Share pages", exact=True).click()
    expect(page.get_by_text("No call to action yet")).to_be_visible()
    page.get_by_label("Campaign", exact=True).fill(BOOTH_CAMPAIGN)
    page.get_by_label("Headline").fill("Thanks for playing!")
    page.get_by_label("Text").fill("Show this page at the till for 10 % off today.")
    page.get_by_label("Link's label").fill("Follow the store")
    page.get_by_label("Link (https://)").fill("https://shop.example.com/follow")
    page.get_by_label("Coupon code").fill("SPRING10")
    page.get_by_role("button", name="Save").click()
    saved = page.locator("table.data tbody tr").filter(has_text=BOOTH_CAMPAIGN)
    expect(saved).to_contain_text("Thanks for playing!")
    expect(saved).to_contain_text("SPRING10")
    shot(page, env, "share-pages")

    session = f"visit-{uuid.uuid4().hex[:8]}"
    env.publish("session_start", session)
    env.publish("experience_chosen", session, experience="photo")
    photo = env.root / "booth" / "photo.jpg"  # the finished photo, a portrait JPEG as the booth writes it
    assert cv2.imwrite(str(photo), astronaut)
    link = shared_photo(env, session, photo)
    assert link.startswith(f"{env.console.base}/p/")
    photo_id = link.rsplit("/", 1)[1]

    phone = watched(env, browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                             is_mobile=True, has_touch=True))
    try:
        shopper = phone.new_page()
        shopper.goto(link)  # "on its way" until ingest has the booth's events: the page refreshes itself
        expect(shopper.get_by_role("heading", level=1)).to_have_text("Your photo", timeout=SLOW_S * 1000)
        photo = shopper.get_by_role("img", name="Your photo from the screen")
        assert photo.get_attribute("src") == f"/p/{photo_id}/photo.jpg"
        assert natural_width(shopper, photo) == astronaut.shape[1]  # the booth's photo, from the storage's signed link
        expect(shopper.get_by_role("link", name="Download your photo")).to_be_visible()
        offer = shopper.locator(".share-cta")
        expect(offer.locator("h2")).to_have_text("Thanks for playing!")
        expect(offer.locator(".share-coupon")).to_have_text("Your code SPRING10")
        expect(offer.get_by_role("link", name="Follow the store")).to_have_attribute(
            "href", "https://shop.example.com/follow")
        shot(shopper, env, "share-page-phone")
        shopper.reload()
        expect(shopper.get_by_role("heading", level=1)).to_have_text("Your photo")
    finally:
        phone.close()
    scans = env.rows("SELECT device, data->>'campaign', data->>'session' FROM events WHERE type = 'qr_scanned' "
                     "AND data->>'photo_id' = %s", photo_id)
    assert scans == [(BOOTH, BOOTH_CAMPAIGN, session)], "one scan, for the booth's campaign and the visit"
    env.scans += 1  # the console's record, for the analytics below



#: The booth's shoppers for the charts: each visit's experience, what its scene published, its dwell in seconds.
VISITS: tuple[tuple[str, tuple[tuple[str, dict[str, object]], ...], float], ...] = (
    ("rps", (("rps_round", {"outcome": "win"}), ("rps_round", {"outcome": "lose"}), ("rps_round", {"outcome": "win"}),
             ("rps_result", {"winner": "shopper"})), 40.0),
    ("rps", (("rps_round", {"outcome": "lose"}), ("rps_round", {"outcome": "draw"}),
             ("rps_round", {"outcome": "lose"}), ("rps_result", {"winner": "star"})), 31.0),
    ("rps", (("rps_round", {"outcome": "lose"}), ("rps_round", {"outcome": "lose"}),
             ("rps_result", {"winner": "star"})), 22.0),
    ("pose", (("pose_final", {"players": 2, "scores": {"left": 87, "right": 42}}),), 50.0),
    ("photo", (("photo_taken", {}), ("photo_printed", {})), 20.0),
)


def play(env: Environment) -> None:
    """The VISITS, published by the booth as its shoppers' events (a photo's events name a new photo id)."""
    for experience, steps, dwell in VISITS:
        session, photo_id = f"visit-{uuid.uuid4().hex[:8]}", new_photo_id()
        env.publish("session_start", session)
        env.publish("experience_chosen", session, experience=experience)
        for type_, data in steps:
            env.publish(type_, session, **(({"photo_id": photo_id} if type_.startswith("photo_") else {}) | data))
        env.publish("session_end", session, dwell_s=dwell)


def drawn(page: Page, chart: str) -> dict[str, list]:
    """The first trace Plotly drew in the chart ``chart`` (its x and y), once it has drawn it."""
    return page.wait_for_function(
        "id => { const el = document.getElementById(id);"
        " return el && el.data && el.querySelector('svg.main-svg') &&"
        " {x: Array.from(el.data[0].x), y: Array.from(el.data[0].y)}; }", arg=chart).json_value()


def downloaded(page: Page, chart: str, link: str = "CSV") -> list[list[str]]:
    """The rows of the CSV that the chart's link downloads."""
    card = page.locator("section.card").filter(has=page.locator(f"#{chart}"))
    with page.expect_download() as download:
        card.get_by_role("link", name=link, exact=True).click()
    with open(download.value.path(), newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_the_analytics_charts_show_the_numbers_of_the_events_the_booth_published(
        env: Environment, operator: Page) -> None:
    play(env)
    wait_for(lambda: env.rows("SELECT count(*) FROM events WHERE device = %s AND seq > 0 AND data->>'campaign' = %s",
                              BOOTH, BOOTH_CAMPAIGN)[0][0] == len(env.published), SLOW_S,
             "ingest storing the booth's events")
    of = env.published
    kinds = Counter(type_ for type_, _ in of)
    sessions = kinds["session_start"]
    plays = Counter(data["experience"] for type_, data in of if type_ == "experience_chosen")
    games = Counter(data["winner"] for type_, data in of if type_ == "rps_result")
    rounds = Counter(data["outcome"] for type_, data in of if type_ == "rps_round")
    scores = Counter(score // 10 * 10 for type_, data in of if type_ == "pose_final"
                     for score in data["scores"].values())
    dwell = [data["dwell_s"] for type_, data in of if type_ == "session_end"]
    funnel = [kinds["photo_taken"] + kinds["fusion_made"], kinds["photo_shared"], kinds["photo_printed"], env.scans]

    page = operator
    page.get_by_role("link", name="Analytics", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Analytics")
    choose(page, "Campaign", BOOTH_CAMPAIGN)
    expect(page).to_have_url(re.compile(r"campaign=Spring\+selfie"))
    totals = {"sessions": str(sessions), "dwell": f"{round(sum(dwell) / len(dwell))} s",
              "plays": str(sum(plays.values())), "rps": str(kinds["rps_result"]), "pose": str(kinds["pose_final"]),
              "photos": str(funnel[0]), "shared": str(funnel[1]), "printed": str(funnel[2]), "scanned": str(funnel[3])}
    for name, value in totals.items():
        expect(page.locator(f'#totals [data-total="{name}"] .n')).to_have_text(value)

    per_hour, per_day = drawn(page, "sessions-per-hour"), drawn(page, "sessions-per-day")
    assert sum(per_hour["y"]) == sum(per_day["y"]) == sessions
    bars = drawn(page, "plays")  # horizontal: experiences on y
    assert dict(zip(bars["y"], bars["x"], strict=True)) == plays
    rps = drawn(page, "rps")
    assert dict(zip(rps["x"], rps["y"], strict=True)) == {"shopper won": games["shopper"], "star won": games["star"],
                                                          "left before the end": 0}
    expect(page.get_by_text("Rounds, from the shoppers' side:")).to_have_text(
        f"Rounds, from the shoppers' side: {rounds['win']} won, {rounds['lose']} lost, {rounds['draw']} drawn.")
    bands = drawn(page, "pose-bands")
    assert {label: n for label, n in zip(bands["x"], bands["y"], strict=True) if n} == {
        f"{low}–{low + 9}": n for low, n in scores.items()}
    steps = drawn(page, "funnel")  # stages on y
    assert steps == {"x": funnel, "y": ["photos", "shared", "printed", "QR scanned"]}
    shot(page, env, "analytics")

    assert downloaded(page, "funnel") == [["step", "count"], *([step, str(n)] for step, n in zip(
        steps["y"], funnel, strict=True))]
    assert sorted(downloaded(page, "plays")[1:]) == sorted([name, str(n)] for name, n in plays.items())


def test_an_operator_added_by_the_admin_logs_in_from_new_york_and_reads_times_in_that_zone(
        env: Environment, operator: Page, browser: Browser) -> None:
    zone = ZoneInfo("America/New_York")
    session = f"visit-{uuid.uuid4().hex[:8]}"
    env.publish("session_start", session)  # a session of this test's own, for the hours below
    page = operator
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Name").fill("olga")
    page.get_by_label("Role").select_option("operator")
    page.get_by_role("button", name="Add", exact=True).click()
    password = page.locator("code.secret").inner_text()
    context = watched(env, browser.new_context(timezone_id=zone.key))
    try:
        olga = context.new_page()
        olga.goto(env.console.base + "/fleet")
        olga.get_by_label("User name").fill("olga")
        olga.get_by_label("Password").fill(password)
        olga.get_by_role("button", name="Log in").click()  # the form sends the browser's zone: her default
        expect(olga.get_by_role("heading", name="Fleet", exact=True)).to_be_visible()

        olga.get_by_role("link", name="Audit log", exact=True).click()
        entry = olga.locator("table.data tbody tr").filter(has_text="olga").filter(has_text="user.add").first
        added = env.rows("SELECT at FROM console_audit WHERE action = 'user.add' AND target = 'olga'")[0][0]
        expect(entry.locator("td").first).to_have_text(added.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"))

        wait_for(lambda: env.rows("SELECT 1 FROM events WHERE type = 'session_start' AND data->>'session' = %s",
                                  session), SLOW_S, "ingest storing the session")
        started = {ts.astimezone(zone).replace(minute=0, second=0, microsecond=0) for (ts,) in env.rows(
            "SELECT ts FROM events WHERE device = %s AND type = 'session_start' AND data->>'campaign' = %s",
            BOOTH, BOOTH_CAMPAIGN)}
        olga.get_by_role("link", name="Analytics", exact=True).click()
        choose(olga, "Campaign", BOOTH_CAMPAIGN)
        expect(olga).to_have_url(re.compile(r"campaign=Spring\+selfie"))
        hours = drawn(olga, "sessions-per-hour")
        shown = [datetime.fromisoformat(x) for x, n in zip(hours["x"], hours["y"], strict=True) if n]
        # Plotly draws a time's wall clock and drops its offset: the hours must be New York's
        assert {hour.replace(tzinfo=zone) for hour in shown} == started
        assert all(hour.utcoffset() == hour.astimezone(zone).utcoffset() for hour in shown)
    finally:
        context.close()
    page.get_by_role("link", name="Users", exact=True).click()  # the admin sees the zone her browser gave
    expect(page.locator("table.data tbody tr").filter(has_text="olga")).to_contain_text(zone.key)
