"""Evidence intake: download a customer's file, make sure it really is what we take, keep it on disk.

The sender's mime type is never trusted: we sniff the magic bytes, open an image with Pillow
restricted to JPEG/PNG/WebP, and cap the pixels before decoding anything; videos, PDFs and chat
exports are checked in bot/evidence_media.py. What the sender claims (a size, a video's length) can
only refuse a file early, before the download. Files are stored content-addressed (sha256), so a
repeated upload is one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.evidence_media import (
    EXTENSION,
    MIME,
    PDF,
    TEXT,
    VIDEO,
    is_pdf,
    is_text,
    movie_seconds,
    pdf_pages,
    poster,
    video_mime,
)
from dialogs.clock import Clock, utcnow
from dialogs.io import EventKind, FileInspection, FileRef
from dialogs.ports import UnitOfWorkFactory
from dialogs.settings import PolicySettings

log = logging.getLogger(__name__)

_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
MB = 1024 * 1024

Downloader = Callable[[str, int], Awaitable[bytes]]


class TooLarge(Exception):
    """The download would exceed the cap (or Telegram refused it as too big)."""


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


# What the sender said the file is: a photo, a Telegram video, or a document's claimed mime type. It only
# picks the cap checked before the download and the kind the bytes must then be ("any": a document with
# no telling mime type, which may be any kind we take).
IMAGE, ANY = "image", "any"


def declared_kind(file: FileRef, kind: EventKind) -> str:
    if kind is EventKind.PHOTO:
        return IMAGE
    if kind is EventKind.VIDEO:
        return VIDEO
    mime = (file.mime_type or "").lower()
    if mime.startswith("image/"):
        return IMAGE
    if mime.startswith("video/"):
        return VIDEO
    if mime == "application/pdf":
        return PDF
    if mime.startswith("text/"):
        return TEXT
    return ANY


# The answer when the bytes are not the kind claimed (a fake mime type) or no kind we take.
_NOT = {IMAGE: "not_image", VIDEO: "not_video"}
_TOO_LARGE = {IMAGE: "too_large", VIDEO: "video_too_large", PDF: "pdf_too_large", TEXT: "text_too_large",
              ANY: "too_large"}


def _other_kind(data: bytes, claimed: str) -> str | None:
    """What a file that is no picture is, by its bytes. Any ASCII file would pass as text, so text counts
    only when the sender said text (or nothing telling)."""
    if video_mime(data):
        return VIDEO
    if data.startswith(b"%PDF-"):
        return PDF
    if claimed in (TEXT, ANY) and is_text(data):
        return TEXT
    return None


class EvidenceIntake:
    def __init__(self, directory: str | Path, policy: PolicySettings) -> None:
        self.directory = Path(directory)
        self.policy = policy

    def cap(self, kind: str, is_photo: bool = False) -> int:
        """The most bytes a file of `kind` may have."""
        policy = self.policy
        caps = {IMAGE: (policy.max_photo_mb if is_photo else policy.max_document_mb) * MB,
                VIDEO: policy.max_video_mb * MB, PDF: policy.max_pdf_mb * MB, TEXT: policy.max_text_kb * 1024}
        if kind == ANY:
            return int(max(policy.max_document_mb * MB, caps[VIDEO], caps[PDF], caps[TEXT]))
        return int(caps[kind])

    async def inspect(self, file: FileRef, kind: EventKind, download: Downloader) -> FileInspection:
        """Refuse what the claims already rule out (a declared size over the cap, a video said to be too
        long) without downloading it; then download at most the cap and look at the bytes."""
        claimed = declared_kind(file, kind)
        cap = self.cap(claimed, kind is EventKind.PHOTO)
        if file.size is not None and file.size > cap:
            return FileInspection(ok=False, problem=_TOO_LARGE[claimed], size=file.size)
        if claimed == VIDEO and file.duration is not None and file.duration > self.policy.max_video_seconds:
            return FileInspection(ok=False, problem="video_too_long", seconds=float(file.duration))
        try:
            data = await download(file.file_id, cap)
        except TooLarge:
            return FileInspection(ok=False, problem=_TOO_LARGE[claimed])
        except Exception as exc:  # noqa: BLE001 - network, Telegram error: the customer can simply send it again
            if "too big" in str(exc).lower():  # getFile past Telegram's 20 MB: no retry will help
                return FileInspection(ok=False, problem=_TOO_LARGE[claimed])
            log.warning("evidence download failed: %s", type(exc).__name__)
            return FileInspection(ok=False, problem="download_failed")
        if len(data) > cap:
            return FileInspection(ok=False, problem=_TOO_LARGE[claimed], size=len(data))
        return await asyncio.to_thread(self._check_and_store, data, claimed, kind is EventKind.PHOTO)

    def _check_and_store(self, data: bytes, claimed: str, is_photo: bool) -> FileInspection:
        fmt = sniff(data)
        found = IMAGE if fmt else _other_kind(data, claimed)
        if found is None or claimed not in (found, ANY):
            return FileInspection(ok=False, problem=_NOT.get(claimed, "not_supported"), size=len(data))
        if len(data) > self.cap(found, is_photo):
            return FileInspection(ok=False, problem=_TOO_LARGE[found], size=len(data))
        if found == VIDEO:
            return self._video(data)
        if found == PDF:
            if not is_pdf(data):
                return FileInspection(ok=False, problem="file_unreadable", size=len(data))
            return replace(self._store(data, MIME[PDF], EXTENSION[PDF]), pages=pdf_pages(data))
        if found == TEXT:
            return self._store(data, MIME[TEXT], EXTENSION[TEXT])
        assert fmt is not None
        try:
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                width, height = img.size
                if width * height > self.policy.max_pixels:
                    return FileInspection(ok=False, problem="too_many_pixels", width=width, height=height)
                img.verify()  # checks structure without decoding the whole raster
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
            return FileInspection(ok=False, problem="unreadable", size=len(data))
        mime, ext = _FORMATS[fmt]
        return replace(self._store(data, mime, ext), width=width, height=height)

    def _video(self, data: bytes) -> FileInspection:
        """The length from the file's own header first (cheap), then the poster frame (a decode)."""
        seconds = movie_seconds(data)
        if seconds is None:
            return FileInspection(ok=False, problem="file_unreadable", size=len(data))
        if seconds > self.policy.max_video_seconds:
            return FileInspection(ok=False, problem="video_too_long", seconds=seconds, size=len(data))
        frame = poster(data, self.policy.max_pixels)
        if frame is None:
            return FileInspection(ok=False, problem="video_too_many_pixels", size=len(data))
        mime = video_mime(data) or MIME[VIDEO]
        stored = self._store(data, mime, EXTENSION[mime])
        self._write(Path(poster_path(stored.path)), frame.jpeg)
        return replace(stored, width=frame.width, height=frame.height, seconds=seconds)

    def _store(self, data: bytes, mime: str, ext: str) -> FileInspection:
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / digest[:2] / f"{digest}.{ext}"
        self._write(path, data)
        return FileInspection(ok=True, path=str(path), sha256=digest, mime_type=mime, size=len(data))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            os.utime(path)  # fresh again: the sweeper leaves young files alone until their row is written
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a crash never leaves half a file under the final name


def poster_path(video_path: str) -> str:
    """Where a stored video's poster frame is: next to it, named by the same digest (so the sweeper keeps
    it exactly as long as the video)."""
    return str(Path(video_path).with_suffix(".poster.jpg"))


@dataclass(frozen=True)
class Swept:
    rows: int  # evidence rows of abandoned drafts
    files: int  # files on disk that no evidence row names
    purged: int = 0  # cases closed longer than the retention whose evidence went


# Retention (`[storage] keep_days`): given "now", drops what closed cases no longer need; says how many cases.
Purge = Callable[[datetime], Awaitable[int]]


class EvidenceSweeper:
    """Removes what no case will ever use: the evidence rows of drafts never filed whose last file is
    older than `draft_age`, then every file under the evidence directory that no row names (an
    abandoned draft's, a download whose update then failed, a crash's temporary file). A row bound to a
    case is never deleted, so its file (content-addressed: possibly shared with a draft) always stays.
    Files younger than `grace` stay too: they may belong to an update whose row is not committed yet.
    With a `purge` (retention), the rows of cases closed long ago go first, so their files go in the same run."""

    def __init__(self, uow: UnitOfWorkFactory, directory: str | Path, draft_age: timedelta,
                 grace: timedelta = timedelta(hours=1), clock: Clock = utcnow,
                 wall: Callable[[], float] = time.time, purge: Purge | None = None) -> None:
        self.uow, self.directory, self.draft_age, self.grace = uow, Path(directory), draft_age, grace
        self.clock, self.wall, self.purge = clock, wall, purge

    async def sweep(self) -> Swept:
        purged = await self.purge(self.clock()) if self.purge is not None else 0
        async with self.uow() as uow:
            rows = await uow.evidence.prune_drafts(self.clock() - self.draft_age)
            keep = await uow.evidence.stored_digests()
            await uow.commit()
        files = await asyncio.to_thread(self._remove_unnamed, keep, self.wall() - self.grace.total_seconds())
        return Swept(rows, files, purged)

    async def sweep_count(self) -> int:
        swept = await self.sweep()
        return swept.rows + swept.files + swept.purged

    def _remove_unnamed(self, keep: set[str], older_than: float) -> int:
        removed = 0
        if not self.directory.is_dir():
            return 0
        for path in self.directory.rglob("*"):
            try:
                if not path.is_file() or path.stat().st_mtime >= older_than:
                    continue
                if path.suffix != ".tmp" and path.name.split(".", 1)[0] in keep:
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:  # another worker's sweeper was first
                continue
        return removed
