"""Logging for the running bot: a text line or one JSON object per line, the case and update being
handled, and redaction of what must never reach a log.

    configure_logging("json", "INFO")          # the CLI does this from [log] / --log-format
    with log_context(update_id=update.update_id, chat=chat_id):
        ...
        set_log_context(case=case.case_no)     # once known; undone when the `with` ends
        log.info("filed")                      # {"ts": ..., "case": "R20261124-0001", "update_id": ...}

Redaction runs on every record's final message and on its exception text, in both formats:
Chinese mobile numbers (138 0000 1234, +86 / 0086 forms) become <phone>; card codes and card
secrets (卡密) — a value after 卡密 / 卡号 / 密码 / card code / password / pin / secret / token, and any
run of 12+ letters and digits that has a digit in it — become <redacted>; file contents never show:
bytes in a record's args become "<N bytes>", and so does a bytes literal already in the text. Order
numbers (the [orders] number_pattern, KM + 14 digits by default), case numbers (R20261124-0001) and
Telegram group ids (-100…) are not secrets and stay readable.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

from dialogs.settings import OrderSettings

LogFormat = Literal["text", "json"]
CONTEXT_KEYS = ("case", "chat", "update_id")
REDACTED = "<redacted>"
PHONE = "<phone>"

# --- context ------------------------------------------------------------------------------------

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("refundbot_log_context",
                                                                              default=_EMPTY)


def _merged(case: str | None, chat: int | None, update_id: int | None) -> Mapping[str, Any]:
    given = {"case": case, "chat": chat, "update_id": update_id}
    return MappingProxyType({**_context.get(), **{k: v for k, v in given.items() if v is not None}})


@contextlib.contextmanager
def log_context(*, case: str | None = None, chat: int | None = None,
                update_id: int | None = None) -> Iterator[None]:
    """Every record logged inside carries these (and what an outer context set); on exit the context is
    as it was before, including whatever set_log_context added inside."""
    token = _context.set(_merged(case, chat, update_id))
    try:
        yield
    finally:
        _context.reset(token)


def set_log_context(*, case: str | None = None, chat: int | None = None, update_id: int | None = None) -> None:
    """Add to the current context, e.g. the case number once the handler knows it. It lasts until the
    enclosing log_context ends (or, outside any, for the rest of the current task)."""
    _context.set(_merged(case, chat, update_id))


def current_log_context() -> Mapping[str, Any]:
    return _context.get()


# --- redaction ----------------------------------------------------------------------------------

CASE_NUMBER = r"R\d{8}-\d{4,}"
TELEGRAM_GROUP_ID = r"-100\d{7,13}"
_KEYWORD = (r"(?:卡密|卡号|密码|口令|(?<![A-Za-z])(?:card[\s_-]?(?:code|secret|key|number|no|password|pin)s?"
            r"|password|passwd|pwd|pin|secret|token)(?![A-Za-z]))")
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A Telegram bot token (123456789:AA…, in a Bot API URL or anywhere): it is the bot's password.
    (re.compile(r"(?<!\d)\d{6,}:[A-Za-z0-9_-]{20,}"), REDACTED),
    # After an explicit separator: a quoted value ({'card_code': '…'}), one written right after it
    # (password=…, 卡密：…), or one with a digit in it (卡密: ABCD1234) — not prose ("secret: every …").
    (re.compile(rf"""({_KEYWORD}码?["']?\s*[:：=](?:\s*["']|(?=\S)|\s*(?=[^\s,，;；。、"'\x00]*\d)))"""
                rf"""[^\s,，;；。、"'\x00]+""", re.IGNORECASE), rf"\1{REDACTED}"),
    # 卡密ABCD1234…, card code 1234…, pin is 1234: a following token with a digit in it.
    (re.compile(rf"({_KEYWORD}码?\s*(?:is\s+|是|为)?\s*)(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9][A-Za-z0-9_-]{{3,}}",
                re.IGNORECASE), rf"\1{REDACTED}"),
    # Chinese mobile numbers, with or without +86 / 0086, grouped 3-4-4 or not.
    (re.compile(r"(?<![\d+])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)"), PHONE),
    # Grouped card codes: ABCD-1234-EFGH(-…).
    (re.compile(r"(?<![\w-])(?=[\w-]*\d)[A-Za-z0-9]{4,8}(?:-[A-Za-z0-9]{4,8}){2,}(?![\w-])"), REDACTED),
    # Any other long run of letters and digits with a digit in it: card codes, card secrets, tokens.
    (re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*\d)[A-Za-z0-9]{12,}(?![A-Za-z0-9])"), REDACTED),
)
_BYTES_LITERAL = re.compile(r"""(?<![\w'"])b(?:'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""")
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


def _bytes_size(match: re.Match[str]) -> str:
    try:
        value = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return "<bytes>"
    return f"<{len(value)} bytes>"


def _standalone(pattern: str) -> re.Pattern[str]:
    """`pattern` as a whole word of letters and digits, any case (a pattern with its own inline flags
    cannot be wrapped: it is used as it is)."""
    try:
        return re.compile(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", re.IGNORECASE)
    except re.error:
        return re.compile(pattern, re.IGNORECASE)


class Redactor:
    """Removes phone numbers, card codes and file contents from log text; keeps order numbers (matched by
    `order_pattern`, case-insensitively), case numbers and Telegram group ids readable."""

    def __init__(self, order_pattern: str | None = None) -> None:
        self._kept = [_standalone(order_pattern or OrderSettings().number_pattern), _standalone(CASE_NUMBER),
                      re.compile(rf"(?<![\w-]){TELEGRAM_GROUP_ID}(?!\w)")]

    def __call__(self, text: str) -> str:
        kept: list[str] = []

        def keep(match: re.Match[str]) -> str:
            kept.append(match.group(0))
            return f"\x00{len(kept) - 1}\x00"

        text = _BYTES_LITERAL.sub(_bytes_size, text.replace("\x00", "\\x00"))
        for kept_pattern in self._kept:
            text = kept_pattern.sub(keep, text)
        for pattern, replacement in _RULES:
            text = pattern.sub(replacement, text)
        return _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], text)


class _Size:
    """Stands in for bytes in a record's args: `%s` and `%r` both show "<N bytes>"."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"<{self.size} bytes>"

    __str__ = __repr__


def _safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return _Size(len(value) if not isinstance(value, memoryview) else value.nbytes)
    if depth < 3:
        if isinstance(value, tuple | list | set | frozenset):
            return type(value)(_safe(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return {k: _safe(v, depth + 1) for k, v in value.items()}
    return value


# --- formatters ---------------------------------------------------------------------------------


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redactor or Redactor()

    def message(self, record: logging.LogRecord) -> str:
        """The record's final message with bytes replaced by their size, redacted. The record itself is
        left alone: other handlers see it as it was."""
        # As LogRecord.getMessage, on safe copies of msg and args (no copy of the record: copy.copy
        # fails while the interpreter shuts down, when asyncio still reports unclosed sessions).
        msg = str(_safe(record.msg))
        if isinstance(record.args, Mapping):
            msg = msg % {k: _safe(v) for k, v in record.args.items()}
        elif record.args:
            msg = msg % tuple(_safe(v) for v in record.args)
        return self.redact(msg)

    def exception(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return self.redact("\n".join(parts)) if parts else None

    @staticmethod
    def context(record: logging.LogRecord) -> dict[str, Any]:
        """case / chat / update_id: from `extra=` on the call, else from log_context."""
        found = dict(_context.get())
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                found[key] = value
        return {key: found[key] for key in CONTEXT_KEYS if key in found}


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: ts (ISO-8601, UTC), level, logger, msg, then case, chat and update_id
    when known and exc when the record carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                  .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": self.message(record),
            **self.context(record),
        }
        exc = self.exception(record)
        if exc:
            entry["exc"] = exc
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(_RedactingFormatter):
    """`2026-11-24 10:00:00,123 INFO bot.workers.relay: message [case=R20261124-0001 update_id=7]`, then the
    traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {self.message(record)}"
        context = self.context(record)
        if context:
            line += " [" + " ".join(f"{key}={value}" for key, value in context.items()) + "]"
        exc = self.exception(record)
        return f"{line}\n{exc}" if exc else line


def make_formatter(fmt: LogFormat, *, order_pattern: str | None = None) -> logging.Formatter:
    redactor = Redactor(order_pattern)
    if fmt == "json":
        return JsonFormatter(redactor)
    if fmt == "text":
        return TextFormatter(redactor)
    raise ValueError(f"unknown log format {fmt!r} (text or json)")


_OURS = "_refundbot_handler"
QUIET_UNLESS_VERBOSE = ("transitions", "alembic")


def configure_logging(fmt: LogFormat = "text", level: int | str = "INFO", *, order_pattern: str | None = None,
                      stream: TextIO | None = None) -> logging.Handler:
    """Log to `stream` (default standard error) in `fmt` from `level` up, on the root logger. Calling it
    again replaces the handler it installed before; handlers others installed are left alone."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(fmt, order_pattern=order_pattern))
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # PTB's HTTP client logs every Bot API request (its URL carries the token) at INFO: at hundreds a
    # second that is most of the log and a measurable share of the CPU; its warnings still come through.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # transitions logs every state's enter and exit callbacks at INFO, alembic every migration with
    # its whole docstring: at INFO both drown what an operator needs. --verbose (DEBUG) shows them.
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for chatty in QUIET_UNLESS_VERBOSE:
        logging.getLogger(chatty).setLevel(quiet)
    return handler
