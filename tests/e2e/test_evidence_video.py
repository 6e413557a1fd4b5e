"""Videos, PDFs and chat exports through the emulator: a short video is taken and the desk sees it in the
case's album; a fake-mime video, a 200 MB one and a 3-hour one are refused politely and nothing is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dialogs.texts import Texts
from tests.bot.test_evidence_video import CHAT_EXPORT, THREE_HOURS, iso_bmff, real_mp4, real_pdf
from tests.e2e.conftest import CASE_NO, Control, Customer, png_bytes, texts
from tests.e2e.test_bad_input_and_robustness import LIMITS
from tests.e2e.test_desk_actions import (
    AGENT,
    AGENT2,
    STRANGER,
    SUPER,
    SUPER2,
    XIAOMING,
    Desk,
    Person,
    desk_config,
)

ZH, EN = Texts("zh_CN"), Texts("en")
VIDEO_LIMITS = {**LIMITS, "max_video_mb": 20, "max_video_min": 3, "max_pdf_mb": 10, "max_text_kb": 1024}
MB = 1024 * 1024


def stored_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()]


async def downloads(control: Control) -> int:
    return len(await control.get("calls", method="getFile"))


async def at_the_evidence_step(c: Customer, t: Texts = ZH) -> None:
    await c.say("/start order_KM20261101000001")
    await c.press(t("reason.card_invalid"))
    await c.press(t("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")


async def send_video(c: Customer, data: bytes, duration: int = 1, mime_type: str = "video/mp4") -> list[dict[str, Any]]:
    return await c._after(await c.control.post_file("send_video", data, user_id=c.user_id, filename="录屏.mp4",
                                                    mime_type=mime_type, duration=duration, width=64, height=48))


async def nothing_kept(c: Customer, tmp_path: Path, t: Texts = ZH) -> None:
    assert stored_files(tmp_path) == []
    assert texts(await c.press(t("btn_done"))) == t("evidence_required", needed=1, count=0)


async def test_a_short_video_is_taken_and_kept_with_its_poster(bot, customer, control, tmp_path):
    c = await customer()
    await at_the_evidence_step(c)
    assert texts(await send_video(c, real_mp4())) == ZH("evidence_received.video", count=1, **VIDEO_LIMITS)
    assert sorted(p.name.split(".", 1)[1] for p in stored_files(tmp_path)) == ["mp4", "poster.jpg"]


async def test_a_fake_mime_video_is_refused_politely_and_nothing_is_kept(bot, customer, tmp_path):
    c = await customer()
    await at_the_evidence_step(c)
    shown = await send_video(c, b"MZ\x90\x00 this is a program, not a video" * 20)
    assert texts(shown) == ZH("evidence_problem.not_video")
    await nothing_kept(c, tmp_path)


async def test_a_200_mb_video_is_refused_from_its_size_without_a_download(bot, customer, control, tmp_path):
    c = await customer(XIAOMING, "en")
    await at_the_evidence_step(c, EN)
    sent = await control.post("send_file_ref", user_id=c.user_id, kind="video", file_size=200 * MB, duration=30)
    assert texts(await c._after(sent)) == EN("evidence_problem.video_too_large", **VIDEO_LIMITS)
    assert await downloads(control) == 0
    await nothing_kept(c, tmp_path, EN)


async def test_a_three_hour_video_claiming_five_seconds_is_refused_and_nothing_is_kept(bot, customer, tmp_path):
    c = await customer()
    await at_the_evidence_step(c)
    shown = await send_video(c, iso_bmff(THREE_HOURS), duration=5)
    assert texts(shown) == ZH("evidence_problem.video_too_long", **VIDEO_LIMITS)
    assert "3 分钟" in texts(shown)
    await nothing_kept(c, tmp_path)


async def test_a_pdf_and_a_chat_export_are_taken_as_evidence(bot, customer, tmp_path):
    c = await customer()
    await at_the_evidence_step(c)
    assert texts(await c.document(real_pdf(), "订单.pdf", "application/pdf")) == ZH(
        "evidence_received.pdf", count=1, **VIDEO_LIMITS)
    assert texts(await c.document(CHAT_EXPORT, "聊天记录.txt", "text/plain")) == ZH(
        "evidence_received.text", count=2, **VIDEO_LIMITS)
    assert sorted(p.suffix for p in stored_files(tmp_path)) == [".pdf", ".txt"]


async def make_desk(start_bot, control: Control, tmp_path: Path, framework: str) -> Desk:  # type: ignore[no-untyped-def]
    people = ((AGENT, "Wang"), (AGENT2, "Li"), (SUPER, "Zhao"), (SUPER2, "Qian"), (STRANGER, "Mallory"))
    for user_id, name in people:
        await control.post("users", user_id=user_id, first_name=name, language_code="zh-hans")
    await control.post("groups", title="退款客服台", chat_id=-1001987650001, is_forum=True, creator_id=SUPER,
                       members=[{"user_id": u, "status": "member"} for u, _ in people if u != SUPER])
    config = desk_config(tmp_path)
    config = config.model_copy(update={"telegram": config.telegram.model_copy(update={"framework": framework})})
    return Desk(await start_bot(config), control, *(Person(control, u) for u, _ in people))


async def file_case_with(c: Customer, *send: Any) -> str:
    await at_the_evidence_step(c)
    for one in send:
        await one()
    await c.press(ZH("btn_done"))
    found = CASE_NO.search(texts(await c.press(ZH("btn_submit"))))
    assert found
    return found.group(0)


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_the_desk_album_shows_a_video_as_a_video_next_to_a_photo(start_bot, customer, control, tmp_path,
                                                                       framework):
    desk = await make_desk(start_bot, control, tmp_path, framework)
    c = await customer(XIAOMING)
    case_no = await file_case_with(c, lambda: c.photo(png_bytes("red")), lambda: send_video(c, real_mp4()))
    shown = await desk.seen_in_topic(case_no, lambda ms: {"video", "photo"} <= {m.get("kind") for m in ms})
    album = [m for m in shown if m.get("kind") in ("video", "photo")]
    assert len({m.get("media_group_id") for m in album}) == 1  # one album, the caption on its first
    assert album[0].get("caption") == ZH("dk.album.caption", case_no=case_no, count=2)


async def test_the_desk_album_sends_a_pdf_and_a_chat_export_as_documents(start_bot, customer, control, tmp_path):
    desk = await make_desk(start_bot, control, tmp_path, "aiogram")
    c = await customer(XIAOMING)
    case_no = await file_case_with(c, lambda: c.document(real_pdf(), "订单.pdf", "application/pdf"),
                                   lambda: c.document(CHAT_EXPORT, "聊天记录.txt", "text/plain"))
    shown = await desk.seen_in_topic(case_no, lambda ms: sum(m.get("kind") == "document" for m in ms) == 2)
    assert {m.get("mime_type") for m in shown if m.get("kind") == "document"} == {"application/pdf", "text/plain"}


async def test_a_video_at_the_idle_step_gets_the_hint_and_is_never_downloaded(bot, customer, control, tmp_path):
    c = await customer()
    assert texts(await send_video(c, real_mp4())) == ZH("hint.idle", example="KM20261101000001")
    assert await downloads(control) == 0
    assert stored_files(tmp_path) == []
