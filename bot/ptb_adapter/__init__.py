"""The python-telegram-bot 22 adapter: translate updates, call the core, render its replies."""

from bot.ptb_adapter.handlers import ChatSerialProcessor, build_handlers
from bot.ptb_adapter.runner import PtbRunner, build_application
from bot.ptb_adapter.sender import PtbSender

__all__ = ["ChatSerialProcessor", "PtbRunner", "PtbSender", "build_application", "build_handlers"]
