"""Videos, PDFs and chat exports as evidence: recognised by their bytes (real files made here), capped by
their own facts (a video's length from its mvhd box, not the sender's claim), stored like pictures."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.evidence import EvidenceIntake, poster_path
from bot.evidence_media import is_pdf, is_text, movie_seconds, pdf_pages, poster, video_mime
from bot.sending import AlbumFile, album_files
from dialogs.io import EventKind, FileRef
from dialogs.notify import AlbumItem
from dialogs.settings import PolicySettings

MB = 1024 * 1024
THREE_HOURS = 3 * 3600


def real_mp4(frames: int = 10, size: tuple[int, int] = (64, 48), rate: int = 10) -> bytes:
    """A real MPEG-4 video (PyAV's FFmpeg): `frames` / `rate` seconds long."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for n in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, (n * 20 % 256, 120, 60)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def iso_bmff(seconds: float, brand: bytes = b"isom", version: int = 0, timescale: int = 1000,
             duration: int | None = None) -> bytes:
    """A minimal valid ISO BMFF file: ftyp, then moov holding only mvhd with the given length."""
    ticks = round(seconds * timescale) if duration is None else duration
    ftyp = box(b"ftyp", brand + struct.pack(">I", 0x200) + brand + b"mp41")
    if version == 1:
        times = struct.pack(">QQIQ", 0, 0, timescale, ticks)
    else:
        times = struct.pack(">IIII", 0, 0, timescale, ticks)
    rest = struct.pack(">IH", 0x00010000, 0x0100) + b"\0" * 10 + b"\0" * 36 + b"\0" * 24 + struct.pack(">I", 2)
    mvhd = box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest)
    return ftyp + box(b"moov", mvhd)


def real_pdf(pages: int = 2) -> bytes:
    out = io.BytesIO()
    first, *more = [Image.new("RGB", (200, 280), "white") for _ in range(pages)]
    first.save(out, format="PDF", save_all=True, append_images=more)
    return out.getvalue()


CHAT_EXPORT = ("2026-11-01 10:02:11 我\n卡密 KM-1234 显示已使用，错误码1002\n"
               "2026-11-01 10:05:40 客服小王\n您好，请提供截图。\n").encode()


class Telegram:
    """Downloads as the Bot API would: the stored bytes, or nothing at all when asked for none."""

    def __init__(self, data: bytes = b"", error: Exception | None = None) -> None:
        self.data, self.error, self.calls = data, error, 0

    async def __call__(self, file_id: str, cap: int) -> bytes:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.data[: cap + 1]


def ref(size: int | None = None, mime: str | None = None, duration: int | None = None) -> FileRef:
    return FileRef("file-id", "unique-id", size, mime, duration=duration)


def stored(tmp_path: Path) -> list[str]:
    return sorted(p.name.split(".", 1)[1] for p in tmp_path.rglob("*") if p.is_file())


# ---- sniffing ----------------------------------------------------------------------------------------

def test_a_real_mp4_is_a_video_of_its_own_length():
    data = real_mp4(frames=10, rate=10)
    assert video_mime(data) == "video/mp4"
    assert movie_seconds(data) == pytest.approx(1.0, abs=0.15)


def test_a_quicktime_brand_is_a_mov():
    assert video_mime(iso_bmff(5, brand=b"qt  ")) == "video/quicktime"


@pytest.mark.parametrize("brand", [b"heic", b"mif1", b"avif"])
def test_an_iso_bmff_picture_is_not_a_video(brand):
    assert video_mime(iso_bmff(5, brand=brand).replace(b"mp41", brand)) is None


def test_the_length_of_a_three_hour_movie_is_read_from_mvhd_in_both_versions():
    assert movie_seconds(iso_bmff(THREE_HOURS)) == THREE_HOURS
    assert movie_seconds(iso_bmff(THREE_HOURS, version=1, timescale=90000)) == THREE_HOURS


@pytest.mark.parametrize("data", [
    iso_bmff(0, duration=0xFFFF_FFFF),  # "unknown"
    iso_bmff(5)[:-20],  # cut inside mvhd
    iso_bmff(5, timescale=0),
    box(b"ftyp", b"isom\0\0\0\0isom"),  # no moov at all
], ids=["unknown", "cut", "no-timescale", "no-moov"])
def test_a_video_without_a_readable_length_has_none(data):
    assert movie_seconds(data) is None


def test_a_real_video_gets_its_first_frame_as_poster():
    found = poster(real_mp4(size=(96, 64)), max_pixels=40_000_000)
    assert found is not None and not found.drawn
    assert (found.width, found.height) == (96, 64)
    assert Image.open(io.BytesIO(found.jpeg)).format == "JPEG"


def test_a_video_ffmpeg_cannot_decode_gets_a_drawn_poster():
    found = poster(iso_bmff(5), max_pixels=40_000_000)
    assert found is not None and found.drawn
    assert Image.open(io.BytesIO(found.jpeg)).size == (320, 180)


def test_a_video_over_the_pixel_cap_gets_no_poster():
    assert poster(real_mp4(size=(96, 64)), max_pixels=96 * 64 - 1) is None


def test_a_pdf_made_by_pillow_is_a_pdf_with_its_pages_counted():
    data = real_pdf(pages=3)
    assert is_pdf(data) and pdf_pages(data) == 3
    assert not is_pdf(data[: len(data) // 2])  # a cut upload has no %%EOF


def test_a_utf8_chat_export_is_text_and_binary_or_gbk_is_not():
    assert is_text(CHAT_EXPORT) and is_text(b"\xef\xbb\xbf" + CHAT_EXPORT)
    assert not is_text(CHAT_EXPORT + b"\0")
    assert not is_text("卡密无效".encode("gbk"))
    assert not is_text(b" \n\t ")


# ---- the intake: caps before the download, the bytes after it -----------------------------------------

@pytest.fixture
def intake(tmp_path: Path) -> EvidenceIntake:
    return EvidenceIntake(tmp_path, PolicySettings())


async def test_a_real_video_is_stored_with_its_poster_and_length(intake, tmp_path):
    data = real_mp4(size=(96, 64))
    found = await intake.inspect(ref(len(data), "video/mp4", duration=1), EventKind.VIDEO, Telegram(data))
    assert found.ok and found.mime_type == "video/mp4" and found.size == len(data)
    assert (found.width, found.height) == (96, 64) and found.seconds == pytest.approx(1.0, abs=0.15)
    assert Path(found.path).read_bytes() == data and found.path.endswith(f"{found.sha256}.mp4")
    assert Image.open(poster_path(found.path)).format == "JPEG"
    assert stored(tmp_path) == ["mp4", "poster.jpg"]


async def test_a_video_sent_as_a_file_is_taken_by_its_bytes(intake):
    data = real_mp4()
    found = await intake.inspect(ref(len(data), "application/octet-stream"), EventKind.DOCUMENT, Telegram(data))
    assert found.ok and found.mime_type == "video/mp4"


@pytest.mark.parametrize("data", [b"MZ\x90\0 not a video at all" * 10, real_pdf()], ids=["exe", "pdf"])
async def test_a_fake_mime_video_is_refused_and_nothing_is_stored(intake, tmp_path, data):
    found = await intake.inspect(ref(len(data), "video/mp4"), EventKind.VIDEO, Telegram(data))
    assert (found.ok, found.problem) == (False, "not_video")
    assert stored(tmp_path) == []


async def test_a_200_mb_video_is_refused_from_its_declared_size_without_a_download(intake, tmp_path):
    telegram = Telegram()
    found = await intake.inspect(ref(200 * MB, "video/mp4"), EventKind.VIDEO, telegram)
    assert (found.problem, telegram.calls) == ("video_too_large", 0)


async def test_a_video_declared_three_hours_long_is_refused_without_a_download(intake):
    telegram = Telegram()
    found = await intake.inspect(ref(2 * MB, "video/mp4", duration=THREE_HOURS), EventKind.VIDEO, telegram)
    assert (found.problem, telegram.calls) == ("video_too_long", 0)


async def test_a_three_hour_video_claiming_five_seconds_is_refused_by_its_own_header(intake, tmp_path):
    data = iso_bmff(THREE_HOURS)
    found = await intake.inspect(ref(len(data), "video/mp4", duration=5), EventKind.VIDEO, Telegram(data))
    assert (found.problem, found.seconds) == ("video_too_long", THREE_HOURS)
    assert stored(tmp_path) == []


async def test_a_video_without_a_length_is_refused_as_unreadable(intake, tmp_path):
    data = iso_bmff(0, duration=0)
    found = await intake.inspect(ref(len(data), "video/mp4"), EventKind.VIDEO, Telegram(data))
    assert found.problem == "file_unreadable" and stored(tmp_path) == []


async def test_telegrams_file_is_too_big_answer_is_a_polite_too_large(intake):
    telegram = Telegram(error=Exception("Bad Request: file is too big"))
    found = await intake.inspect(ref(None, "video/mp4"), EventKind.VIDEO, telegram)
    assert found.problem == "video_too_large"


async def test_a_pdf_is_stored_with_its_page_count(intake, tmp_path):
    data = real_pdf(pages=2)
    found = await intake.inspect(ref(len(data), "application/pdf"), EventKind.DOCUMENT, Telegram(data))
    assert found.ok and found.mime_type == "application/pdf" and found.pages == 2
    assert stored(tmp_path) == ["pdf"]


async def test_a_pdf_over_its_cap_is_refused(tmp_path):
    intake = EvidenceIntake(tmp_path, PolicySettings(max_pdf_mb=0.001))
    data = real_pdf(pages=2) + b"%" * 2048 + b"\n%%EOF\n"
    found = await intake.inspect(ref(None, "application/octet-stream"), EventKind.DOCUMENT, Telegram(data))
    assert found.problem == "pdf_too_large" and stored(tmp_path) == []


async def test_a_chat_export_is_stored_as_text(intake, tmp_path):
    found = await intake.inspect(ref(len(CHAT_EXPORT), "text/plain"), EventKind.DOCUMENT, Telegram(CHAT_EXPORT))
    assert found.ok and found.mime_type == "text/plain"
    assert stored(tmp_path) == ["txt"]


async def test_a_text_over_its_cap_is_refused(tmp_path):
    intake = EvidenceIntake(tmp_path, PolicySettings(max_text_kb=1))
    data = CHAT_EXPORT * 20
    found = await intake.inspect(ref(len(data), "text/plain"), EventKind.DOCUMENT, Telegram(data))
    assert found.problem == "text_too_large"


async def test_text_claiming_to_be_a_picture_is_still_not_an_image(intake, tmp_path):
    found = await intake.inspect(ref(None, "image/png"), EventKind.DOCUMENT, Telegram(CHAT_EXPORT))
    assert found.problem == "not_image" and stored(tmp_path) == []


async def test_a_binary_document_of_no_kind_we_take_is_not_supported(intake):
    data = b"PK\x03\x04" + bytes(range(256)) * 4
    found = await intake.inspect(ref(len(data), "application/zip"), EventKind.DOCUMENT, Telegram(data))
    assert found.problem == "not_supported"


# ---- albums: each file as its kind ---------------------------------------------------------------------

def test_an_album_of_photos_and_videos_sends_each_as_its_kind():
    files = album_files([AlbumItem("p", "", "image/png"), AlbumItem("v", "", "video/mp4")], "photo")
    assert [(f.media, f.kind) for f in files] == [("p", "photo"), ("v", "video")]


def test_an_album_with_a_pdf_goes_all_as_documents():
    files = album_files([AlbumItem("p", "", "image/png"), AlbumItem("d", "", "application/pdf")], "photo")
    assert [f.kind for f in files] == ["document", "document"]


async def test_an_uploaded_video_carries_its_poster(intake):
    data = real_mp4()
    found = await intake.inspect(ref(len(data), "video/mp4"), EventKind.VIDEO, Telegram(data))
    files = album_files([AlbumItem("v", found.path, found.mime_type)], "upload")
    assert files == [AlbumFile(Path(found.path), "video", Path(poster_path(found.path)))]
