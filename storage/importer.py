"""Bulk import of orders from CSV (with a header row) or JSON Lines.

Every row is validated into a `dialogs.domain.Order`; a bad row is reported with its physical line
number and a reason, and the rest still imports. Orders are upserted by order_no in batches: one
SELECT of the batch's existing keys, then one bulk INSERT and one bulk UPDATE. Each batch commits
on its own, so a long import never holds SQLite's write lock for more than a moment (the bot keeps
running) and an interrupted import can simply be re-run: upserts are idempotent.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.clock import Clock, utcnow
from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind
from dialogs.ports import BulkUpsert
from dialogs.proof import secret_digest
from storage.models import CENT
from storage.orders import bulk_upsert
from storage.uow import Database

FileFormat = Literal["csv", "jsonl"]
Progress = Callable[[int], None]

FIELDS = (
    "order_no",
    "buyer_phone",
    "buyer_telegram_id",
    "product_name",
    "product_kind",
    "tags",
    "amount",
    "payment_channel",
    "paid_at",
    "delivered_at",
    "delivery_status",
    "card_redeemed",
    "topup_credited",
    "trade_no",
    # How a card shop knows its buyer (dialogs.proof): kept as given, the password only as its digest.
    "buyer_contact",
    "query_password",
    "delivered_codes",
)
OPTIONAL_FIELDS = frozenset({"buyer_telegram_id", "tags", "delivered_at", "card_redeemed", "topup_credited",
                             "trade_no", "buyer_contact", "query_password", "delivered_codes"})
REQUIRED_FIELDS = tuple(name for name in FIELDS if name not in OPTIONAL_FIELDS)

MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12,2)
_MAX_LENGTHS = {"order_no": 64, "buyer_phone": 32, "product_name": 255, "trade_no": 64, "buyer_contact": 255,
                "query_password": 64, "delivered_code": 1024}

# The input rules below are also written into bot/openapi.json (Order): change both together.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # paid_at / delivered_at, in UTC: EARLIEST <= t < LATEST
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_TAGS = 32
MAX_CODES = 1000  # delivered 卡密 per order
MAX_TAG_LENGTH = 32
MAX_TAGS_TEXT = MAX_TAGS * (MAX_TAG_LENGTH + 1)  # the comma-separated form
# C0/C1 controls (NUL, newlines...) and the bidi controls that make text read differently from what it is.
FORBIDDEN_CHARS = r"\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"  # a regex class body
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARS}]")
ORDER_NO_PATTERN = r"^ *[A-Za-z0-9][A-Za-z0-9_.:-]* *$"
# A plain decimal: no sign, no exponent, no leading zeros, at most 2 places, above 0, at most MAX_AMOUNT.
AMOUNT_PATTERN = r"^ *([1-9][0-9]{0,9}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?)) *$"
# RFC 3339 with an offset (or Z), years 2000-2099; no sign, no week dates, no bare dates.
DATETIME_PATTERN = (r"^ *20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
                    r"(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]) *$")
TELEGRAM_ID_PATTERN = r"^ *([0-9]{1,19})? *$"
FLAG_PATTERN = r"^ *([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])? *$"
_ORDER_NO, _AMOUNT = re.compile(ORDER_NO_PATTERN), re.compile(AMOUNT_PATTERN)
_DATETIME, _TELEGRAM_ID = re.compile(DATETIME_PATTERN), re.compile(TELEGRAM_ID_PATTERN)
_FLAG = re.compile(FLAG_PATTERN)
_ENCODING = "utf-8-sig"  # tolerate the BOM spreadsheet programs write

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    inserted: int = 0
    updated: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.inserted + self.updated + len(self.rejected)


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unknown format, missing columns, bad encoding)."""


class _RowError(Exception):
    """One or more bad fields; `problems` lists them as (field, problem) for the API's `details`."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        if problems is None:
            field_name, _, problem = message.partition(": ")
            problems = [(field_name, problem or message)]
        self.problems = problems


InvalidOrder = _RowError  # the public name, for callers outside this module (bot.api)


# --- reading ----------------------------------------------------------------------------------


def detect_format(path: str | Path) -> FileFormat:
    """By extension (.csv, .jsonl, .ndjson), else by content: JSON Lines start with '{'."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open(path, encoding=_ENCODING, errors="replace") as handle:
        for line in handle:
            if line.strip():
                return "jsonl" if line.lstrip().startswith("{") else "csv"
    return "csv"


def count_rows(path: str | Path) -> int:
    """Data rows in the file, cheaply (non-blank lines, minus the CSV header). A quoted CSV field
    spanning lines makes this an over-estimate; good enough for a progress bar."""
    with open(path, "rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    if detect_format(path) == "csv":
        lines -= 1
    return max(lines, 0)


def read_orders(path: str | Path) -> Iterator[tuple[int, Order | RejectedRow]]:
    """(line, order or rejection) for every data row; the line is where the row starts."""
    reader = _read_jsonl if detect_format(path) == "jsonl" else _read_csv
    try:
        yield from _validated(reader(Path(path)))
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _validated(rows: Iterable[tuple[int, Mapping[str, Any] | RejectedRow]]) -> Iterator[tuple[int, Order | RejectedRow]]:
    for line, fields in rows:
        if isinstance(fields, RejectedRow):
            yield line, fields
            continue
        try:
            yield line, parse_order(fields)
        except _RowError as exc:
            yield line, RejectedRow(line, str(exc))


def _read_csv(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | RejectedRow]]:
    with open(path, newline="", encoding=_ENCODING) as handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if header is None:
                    raise ImportFileError(f"{path}: unreadable CSV header: {exc}") from exc
                yield start, RejectedRow(start, f"malformed CSV: {exc}")
                continue
            if not record or all(not value.strip() for value in record):
                continue  # blank line
            if header is None:
                header = _check_header(path, record)
                continue
            if len(record) != len(header):
                yield start, RejectedRow(start, f"expected {len(header)} fields, got {len(record)}")
                continue
            yield start, dict(zip(header, record, strict=True))
    if header is None:
        raise ImportFileError(f"{path}: empty file (a CSV needs a header row)")


def _check_header(path: Path, record: list[str]) -> list[str]:
    header = [name.strip().lower() for name in record]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ImportFileError(f"{path}: duplicate columns: {', '.join(duplicates)}")
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise ImportFileError(f"{path}: missing columns: {', '.join(missing)}")
    return header


def _read_jsonl(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | RejectedRow]]:
    with open(path, encoding=_ENCODING) as handle:
        yield from jsonl_fields(handle)


def jsonl_fields(lines: Iterable[str]) -> Iterator[tuple[int, Mapping[str, Any] | RejectedRow]]:
    """(line, fields or rejection) for each non-blank JSON Lines line (a file's, or a request body's)."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            # Decimal floats: amounts must not pass through binary floating point.
            value = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            yield line_no, RejectedRow(line_no, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            yield line_no, RejectedRow(line_no, "invalid JSON: nested too deep")
            continue
        if not isinstance(value, dict):
            yield line_no, RejectedRow(line_no, "not a JSON object")
            continue
        yield line_no, value


def jsonl_orders(lines: Iterable[str]) -> Iterator[tuple[int, Order | RejectedRow]]:
    """read_orders for JSON Lines that are not a file (the API's batch body)."""
    return _validated(jsonl_fields(lines))


# --- validation -------------------------------------------------------------------------------


def parse_order(fields: Mapping[str, Any]) -> Order:
    """Validate one row's fields (CSV strings or JSON values) into an Order.

    Raises _RowError listing every bad field, e.g. "amount: not a decimal: 'abc'".
    """
    problems: list[tuple[str, str]] = []

    def check(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _RowError as exc:
            problems.extend(exc.problems)
            return None

    get = fields.get
    order_no = check(lambda: _order_no(get("order_no")))
    buyer_phone = check(lambda: _text("buyer_phone", get("buyer_phone")))
    buyer_telegram_id = check(lambda: _telegram_id(get("buyer_telegram_id")))
    product_name = check(lambda: _text("product_name", get("product_name")))
    product_kind = check(lambda: _enum("product_kind", get("product_kind"), ProductKind))
    tags = check(lambda: _tags(get("tags")))
    amount = check(lambda: _amount(get("amount")))
    payment_channel = check(lambda: _enum("payment_channel", get("payment_channel"), PaymentChannel))
    paid_at = check(lambda: _datetime("paid_at", get("paid_at"), required=True))
    delivered_at = check(lambda: _datetime("delivered_at", get("delivered_at"), required=False))
    delivery_status = check(lambda: _enum("delivery_status", get("delivery_status"), DeliveryStatus))
    card_redeemed = check(lambda: _flag("card_redeemed", get("card_redeemed")))
    topup_credited = check(lambda: _flag("topup_credited", get("topup_credited")))
    trade_no = check(lambda: _optional_text("trade_no", get("trade_no")))
    buyer_contact = check(lambda: _optional_text("buyer_contact", get("buyer_contact")))
    password = None if _blank(get("query_password")) else check(lambda: _password(get("query_password")))
    delivered_codes = check(lambda: _codes(get("delivered_codes")))
    if paid_at is not None and delivered_at is not None and delivered_at < paid_at:
        problems.append(("delivered_at", "before paid_at: delivery cannot come before payment"))
    if problems:
        raise _RowError("; ".join(f"{name}: {problem}" for name, problem in problems), problems)
    return Order(
        order_no=order_no,
        buyer_phone=buyer_phone,
        buyer_telegram_id=buyer_telegram_id,
        product_name=product_name,
        product_kind=product_kind,
        tags=tags,
        amount=amount,
        payment_channel=payment_channel,
        paid_at=paid_at,
        delivered_at=delivered_at,
        delivery_status=delivery_status,
        card_redeemed=card_redeemed,
        topup_credited=topup_credited,
        trade_no=trade_no,
        buyer_contact=buyer_contact,
        query_secret=secret_digest(order_no, password) if password is not None else None,
        delivered_codes=delivered_codes,
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(name: str, value: Any) -> str:
    if isinstance(value, str):
        _printable(name, value)  # before the blank check: "\t" is refused, not taken for empty
    if _blank(value):
        raise _RowError(f"{name}: required")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numeric order numbers in JSON
    if not isinstance(value, str):
        raise _RowError(f"{name}: not a string: {value!r}")
    limit = _MAX_LENGTHS.get(name)
    if limit is not None and len(value) > limit:  # the raw length, as the API document states it
        raise _RowError(f"{name}: longer than {limit} characters: {value[:20]!r}...")
    return value.strip()


def _optional_text(name: str, value: Any) -> str | None:
    if isinstance(value, str):
        _printable(name, value)
    return None if _blank(value) else _text(name, value)


def _printable(name: str, value: str) -> None:
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise _RowError(f"{name}: control or bidi character U+{ord(bad.group()):04X} at position {bad.start()}")


def printable(name: str, value: str) -> str:
    """`value` unchanged, or ValueError naming the first control or bidi character (for pydantic models)."""
    try:
        _printable(name, value)
    except _RowError as exc:
        raise ValueError(exc.problems[0][1]) from None
    return value


def plain_amount(value: Any) -> Decimal:
    """An amount by the order rules (see _amount), or ValueError saying why (for pydantic models)."""
    try:
        return _amount(value)
    except _RowError as exc:
        raise ValueError(exc.problems[0][1]) from None


def unknown_fields(fields: Mapping[str, Any]) -> list[str]:
    """Keys of a JSON order that are not order fields (the API refuses them; CSV import ignores columns)."""
    return sorted(str(key) for key in fields if key not in FIELDS)


def _order_no(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**63:
            raise _RowError(f"order_no: out of range: {value}")
        value = str(value)
    text = _text("order_no", value)
    if not _ORDER_NO.match(value):
        raise _RowError(f"order_no: only letters, digits and _ . : - allowed, starting with a letter or digit: "
                        f"{text[:20]!r}")
    return text


def _password(value: Any) -> str:
    """A 查询密码, checked like text but never echoed into the import report."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _RowError("query_password: not a string")
    _printable("query_password", value)
    if len(value.strip()) > _MAX_LENGTHS["query_password"]:
        raise _RowError(f"query_password: longer than {_MAX_LENGTHS['query_password']} characters")
    return value.strip()


def _codes(value: Any) -> tuple[str, ...]:
    """Delivered 卡密: a JSON list of strings, or one string with a code per line (CSV, dujiaoka's `info`)."""
    if _blank(value):
        return ()
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
        raise _RowError("delivered_codes: not a list of strings or a text with one code per line")
    codes = tuple(code.strip() for code in value if code.strip())
    if len(codes) > MAX_CODES:
        raise _RowError(f"delivered_codes: more than {MAX_CODES} codes")
    for code in codes:
        _printable("delivered_codes", code)
    if any(len(code) > _MAX_LENGTHS["delivered_code"] for code in codes):
        raise _RowError(f"delivered_codes: a code longer than {_MAX_LENGTHS['delivered_code']} characters")
    return codes


def _telegram_id(value: Any) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _RowError(f"buyer_telegram_id: not an integer: {value!r}")
    if isinstance(value, str) and not _TELEGRAM_ID.match(value):  # int() would take "+5", "1_0", "٥"
        raise _RowError(f"buyer_telegram_id: not an integer: {value[:24]!r}")
    number = int(value.strip()) if isinstance(value, str) else value
    if not 0 < number < 2**63:
        raise _RowError(f"buyer_telegram_id: out of range: {value!r}")
    return number


def _enum(name: str, value: Any, kind: type[E]) -> E:
    if _blank(value):
        raise _RowError(f"{name}: required")
    if not isinstance(value, str):
        raise _RowError(f"{name}: not a string: {value!r}")
    text = value.strip().lower()
    try:
        return kind(text)
    except ValueError:
        expected = ", ".join(member.value for member in kind)
        raise _RowError(f"{name}: unknown value {value[:24]!r} (expected one of {expected})") from None


def _tags(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        _printable("tags", value)
        if len(value) > MAX_TAGS_TEXT:
            raise _RowError(f"tags: longer than {MAX_TAGS_TEXT} characters")
    if _blank(value):
        return frozenset()
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list):
        if len(value) > MAX_TAGS:
            raise _RowError(f"tags: more than {MAX_TAGS} tags ({len(value)})")
        parts = []
        for item in value:
            if not isinstance(item, str):
                raise _RowError(f"tags: not a string: {str(item)[:24]!r}")
            _printable("tags", item)
            if "," in item:
                raise _RowError(f"tags: a tag may not contain a comma: {item[:24]!r}")
            if len(item) > MAX_TAG_LENGTH:
                raise _RowError(f"tags: a tag is longer than {MAX_TAG_LENGTH} characters: {item[:24]!r}...")
            parts.append(item)
    else:
        raise _RowError(f"tags: expected comma-separated text or a list: {str(value)[:24]!r}")
    tags = [part.strip() for part in parts if part.strip()]
    if len(tags) > MAX_TAGS:
        raise _RowError(f"tags: more than {MAX_TAGS} tags ({len(tags)})")
    long = next((tag for tag in tags if len(tag) > MAX_TAG_LENGTH), None)
    if long is not None:
        raise _RowError(f"tags: a tag is longer than {MAX_TAG_LENGTH} characters: {long[:24]!r}...")
    return frozenset(tags)


def _amount(value: Any) -> Decimal:
    """A plain decimal (text, or a JSON number read as Decimal): "30", "30.5", "30.50". No sign, exponent
    ("1E+2"), leading zeros, NaN or more than 2 places; above 0 and at most MAX_AMOUNT."""
    if _blank(value):
        raise _RowError("amount: required")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _RowError(f"amount: not a decimal: {str(value)[:24]!r}")
    text = value if isinstance(value, str) else str(value)  # str(Decimal("1E+2")) keeps the exponent
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise _RowError(f"amount: not a decimal: {text[:24]!r}") from None
    if not amount.is_finite():
        raise _RowError(f"amount: not a decimal: {text[:24]!r}")
    if amount <= 0:
        raise _RowError(f"amount: must be greater than 0: {text[:24]!r}")
    if amount > MAX_AMOUNT:
        raise _RowError(f"amount: larger than {MAX_AMOUNT}: {text[:24]!r}")
    if amount.quantize(CENT) != amount:
        raise _RowError(f"amount: more than 2 decimal places: {text[:24]!r}")
    if not _AMOUNT.match(text):
        raise _RowError(f"amount: not a plain decimal (no sign, exponent or leading zeros; e.g. 30.00): "
                        f"{text[:24]!r}")
    return amount.quantize(CENT)


def _datetime(name: str, value: Any, *, required: bool) -> datetime | None:
    if _blank(value):
        if required:
            raise _RowError(f"{name}: required")
        return None
    if not isinstance(value, str):
        raise _RowError(f"{name}: not an ISO 8601 datetime: {str(value)[:24]!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _RowError(f"{name}: not an ISO 8601 datetime: {value[:40]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _RowError(f"{name}: no UTC offset (e.g. +08:00): {value!r}")
    if not _DATETIME.match(value):  # fromisoformat also takes "+" years, week dates, "2026-11-24T10+08"
        raise _RowError(f"{name}: not an RFC 3339 date-time between 2000 and 2099 "
                        f"(e.g. 2026-11-24T10:00:00+08:00): {value[:40]!r}")
    try:
        utc = parsed.astimezone(UTC)  # year 1 or 9999 with an offset overflows
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise _RowError(f"{name}: outside 2000-01-01 ... 2100-01-01 (UTC): {value[:40]!r}")
    return parsed


_FLAGS = {"true": True, "false": False}


def _flag(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and _FLAG.match(value):
        return _FLAGS.get(value.strip().lower())  # blank: None
    raise _RowError(f"{name}: expected true, false or empty: {str(value)[:24]!r}")


# --- writing ----------------------------------------------------------------------------------

# Writes one batch and commits it: (orders) -> what storage.orders.bulk_upsert says of them.
BatchWriter = Callable[[list[Order]], Awaitable[BulkUpsert]]


def refused_reason(fields: tuple[str, ...]) -> str:
    """A row refused by the order-facts rule (dialogs.order_facts), as the report words it."""
    return (f"order has refund cases: {', '.join(fields)} cannot change by an import "
            f"(use the audited correction)")


async def import_orders(
    database: Database,
    path: str | Path,
    *,
    progress: Progress | None = None,
    batch_size: int = 1000,
    clock: Clock = utcnow,
) -> ImportReport:
    """Upsert the orders of a CSV or JSON Lines file.

    `progress(n)` receives the running total of rows processed (imported or rejected) after each
    batch; `count_rows(path)` gives the expected total. Raises ImportFileError when the file as a
    whole is unusable (batches committed before that stay committed).
    """
    async with database.session_factory() as session:
        async def write(batch: list[Order]) -> BulkUpsert:
            return await _write_batch(session, batch, clock())

        return await import_rows(read_orders(path), write, progress=progress, batch_size=batch_size)


async def import_rows(rows: Iterable[tuple[int, Order | RejectedRow]], write: BatchWriter, *,
                      progress: Progress | None = None, batch_size: int = 1000) -> ImportReport:
    """The import's driver, whatever the rows come from (a file, the API's batch body) and however a
    batch is written: rows in batches of `batch_size`, each written (and committed) by `write`."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    report = ImportReport()
    batch: list[tuple[int, Order]] = []
    processed = 0
    for line, item in rows:
        processed += 1
        if isinstance(item, RejectedRow):
            report.rejected.append(item)
        else:
            batch.append((line, item))
        if processed % batch_size == 0:
            await _flush(batch, write, report)
            batch = []
            if progress is not None:
                progress(processed)
    await _flush(batch, write, report)
    if progress is not None and processed % batch_size:
        progress(processed)
    report.rejected.sort(key=lambda row: row.line)
    return report


async def _flush(batch: list[tuple[int, Order]], write: BatchWriter, report: ImportReport) -> None:
    if not batch:
        return
    done = await write([order for _line, order in batch])
    report.inserted += done.inserted
    report.updated += done.updated
    report.rejected.extend(RejectedRow(batch[index][0], refused_reason(fields)) for index, fields in done.refused)


async def _write_batch(session: AsyncSession, batch: list[Order], now: datetime) -> BulkUpsert:
    for attempt in (1, 2):
        try:
            done = await bulk_upsert(session, batch, now)
            await session.commit()
        except IntegrityError:
            # Someone inserted one of these orders between our SELECT and INSERT; the retry's
            # SELECT sees it.
            await session.rollback()
            if attempt == 2:
                raise
            continue
        return done
    raise AssertionError("unreachable")
