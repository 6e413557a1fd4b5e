"""Files: what users and the bot uploaded, by file_id, and the download paths getFile hands out."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from .. import media

GETFILE_MAX_BYTES = 20 * 1024 * 1024  # the cloud Bot API refuses getFile above 20 MB
FILE_ID_PREFIX = {
    "photo": "AgAC", "document": "BQAC", "sticker": "CAAC", "voice": "AwAC", "video": "BAAC",
    "audio": "CQAC", "animation": "CgAC", "video_note": "DQAC",
}
FILE_FOLDER = {
    "photo": "photos", "document": "documents", "sticker": "stickers", "voice": "voice", "video": "videos",
    "audio": "music", "animation": "animations", "video_note": "video_notes",
}


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    size: int
    data: bytes | None  # None for a claimed-size reference: download yields zero bytes of that size
    mime_type: str | None = None
    file_name: str | None = None
    width: int = 0
    height: int = 0
    file_path: str | None = None  # assigned by getFile, as on the real server

    def content(self) -> bytes:
        return self.data if self.data is not None else bytes(self.size)


class FileStore:
    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self._file_counter = 0

    def clear(self) -> None:
        """Forget every file; download paths keep counting up."""
        self.files.clear()
        self.files_by_path.clear()

    def store_file(self, data: bytes | None, kind: str, *, size: int | None = None, mime_type: str | None = None,
                   file_name: str | None = None, width: int = 0, height: int = 0) -> StoredFile:
        if data is not None:
            digest = hashlib.sha256(data).digest()
            # Same bytes, same file_unique_id, as Telegram does; file_id stays per upload.
            unique = "AQAD" + base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")
        else:
            unique = "AQAD" + secrets.token_urlsafe(12)
        file_id = FILE_ID_PREFIX.get(kind, "BQAC") + secrets.token_urlsafe(48)
        f = StoredFile(file_id=file_id, file_unique_id=unique, kind=kind,
                       size=size if size is not None else len(data or b""), data=data, mime_type=mime_type,
                       file_name=file_name, width=width, height=height)
        self.files[file_id] = f
        return f

    def store_photo(self, data: bytes,
                    facts: tuple[tuple[int, int] | None, tuple[bytes, int, int] | None] | None = None
                    ) -> list[dict[str, Any]]:
        """Store an image and return its PhotoSize list, smallest first as Telegram sends it.
        `facts` is `media.photo_facts(data)` when the caller already worked it out off the loop."""
        found_size, thumb = facts if facts is not None else media.photo_facts(data)
        size = found_size or (0, 0)
        sizes: list[dict[str, Any]] = []
        if thumb is not None:
            t = self.store_file(thumb[0], "photo", mime_type="image/jpeg", width=thumb[1], height=thumb[2])
            sizes.append(self.photo_size(t))
        main = self.store_file(data, "photo", mime_type="image/jpeg", width=size[0], height=size[1])
        sizes.append(self.photo_size(main))
        return sizes

    @staticmethod
    def photo_size(f: StoredFile) -> dict[str, Any]:
        return {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "width": f.width, "height": f.height,
                "file_size": f.size}

    @staticmethod
    def document_dict(f: StoredFile) -> dict[str, Any]:
        d: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "file_size": f.size}
        if f.file_name:
            d["file_name"] = f.file_name
        if f.mime_type:
            d["mime_type"] = f.mime_type
        return d

    def assign_file_path(self, f: StoredFile) -> str:
        if f.file_path is None:
            self._file_counter += 1
            ext = ""
            if f.file_name and "." in f.file_name:
                ext = f.file_name.rsplit(".", 1)[1]
            elif f.kind == "photo":
                ext = "jpg"
            elif f.mime_type:
                ext = {"image/png": "png", "image/jpeg": "jpg", "application/pdf": "pdf", "audio/ogg": "oga",
                       "image/webp": "webp", "video/mp4": "mp4"}.get(f.mime_type, "")
            folder = FILE_FOLDER.get(f.kind, "documents")
            f.file_path = f"{folder}/file_{self._file_counter}" + (f".{ext}" if ext else "")
            self.files_by_path[f.file_path] = f
        return f.file_path
