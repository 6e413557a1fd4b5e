"""Image facts Telegram derives from uploaded bytes (sizes, thumbnails), via Pillow."""

from __future__ import annotations

import io
import mimetypes

from PIL import Image, UnidentifiedImageError

THUMB_SIDE = 90  # Telegram's smallest PhotoSize ("s") is at most 90 px on its longer side


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) when the bytes are an image Pillow can read, else None."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def thumbnail(data: bytes) -> tuple[bytes, int, int] | None:
    """A small JPEG rendition, as Telegram adds for photos; None when not an image or already small."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max(img.size) <= THUMB_SIDE:
                return None
            small = img.convert("RGB")
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=80)
            return buf.getvalue(), small.width, small.height
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def photo_facts(data: bytes) -> tuple[tuple[int, int] | None, tuple[bytes, int, int] | None]:
    """Size and thumbnail together: the Pillow work of a photo upload, to run off the event loop."""
    return image_size(data), thumbnail(data)


def guess_mime(filename: str | None, claimed: str | None = None) -> str:
    # Telegram trusts the file extension over the multipart content type, which clients rarely set.
    guessed = mimetypes.guess_type(filename or "")[0]
    if guessed:
        return guessed
    if claimed and claimed != "application/octet-stream":
        return claimed
    return "application/octet-stream"
