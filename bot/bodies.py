"""HTTP bodies and JSON with limits, for what comes in (Telegram's webhook, the platform API) and what
comes back from the platform: a body is read up to a cap and never whole, and JSON nested deeper than
any real message is refused as malformed instead of raising RecursionError (an answer 500, which
Telegram would retry for ever)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

MAX_JSON_DEPTH = 100  # a Telegram update nests about ten deep; the platform's bodies fewer


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


async def read_at_most(stream: aiohttp.StreamReader, limit: int, declared: int | None = None) -> bytes:
    """The body from `stream`, at most `limit` bytes; BodyTooLarge as soon as it declares (Content-Length)
    or sends more, having read no more than limit + 1 bytes."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise BodyTooLarge(limit)
    return b"".join(chunks)


def loads(raw: bytes | str, **options: Any) -> Any:
    """json.loads that raises ValueError for JSON nested deeper than MAX_JSON_DEPTH (or than the
    interpreter's recursion limit), as for any other malformed JSON."""
    try:
        value = json.loads(raw, **options)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} deep")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative: a recursive walk would itself hit the recursion limit on what it is meant to catch.
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
