"""Structured logs: one JSON object per line with the case and update being handled, and redaction of
phone numbers, card codes and file contents, in both formats, while order and case numbers stay readable."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from bot.logs import (
    JsonFormatter,
    Redactor,
    TextFormatter,
    configure_logging,
    current_log_context,
    log_context,
    set_log_context,
)

ORDER, CASE = "KM20261101000001", "R20261124-0001"
CARD_CODE = "X7K2M9Q4W8E1R5T3"  # a 卡密 as a customer pastes it


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing JSON lines into a buffer (the root logger is left alone)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"tests.logs.{request.node.name}")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)


def records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_parses_and_carries_the_case_and_update_from_the_context(logged) -> None:
    logger, buffer = logged
    with log_context(update_id=7001, chat=10001):
        logger.info("looking up %s", ORDER)
        set_log_context(case=CASE)  # the handler learns the case number half way
        logger.warning("filed")
    logger.info("between updates")
    first, filed, between = records(buffer)
    assert first == {"ts": first["ts"], "level": "INFO", "logger": logger.name, "msg": f"looking up {ORDER}",
                     "chat": 10001, "update_id": 7001}
    assert str(first["ts"]).endswith("Z") and datetime.fromisoformat(str(first["ts"])).utcoffset() == timedelta(0)
    assert (filed["level"], filed["msg"], filed["case"], filed["update_id"]) == ("WARNING", "filed", CASE, 7001)
    assert set(between) == {"ts", "level", "logger", "msg"}  # the context ended with its update


def test_the_context_is_restored_when_a_nested_block_ends(logged) -> None:
    logger, buffer = logged
    with log_context(case=CASE):
        with log_context(update_id=2):
            set_log_context(chat=5)
            assert dict(current_log_context()) == {"case": CASE, "update_id": 2, "chat": 5}
        logger.info("after")
    assert dict(current_log_context()) == {}
    assert {k: v for k, v in records(buffer)[0].items() if k in ("case", "chat", "update_id")} == {"case": CASE}


def test_extra_fields_on_the_call_name_the_case_too(logged) -> None:
    logger, buffer = logged
    logger.info("moved", extra={"case": CASE, "update_id": 9})
    assert (records(buffer)[0]["case"], records(buffer)[0]["update_id"]) == (CASE, 9)


def test_an_exception_goes_into_exc_redacted(logged) -> None:
    logger, buffer = logged
    try:
        raise ValueError(f"card code {CARD_CODE} rejected for 13800001234")
    except ValueError:
        logger.exception("redeeming %s failed", ORDER)
    (entry,) = records(buffer)
    assert entry["msg"] == f"redeeming {ORDER} failed"
    assert "Traceback" in str(entry["exc"]) and "ValueError: card code <redacted> rejected for <phone>" in str(
        entry["exc"])
    assert CARD_CODE not in buffer.getvalue() and "13800001234" not in buffer.getvalue()


def test_redaction_removes_a_phone_a_card_code_and_file_contents_but_keeps_order_and_case_numbers(logged) -> None:
    logger, buffer = logged
    picture = b"\x89PNG\r\n\x1a\n" + bytes(100)
    logger.info("customer %s sent 卡密 %s for %s (case %s) with %r", "13800001234", CARD_CODE, ORDER, CASE, picture)
    (entry,) = records(buffer)
    assert entry["msg"] == f"customer <phone> sent 卡密 <redacted> for {ORDER} (case {CASE}) with <108 bytes>"
    assert "PNG" not in buffer.getvalue()


@pytest.mark.parametrize("phone", ["13800001234", "+8613800001234", "+86 138 0000 1234", "0086-139-1234-5678",
                                   "电话19912345678。"])
def test_chinese_mobile_numbers_are_redacted_in_every_usual_form(phone: str) -> None:
    redacted = Redactor()(f"call {phone} please")
    assert "<phone>" in redacted and not any(ch.isdigit() for ch in redacted)


@pytest.mark.parametrize(("text", "shown"), [
    (f"卡密: {CARD_CODE}", "卡密: <redacted>"),
    ("卡密：ab12", "卡密：<redacted>"),
    (f"卡密{CARD_CODE}", "卡密<redacted>"),
    ("card code 55667788", "card code <redacted>"),
    ("password=hunter two", "password=<redacted> two"),
    ("password: hunter2", "password: <redacted>"),
    ("pin is 4321", "pin is <redacted>"),
    ("{'card_secret': 'qwerty'}", "{'card_secret': '<redacted>'}"),
    ("code ABCD-1234-EFGH-5678 arrived", "code <redacted> arrived"),
    ("got 123456789012345678 from the shop", "got <redacted> from the shop"),  # a pure-digit card secret
    (f"pasted {CARD_CODE.lower()}", "pasted <redacted>"),
    # A bot token, e.g. in the URL an HTTP client logs: letters-only stretches of it must go too.
    ("POST https://api.telegram.org/bot123456789:AAHdqTcvCH_vGWJxf-eofSAsaKaPALDsaw/sendMessage",
     "POST https://api.telegram.org/bot<redacted>/sendMessage"),
])
def test_card_codes_and_secrets_are_redacted(text: str, shown: str) -> None:
    assert Redactor()(text) == shown


@pytest.mark.parametrize("text", [
    f"order {ORDER} and order {ORDER.lower()}", f"卡密 {ORDER}", f"case {CASE}, refund {CASE}-1",
    "desk chat -1001234567890", "卡密无效 (card_invalid)", "the card code is invalid", "user 10001 paid 30.00",
    "review due 2026-11-27T18:00:00+08:00", "no [platform] secret: every signed platform request will be refused",
])
def test_order_case_and_group_numbers_and_ordinary_words_stay_readable(text: str) -> None:
    assert Redactor()(text) == text


def test_a_configured_order_pattern_stays_readable_where_the_default_would_redact_it() -> None:
    assert Redactor()("order ORD2026112400017") == "order <redacted>"
    assert Redactor(r"ORD\d{13}")("order ORD2026112400017") == "order ORD2026112400017"


def test_bytes_in_args_show_their_size_and_the_record_stays_as_it_was() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored %s and %r", (b"abc", [bytearray(5)]), None)
    assert json.loads(JsonFormatter().format(record))["msg"] == "stored <3 bytes> and [<5 bytes>]"
    assert record.getMessage() == "stored b'abc' and [bytearray(b'\\x00\\x00\\x00\\x00\\x00')]"


def test_the_text_format_redacts_too_and_names_the_context() -> None:
    record = logging.LogRecord("bot.workers.relay", logging.INFO, __file__, 1, "sent to %s", ("13800001234",), None)
    with log_context(case=CASE, update_id=3):
        line = TextFormatter().format(record)
    assert line.endswith(f" INFO bot.workers.relay: sent to <phone> [case={CASE} update_id=3]")


def test_configure_logging_replaces_its_own_handler_and_leaves_others_alone(root_logger: logging.Logger) -> None:
    others = list(root_logger.handlers)
    text, json_lines = io.StringIO(), io.StringIO()
    configure_logging("text", "warning", stream=text)
    configure_logging("json", "INFO", stream=json_lines)
    logging.getLogger("bot.test").info("order %s", ORDER)
    assert root_logger.handlers[:len(others)] == others and len(root_logger.handlers) == len(others) + 1
    assert root_logger.level == logging.INFO and text.getvalue() == ""
    assert json.loads(json_lines.getvalue())["msg"] == f"order {ORDER}"
    with pytest.raises(ValueError):
        configure_logging("xml", stream=io.StringIO())  # type: ignore[arg-type]


def test_the_http_clients_request_lines_are_not_logged_at_info() -> None:
    """PTB's httpx logs each Bot API request with the token in its URL: kept out of the bot's log."""
    stream = io.StringIO()
    configure_logging("text", "INFO", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot123456789:AAH/sendMessage")
    logging.getLogger("httpx").warning("connection pool full")
    assert "sendMessage" not in stream.getvalue() and "connection pool full" in stream.getvalue()
