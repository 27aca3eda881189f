"""The campaigns pages: upload a campaign (a zip of its folder), preview it, schedule it, sign it with the console's
key and push it to a screen, a site or every screen; follow each push's rollout; serve the assets to the screens.

Invariants:

- Uploads are stored only when the appliance's own ``campaign build`` accepts them (``campaignstore``); pushes
  build the stored folder again with the console's ``public_url`` as the asset base, so the document a screen
  gets is what ``python -m appliance.ops campaign push`` would make, signed by ``appliance.campaigns.signing``
  and published by ``appliance.ops.push.push_to``.
- The targets come from the device registry (``devices``), never from the broker.  A document's version is
  above every version pushed before by this console and every version a target reports as applied, pending or
  rolled back from, and is taken under an advisory lock, so two pushes never share one.
- Nothing is recorded when the broker is unreachable or the key unusable: those are checked first.  Otherwise
  the push, its targets, its assets and the audit record commit together before anything is published, then
  each target's outcome at the broker (acknowledged, or why not) is written; the rollout is the registry's
  ``state/reported`` and status for each target.
- ``/assets/<upload>/<path>`` is public (screens have no login) and serves only files a pushed document lists,
  with the size and sha256 it gave them (ETag), and single byte ranges (``appliance.ops.serve.requested_range``).
- Viewers see everything; uploading and pushing need the operator role.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from appliance.boundedjson import INT64_MAX
from appliance.campaigns.document import DocumentBody
from appliance.campaigns.signing import sign_document
from appliance.console import auth, campaignstore, fleet, web
from appliance.errors import ApplianceError
from appliance.identity import check_device_id, in_site
from appliance.ops.build import build
from appliance.ops.push import push_to
from appliance.ops.serve import Unsatisfiable, requested_range
from appliance.tomlfile import validated

router = APIRouter()
#: Advisory lock key held from a push's version allocation until its publishing ends (the migrations use
#: 7462310014): pushes are serial, so the retained documents reach the broker in version order.
PUSH_LOCK = 7462310015
TARGETS = ("screen", "site", "all")
ROLLOUT_EVERY_S = 3
CHUNK = 256 * 1024

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS console_campaigns (id text PRIMARY KEY, name text NOT NULL, "
    "campaign_ids text[] NOT NULL, zip_name text NOT NULL, directory text NOT NULL, files integer NOT NULL, "
    "bytes bigint NOT NULL, summary jsonb NOT NULL, uploaded_by text NOT NULL, "
    "uploaded_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS console_pushes (id bigserial PRIMARY KEY, upload text NOT NULL "
    "REFERENCES console_campaigns (id), version bigint NOT NULL UNIQUE, target_kind text NOT NULL, "
    "target text NOT NULL, document jsonb NOT NULL, key_id text NOT NULL, user_name text NOT NULL, "
    "pushed_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz)",
    "CREATE TABLE IF NOT EXISTS console_push_targets (push_id bigint NOT NULL REFERENCES console_pushes (id), "
    "device text NOT NULL, acknowledged boolean, failure text, PRIMARY KEY (push_id, device))",
    "CREATE INDEX IF NOT EXISTS console_push_targets_device ON console_push_targets (device)",
    "CREATE TABLE IF NOT EXISTS console_assets (upload text NOT NULL REFERENCES console_campaigns (id), "
    "path text NOT NULL, file text NOT NULL, sha256 text NOT NULL, size bigint NOT NULL, "
    "PRIMARY KEY (upload, path))",
)


def _version_sql(field: str) -> str:
    """``reported->field`` as a bigint when it is a whole number a version may be, else NULL (a device's report
    is only JSON: never let a bad one break the page)."""
    return (f"CASE WHEN jsonb_typeof(reported->'{field}') = 'number' AND reported->>'{field}' ~ '^[0-9]{{1,18}}$' "
            f"THEN (reported->>'{field}')::bigint END")


REPORTED_MAX = (f"SELECT max(greatest({_version_sql('applied_version')}, {_version_sql('pending_version')}, "
                f"{_version_sql('rolled_back_version')})) FROM devices WHERE device = ANY(%s)")


# -- uploads ---------------------------------------------------------------------------------------------------


def _upload(conn: Any, upload_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT id, name, campaign_ids, zip_name, directory, files, bytes, summary, uploaded_by, "
                       "uploaded_at FROM console_campaigns WHERE id = %s", (upload_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"No campaign upload {upload_id}.")
    keys = ("id", "name", "campaign_ids", "zip_name", "directory", "files", "bytes", "summary", "uploaded_by",
            "uploaded_at")
    return dict(zip(keys, row, strict=True))


def _uploads(conn: Any) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT c.id, c.name, c.campaign_ids, c.zip_name, c.files, c.bytes, c.uploaded_by, c.uploaded_at, "
        "p.id, p.version, p.target_kind, p.target, p.pushed_at FROM console_campaigns c LEFT JOIN LATERAL "
        "(SELECT id, version, target_kind, target, pushed_at FROM console_pushes WHERE upload = c.id "
        "ORDER BY version DESC LIMIT 1) p ON true ORDER BY c.uploaded_at DESC").fetchall()
    keys = ("id", "name", "campaign_ids", "zip_name", "files", "bytes", "uploaded_by", "uploaded_at", "push_id",
            "version", "target_kind", "target", "pushed_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _pushes(conn: Any, upload_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest pushes (of one upload), each with how many targets the broker acknowledged or not."""
    rows = conn.execute(
        "SELECT p.id, p.upload, c.name, p.version, p.target_kind, p.target, p.user_name, p.pushed_at, t.n, t.ok, "
        "t.bad FROM (SELECT * FROM console_pushes WHERE %(upload)s::text IS NULL OR upload = %(upload)s "
        "ORDER BY version DESC LIMIT %(limit)s) p JOIN console_campaigns c ON c.id = p.upload "
        "CROSS JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE acknowledged) AS ok, "
        "count(*) FILTER (WHERE NOT acknowledged) AS bad FROM console_push_targets WHERE push_id = p.id) t "
        "ORDER BY p.version DESC", {"upload": upload_id, "limit": limit}).fetchall()
    keys = ("id", "upload", "name", "version", "target_kind", "target", "user", "pushed_at", "targets",
            "acknowledged", "failed")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _page_context(console: Any, conn: Any) -> dict[str, Any]:
    return {"uploads": _uploads(conn), "pushes": _pushes(conn),
            "key": campaignstore.signing_key(console.settings.signing_key_path()),
            "limits": {"files": campaignstore.MAX_FILES, "file_mb": campaignstore.MAX_FILE_BYTES // campaignstore.MB,
                       "total_mb": campaignstore.MAX_TOTAL_BYTES // campaignstore.MB}}


@router.get("/campaigns")
def campaigns(request: Request, user: auth.User = Depends(web.viewer)) -> Response:
    console = request.app.state.console
    with console.db.connection() as conn:
        context = _page_context(console, conn)
    return web.render(request, "campaigns.html", **context)


@router.post("/campaigns")
def upload(request: Request, user: auth.User = Depends(web.operator), archive: UploadFile = File(...)) -> Response:
    console = request.app.state.console
    filename = Path(archive.filename or "campaign.zip").name
    try:
        stored = campaignstore.store(console.settings.data_dir, archive.file, filename, console.settings.public_url)
    except campaignstore.Refused as refused:
        with console.db.connection() as conn:
            context = _page_context(console, conn)
        return web.render(request, "campaigns.html", status_code=400, problems=refused.problems,
                          refused_name=filename, **context)
    names = [entry["name"] for entry in stored.summary]
    try:
        with console.db.connection() as conn:
            conn.execute(
                "INSERT INTO console_campaigns (id, name, campaign_ids, zip_name, directory, files, bytes, summary, "
                "uploaded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
                (stored.upload_id, " + ".join(names), [entry["id"] for entry in stored.summary], filename,
                 stored.campaign_dir, stored.files, stored.size, json.dumps(stored.summary), user.name))
            web.audit(conn, user, "campaign.upload", stored.upload_id,
                      {"zip": filename, "campaigns": [entry["id"] for entry in stored.summary],
                       "files": stored.files, "bytes": stored.size})
    except BaseException:
        campaignstore.remove(console.settings.data_dir, stored.upload_id)
        raise
    return RedirectResponse(f"/campaigns/{stored.upload_id}", status_code=303)


@router.get("/campaigns/{upload_id}")
def preview(request: Request, upload_id: str, user: auth.User = Depends(web.viewer)) -> Response:
    console = request.app.state.console
    directory = _directory(console, upload_id)
    with console.db.connection() as conn:
        row = _upload(conn, upload_id)
        pushes = _pushes(conn, upload_id)
        sites = fleet.sites(conn)
        devices = [device for (device,) in conn.execute("SELECT device FROM devices ORDER BY device").fetchall()]
    campaign_dir = directory / row["directory"]
    thumbs = {media["thumb"]: campaignstore.thumbnail(directory, campaign_dir, media["path"], entry["directory"])
              is not None for entry in row["summary"] for media in entry["media"]}
    return web.render(request, "campaign.html", upload=row, pushes=pushes, sites=sites, devices=devices,
                      thumbs=thumbs, link_problem=console.link_problem("campaigns"), zone=web.zone(request).key)


@router.post("/campaigns/{upload_id}/delete")
def delete(request: Request, upload_id: str, user: auth.User = Depends(web.operator)) -> Response:
    """Remove an upload that was never pushed (a pushed one stays: screens may still download its assets)."""
    console = request.app.state.console
    with console.db.connection() as conn:
        row = _upload(conn, upload_id)
        if conn.execute("SELECT 1 FROM console_pushes WHERE upload = %s LIMIT 1", (upload_id,)).fetchone():
            raise ApplianceError(f"{row['name']} was pushed: it stays, so screens can still download its assets")
        conn.execute("DELETE FROM console_campaigns WHERE id = %s", (upload_id,))
        web.audit(conn, user, "campaign.delete", upload_id, {"zip": row["zip_name"], "campaigns": row["campaign_ids"]})
    campaignstore.remove(console.settings.data_dir, upload_id)
    return RedirectResponse("/campaigns", status_code=303)


@router.get("/campaigns/{upload_id}/thumbs/{name}.png")
def thumb(request: Request, upload_id: str, name: str, user: auth.User = Depends(web.viewer)) -> Response:
    path = _directory(request.app.state.console, upload_id) / "thumbs" / f"{name}.png"
    if not name.isalnum() or not path.is_file():
        raise HTTPException(404, "No such thumbnail.")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


def _directory(console: Any, upload_id: str) -> Path:
    try:
        return campaignstore.upload_dir(console.settings.data_dir, upload_id)
    except ApplianceError:
        raise HTTPException(404, f"No campaign upload {upload_id!r}.") from None



# -- schedule, targets, version, push --------------------------------------------------------------------------


def local_instant(text: str, zone: ZoneInfo, what: str) -> str:
    """A form's ``YYYY-MM-DDTHH:MM`` in the operator's ``zone`` as an ISO instant."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApplianceError(f"{what}: {text!r} is not a date and time (YYYY-MM-DD HH:MM)") from None
    return (value if value.tzinfo else value.replace(tzinfo=zone)).isoformat()


def scheduled(unsigned: dict[str, Any], form: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """The document body with each campaign's priority, start and end from the push form (``priority:<id>``,
    ``start:<id>``, ``end:<id>``; times in ``zone``; an empty time: none), validated as a document body."""
    for entry in unsigned["campaigns"]:
        campaign = entry["id"]
        priority = str(form.get(f"priority:{campaign}", "")).strip()
        if priority:
            try:
                entry["priority"] = int(priority)
            except ValueError:
                raise ApplianceError(f"priority of {campaign}: {priority!r} is not a whole number") from None
        schedule = entry.setdefault("schedule", {})
        for edge in ("start", "end"):
            name = f"{edge}:{campaign}"
            if name in form:
                text = str(form[name]).strip()
                if text:
                    schedule[edge] = local_instant(text, zone, f"{edge} of {campaign}")
                else:
                    schedule.pop(edge, None)
    body = validated(DocumentBody, unsigned, Path("the schedule"))
    return body.model_dump(mode="json", exclude_none=True)


def targets(conn: Any, kind: str, device: str = "", site: str = "") -> tuple[list[str], str]:
    """The registry's devices a push goes to, and how the target is named."""
    known = [name for (name,) in conn.execute("SELECT device FROM devices ORDER BY device").fetchall()]
    if kind == "screen":
        device = check_device_id(device.strip(), "screen")
        if device not in known:
            raise ApplianceError(f"screen {device} has never reported to this fleet (not in the device registry)")
        return [device], device
    if kind == "site":
        site = site.strip()
        chosen = [name for name in known if site and in_site(name, site)]
        if not chosen:
            raise ApplianceError(f"no screen of site {site!r} is in the device registry")
        return chosen, site
    if kind == "all":
        if not known:
            raise ApplianceError("no screen is in the device registry yet: nothing to push to")
        return known, "all screens"
    raise ApplianceError(f"unknown target {kind!r} (one of {', '.join(TARGETS)})")


def next_version(conn: Any, devices: list[str]) -> int:
    """Above every version pushed by this console and every version the targets report (hold PUSH_LOCK)."""
    pushed = conn.execute("SELECT coalesce(max(version), 0) FROM console_pushes").fetchone()[0]
    reported = conn.execute(REPORTED_MAX, (devices,)).fetchone()[0] or 0
    version = max(pushed, reported) + 1
    if version > INT64_MAX:
        raise ApplianceError("the document version would pass the largest a screen accepts")
    return version


def push(console: Any, user: auth.User, upload_id: str, form: Mapping[str, Any], zone: ZoneInfo) -> int:
    """Sign and publish the upload to the form's targets; the push's id (see the module's invariants)."""
    if console.fleet is None:
        raise ApplianceError("no broker is configured (serve --broker HOST:PORT): campaigns cannot be pushed")
    client = console.fleet.client()
    key = campaignstore.private_key(console.settings.signing_key_path())
    directory = _directory(console, upload_id)
    with console.db.connection() as conn:
        row = _upload(conn, upload_id)
    base = campaignstore.asset_base(console.settings.public_url, upload_id)
    built = build(directory / row["directory"], base)
    body = scheduled(built.unsigned(), form, zone)
    kind = str(form.get("target", ""))
    with console.db.exclusive(PUSH_LOCK):
        with console.db.connection() as conn:
            devices, label = targets(conn, kind, str(form.get("device", "")), str(form.get("site", "")))
            version = next_version(conn, devices)
            document = sign_document({"version": version, **body}, key)
            push_id = conn.execute(
                "INSERT INTO console_pushes (upload, version, target_kind, target, document, key_id, user_name) "
                "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s) RETURNING id",
                (upload_id, version, kind, label, json.dumps(document), document["key_id"], user.name)).fetchone()[0]
            assets = _assets_by_path(body, base, list(built.files))
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO console_push_targets (push_id, device) VALUES (%s, %s)",
                                   [(push_id, device) for device in devices])
                cursor.executemany(
                    "INSERT INTO console_assets (upload, path, file, sha256, size) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (upload, path) DO UPDATE SET file = excluded.file, sha256 = excluded.sha256, "
                    "size = excluded.size",
                    [(upload_id, path, file.relative_to(directory).as_posix(), assets[path]["sha256"],
                      assets[path]["size"]) for path, file in built.files.items()])
            web.audit(conn, user, "campaign.push", label, {
                "version": version, "upload": upload_id, "campaigns": [entry["id"] for entry in body["campaigns"]],
                "key_id": document["key_id"], "target": kind, "targets": devices})
        failed: dict[str, str] = {}
        acknowledged: list[str] = []
        try:
            pushed = push_to(client, devices, document, prefix=console.settings.topic_prefix)
            acknowledged, failed = pushed.acknowledged, pushed.failed
        except ApplianceError as exc:
            failed = {device: f"not sent: {exc}" for device in devices}
        finally:
            with console.db.connection() as conn:
                with conn.cursor() as cursor:
                    cursor.executemany("UPDATE console_push_targets SET acknowledged = true WHERE push_id = %s AND "
                                       "device = %s", [(push_id, device) for device in acknowledged])
                    unsent = {device: failed.get(device, "the push stopped before this screen")
                              for device in devices if device not in set(acknowledged)}
                    cursor.executemany("UPDATE console_push_targets SET acknowledged = false, failure = %s "
                                       "WHERE push_id = %s AND device = %s",
                                       [(why, push_id, device) for device, why in unsent.items()])
                conn.execute("UPDATE console_pushes SET finished_at = now() WHERE id = %s", (push_id,))
    return push_id


def _assets_by_path(body: dict[str, Any], base: str, paths: list[str]) -> dict[str, dict[str, Any]]:
    """The document's asset behind each URL path of ``paths`` (``build`` makes its URL ``base/quote(path)``)."""
    by_url = {asset["url"]: asset for entry in body["campaigns"] for asset in entry["assets"]}
    return {path: by_url[f"{base}/{quote(path)}"] for path in paths}


@router.post("/campaigns/{upload_id}/push")
async def push_form(request: Request, upload_id: str, user: auth.User = Depends(web.operator)) -> Response:
    form = await request.form()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    push_id = await run_in_threadpool(push, request.app.state.console, user, upload_id, fields, web.zone(request))
    return RedirectResponse(f"/campaigns/pushes/{push_id}", status_code=303)


# -- rollout ---------------------------------------------------------------------------------------------------


def _number(value: Any) -> int | None:
    return value if type(value) is int else None


def target_status(version: int, acknowledged: bool | None, failure: str | None, state: str,
                  reported: dict[str, Any] | None) -> dict[str, Any]:
    """A target's rollout: ``status`` (waiting, downloading, applied, rejected, failed, offline, not delivered,
    superseded, rolled back), a ``detail`` line, the download ``progress`` (0..1) and the pill's class."""
    reported = reported if isinstance(reported, dict) else {}
    applied, pending = _number(reported.get("applied_version")), _number(reported.get("pending_version"))
    phase, errors = reported.get("phase"), reported.get("errors")
    reason = "; ".join(str(error) for error in errors) if isinstance(errors, list) and errors else None
    progress = reported.get("progress") if isinstance(reported.get("progress"), (int, float)) else None
    if acknowledged is False:
        return {"status": "not delivered", "detail": failure, "progress": None, "pill": "bad"}
    if applied == version:
        return {"status": "applied", "detail": None, "progress": 1.0, "pill": "ok"}
    if _number(reported.get("rolled_back_version")) == version:
        return {"status": "rolled back", "detail": reason, "progress": None, "pill": "warn"}
    if max(applied or 0, pending or 0) > version:
        return {"status": "superseded", "detail": f"by version {max(applied or 0, pending or 0)}",
                "progress": None, "pill": ""}
    if pending == version and phase in ("rejected", "failed"):
        return {"status": phase, "detail": reason or "no reason given", "progress": None, "pill": "bad"}
    if pending == version and phase == "downloading":
        share = min(1.0, max(0.0, float(progress or 0.0)))
        return {"status": "downloading", "detail": f"{share * 100:.0f} %", "progress": share, "pill": "info"}
    if state in ("offline", "lost"):
        return {"status": "offline", "detail": f"the screen is {state}: it gets the campaign when it is back",
                "progress": None, "pill": "warn"}
    return {"status": "waiting", "detail": "not yet seen by the screen", "progress": None, "pill": ""}


ROLLOUT_SQL = f"""SELECT t.device, t.acknowledged, t.failure, {fleet.STATE_SQL} AS state, d.reported, d.last_seen
    FROM console_push_targets t LEFT JOIN devices d ON d.device = t.device
    WHERE t.push_id = %(push)s ORDER BY t.device"""
SUMMARY = ("applied", "downloading", "waiting", "offline", "failed")
#: The rollout table's order by pill: failures first, then under way, waiting, and applied last.
ORDER = {"bad": 0, "warn": 1, "info": 2, "": 3, "ok": 4}


def rollout(conn: Any, push_id: int, now: datetime) -> dict[str, Any]:
    row = conn.execute("SELECT p.id, p.upload, c.name, p.version, p.target_kind, p.target, p.user_name, p.key_id, "
                       "p.pushed_at, p.finished_at, p.document->'campaigns' FROM console_pushes p "
                       "JOIN console_campaigns c ON "
                       "c.id = p.upload WHERE p.id = %s", (push_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"No push {push_id}.")
    keys = ("id", "upload", "name", "version", "target_kind", "target", "user", "key_id", "pushed_at", "finished_at",
            "campaigns")
    pushed = dict(zip(keys, row, strict=True))
    screens = []
    for device, acknowledged, failure, state, reported, last_seen in conn.execute(
            ROLLOUT_SQL, {"push": push_id, "now": now}).fetchall():
        status = target_status(pushed["version"], acknowledged, failure, state, reported)
        screens.append({"device": device, "state": state, "last_seen": last_seen, **status})
    screens.sort(key=lambda screen: (ORDER.get(screen["pill"], 1), screen["device"]))  # problems first
    counts = dict.fromkeys(SUMMARY, 0)
    for screen in screens:
        group = screen["status"] if screen["status"] in SUMMARY else \
            "failed" if screen["pill"] == "bad" else "waiting"
        counts[group] += 1
    total = len(screens)
    return {"push": pushed, "screens": screens, "counts": counts, "total": total,
            "done": counts["applied"] / total if total else 0.0,
            "downloading": sum(s["progress"] or 0 for s in screens if s["status"] == "downloading") / total
            if total else 0.0}


@router.get("/campaigns/pushes/{push_id}")
def rollout_page(request: Request, push_id: int, user: auth.User = Depends(web.viewer)) -> Response:
    console = request.app.state.console
    with console.db.connection() as conn:
        context = rollout(conn, push_id, console.clock())
    template = "campaign_rollout_rows.html" if request.headers.get("x-fragment") else "campaign_rollout.html"
    return web.render(request, template, every=ROLLOUT_EVERY_S, **context)


# -- assets for the screens ------------------------------------------------------------------------------------


@router.api_route("/assets/{upload_id}/{path:path}", methods=["GET", "HEAD"])
def asset(request: Request, upload_id: str, path: str) -> Response:
    console = request.app.state.console
    directory = _directory(console, upload_id)
    with console.db.connection() as conn:
        row = conn.execute("SELECT file, sha256, size FROM console_assets WHERE upload = %s AND path = %s",
                           (upload_id, path)).fetchone()
    file = (directory / row[0]).resolve() if row else None
    if row is None or not file.is_relative_to(directory.resolve()) or not file.is_file():
        raise HTTPException(404, "No such asset in a pushed campaign.")
    size, etag = file.stat().st_size, f'"{row[1]}"'
    if size != row[2]:
        raise HTTPException(404, "This asset changed on the console's disk since it was pushed.")
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    try:
        byte_range = requested_range(wanted, size) if if_range in (None, etag) else None
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = byte_range or (0, size - 1)
    headers["Content-Length"] = str(max(0, last - first + 1))
    if byte_range:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 206 if byte_range else 200
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(_chunks(file, first, last - first + 1), status_code=status, headers=headers,
                             media_type=media_type)


def _chunks(file: Path, offset: int, length: int) -> Iterator[bytes]:
    with open(file, "rb") as source:
        source.seek(offset)
        while length > 0:
            block = source.read(min(CHUNK, length))
            if not block:
                return
            length -= len(block)
            yield block
