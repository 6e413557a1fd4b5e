"""State tables are written with enum members and stored with their values."""

from __future__ import annotations

from enum import Enum
from typing import Any


def plain_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """transitions reads an Enum member by its name; our states persist as the members' values."""

    def plain(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return [{key: plain(value) for key, value in row.items()} for row in rows]
