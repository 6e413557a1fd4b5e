"""`refundbot doctor`: check a setup before (or while) it runs, one finding per line with the fix.

Each check asks the real thing: the database its schema revision, Telegram (or the api_base server)
getMe / getWebhookInfo / getChat / getChatMember, the platform's URLs a signed request. Nothing is
changed anywhere: doctor only reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url
from yarl import URL

from bot.calendar_check import calendar_findings
from bot.config import AppConfig
from bot.doctor_rails import rail_findings
from bot.platform import signed_headers
from bot.shops.doctor import order_source_findings

TELEGRAM = "https://api.telegram.org"
# Rights the desk needs: topics per case (create, rename, close, reopen).
DESK_RIGHTS = {"can_manage_topics": "Manage topics"}
BOT_API_TIMEOUT = 10.0


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str  # which check: config, database, token, webhook, desk, agents, platform, orders, rails, calendar
    text: str  # what was found, and the fix when something is wrong


def ok(check: str, text: str) -> Finding:
    return Finding(Level.OK, check, text)


def warn(check: str, text: str) -> Finding:
    return Finding(Level.WARN, check, text)


def fail(check: str, text: str) -> Finding:
    return Finding(Level.FAIL, check, text)


def exit_code(findings: list[Finding]) -> int:
    """0 when nothing failed (warnings alone are fine), 1 otherwise: for scripts."""
    return 1 if any(f.level is Level.FAIL for f in findings) else 0


# --- database -----------------------------------------------------------------------------------


async def check_database(config: AppConfig) -> Finding:
    from storage import migrate

    url = config.database.url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not Path(parsed.database).exists():
        return fail("database", f"no database at {parsed.database} yet: run `refundbot db upgrade` "
                                "(or `refundbot run`, which migrates at start unless auto_upgrade = false)")
    try:
        state = await asyncio.wait_for(migrate.check_schema(url), 15)
    except Exception as exc:  # noqa: BLE001 - any driver's connection error
        return fail("database", f"cannot open {parsed.render_as_string(hide_password=True)}: "
                                f"{_first_line(exc)} (check [database] url and that the server runs)")
    if state.ok:
        return ok("database", f"{parsed.render_as_string(hide_password=True)} is migrated to head ({state.head})")
    if state.upgradable:
        return fail("database", f"{state.message}: run `refundbot db upgrade`")
    return fail("database", state.message)


async def _with_database_staff(config: AppConfig) -> AppConfig:
    from dialogs.clock import utcnow
    from dialogs.roster import current_desk
    from storage.uow import Database

    database = Database.from_url(config.database.url)
    try:
        async with database.uow() as uow:
            desk = await current_desk(uow, config.desk, utcnow())
    finally:
        await database.dispose()
    return config.model_copy(update={"desk": desk})


# --- Telegram -----------------------------------------------------------------------------------


class BotApi:
    """Just enough of the Bot API to read a setup: one JSON call at a time, answers as they come."""

    def __init__(self, base: str, token: str) -> None:
        self.base = (base or TELEGRAM).rstrip("/")
        self._token = token
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOT_API_TIMEOUT))

    async def call(self, method: str, **params: Any) -> tuple[bool, Any, int, str]:
        """(ok, result, error_code, description); a network failure raises aiohttp.ClientError or TimeoutError."""
        async with self._http.post(f"{self.base}/bot{self._token}/{method}", json=params) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                return False, None, resp.status, f"HTTP {resp.status}, not a Bot API answer"
        if not isinstance(body, dict):
            return False, None, resp.status, "not a Bot API answer"
        return bool(body.get("ok")), body.get("result"), int(body.get("error_code") or resp.status), \
            str(body.get("description") or "")

    async def close(self) -> None:
        await self._http.close()


async def telegram_findings(config: AppConfig) -> AsyncIterator[Finding]:
    tg = config.telegram
    if not tg.token:
        yield warn("token", "no [telegram] token: `refundbot run` would run on the built-in emulator "
                            f"(http://{config.sandbox.host}:{config.sandbox.port}/) with demo orders; "
                            "set [telegram] token or REFUNDBOT_TOKEN for Telegram")
        return
    api = BotApi(tg.api_base, tg.token)
    try:
        try:
            good, me, code, why = await api.call("getMe")
        except (aiohttp.ClientError, TimeoutError) as exc:
            yield fail("token", f"cannot reach {api.base}: {_first_line(exc) or type(exc).__name__} "
                                "(check the network, or [telegram] api_base)")
            return
        if not good:
            if code in (401, 404):
                yield fail("token", f"the token is wrong ({code} {why}): ask @BotFather for it (/token) and set "
                                    "[telegram] token or REFUNDBOT_TOKEN")
            else:
                yield fail("token", f"getMe failed: {code} {why}")
            return
        yield ok("token", f"the token belongs to @{me.get('username')} (id {me.get('id')})")
        try:
            yield await _webhook_finding(api, config)
            async for finding in _desk_findings(api, config, int(me["id"])):
                yield finding
        except (aiohttp.ClientError, TimeoutError) as exc:
            yield fail("token", f"lost {api.base} halfway: {_first_line(exc) or type(exc).__name__} (run doctor again)")
    finally:
        await api.close()


async def _webhook_finding(api: BotApi, config: AppConfig) -> Finding:
    tg = config.telegram
    good, info, code, why = await api.call("getWebhookInfo")
    if not good:
        return fail("webhook", f"getWebhookInfo failed: {code} {why}")
    current = str(info.get("url") or "")
    if tg.mode == "polling":
        if current:
            return fail("webhook", f"polling is configured but a webhook is set ({current}): polling will fail "
                                   "with 409 Conflict while it is. `refundbot run` deletes it at start, so if "
                                   "another deployment uses that webhook, stop it first, or set [telegram] "
                                   'mode = "webhook"')
        return ok("webhook", "polling, and no webhook is set")
    if not tg.webhook_url:
        return fail("webhook", 'mode = "webhook" but [telegram] webhook_url is empty: set the public https URL '
                               "Telegram should post to")
    secret = "; the secret token is set" if tg.webhook_secret else ""
    if not current:
        return warn("webhook", f"Telegram has no webhook yet: `refundbot run` registers {tg.webhook_url} "
                               f"at start{secret}")
    if current != tg.webhook_url:
        return fail("webhook", f"Telegram posts this bot's updates to {current}, not to [telegram] webhook_url "
                               f"{tg.webhook_url}: another deployment with this token? Stop it, or fix webhook_url")
    last_error = info.get("last_error_message")
    if last_error:
        return warn("webhook", f"{current} is registered{secret}, but Telegram's last delivery failed: "
                               f"{last_error} (is the bot reachable at that URL?)")
    return ok("webhook", f"{current} is registered{secret}")


async def _desk_findings(api: BotApi, config: AppConfig, bot_id: int) -> AsyncIterator[Finding]:
    desk = config.desk
    if not desk.chat_id:
        yield warn("desk", "no [desk] chat_id: cases wait for `refundbot cases move` (set it to the agents' "
                           "forum supergroup to work them in Telegram)")
    else:
        in_desk = False
        async for finding in _desk_group(api, desk.chat_id, bot_id):
            in_desk = in_desk or finding.level is not Level.FAIL
            yield finding
        if in_desk:
            async for finding in _agents(api, config):
                yield finding
    if config.sla.supervisors_chat_id:
        good, chat, code, why = await api.call("getChat", chat_id=config.sla.supervisors_chat_id)
        if good:
            yield ok("desk", f"the supervisors' chat {chat.get('title') or chat.get('id')} is reachable")
        else:
            yield fail("desk", f"[sla] supervisors_chat_id {config.sla.supervisors_chat_id}: {code} {why} "
                               "(add the bot to that chat, or fix the id)")


async def _desk_group(api: BotApi, chat_id: int, bot_id: int) -> AsyncIterator[Finding]:
    good, chat, code, why = await api.call("getChat", chat_id=chat_id)
    if not good:
        yield fail("desk", f"[desk] chat_id {chat_id}: {code} {why} (add the bot to the agents' group, or fix "
                           "the id: a supergroup's id starts with -100)")
        return
    title = chat.get("title") or chat_id
    if chat.get("type") != "supergroup":
        yield fail("desk", f"the desk {title!r} is a {chat.get('type')}, not a supergroup: turn on Topics in "
                           "the group's settings (Telegram makes it a supergroup) and set the new id")
        return
    if not chat.get("is_forum"):
        yield fail("desk", f"the desk {title!r} is not a forum: turn on Topics in the group's settings "
                           "(each case gets its own topic)")
    else:
        yield ok("desk", f"the desk {title!r} is a forum supergroup")
    good, member, code, why = await api.call("getChatMember", chat_id=chat_id, user_id=bot_id)
    if not good:
        yield fail("desk", f"the bot's membership in the desk: {code} {why}")
        return
    status = member.get("status")
    if status == "creator":
        yield ok("desk", "the bot owns the desk group")
    elif status in ("left", "kicked"):
        yield fail("desk", f"the bot is not in the desk group ({status}): add it as an administrator with the "
                           f"right {', '.join(repr(r) for r in DESK_RIGHTS.values())}")
    elif status != "administrator":
        yield fail("desk", f"the bot is {status} in the desk, not an administrator: promote it with the "
                           f"right {', '.join(repr(r) for r in DESK_RIGHTS.values())}")
    else:
        missing = [label for right, label in DESK_RIGHTS.items() if not member.get(right)]
        if missing:
            yield fail("desk", f"the bot is an administrator of the desk without the right "
                               f"{', '.join(repr(m) for m in missing)}: edit its administrator rights")
        else:
            yield ok("desk", "the bot is an administrator with 'Manage topics'")


async def _agents(api: BotApi, config: AppConfig) -> AsyncIterator[Finding]:
    desk = config.desk
    staff = list(dict.fromkeys(desk.agents + desk.supervisors))
    if not staff:
        yield warn("agents", "no agents or supervisors: add them with `refundbot agents add USER_ID --by WHO` "
                             "(or list them in [desk] agents), or nobody may act on the desk")
        return
    for user_id in staff:
        role = "supervisor" if desk.is_supervisor(user_id) else "agent"
        name = desk.alias(user_id, "en")
        good, member, code, why = await api.call("getChatMember", chat_id=desk.chat_id, user_id=user_id)
        status = member.get("status") if good else None
        if status in ("creator", "administrator", "member") or (status == "restricted" and member.get("is_member")):
            yield ok("agents", f"{role} {user_id} ({name}) is in the desk group ({status})")
        elif good:
            yield warn("agents", f"{role} {user_id} ({name}) is not in the desk group ({status}): add them, "
                                 "or they see no cases")
        else:
            yield warn("agents", f"{role} {user_id} ({name}): {code} {why} (has this account ever opened "
                                 "Telegram? add them to the desk group)")


# --- the platform -------------------------------------------------------------------------------


async def platform_findings(config: AppConfig) -> AsyncIterator[Finding]:
    platform = config.platform
    needs = [what for what, on in (('gateway = "http"', platform.gateway == "http"),
                                   ('orders = "http"', platform.orders == "http")) if on]
    if not needs:
        yield ok("platform", "manual refunds and local orders: no platform URL to call")
        return
    if not platform.secret:
        yield fail("platform", f"{' and '.join(needs)} need [platform] secret (or REFUNDBOT_PLATFORM_SECRET): "
                               "the shared HMAC secret agreed with the platform")
    for setting, url, on in (("refund_url", platform.refund_url, platform.gateway == "http"),
                             ("orders_url", platform.orders_url, platform.orders == "http")):
        if on:
            yield await _probe(setting, url, platform.secret, platform.timeout_seconds)


async def _probe(setting: str, url: str, secret: str, timeout: float) -> Finding:
    """Any HTTP answer proves someone listens there (a refund URL may well refuse a GET); a 5xx or no
    answer at all does not."""
    if not url:
        return fail("platform", f"[platform] {setting} is empty: set the platform's URL")
    target = url.rstrip("/") + "/" if setting == "orders_url" else url
    try:
        path = URL(target).raw_path_qs.encode()
        headers = signed_headers(secret, path, time.time()) if secret else {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
                http.get(target, headers=headers, allow_redirects=False) as resp:
            status = resp.status
    except TimeoutError:
        return fail("platform", f"{setting} {url} did not answer within {timeout:g} s ([platform] timeout_seconds)"
                                ": is the platform up, and reachable from here?")
    except (aiohttp.ClientError, ValueError) as exc:
        return fail("platform", f"{setting} {url}: nothing answers ({_first_line(exc) or type(exc).__name__})")
    if status >= 500:
        return warn("platform", f"{setting} {url} answers {status}: the platform has trouble")
    return ok("platform", f"{setting} {url} answers (HTTP {status} to a signed GET)")


# --- all of it ----------------------------------------------------------------------------------


async def diagnose(config: AppConfig, today: date | None = None) -> AsyncIterator[Finding]:
    """Every check after the configuration's, in order: database, Telegram, the platform, the rails'
    keys, the calendar."""
    database = await check_database(config)
    yield database
    if database.level is Level.OK:  # the staff as the desk will see it: the database's, seeded from TOML
        config = await _with_database_staff(config)
    async for finding in telegram_findings(config):
        yield finding
    async for finding in platform_findings(config):
        yield finding
    async for level, text in order_source_findings(config):
        yield Finding(Level(level), "orders", text)
    async for level, text in rail_findings(config.platform):
        yield Finding(Level(level), "rails", text)
    for finding in calendar_findings(config.policy, today or date.today()):
        yield Finding(Level(finding[0]), "calendar", finding[1])


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
