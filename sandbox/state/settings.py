"""The bot's own settings: its commands (setMyCommands by scope and language), the other set* values,
the tokens it used, and the chat actions (typing...) it sent."""

from __future__ import annotations

import json
from typing import Any


class BotSettings:
    def __init__(self) -> None:
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.bot_settings: dict[str, Any] = {}
        self.chat_actions: list[dict[str, Any]] = []
        self.tokens: set[str] = set()

    @staticmethod
    def commands_key(scope: dict[str, Any] | None, language_code: str | None) -> tuple[str, str]:
        return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""

    def commands_to_control(self) -> list[dict[str, Any]]:
        return [{"scope": json.loads(scope), "language_code": lang, "commands": cmds}
                for (scope, lang), cmds in self.commands.items()]
