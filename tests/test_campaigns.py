"""The campaign document, its signature, and the scheduler (pure logic, no network)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_campaigns_device import show_now

from appliance.campaigns import Rejected, Release, Schedule, ScheduledCampaign, Scheduler
from appliance.campaigns.document import decode_payload, parse_document
from appliance.campaigns.signing import (
    canonical_json,
    key_id,
    load_private_key,
    load_trusted_keys,
    raw_public_bytes,
    sign_document,
    verify_document,
    write_keypair,
)
from appliance.errors import ApplianceError

SHA = "ab" * 32
BODY = {
    "version": 3,
    "campaigns": [{
        "id": "winter",
        "priority": 5,
        "schedule": {"start": "2024-12-01T00:00:00Z", "end": "2025-01-01T00:00:00Z",
                     "dayparts": ["18:00-02:00"], "timezone": "Europe/Paris"},
        "bundle": 'name = "Hiver à Paris"\n',
        "assets": [{"path": "bg.png", "url": "http://h/bg.png", "sha256": SHA, "size": 10}],
    }],
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_canonical_json_is_sorted_compact_utf8_and_leaves_the_signature_out() -> None:
    document = {"b": 1, "a": {"z": "é", "y": [1, 2]}, "signature": "x", "key_id": "k"}
    assert canonical_json(document) == '{"a":{"y":[1,2],"z":"é"},"b":1,"key_id":"k"}'.encode()
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


def test_signed_document_verifies_and_parses(key: Ed25519PrivateKey) -> None:
    signed = sign_document(BODY, key)
    assert signed["key_id"] == key_id(key.public_key()) and len(base64.b64decode(signed["signature"])) == 64
    over_the_wire = json.loads(json.dumps(signed, indent=4))  # whitespace and key order do not matter
    verify_document(over_the_wire, {signed["key_id"]: key.public_key()})
    document = parse_document(over_the_wire)
    assert document.version == 3 and document.blobs() == {SHA}
    assert document.campaigns[0].schedule.start == utc("2024-12-01T00:00:00")


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda d: d.update(version=4), "bad signature"),
    (lambda d: d["campaigns"][0]["assets"][0].update(url="http://evil/bg.png"), "bad signature"),
    (lambda d: d.update(signature=base64.b64encode(b"\0" * 64).decode()), "bad signature"),
    (lambda d: d.update(signature="not base64!"), "bad signature"),
    (lambda d: d.pop("signature"), "unsigned"),
    (lambda d: d.update(key_id="0123456789abcdef"), "unknown key"),
])
def test_tampered_or_unsigned_documents_are_rejected_with_the_reason(key, tamper, reason) -> None:
    signed = json.loads(json.dumps(sign_document(BODY, key)))
    tamper(signed)
    with pytest.raises(Rejected, match=reason):
        verify_document(signed, {key_id(key.public_key()): key.public_key()})


def test_text_that_is_not_unicode_is_rejected(key: Ed25519PrivateKey) -> None:
    signed = sign_document(BODY, key)
    raw = decode_payload(json.dumps(signed).replace("Hiver", "\\ud800Hiver"))
    with pytest.raises(Rejected, match="not valid Unicode"):
        verify_document(raw, {signed["key_id"]: key.public_key()})


def test_a_document_signed_by_another_key_is_rejected(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(Rejected, match="unknown key"):
        verify_document(sign_document(BODY, other), {key_id(key.public_key()): key.public_key()})
    forged = sign_document(BODY, other) | {"key_id": key_id(key.public_key())}
    with pytest.raises(Rejected, match="bad signature"):
        verify_document(forged, {key_id(key.public_key()): key.public_key()})
    with pytest.raises(Rejected, match="no trusted operator keys"):
        verify_document(sign_document(BODY, key), {})


def test_unknown_keys_and_bad_values_are_refused_by_name(key: Ed25519PrivateKey) -> None:
    with pytest.raises(Rejected, match=r"campaigns\[0\]\.colour: unknown key"):
        parse_document(sign_document(BODY | {"campaigns": [BODY["campaigns"][0] | {"colour": "red"}]}, key))
    bad_schedules = [
        ({"start": "2024-12-01T00:00:00"}, "has no time zone"),
        ({"dayparts": ["18:00-25:00"]}, "is not a daypart"),
        ({"dayparts": ["09:00-09:00"]}, "is empty"),
        ({"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "is not after start"),
    ]
    for schedule, reason in bad_schedules:
        campaign = BODY["campaigns"][0] | {"schedule": schedule}
        with pytest.raises(Rejected, match=reason):
            parse_document(sign_document(BODY | {"campaigns": [campaign]}, key))
    with pytest.raises(Rejected, match=r"sha256"):
        asset = {"path": "a.png", "url": "http://h/a", "sha256": "../../x", "size": 1}
        parse_document(sign_document(BODY | {"campaigns": [BODY["campaigns"][0] | {"assets": [asset]}]}, key))


def with_assets(*paths: str) -> dict:
    assets = [{"path": path, "url": f"http://h/{i}", "sha256": f"{i:02x}" * 32, "size": 1}
              for i, path in enumerate(paths)]
    return BODY | {"campaigns": [BODY["campaigns"][0] | {"assets": assets}]}


def test_asset_paths_are_normalised(key: Ed25519PrivateKey) -> None:
    document = parse_document(sign_document(with_assets("./art//logo.png", "bg.png/", "a/./b.png"), key))
    assert [asset.path for asset in document.campaigns[0].assets] == ["art/logo.png", "bg.png", "a/b.png"]


@pytest.mark.parametrize(("paths", "reason"), [
    (("bg.png", "./bg.png"), "asset path 'bg.png' is listed twice"),
    (("art/logo.png", "art//logo.png"), "asset path 'art/logo.png' is listed twice"),
    (("art", "art/logo.png"), "asset path 'art' is a file, but 'art/logo.png' needs it to be a directory"),
    (("./campaign.toml",), "asset path 'campaign.toml' is the bundle's own campaign.toml"),
])
def test_two_asset_paths_naming_one_file_are_refused(key: Ed25519PrivateKey, paths, reason) -> None:
    with pytest.raises(Rejected, match=reason):
        parse_document(sign_document(with_assets(*paths), key))


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda d: d.update(version="9"), r"version: .*valid integer"),
    (lambda d: d.update(version=2**70), r"version: .*less than or equal to 9223372036854775807"),
    (lambda d: d.update(version=True), r"version: .*valid integer"),
    (lambda d: d.update(version=3.0), r"version: .*valid integer"),
    (lambda d: d.update(version=0), r"version: .*greater than or equal to 1"),
    (lambda d: d["campaigns"][0]["assets"][0].update(size="10"), r"size: .*valid integer"),
    (lambda d: d["campaigns"][0]["assets"][0].update(size=2**63), r"size: .*less than or equal"),
    (lambda d: d["campaigns"][0].update(priority="5"), r"priority: .*valid integer"),
    (lambda d: d["campaigns"][0].update(priority=-(2**63) - 1), r"priority: .*greater than or equal"),
])
def test_numbers_are_strict_64_bit_integers(key: Ed25519PrivateKey, edit, reason) -> None:
    document = json.loads(json.dumps(BODY))
    edit(document)
    with pytest.raises(Rejected, match=reason):
        parse_document(sign_document(document, key))
    assert parse_document(sign_document(BODY | {"version": 2**63 - 1}, key)).version == 2**63 - 1


def test_an_oversized_or_deeply_nested_document_is_rejected_before_parsing() -> None:
    with pytest.raises(Rejected, match="nests 10000 levels deep"):
        decode_payload(b"[" * 10000 + b"]" * 10000)
    with pytest.raises(Rejected, match="over the limit"):
        decode_payload(b'{"bundle": "' + b"x" * 2_000_000 + b'"}')


def test_keygen_files_load_as_signing_and_trusted_keys(tmp_path: Path) -> None:
    private, public, written_id = write_keypair(tmp_path)
    assert private.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ApplianceError, match="already exist"):
        write_keypair(tmp_path)
    key = load_private_key(private)
    raw = base64.b64encode(raw_public_bytes(key.public_key())).decode()
    (tmp_path / "raw.pub").write_text(raw + "\n")
    for entries in ([public], [str(tmp_path / "raw.pub")], [raw]):
        assert list(load_trusted_keys(entries)) == [written_id]
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(ApplianceError, match="junk.pub: not an Ed25519 public key"):
        load_trusted_keys([tmp_path / "junk.pub"])
    with pytest.raises(ApplianceError, match="not an unencrypted PEM private key"):
        load_private_key(public)
    _, _, replaced_id = write_keypair(tmp_path, force=True)
    assert replaced_id != written_id


def test_dayparts_wrap_past_midnight_in_the_campaign_time_zone() -> None:
    schedule = Schedule(dayparts=["18:00-02:00"], timezone="Europe/Paris")  # UTC+1 in winter, UTC+2 in summer
    assert schedule.active_at(utc("2024-12-10T17:30"))      # 18:30 in Paris
    assert schedule.active_at(utc("2024-12-10T23:59"))      # 00:59 the next day
    assert schedule.active_at(utc("2024-12-11T00:30"))      # 01:30
    assert not schedule.active_at(utc("2024-12-11T01:30"))  # 02:30
    assert not schedule.active_at(utc("2024-12-10T16:59"))  # 17:59
    assert not schedule.active_at(utc("2024-07-10T15:59"))  # 17:59 in summer (UTC+2)
    assert schedule.active_at(utc("2024-07-10T16:00"))      # 18:00 in summer
    split = Schedule(dayparts=["07:00-09:00", "12:00-13:30"], timezone="UTC")
    assert [split.active_at(utc(f"2024-12-10T{t}")) for t in ("06:59", "07:00", "08:59", "09:00", "13:29", "13:30")] \
        == [False, True, True, False, True, False]


def test_utc_window_bounds_start_inclusive_end_exclusive() -> None:
    window = Schedule(start=utc("2024-12-01T00:00"), end=utc("2024-12-02T00:00"))
    assert not window.active_at(utc("2024-11-30T23:59:59"))
    assert window.active_at(utc("2024-12-01T00:00"))
    assert not window.active_at(utc("2024-12-02T00:00"))
    assert Schedule().active_at(utc("1999-01-01T00:00"))


def _release(tmp_path: Path, *campaigns: tuple[str, int, Schedule]) -> Release:
    scheduled = []
    for name, priority, schedule in campaigns:
        (tmp_path / name).mkdir(exist_ok=True)
        scheduled.append(ScheduledCampaign(name, priority, schedule, tmp_path / name))
    return Release(version=1, campaigns=tuple(scheduled))


def test_scheduler_priorities_windows_and_default_fallback(tmp_path: Path) -> None:
    default = tmp_path / "default"
    scheduler = Scheduler(default, clock_synced=lambda: True)
    assert show_now(scheduler, utc("2024-12-24T12:00")) == default
    scheduler.release = _release(
        tmp_path,
        ("always", 0, Schedule()),
        ("christmas", 10, Schedule(start=utc("2024-12-24T00:00"), end=utc("2024-12-26T00:00"))),
        ("evenings", 5, Schedule(dayparts=["18:00-02:00"], timezone="UTC")),
        ("also-always", 0, Schedule()),
    )
    assert show_now(scheduler, utc("2024-12-20T12:00")).name == "always"  # tie: the first listed
    assert show_now(scheduler, utc("2024-12-20T19:00")).name == "evenings"
    assert show_now(scheduler, utc("2024-12-25T19:00")).name == "christmas"
    assert show_now(scheduler, datetime(2024, 12, 20, 1, 0)).name == "evenings"  # naive means UTC
    scheduler.release = _release(tmp_path, ("christmas", 10, Schedule(start=utc("2024-12-24T00:00"))))
    assert show_now(scheduler, utc("2024-12-01T00:00")) == default


def test_scheduler_keeps_the_current_bundle_on_an_unsynced_clock(tmp_path: Path) -> None:
    synced = [True]
    default = tmp_path / "default"
    scheduler = Scheduler(default, clock_synced=lambda: synced[0])
    scheduler.release = _release(
        tmp_path, ("day", 0, Schedule(dayparts=["08:00-20:00"], timezone="UTC")),
        ("night", 0, Schedule(dayparts=["20:00-08:00"], timezone="UTC")),
    )
    assert show_now(scheduler, utc("2024-12-10T12:00")).name == "day"
    assert show_now(scheduler, utc("2024-12-10T13:00")).name == "day"
    assert scheduler.clock_note is None
    synced[0] = False
    assert show_now(scheduler, utc("2024-12-10T23:00")).name == "day"  # night is due, but the clock lies
    assert "clock not synchronised" in scheduler.clock_note and scheduler.showing.name == "day"
    synced[0] = True
    assert show_now(scheduler, utc("2024-12-10T23:00")).name == "night"
    assert scheduler.clock_note is None and scheduler.showing.name == "night"
    fresh = Scheduler(default, clock_synced=lambda: False)
    fresh.release = scheduler.release
    assert show_now(fresh, utc("2024-12-10T12:00")) == default  # nothing showed yet: the default
    remembered = Scheduler(default, clock_synced=lambda: False, showing=tmp_path / "night")
    assert show_now(remembered, utc("2024-12-10T12:00")).name == "night"
    trusting = Scheduler(default, clock_synced=lambda: False, require_synced_clock=False)
    trusting.release = scheduler.release
    assert show_now(trusting, utc("2024-12-10T12:00")).name == "day" and trusting.clock_note is None
