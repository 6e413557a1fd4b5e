"""Telegram seen from outside: a Bot API emulator on loopback that real bot libraries talk to,
plus a control API (and client) through which tests and people act as Telegram users."""

from .client import ControlAPIError, EmulatorClient
from .server import DEFAULT_TOKEN, Emulator, create_app
from .state import BOT_USER_ID, EmulatorState

__all__ = ["BOT_USER_ID", "DEFAULT_TOKEN", "ControlAPIError", "Emulator", "EmulatorClient", "EmulatorState",
           "create_app"]
