"""Both senders deliver evidence albums with videos to the emulator: each file as its kind, a stored
video uploaded with its poster frame as the thumbnail, documents grouped only with documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.evidence import EvidenceIntake
from bot.sending import Sender
from dialogs.io import EventKind, FileInspection, FileRef
from dialogs.notify import AlbumItem
from dialogs.settings import PolicySettings
from sandbox import Emulator
from tests.bot.test_evidence_video import CHAT_EXPORT, Telegram, real_mp4, real_pdf
from tests.e2e.conftest import png_bytes

CUSTOMER = 5001


async def keep(tmp_path: Path, data: bytes, kind: EventKind = EventKind.DOCUMENT, mime: str | None = None
               ) -> FileInspection:
    found = await EvidenceIntake(tmp_path, PolicySettings()).inspect(
        FileRef("id", "unique", len(data), mime), kind, Telegram(data))
    assert found.ok, found.problem
    return found


def item(found: FileInspection, file_id: str = "not-a-file-id") -> AlbumItem:
    return AlbumItem(file_id, found.path, found.mime_type)


async def chat(emu: Emulator) -> list[dict[str, Any]]:
    async with emu.client() as tg:
        return list(await tg.messages(CUSTOMER))


async def calls(emu: Emulator, method: str) -> list[dict[str, Any]]:
    async with emu.client() as tg:
        return [c for c in await tg.calls() if c["method"] == method]


async def test_an_uploaded_album_sends_the_video_as_a_video_next_to_the_photo(sender: Sender, emu: Emulator,
                                                                             tmp_path: Path) -> None:
    async with emu.client() as tg:
        await tg.create_user(CUSTOMER, "张三", language_code="zh-hans")
    video = await keep(tmp_path, real_mp4(), EventKind.VIDEO, "video/mp4")
    photo = await keep(tmp_path, png_bytes("red"), EventKind.PHOTO)
    ids = await sender.send_album(CUSTOMER, [item(video), item(photo)], "upload", caption="R1 的证据")
    shown = await chat(emu)
    assert [m["message_id"] for m in shown] == ids
    assert [m["kind"] for m in shown] == ["video", "photo"]
    assert shown[0]["caption"] == "R1 的证据" and len({m["media_group_id"] for m in shown}) == 1


async def test_one_uploaded_video_goes_by_send_video_with_its_poster(sender: Sender, emu: Emulator,
                                                                    tmp_path: Path) -> None:
    async with emu.client() as tg:
        await tg.create_user(CUSTOMER, "张三", language_code="zh-hans")
    video = await keep(tmp_path, real_mp4(), EventKind.VIDEO, "video/mp4")
    await sender.send_album(CUSTOMER, [item(video)], "upload", caption="R1 的证据")
    assert [m["kind"] for m in await chat(emu)] == ["video"]
    (sent,) = await calls(emu, "sendVideo")
    assert "thumbnail" in sent["params"]


async def test_a_pdf_and_a_chat_export_with_a_photo_go_as_one_album_of_documents(sender: Sender, emu: Emulator,
                                                                                tmp_path: Path) -> None:
    async with emu.client() as tg:
        await tg.create_user(CUSTOMER, "张三", language_code="zh-hans")
    pdf = await keep(tmp_path, real_pdf(), mime="application/pdf")
    text = await keep(tmp_path, CHAT_EXPORT, mime="text/plain")
    photo = await keep(tmp_path, png_bytes("blue"), EventKind.PHOTO)
    await sender.send_album(CUSTOMER, [item(photo), item(pdf), item(text)], "upload")
    shown = await chat(emu)
    assert [m["kind"] for m in shown] == ["document"] * 3
    assert [m["mime_type"] for m in shown][1:] == ["application/pdf", "text/plain"]
