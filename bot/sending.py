"""What the notification relay needs from a Telegram library: send or edit one text message, and
failures in Telegram's terms rather than a library's.

An implementation makes exactly one Bot API call per method call and never retries: the relay owns
retries, pacing and holds. The aiogram one is bot.aiogram_adapter.sender.AiogramSender.
"""

from __future__ import annotations

from typing import Protocol

from dialogs.io import Button

Buttons = tuple[tuple[Button, ...], ...]


class SendError(Exception):
    """A Bot API call that did not deliver; `description` is Telegram's (or the transport's) text."""

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description

    @property
    def code(self) -> str:
        """A short label for counters: 429, 403, 5xx, network, gone, 400..."""
        return "error"


class RetryAfter(SendError):
    """429 Too Many Requests: send nothing to this target (or, in a flood, to anyone) for `seconds`."""

    def __init__(self, seconds: float, description: str = "") -> None:
        super().__init__(description or f"Too Many Requests: retry after {seconds:g}")
        self.seconds = seconds

    @property
    def code(self) -> str:
        return "429"


class Blocked(SendError):
    """403: the user blocked the bot, deleted their account, or the bot left the group. Permanent."""

    @property
    def code(self) -> str:
        return "403"


class Transient(SendError):
    """5xx, a timeout or a network failure: the same call may well work later."""

    def __init__(self, description: str = "", code: str = "5xx") -> None:
        super().__init__(description)
        self._code = code

    @property
    def code(self) -> str:
        return self._code


class MessageGone(SendError):
    """An edit found no message to edit (deleted, too old, not the bot's): send a new one instead."""

    @property
    def code(self) -> str:
        return "gone"


class NotModified(SendError):
    """An edit that would change nothing: the message already says this. Counts as delivered."""

    @property
    def code(self) -> str:
        return "not_modified"


class Rejected(SendError):
    """Any other 4xx (chat not found, text too long, bad markup...): this message will never go."""

    def __init__(self, description: str = "", code: str = "400") -> None:
        super().__init__(description)
        self._code = code

    @property
    def code(self) -> str:
        return self._code


class Sender(Protocol):
    async def send(self, chat_id: int, text: str, buttons: Buttons = ()) -> int:
        """sendMessage with an inline keyboard of `buttons` rows; returns the new message's id."""
        ...

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Buttons = ()) -> int:
        """editMessageText (the keyboard goes with it: no buttons, no keyboard); returns message_id."""
        ...
