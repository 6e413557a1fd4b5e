"""Customers' files are fetched from Telegram only when the conversation takes one, and only past the
flood guard: a photo anywhere else costs no getFile and leaves nothing on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialogs.texts import Texts
from tests.e2e.conftest import Control, Customer, make_config, png_bytes, texts
from tests.e2e.test_bad_input_and_robustness import LIMITS
from tests.e2e.test_desk_actions import XIAOMING, Desk, desk_factory, on_the_desk  # noqa: F401 - fixture

ZH = Texts("zh_CN")


def stored_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()]


async def downloads(control: Control) -> int:
    return len(await control.get("calls", method="getFile"))


async def at_the_evidence_step(c: Customer) -> None:
    await c.say("/start order_KM20261101000001")
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")


async def send_photos(c: Customer, count: int) -> None:
    """`count` photos at once, as a client uploading an album or a script would; waits for the last."""
    last: dict[str, Any] = {}
    for n in range(count):
        last = await c.control.post_file("send_photo", png_bytes(size=(64, 48 + n)), user_id=c.user_id)
    await c.control.wait(last["update_id"])


async def test_sixty_photos_at_the_idle_step_are_never_downloaded(start_bot, customer, control, tmp_path):
    await start_bot(make_config(tmp_path, flood_max_updates=100))  # the step alone decides here
    c = await customer()
    await send_photos(c, 60)
    assert ZH("hint.idle", example="KM20261101000001") in texts(await c.read())
    assert await downloads(control) == 0
    assert stored_files(tmp_path) == []


async def test_a_photo_at_the_evidence_step_is_downloaded_and_kept(start_bot, customer, control, tmp_path):
    await start_bot()
    c = await customer()
    await at_the_evidence_step(c)
    assert texts(await c.photo(png_bytes("red"))) == ZH("evidence_received", count=1, **LIMITS)
    assert await downloads(control) == 1
    assert len(stored_files(tmp_path)) == 1


async def test_a_photo_flood_is_cut_off_by_the_guard_before_any_download(start_bot, customer, control, tmp_path):
    # Four updates reach the evidence step; four photos more fill the guard's eight.
    await start_bot(make_config(tmp_path, flood_max_updates=8, flood_window_seconds=60))
    c = await customer()
    await at_the_evidence_step(c)
    await send_photos(c, 20)
    assert ZH("flood") in texts(await c.read())
    assert await downloads(control) == 4
    assert len(stored_files(tmp_path)) == 4


async def test_a_photo_to_an_agent_who_took_the_chat_over_is_copied_not_downloaded(desk_factory, customer,  # noqa: F811
                                                                                   control):
    desk: Desk = await desk_factory()
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)  # its one evidence photo: one download
    await desk.agent.send("/take", await desk.topic(case_no))
    before = await downloads(control)
    shot = await control.post_file("send_photo", png_bytes("green"), user_id=XIAOMING)
    await control.wait(shot["update_id"])
    await desk.seen_in_topic(case_no, lambda m: shot["file_unique_id"] in {x.get("file_unique_id") for x in m})
    assert await downloads(control) == before == 1
