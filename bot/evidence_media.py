"""Evidence that is not a picture: short videos (MP4/MOV), PDFs and plain-text chat exports.

Each is recognised by its bytes, never by the sender's mime type or the file name:
- a video is an ISO BMFF file (`ftyp` box first) whose brands say MP4 or QuickTime (HEIC, also
  ISO BMFF, is not a video); its length is read from the movie header (`moov/mvhd`), not from what
  Telegram or the client claimed;
- a PDF starts with `%PDF-` and ends with `%%EOF` (a truncated upload does not);
- a chat export (WeChat/QQ .txt) is UTF-8 without NULs or other control characters.
The poster frame shown for a video is its first frame, decoded with PyAV after the pixel cap;
a file PyAV cannot decode gets a drawn placeholder instead, so every video has a poster.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from dataclasses import dataclass

from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

VIDEO, PDF, TEXT = "video", "pdf", "text"
MIME = {VIDEO: "video/mp4", PDF: "application/pdf", TEXT: "text/plain"}
EXTENSION = {"video/mp4": "mp4", "video/quicktime": "mov", PDF: "pdf", TEXT: "txt"}

# ftyp brands of MP4 (ISO/IEC 14496-12/14 and what phones write) and of QuickTime; anything else in
# an ftyp box (heic, mif1, avif, crx, 3gp...) is not a video we take.
_MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
                         b"mp71", b"dash", b"MSNV"})
_QT_BRAND = b"qt  "
_POSTER_SIDE = 320  # the poster's longer side, in pixels
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # tab, newlines and form feed are fine
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def video_mime(data: bytes) -> str | None:
    """"video/mp4" or "video/quicktime" when the file opens with an ftyp box of those brands."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    size = struct.unpack(">I", data[:4])[0]
    if size < 16 or size > min(len(data), 4096):
        return None
    major, compatible = data[8:12], [data[n:n + 4] for n in range(16, size - 3, 4)]
    if major == _QT_BRAND:
        return "video/quicktime"
    if major in _MP4_BRANDS or any(brand in _MP4_BRANDS for brand in compatible):
        return "video/mp4"
    if _QT_BRAND in compatible:
        return "video/quicktime"
    return None


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes between `start` and `end`: (type, payload start, payload end). A box that runs past
    `end` (a cut file) ends the walk."""
    found, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if at + 16 > end:
                break
            size, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:  # to the end of the enclosing box
            size = end - at
        if size < header or at + size > end:
            break
        found.append((kind, at + header, at + size))
        at += size
    return found


def movie_seconds(data: bytes) -> float | None:
    """The movie's length from `moov/mvhd` (duration / timescale); None when there is no readable header
    or it does not say (0 or all ones: unknown, e.g. a fragmented file)."""
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for inner, body, body_end in _boxes(data, start, end):
            if inner != b"mvhd" or body_end - body < 4:
                continue
            version = data[body]
            if version == 1 and body_end - body >= 32:
                timescale, duration = struct.unpack(">IQ", data[body + 20:body + 32])
                unknown = duration == 0xFFFF_FFFF_FFFF_FFFF
            elif version == 0 and body_end - body >= 20:
                timescale, duration = struct.unpack(">II", data[body + 12:body + 20])
                unknown = duration == 0xFFFF_FFFF
            else:
                return None
            if timescale == 0 or duration == 0 or unknown:
                return None
            return float(duration) / float(timescale)
    return None


def is_pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]


def pdf_pages(data: bytes) -> int:
    """Page objects counted in the file's text; 0 when they sit in compressed object streams (unknown)."""
    return len(_PAGE.findall(data))


def is_text(data: bytes) -> bool:
    """UTF-8 (a BOM allowed) with something written in it and no control characters but tab and newlines."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and _CONTROL.search(text) is None


@dataclass(frozen=True)
class Poster:
    jpeg: bytes
    width: int  # the video's frame size (0 when it could not be decoded)
    height: int
    drawn: bool  # True: a placeholder, the video could not be decoded


def poster(data: bytes, max_pixels: int) -> Poster | None:
    """The first frame as a small JPEG. None when the file decodes but is too large to (over
    `max_pixels` per frame); a placeholder when PyAV is missing or cannot read the frames."""
    try:
        import av  # the wheel bundles FFmpeg; imported here so images work without it
    except ImportError:  # pragma: no cover - av is a pinned dependency
        return Poster(_placeholder(), 0, 0, drawn=True)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                return Poster(_placeholder(), 0, 0, drawn=True)
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > max_pixels:
                return None
            for frame in container.decode(stream):
                image = frame.to_image()  # type: ignore[no-untyped-call]
                image.thumbnail((_POSTER_SIDE, _POSTER_SIDE))
                out = io.BytesIO()
                image.convert("RGB").save(out, format="JPEG", quality=80)
                return Poster(out.getvalue(), width, height, drawn=False)
    except (av.FFmpegError, ValueError, OSError) as exc:  # a file FFmpeg cannot read: still evidence
        log.info("no poster frame: %s", type(exc).__name__)
    return Poster(_placeholder(), 0, 0, drawn=True)


def _placeholder() -> bytes:
    """A grey card with a play sign."""
    image = Image.new("RGB", (_POSTER_SIDE, _POSTER_SIDE * 9 // 16), (96, 96, 96))
    w, h = image.size
    ImageDraw.Draw(image).polygon([(w * 0.42, h * 0.3), (w * 0.42, h * 0.7), (w * 0.6, h * 0.5)], fill="white")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
