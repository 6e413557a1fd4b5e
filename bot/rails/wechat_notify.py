"""WeChat Pay's refund notifications, on the bot's web app:

    POST /api/v1/rails/wechat/refund

verified (Wechatpay-Signature with the WeChat Pay public key or platform certificate, a timestamp
within `[platform] max_clock_skew_seconds`) and decrypted (AEAD_AES_256_GCM with the APIv3 key) by
WechatGateway.notification, then REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED settle the attempt
whose idempotency key is the out_refund_no.

Answers, as WeChat Pay expects: 204 when taken (also for a duplicate, which changes nothing, and for a
notification we keep for finance); 401 {"code": "FAIL", "message": ...} when it cannot be trusted, 404
for an unknown out_refund_no, 500 when the database fails — WeChat Pay sends those again later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.config import PlatformConfig
from bot.rails.wechat import ABNORMAL, CLOSED, NotificationRefused, WechatGateway, fen
from dialogs.cases import CaseWorkflow
from dialogs.domain import RailError, RefundStatus
from dialogs.lifecycle import ForbiddenTransition
from dialogs.ports import UnitOfWorkFactory
from dialogs.refunds import AttemptSettled, settle

log = logging.getLogger(__name__)

PATH = "/api/v1/rails/wechat/refund"
MAX_BODY_BYTES = 64 * 1024  # a refund notification is under 2 KB
# event_type -> (paid?, reason, error when not paid)
EVENTS: dict[str, tuple[bool, str, RailError | None]] = {
    "REFUND.SUCCESS": (True, "", None),
    "REFUND.ABNORMAL": (False, ABNORMAL, RailError.REJECTED),
    "REFUND.CLOSED": (False, CLOSED, RailError.REJECTED),
}


def _fail(status: int, message: str) -> web.Response:
    return web.json_response({"code": "FAIL", "message": message}, status=status)


class WechatNotifications:
    """The notification endpoint; `add_routes(app)` mounts it."""

    def __init__(self, gateway: WechatGateway, uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.gateway, self.uow_factory, self.workflow, self.clock = gateway, uow_factory, workflow, clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _fail(413, "body too large")
        try:
            event = await self.gateway.notification(request.headers, body)
        except NotificationRefused as exc:
            log.warning("WeChat Pay refund notification refused: %s; nothing changed", exc)
            return _fail(401, f"refused: {exc}")
        try:
            return await self._settle(event)
        except Exception:
            log.exception("WeChat Pay refund notification could not be recorded; WeChat Pay will send it again")
            return _fail(500, "internal error; nothing was changed")

    async def _settle(self, event: dict[str, Any]) -> web.Response:
        resource: dict[str, Any] = event["resource"]
        kind = str(event.get("event_type") or "")
        key = str(resource.get("out_refund_no") or "")
        if kind not in EVENTS:
            log.warning("WeChat Pay notification %r for refund %s ignored", kind, key)
            return web.Response(status=204)
        if str(resource.get("mchid") or "") != self.gateway.settings.mchid:
            log.error("WeChat Pay notification for refund %s names merchant %r, not ours; nothing changed",
                      key, resource.get("mchid"))
            return _fail(404, "not our merchant")
        paid, reason, error = EVENTS[kind]
        refund_id = str(resource.get("refund_id") or "")[:128] or None
        rail_status = str(resource.get("refund_status") or kind.removeprefix("REFUND."))
        at = datetime.fromtimestamp(self.clock(), UTC)
        async with self.uow_factory() as uow:
            attempt = await uow.refunds.get(key) if key else None
            if attempt is None or attempt.gateway != self.gateway.name:
                log.error("WeChat Pay notification %s for unknown refund %r; nothing changed", kind, key)
                return _fail(404, "unknown out_refund_no")
            notified = (resource.get("amount") or {}).get("refund")
            if notified != fen(attempt.amount):
                log.error("WeChat Pay says refund %s (%s) was %r fen, but the attempt is for %s; left for finance",
                          key, kind, notified, attempt.amount)
                return web.Response(status=204)
            if attempt.status not in (RefundStatus.PENDING, RefundStatus.REQUESTED):
                if attempt.status is not (RefundStatus.SUCCEEDED if paid else RefundStatus.FAILED):
                    log.error("WeChat Pay says %s for refund %s, already %s; left for finance", kind, key,
                              attempt.status.value)
                return web.Response(status=204)  # a duplicate: nothing changes
            case_note = "" if error is None else f"{error.value}: {reason}"
            try:
                await settle(uow, self.workflow, attempt.case_no, succeeded=paid, actor="gateway", at=at,
                             note=reason or f"WeChat Pay notification {kind}", idempotency_key=key,
                             external_ref=refund_id, amount=attempt.amount, rail_status=rail_status, error=error,
                             case_note=case_note)
            except AttemptSettled:
                return web.Response(status=204)
            except ForbiddenTransition as exc:
                # The case moved on meanwhile; what happened to the money stays true on the attempt.
                log.error("WeChat Pay says %s for refund %s, but %s; recorded on the attempt only", kind, key, exc)
                await uow.refunds.set_status(key, RefundStatus.SUCCEEDED if paid else RefundStatus.FAILED, at=at,
                                             external_ref=refund_id, rail_status=rail_status, error=error,
                                             note=f"{reason or kind} (case was not refunding)")
            await uow.commit()
        log.info("WeChat Pay notification %s settled refund %s", kind, key)
        return web.Response(status=204)


def add_wechat_routes(app: web.Application, config: PlatformConfig, uow_factory: UnitOfWorkFactory,
                      workflow: CaseWorkflow) -> None:
    """Mount the notification endpoint when refunds go to WeChat Pay (`[platform.rails]` names it)."""
    if WechatGateway.name in config.rails.values():
        WechatNotifications(WechatGateway.from_config(config), uow_factory, workflow).add_routes(app)
