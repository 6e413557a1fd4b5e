"""The aiogram 3 adapter: translate updates, call the core, render its replies."""

from bot.aiogram_adapter.router import build_router
from bot.aiogram_adapter.runner import AiogramRunner
from bot.aiogram_adapter.sender import AiogramSender

__all__ = ["AiogramRunner", "AiogramSender", "build_router"]
