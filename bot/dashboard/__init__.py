"""The supervisors' web dashboard on the bot's own web app: sign-in (Telegram Login Widget or a shared
password), a signed session cookie, and Chart.js charts of storage.stats' figures."""

from bot.dashboard.routes import Dashboard

__all__ = ["Dashboard"]
