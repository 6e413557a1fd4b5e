"""Webhook mode: Telegram (the emulator) posts updates; the secret token is checked in constant time, and a body
that is not an update (malformed, nested too deep, too large) is answered 400, never 500 (Telegram would retry it)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from dialogs.texts import Texts
from tests.e2e.conftest import make_config, texts

ZH = Texts("zh_CN")


async def test_webhook_mode_serves_the_dialog_and_checks_the_secret(start_bot, customer, control, tmp_path):
    config = make_config(tmp_path, mode="webhook", webhook_secret="s3cret-token", listen_port=0)
    handle = await start_bot(config)
    c = await customer()
    shown = await c.say("/start order_KM20261101000001")  # delivered by the emulator's webhook
    assert "KM20261101000001" in texts(shown)
    state = await control.get("state")
    assert state["webhook"]["url"].endswith("/telegram/webhook")

    url = handle.running.webhook_url
    update = {"update_id": 999001, "message": {"message_id": 1, "date": 0, "chat": {"id": 10001, "type": "private"},
                                                "from": {"id": 10001, "is_bot": False, "first_name": "x"},
                                                "text": "/help"}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with http.post(url, json=update, headers=headers) as resp:
                assert resp.status == 401
        async with http.post(url, data=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}) as r:
            assert r.status == 400
        # JSON, but not an Update: refused by either library's parser, never retried as a failure (500).
        for body in ([update], {"message": update["message"]}, {"update_id": 999002, "message": "hello"},
                     {"update_id": 999003, "message": {"message_id": "x", "chat": 5}}):
            async with http.post(url, json=body, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}) as r:
                assert r.status == 400, (body, r.status, await r.text())
    # None of the refused posts reached the customer.
    assert await c.read() == []


def _update(update_id: int, **extra: object) -> bytes:
    return json.dumps({"update_id": update_id, **extra, "message": {
        "message_id": 1, "date": 0, "chat": {"id": 10001, "type": "private"},
        "from": {"id": 10001, "is_bot": False, "first_name": "x"}, "text": "/help"}}).encode()


REFUSED_BODIES = {
    "not_json": b"{not json",
    "not_utf8": b'{"update_id": 1, "x": "\xff\xfe"}',
    "deep_lists": b"[" * 100_000 + b"]" * 100_000,  # json.loads alone raises RecursionError on these two
    "deep_objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "update_nested_too_deep": _update(999101, extra=json.loads("[" * 200 + "]" * 200)),
    "over_large": _update(999102, padding="x" * (2 << 20)),
}


@pytest.mark.parametrize("body", REFUSED_BODIES.values(), ids=REFUSED_BODIES.keys())
async def test_webhook_answers_400_never_500_to_bodies_that_are_not_updates(
        start_bot, customer, tmp_path, body: bytes):
    handle = await start_bot(make_config(tmp_path, mode="webhook", webhook_secret="s3cret-token", listen_port=0))
    c = await customer()
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(handle.running.webhook_url, data=body, headers=headers) as r:
        assert r.status == 400, await r.text()
    assert await c.read() == []
    assert "KM20261101000001" in texts(await c.say("/start order_KM20261101000001"))  # still serving
