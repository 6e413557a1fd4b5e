"""Evidence intake: download a customer's picture, make sure it really is one, keep it on disk.

The sender's mime type is never trusted: we sniff the magic bytes, open the image with Pillow
restricted to JPEG/PNG/WebP, and cap the pixels before decoding anything. Files are stored
content-addressed (sha256), so a repeated upload is one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dialogs.clock import Clock, utcnow
from dialogs.io import FileInspection, FileRef
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


class EvidenceIntake:
    def __init__(self, directory: str | Path, policy: PolicySettings) -> None:
        self.directory = Path(directory)
        self.policy = policy

    def cap(self, is_photo: bool) -> int:
        return int((self.policy.max_photo_mb if is_photo else self.policy.max_document_mb) * MB)

    async def inspect(self, file: FileRef, is_photo: bool, download: Downloader) -> FileInspection:
        cap = self.cap(is_photo)
        if file.size is not None and file.size > cap:
            return FileInspection(ok=False, problem="too_large", size=file.size)
        try:
            data = await download(file.file_id, cap)
        except TooLarge:
            return FileInspection(ok=False, problem="too_large")
        except Exception as exc:  # noqa: BLE001 - network, Telegram error: the customer can simply send it again
            log.warning("evidence download failed: %s", type(exc).__name__)
            return FileInspection(ok=False, problem="download_failed")
        if len(data) > cap:
            return FileInspection(ok=False, problem="too_large", size=len(data))
        return await asyncio.to_thread(self._check_and_store, data)

    def _check_and_store(self, data: bytes) -> FileInspection:
        fmt = sniff(data)
        if fmt is None:
            return FileInspection(ok=False, problem="not_image", size=len(data))
        try:
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                width, height = img.size
                if width * height > self.policy.max_pixels:
                    return FileInspection(ok=False, problem="too_many_pixels", width=width, height=height)
                img.verify()  # checks structure without decoding the whole raster
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
            return FileInspection(ok=False, problem="unreadable", size=len(data))
        digest = hashlib.sha256(data).hexdigest()
        mime, ext = _FORMATS[fmt]
        path = self.directory / digest[:2] / f"{digest}.{ext}"
        if path.exists():
            os.utime(path)  # fresh again: the sweeper leaves young files alone until their row is written
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a crash never leaves half a picture under the final name
        return FileInspection(
            ok=True, path=str(path), sha256=digest, mime_type=mime, width=width, height=height, size=len(data)
        )


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
