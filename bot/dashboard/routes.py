"""The dashboard's routes on the bot's aiohttp app.

    GET  /dashboard                  the charts when signed in, else the sign-in page
    POST /dashboard/login            password sign-in (form field `password`)
    GET  /dashboard/login/telegram   where Telegram's Login Widget sends the browser back
    POST /dashboard/logout           ends the session
    GET  /dashboard/data?days=30     the figures as JSON (storage.stats); 401 without a session
    GET  /dashboard/static/...       Chart.js (vendored) and the page's script and style

None of them is mounted when no sign-in is possible (no password, no widget): /dashboard is then a 404.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.dashboard import page
from bot.dashboard.auth import (
    PASSWORD_USER,
    AttemptLimiter,
    LoginRefused,
    Session,
    SessionSigner,
    is_supervisor,
    password_matches,
    verify_widget,
)
from dialogs.roster import current_desk
from dialogs.settings import DashboardSettings, DeskSettings
from dialogs.texts import Texts
from storage.stats import MAX_DAYS, DashboardStats, dashboard_stats
from storage.uow import Database

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
COOKIE = "refundbot_dashboard"
# Our own files, Chart.js included, and Telegram's widget (a script and its iframe) on the sign-in page.
CSP = ("default-src 'self'; script-src 'self' https://telegram.org; frame-src https://oauth.telegram.org; "
       "img-src 'self' data: https://t.me https://telegram.org; style-src 'self'; frame-ancestors 'none'; "
       "form-action 'self'; base-uri 'none'")


class Dashboard:
    def __init__(self, database: Database, settings: DashboardSettings, desk: DeskSettings, *, token: str,
                 timezone: str, clock: Callable[[], float] = time.time,
                 limiter_clock: Callable[[], float] = time.monotonic) -> None:
        self.database, self.settings, self.desk = database, settings, desk
        self.token, self.timezone, self.clock = token, timezone, clock
        self.signer = SessionSigner(token, settings.password, settings.session_hours * 3600, clock)
        self.limiter = AttemptLimiter(settings.max_attempts, settings.attempt_window_minutes * 60, limiter_clock)

    @property
    def widget(self) -> bool:
        return bool(self.settings.bot_username and self.token)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.password) or self.widget

    def add_routes(self, app: web.Application) -> None:
        if not self.enabled:
            return
        app.router.add_get("/dashboard", self.index)
        app.router.add_post("/dashboard/login", self.password_login)
        app.router.add_get("/dashboard/login/telegram", self.telegram_login)
        app.router.add_post("/dashboard/logout", self.logout)
        app.router.add_get("/dashboard/data", self.data)
        app.router.add_static("/dashboard/static", STATIC, append_version=False)

    async def staff(self) -> DeskSettings:
        """The desk with its staff as the database has them now (dialogs.roster): who is a supervisor."""
        async with self.database.uow() as uow:
            return await current_desk(uow, self.desk, _utc(self.clock()))

    # -- sessions ------------------------------------------------------------------------------
    async def session(self, request: web.Request) -> Session | None:
        """The request's valid session; a Telegram one only while its account is still a supervisor."""
        found = self.signer.read(request.cookies.get(COOKIE))
        if found is None:
            return None
        if found.subject == PASSWORD_USER:
            return found if self.settings.password else None
        if not self.widget or not found.subject.isdigit() or not is_supervisor(await self.staff(), int(found.subject)):
            return None
        return found

    def _signed_in(self, response: web.Response, request: web.Request, subject: str) -> web.Response:
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        response.set_cookie(COOKIE, self.signer.issue(subject), max_age=int(self.signer.lifetime),
                            path="/dashboard", httponly=True, samesite="Strict", secure=secure)
        return response

    @staticmethod
    def _html(body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})

    def _login(self, request: web.Request, locale: str, error: str = "", status: int = 200) -> web.Response:
        auth_url = str(request.url.with_path("/dashboard/login/telegram").with_query({"lang": locale}))
        return self._html(page.login_page(locale, password=bool(self.settings.password),
                                          bot_username=self.settings.bot_username if self.widget else "",
                                          auth_url=auth_url, error=error), status)

    # -- pages ---------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        locale = page.pick_locale(request)
        found = await self.session(request)
        if found is None:
            return self._login(request, locale)
        t = Texts(locale)
        signed_in = t("dash.signed_in_password") if found.subject == PASSWORD_USER else \
            t("dash.signed_in_as", who=(await self.staff()).alias(int(found.subject), locale))
        try:
            days = parse_days(request.query.get("days"), self.settings.default_days)
        except ValueError:
            days = self.settings.default_days
        return self._html(page.dashboard_page(locale, signed_in=signed_in, days=days, timezone=self.timezone))

    async def password_login(self, request: web.Request) -> web.Response:
        locale = page.pick_locale(request)
        t = Texts(locale)
        address = request.remote or "unknown"
        wait = self.limiter.blocked_for(address)
        if wait > 0:
            return self._login(request, locale, t("dash.too_many", minutes=math.ceil(wait / 60)), 429)
        form = await request.post()
        given = form.get("password")
        if not isinstance(given, str) or not password_matches(given, self.settings.password):
            self.limiter.failed(address)
            log.warning("dashboard: wrong password from %s", address)
            return self._login(request, locale, t("dash.wrong_password"), 401)
        self.limiter.succeeded(address)
        log.info("dashboard: password sign-in from %s", address)
        return self._signed_in(see_other(f"/dashboard?lang={locale}"), request, PASSWORD_USER)

    async def telegram_login(self, request: web.Request) -> web.Response:
        locale = page.pick_locale(request)
        data = {k: v for k, v in request.query.items() if k != "lang"}
        try:
            user_id = verify_widget(data, self.token if self.widget else "", now=self.clock())
            if not is_supervisor(await self.staff(), user_id):
                raise LoginRefused(f"{user_id} is not a supervisor")
        except LoginRefused as refused:
            log.warning("dashboard: Telegram sign-in refused: %s", refused)
            return self._login(request, locale, Texts(locale)("dash.telegram_refused"), 403)
        log.info("dashboard: Telegram sign-in of supervisor %s", user_id)
        # A page, not a redirect: after Telegram's cross-site hop a redirect would not carry the
        # SameSite=Strict cookie; a navigation started by our own page does.
        return self._signed_in(self._html(page.signed_in_page(locale)), request, str(user_id))

    async def logout(self, request: web.Request) -> web.Response:
        response = see_other(f"/dashboard?lang={page.pick_locale(request)}")
        response.del_cookie(COOKIE, path="/dashboard")
        return response

    async def data(self, request: web.Request) -> web.Response:
        locale = page.pick_locale(request)
        t = Texts(locale)
        if await self.session(request) is None:
            return web.json_response({"error": t("dash.signed_out")}, status=401)
        try:
            days = parse_days(request.query.get("days"), self.settings.default_days)
        except ValueError:
            return web.json_response({"error": t("dash.bad_days", max=MAX_DAYS)}, status=400)
        stats = await dashboard_stats(self.database, days=days, now=_utc(self.clock()), timezone=self.timezone)
        return web.json_response(stats_json(stats, await self.staff(), locale), headers={"Cache-Control": "no-store"})


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def parse_days(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    days = int(raw)  # ValueError for anything but an integer
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(raw)
    return days


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def agent_name(desk: DeskSettings, agent_id: int, locale: str) -> str:
    """The desk alias of current staff; someone no longer on the desk by id (an alias would be a guess)."""
    if desk.is_agent(agent_id):
        return desk.alias(agent_id, locale)
    return Texts(locale)("dash.agent_id", id=agent_id)


def stats_json(stats: DashboardStats, desk: DeskSettings, locale: str) -> dict[str, Any]:
    return {
        "timezone": stats.timezone,
        "days": [day.isoformat() for day in stats.days],
        "open_by_status": stats.open_by_status,
        "missed": stats.missed,
        "refunded": {channel: [f"{amount:.2f}" for amount in amounts] for channel, amounts in stats.refunded.items()},
        "refund_counts": stats.refund_counts,
        "rating_average": stats.rating_average,
        "rating_counts": stats.rating_counts,
        "agents": [{**asdict(load), "name": agent_name(desk, load.agent_id, locale)} for load in stats.agents],
    }
