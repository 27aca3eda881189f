"""Campaign uploads on the console's disk: a zip of a campaign folder, extracted safely, validated by the
appliance's own ``campaign build``, kept with cached thumbnails; and the operator's signing key.

Invariants:

- Extraction never trusts the archive: only regular files and directories (a symlink, a device, an encrypted
  entry are refused), every name relative and free of ``..`` and backslashes, at most ``MAX_FILES`` files,
  ``MAX_FILE_BYTES`` each and ``MAX_TOTAL_BYTES`` in all (the sizes the archive declares are checked before a
  byte is written, the bytes actually written as they come), and no entry that expands more than
  ``MAX_RATIO`` times (a zip bomb).  Nothing in it is ever executed or imported.
- An upload is extracted into a staging directory; it becomes a stored campaign (renamed into place, in one
  step) only when ``appliance.ops.build.build`` — what ``python -m appliance.ops campaign build/push`` runs:
  each bundle's ``campaign.toml`` against the installed experiences, ``campaign-meta.toml``, every media file
  named — accepts it and every image and video decodes within the screens' media limits
  (``appliance.media``).  Otherwise the staging directory is removed and the problems come back, each with its
  file, key and line, paths relative to the upload; nothing else on disk changes.
- Thumbnails are decoded through ``appliance.media`` (within its limits), scaled with OpenCV and cached as
  PNG under the upload's ``thumbs/``, named by a digest of the media's path; a cached one is reused.
- The signing key is read from ``settings.signing_key_path()`` and refused while its file is readable by group
  or others (with the ``chmod`` to run), unless systemd hands it over as a credential (``$CREDENTIALS_DIRECTORY``:
  private to the unit by systemd); signing itself is ``appliance.campaigns.signing``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import cv2

from appliance.campaigns.document import CAMPAIGN_ID_PATTERN
from appliance.campaigns.signing import key_id, load_private_key, raw_public_bytes
from appliance.console.settings import CREDENTIALS
from appliance.content import CAMPAIGN_FILE, IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_bundle
from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, open_video, read_bgra, verify_media
from appliance.ops.build import META_FILE, Built, build, bundle_dirs
from appliance.tomlfile import InvalidFile

MB = 1024 * 1024
#: What an upload may hold: files, bytes per file (a screen's largest asset) and in all (a screen's disk budget).
MAX_FILES = 2000
MAX_FILE_BYTES = 1024 * MB
MAX_TOTAL_BYTES = 2048 * MB
#: An entry above ``RATIO_FLOOR`` bytes that expands more than this many times is a zip bomb (media do not).
MAX_RATIO = 100
RATIO_FLOOR = 1 * MB
CHUNK = 1 * MB
THUMB_SIZE = (320, 180)
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
#: Entries of the archive that are an archiver's litter, not the campaign's (macOS resource forks).
SKIPPED = ("__MACOSX/",)
UPLOAD_ID = re.compile(r"^[0-9a-f]{12}$")
GROUP_OTHER = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an upload: where (file relative to the upload, key, line) and what."""

    message: str
    file: str | None = None
    key: str | None = None
    line: int | None = None


class Refused(ApplianceError):
    """An upload that is not stored, with every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(_problem_text(problem) for problem in problems))
        self.problems = problems


def _problem_text(problem: Problem) -> str:
    where = ": ".join(part for part in (problem.file, problem.key) if part)
    line = f" (line {problem.line})" if problem.line else ""
    return f"{where}: {problem.message}{line}" if where else f"{problem.message}{line}"


# -- extraction ------------------------------------------------------------------------------------------------


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return f"{name!r} is a symbolic link (only files and folders are accepted)"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"{name!r} is not a regular file or folder"
    if info.flag_bits & 0x1:
        return f"{name!r} is encrypted"
    if "\\" in name or "\0" in name:
        return f"{name!r} has a backslash or NUL in its name (zip it with forward slashes)"
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return f"{name!r} points outside the campaign folder"
    if not info.is_dir() and info.file_size > MAX_FILE_BYTES:
        return f"{name!r} is {info.file_size / MB:.0f} MB uncompressed: over the {MAX_FILE_BYTES // MB} MB per file"
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return (f"{name!r} expands {info.file_size // max(info.compress_size, 1)} times "
                f"({info.compress_size} bytes to {info.file_size / MB:.0f} MB): a zip bomb, refused")
    return None


def extract(archive: Path, into: Path) -> int:
    """Extract the zip ``archive`` into the directory ``into`` (see the module's rules); the bytes written.
    Refused (every problem the archive's directory shows, else the first met while writing) otherwise."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = [info for info in zipped.infolist() if not info.filename.startswith(SKIPPED)]
            problems = [Problem(problem) for info in entries if (problem := _entry_problem(info))]
            files = [info for info in entries if not info.is_dir()]
            declared = sum(info.file_size for info in files)
            if len(files) > MAX_FILES:
                problems.append(Problem(f"the zip holds {len(files)} files: over the limit of {MAX_FILES}"))
            if declared > MAX_TOTAL_BYTES:
                problems.append(Problem(f"the zip expands to {declared / MB:.0f} MB: over the limit of "
                                        f"{MAX_TOTAL_BYTES // MB} MB (a zip bomb, or a campaign too big for a "
                                        "screen's disk budget)"))
            if problems:
                raise Refused(problems)
            if not files:
                raise Refused([Problem("the zip is empty: zip the campaign's folder (campaign.toml and its media)")])
            written = 0
            root = into.resolve()
            for info in entries:
                target = (root / info.filename).resolve()
                if not target.is_relative_to(root):
                    raise Refused([Problem(f"{info.filename!r} points outside the campaign folder")])
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written += _copy(zipped, info, target, MAX_TOTAL_BYTES - written)
            return written
    except zipfile.BadZipFile as exc:
        raise Refused([Problem(f"not a readable zip file: {exc}")]) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise Refused([Problem(f"the zip cannot be extracted: {exc}")]) from exc


def _copy(zipped: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, room: int) -> int:
    """Write one entry, never more than it declared, ``MAX_FILE_BYTES`` or ``room``; its size."""
    limit = min(info.file_size, MAX_FILE_BYTES, room)
    count = 0
    with zipped.open(info) as source, open(target, "xb") as out:
        while block := source.read(CHUNK):
            count += len(block)
            if count > limit:
                raise Refused([Problem(f"{info.filename!r} expands beyond {limit} bytes: a zip bomb, refused")])
            out.write(block)
    return count


def campaign_root(directory: Path) -> Path:
    """The campaign folder inside the extracted ``directory``: down through folders that hold only one folder
    (a zip of a folder holds that folder) until a ``campaign.toml`` or several entries."""
    while not (directory / CAMPAIGN_FILE).is_file():
        children = [child for child in directory.iterdir() if child.name not in (".DS_Store",)]
        if len(children) != 1 or not children[0].is_dir():
            break
        directory = children[0]
    return directory


def slug(name: str) -> str:
    """A folder name a campaign id may be (``CAMPAIGN_ID_PATTERN``) from an upload's file name."""
    text = re.sub(r"[^a-z0-9._-]+", "-", Path(name).stem.lower()).strip("-._")[:64]
    return text if re.fullmatch(CAMPAIGN_ID_PATTERN, text) else "campaign"


# -- validation --------------------------------------------------------------------------------------------------


_KEYED = re.compile(r"^(?P<key>[^:]+?): (?P<message>.*?)(?: \(line (?P<line>\d+)\))?$")


def problems_of(exc: ApplianceError, root: Path) -> list[Problem]:
    """``exc`` (as ``build`` raises it) as problems, each path shown relative to the upload's ``root``."""
    def relative(text: str) -> str:
        for prefix in {str(root.resolve()), str(root)}:
            text = text.replace(prefix + os.sep, "").replace(prefix, ".")
        return text

    if isinstance(exc, InvalidFile):
        file = relative(str(exc.path))
        found = []
        for problem in exc.problems:
            match = _KEYED.match(relative(problem))
            if match:
                line = match.group("line")
                found.append(Problem(match.group("message"), file, match.group("key"), int(line) if line else None))
            else:
                found.append(Problem(relative(problem), file))
        return found
    text = relative(str(exc))
    parts = text.split(": ", 2)
    if len(parts) == 3 and parts[0].endswith((CAMPAIGN_FILE, META_FILE)):
        return [Problem(parts[2], parts[0], parts[1])]
    if len(parts) >= 2 and parts[0].endswith((CAMPAIGN_FILE, META_FILE)):
        return [Problem(": ".join(parts[1:]), parts[0])]
    return [Problem(text)]


def validate(campaign_dir: Path, asset_base_url: str, root: Path) -> Built:
    """``build`` of ``campaign_dir`` when it and every media file it names are good; Refused with every
    problem (each bundle's own, then each undecodable media file) otherwise."""
    try:
        built = build(campaign_dir, asset_base_url)
    except ApplianceError as whole:
        problems: list[Problem] = []
        try:
            bundles = bundle_dirs(campaign_dir)
        except ApplianceError:
            bundles = []
        if len(bundles) > 1:
            for bundle_dir in bundles:
                try:
                    build(bundle_dir, asset_base_url)
                except ApplianceError as exc:
                    problems += problems_of(exc, root)
        raise Refused(problems or problems_of(whole, root)) from whole
    problems = []
    for url_path, file in built.files.items():
        if file.suffix.lower() in MEDIA_SUFFIXES:
            try:
                verify_media(file, DEFAULT_LIMITS)
            except ApplianceError as exc:
                shown = file.relative_to(root).as_posix() if file.is_relative_to(root) else url_path
                problems.append(Problem(problems_of(exc, root)[0].message, shown))
    if problems:
        raise Refused(problems)
    return built


# -- stored uploads ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """An upload accepted and in place: its id, directory, campaign folder (relative) and what build made."""

    upload_id: str
    directory: Path
    campaign_dir: str
    built: Built
    files: int
    size: int
    summary: list[dict[str, Any]]


def uploads_dir(data_dir: Path) -> Path:
    return data_dir / "campaigns"


def upload_dir(data_dir: Path, upload_id: str) -> Path:
    if not UPLOAD_ID.fullmatch(upload_id):
        raise ApplianceError(f"{upload_id!r} is not a campaign upload id")
    return uploads_dir(data_dir) / upload_id


def asset_base(public_url: str, upload_id: str) -> str:
    """Where the screens download an upload's assets: the console's own ``/assets/<upload>/``."""
    return f"{public_url.rstrip('/')}/assets/{upload_id}"


def store(data_dir: Path, upload: IO[bytes], filename: str, public_url: str) -> Stored:
    """Extract, validate and keep the zip read from ``upload``; Refused with every problem (nothing kept)."""
    upload_id = uuid.uuid4().hex[:12]
    final = upload_dir(data_dir, upload_id)
    staging = uploads_dir(data_dir) / f".incoming-{upload_id}"
    staging.mkdir(parents=True)
    try:
        archive = staging / "upload.zip"
        with open(archive, "xb") as out:
            copied = 0
            while block := upload.read(CHUNK):
                copied += len(block)
                if copied > MAX_TOTAL_BYTES:
                    raise Refused([Problem(f"the upload is over {MAX_TOTAL_BYTES // MB} MB")])
                out.write(block)
        source = staging / "src" / slug(filename)
        source.mkdir(parents=True)
        size = extract(archive, source)
        archive.unlink()
        campaign_dir = campaign_root(source)
        built = validate(campaign_dir, asset_base(public_url, upload_id), source)
        relative = campaign_dir.relative_to(staging).as_posix()
        summary = describe(campaign_dir, built)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    campaign_dir = final / relative
    for entry in summary:
        for media in entry["media"]:
            thumbnail(final, campaign_dir, media["path"], entry["directory"])
    return Stored(upload_id, final, relative, built, len(built.files), size, summary)


def describe(campaign_dir: Path, built: Built) -> list[dict[str, Any]]:
    """What the preview shows of each campaign of the document: name, id, priority, schedule, worlds,
    experiences and their assets (paths relative to the campaign folder)."""
    described = []
    for bundle_dir, entry in zip(bundle_dirs(campaign_dir), built.body.campaigns, strict=True):
        bundle = load_bundle(bundle_dir)
        folder = bundle_dir.relative_to(campaign_dir).as_posix()
        worlds = [{"id": scene.id, "title": scene.title, "background": scene.background,
                   "overlays": [overlay.image for overlay in scene.overlays]} for scene in bundle.scenes]
        experience_assets: dict[str, list[dict[str, str]]] = {name: [] for name in bundle.experiences}
        for key, path, _ in bundle.assets():
            experience_assets.setdefault(key.split(".", 1)[0], []).append({"key": key, "path": path})
        sizes = {asset.path: asset.size for asset in entry.assets}
        described.append({
            "id": entry.id, "name": bundle.name, "priority": entry.priority,
            "schedule": entry.schedule.model_dump(mode="json", exclude_none=True),
            "directory": folder, "worlds": worlds, "experiences": list(bundle.experiences),
            "assets": {name: found for name, found in experience_assets.items() if found},
            "media": [{"path": path, "size": sizes.get(path, 0), "thumb": _thumb_name(folder, path)}
                      for path in bundle.media()],
        })
    return described


def _thumb_name(folder: str, path: str) -> str:
    return hashlib.sha256(f"{folder}\0{path}".encode()).hexdigest()[:20]


def thumbnail(directory: Path, campaign_dir: Path, path: str, folder: str) -> Path | None:
    """The cached PNG thumbnail of media ``path`` of bundle ``folder`` (made now when missing); None for a
    file that is no picture or video, or that does not decode within the media limits."""
    source = (campaign_dir / folder / path)
    if source.suffix.lower() not in MEDIA_SUFFIXES:
        return None
    cached = directory / "thumbs" / f"{_thumb_name(folder, path)}.png"
    if cached.is_file():
        return cached
    try:
        if source.suffix.lower() in VIDEO_SUFFIXES:
            capture, frame = open_video(source, DEFAULT_LIMITS)
            capture.release()
        else:
            frame = read_bgra(source, DEFAULT_LIMITS)
    except ApplianceError:
        return None
    height, width = frame.shape[:2]
    scale = min(THUMB_SIZE[0] / width, THUMB_SIZE[1] / height, 1.0)
    small = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    cached.parent.mkdir(exist_ok=True)
    ok, encoded = cv2.imencode(".png", small)
    if not ok:
        return None
    partial = cached.with_suffix(".part")
    partial.write_bytes(encoded.tobytes())
    os.replace(partial, cached)
    return cached


def remove(data_dir: Path, upload_id: str) -> None:
    shutil.rmtree(upload_dir(data_dir, upload_id), ignore_errors=True)


# -- the signing key ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """Where the key is, and either its public half (base64 of the 32 raw bytes, as ``trusted_keys`` takes it
    inline) with its id, or why it cannot be used."""

    path: Path
    public: str | None = None
    key_id: str | None = None
    problem: str | None = None


def systemd_credential(path: Path) -> bool:
    """Whether ``path`` is one of the unit's systemd credentials: private to the service by systemd (a root-owned
    copy the service's user reads through an ACL, whose mask shows as group bits), not by its mode."""
    directory = os.environ.get(CREDENTIALS)
    return bool(directory) and path.resolve().parent == Path(directory).resolve()


def check_key_file(path: Path) -> None:
    """ApplianceError unless ``path`` is a file only its owner may read (with the command that fixes it), or a
    systemd credential."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ApplianceError(f"no signing key at {path}: make one with `python -m appliance.ops keygen --out "
                             f"{path.parent}` (or give serve --signing-key FILE)") from None
    except OSError as exc:
        raise ApplianceError(f"cannot read the signing key {path}: {exc}") from exc
    if mode & GROUP_OTHER and not systemd_credential(path):
        raise ApplianceError(f"the signing key {path} is readable by others (mode {stat.S_IMODE(mode):o}): "
                             f"run `chmod 600 {path}`")


def private_key(path: Path) -> Any:
    """The operator's Ed25519 key from ``path`` once its permissions are the owner's alone."""
    check_key_file(path)
    return load_private_key(path)


def signing_key(path: Path) -> SigningKey:
    try:
        public = private_key(path).public_key()
    except ApplianceError as exc:
        return SigningKey(path, problem=str(exc))
    return SigningKey(path, base64.b64encode(raw_public_bytes(public)).decode("ascii"), key_id(public))
