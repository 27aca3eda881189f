"""The one media reader: sizes from headers before decoding, limits, truncated and corrupt files refused.

The helpers here make the bad files the other tests feed to every reader (sources,
backgrounds, overlays, analyze, bench): a 20000x20000 PNG that is small on disk, a
JPEG cut short, a PNG with a flipped byte, an MP4 cut in the middle of its frames.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.media import MediaLimits, open_video, read_bgra, read_image, verify_media

REPO = Path(__file__).resolve().parents[1]
HUGE_SIDE = 20000


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_png(path: Path, side: int = HUGE_SIDE) -> Path:
    """A valid, all-black 1-bit PNG of side x side (400 megapixels for 20000): tens of kB on disk,
    1.2 GB once decoded to BGR. Compressed row block by row block, so making it costs no memory."""
    row = bytes(1 + (side + 7) // 8)                     # filter byte 0, then the packed bits
    compressor, block = zlib.compressobj(1), row * 500
    idat = b"".join(compressor.compress(block) for _ in range(side // 500))
    idat += compressor.compress(row * (side % 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
                     + png_chunk(b"IEND", b""))
    return path


def person_jpeg(path: Path, image: np.ndarray, cut_at: int | None = None, progressive: bool = False) -> Path:
    """``image`` as a JPEG, whole or cut after ``cut_at`` bytes (a download or copy that stopped)."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    data = encoded.tobytes()
    path.write_bytes(data[:cut_at] if cut_at else data)
    return path


def flipped_png(path: Path, image: np.ndarray) -> Path:
    """``image`` as a PNG with one byte of its pixel data inverted (a bit-rotted file)."""
    data = bytearray(cv2.imencode(".png", image)[1].tobytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48), fps: float = 25.0) -> Path:
    """Frame i is a flat grey of 5 * i (mp4v, as OpenCV writes it: the index box after the frames)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for index in range(frames):
        writer.write(np.full((size[1], size[0], 3), 5 * index % 256, np.uint8))
    writer.release()
    return path


def _boxes(data: bytes | bytearray, start: int, end: int):
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position:position + 8])
        yield kind, position, size
        position += size


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, shift: int) -> None:
    for kind, position, size in list(_boxes(moov, start, end)):
        if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
            _shift_chunk_offsets(moov, position + 8, position + size, shift)
        elif kind == b"stco":
            (count,) = struct.unpack(">I", moov[position + 12:position + 16])
            for entry in range(position + 16, position + 16 + 4 * count, 4):
                (offset,) = struct.unpack(">I", moov[entry:entry + 4])
                moov[entry:entry + 4] = struct.pack(">I", offset + shift)


def truncated_mp4(path: Path, frames: int = 50) -> Path:
    """An MP4 of ``frames`` frames laid out for streaming (index first, as phones and web tools write
    it) and cut in the middle of its frame data: it opens and declares all its frames, but about half decode."""
    write_video(path, frames)
    data = path.read_bytes()
    top = {kind: (position, size) for kind, position, size in _boxes(data, 0, len(data))}
    (moov_at, moov_size), (mdat_at, mdat_size) = top[b"moov"], top[b"mdat"]
    moov = bytearray(data[moov_at:moov_at + moov_size])
    _shift_chunk_offsets(moov, 0, len(moov), moov_size)
    streaming = data[:mdat_at] + bytes(moov) + data[mdat_at:mdat_at + mdat_size]
    path.write_bytes(streaming[:mdat_at + moov_size + mdat_size // 2])
    return path


def test_an_oversized_png_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    huge = huge_png(tmp_path / "huge.png")
    assert huge.stat().st_size < 2_000_000
    probe = ("import json, resource, sys\n"
             "from pathlib import Path\n"
             "from appliance.errors import ApplianceError\n"
             "from appliance.media import read_image\n"
             "def peak_mb():\n"
             "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
             "before = peak_mb()\n"
             "try:\n"
             "    read_image(Path(sys.argv[1]))\n"
             "    error = None\n"
             "except ApplianceError as exc:\n"
             "    error = str(exc)\n"
             "print(json.dumps({'error': error, 'grown_mb': peak_mb() - before}))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(huge)], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] == (f"image {huge} is 20000x20000 (400.0 megapixels): over the limit of 40 megapixels "
                               "and 8192 px a side ([media] in the configuration)")
    assert report["grown_mb"] < 100, report   # decoding it would take 1.2 GB (the file itself is read: ~0.2 MB)


@pytest.mark.parametrize("reader", [read_image, read_bgra, verify_media])
def test_every_reader_refuses_the_oversized_png_at_once(tmp_path: Path, reader) -> None:
    huge = huge_png(tmp_path / "huge.png")
    with pytest.raises(ApplianceError, match="20000x20000 .* over the limit"):
        reader(huge)


def test_limits_are_configurable(tmp_path: Path, astronaut: np.ndarray) -> None:
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), astronaut)
    assert read_image(still, limits=MediaLimits(image_side_px=512)).shape == (512, 512, 3)
    with pytest.raises(ApplianceError, match="512x512 .* over the limit of 40 megapixels and 511 px a side"):
        read_image(still, limits=MediaLimits(image_side_px=511))
    with pytest.raises(ApplianceError, match="over the limit of 0.2 megapixels"):
        verify_media(still, MediaLimits(image_megapixels=0.2))


@pytest.mark.parametrize("cut_at", [1000, 5000, 20000, -2])
def test_a_cut_jpeg_is_an_error_not_a_grey_picture(tmp_path: Path, astronaut: np.ndarray, cut_at: int) -> None:
    whole = person_jpeg(tmp_path / "whole.jpg", astronaut)
    cut = person_jpeg(tmp_path / "cut.jpg", astronaut, cut_at=cut_at)
    assert cv2.imread(str(cut)) is not None, "OpenCV alone pads the missing part with grey"
    with pytest.raises(ApplianceError, match=rf"cannot decode image {cut}: truncated JPEG"):
        read_image(cut)
    with pytest.raises(ApplianceError, match="truncated JPEG"):
        verify_media(cut)
    assert read_image(whole).shape == (512, 512, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_still_cut_anywhere_is_an_error_never_a_picture(tmp_path: Path, astronaut: np.ndarray, suffix: str) -> None:
    data = cv2.imencode(suffix, astronaut[:128, :128])[1].tobytes()
    cut = tmp_path / f"cut{suffix}"
    for length in range(0, len(data) - 1, 61):
        cut.write_bytes(data[:length])
        with pytest.raises(ApplianceError, match=rf"cannot decode image {cut}: "):
            read_image(cut)


def test_progressive_jpegs_and_bytes_after_the_end_are_accepted(tmp_path: Path, astronaut: np.ndarray) -> None:
    progressive = person_jpeg(tmp_path / "progressive.jpg", astronaut, progressive=True)
    assert read_image(progressive).shape == (512, 512, 3)
    trailer = tmp_path / "trailer.jpg"
    trailer.write_bytes(progressive.read_bytes() + b"\x00" * 64)
    assert read_image(trailer).shape == (512, 512, 3)


def test_a_png_with_a_flipped_byte_or_cut_short_is_an_error(tmp_path: Path, astronaut: np.ndarray) -> None:
    flipped = flipped_png(tmp_path / "flipped.png", astronaut)
    with pytest.raises(ApplianceError, match=rf"cannot decode image {flipped}: corrupt PNG \(bad CRC in its 'IDAT'"):
        read_image(flipped)
    whole = cv2.imencode(".png", astronaut)[1].tobytes()
    no_end = tmp_path / "no_end.png"
    no_end.write_bytes(whole[:-12])          # everything but the IEND chunk
    with pytest.raises(ApplianceError, match="truncated PNG"):
        verify_media(no_end)
    header_only = tmp_path / "header_only.png"
    header_only.write_bytes(whole[:20])
    with pytest.raises(ApplianceError, match="truncated or corrupt PNG header"):
        read_image(header_only)


def test_formats_that_cannot_be_sized_are_refused_by_name(tmp_path: Path, astronaut: np.ndarray) -> None:
    bitmap = tmp_path / "still.bmp"
    cv2.imwrite(str(bitmap), astronaut)
    with pytest.raises(ApplianceError, match=rf"cannot decode image {bitmap}: not a PNG or JPEG file"):
        read_image(bitmap)
    with pytest.raises(ApplianceError, match="image not found"):
        read_image(tmp_path / "absent.png")


def test_devset_stills_pass(media: Path) -> None:
    for path in sorted(media.glob("*.jpg")) + sorted(media.glob("*.png")):
        verify_media(path)
        assert np.array_equal(read_image(path), cv2.imread(str(path)))


def test_a_truncated_mp4_fails_verification_naming_where_it_ends(tmp_path: Path) -> None:
    whole = write_video(tmp_path / "whole.mp4", 50)
    verify_media(whole)
    cut = truncated_mp4(tmp_path / "cut.mp4", 50)
    capture, _ = open_video(cut)
    capture.release()
    with pytest.raises(ApplianceError, match=rf"video {cut} ends after \d+ of its 50 frames \(truncated or corrupt\)"):
        verify_media(cut)
    index_lost = tmp_path / "index_lost.mp4"
    index_lost.write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(ApplianceError, match="cannot decode video"):
        verify_media(index_lost)


def test_videos_over_the_limits_are_refused_before_any_frame(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", 50, size=(64, 48), fps=25.0)
    with pytest.raises(ApplianceError, match=r"video .*clip.mp4 is 64x48: over the limit of 32x2160"):
        open_video(clip, MediaLimits(video_width=32))
    with pytest.raises(ApplianceError, match=r"lasts 2.0 s \(50 frames at 25 fps\): over the limit of 0.001 minutes"):
        verify_media(clip, MediaLimits(video_minutes=0.001))


def test_the_kiosk_loads_its_images_through_the_same_reader(tmp_path: Path, astronaut: np.ndarray) -> None:
    from appliance.kiosk.display import Display, DisplayMode

    star = tmp_path / "star.png"
    cv2.imwrite(str(star), np.dstack([astronaut, np.full(astronaut.shape[:2], 200, np.uint8)]))
    display = Display(DisplayMode.HEADLESS, (320, 180))
    try:
        loaded = display.load_image(star, 100)
        assert loaded.get_size() == (100, 100) and abs(loaded.get_at((50, 50)).a - 200) <= 3
        with pytest.raises(ApplianceError, match="20000x20000 .* over the limit"):
            display.load_image(huge_png(tmp_path / "huge.png"), 100)
        with pytest.raises(ApplianceError, match="truncated JPEG"):
            display.load_image(person_jpeg(tmp_path / "cut.jpg", astronaut, cut_at=1000), 100)
        with pytest.raises(ApplianceError, match="512x512 .* 256 px a side"):
            display.load_image(star, 100, MediaLimits(image_side_px=256))
    finally:
        display.close()
