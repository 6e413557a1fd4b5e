"""dujiaoka's `api_hook`: after a paid order, dujiaoka POSTs unsigned JSON (app/Jobs/ApiHook.php: title,
order_sn, email, actual_price, order_info, good_id, gd_name) to the URL set on the goods.

The body is unsigned, so nothing in it is believed but the order number: the order is read again from
the shop's database and that is what is stored locally. The secret in the path keeps strangers from
making us read the shop's database at will; a wrong one looks like no route at all."""

from __future__ import annotations

import hmac
import json
import logging
import re

from aiohttp import web

from bot.shops.dujiaoka import DujiaokaOrders
from dialogs.ports import OrderLookup, OrderSourceUnavailable, UnitOfWorkFactory

log = logging.getLogger(__name__)

HOOK_PATH = "/api/v1/shops/dujiaoka/hook/{secret}"
MAX_BODY_BYTES = 64 * 1024  # ApiHook's body is a few hundred bytes plus the delivered codes
ORDER_SN = re.compile(r"[A-Za-z0-9]{1,64}")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


class DujiaokaHook:
    def __init__(self, secret: str, orders: OrderLookup, uow_factory: UnitOfWorkFactory) -> None:
        self._secret = secret.encode()
        self.orders = orders
        self.uow_factory = uow_factory

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(HOOK_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["secret"].encode(), self._secret):
            return _error(404, "not found")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "the body must be JSON, as dujiaoka's ApiHook sends it")
        order_sn = body.get("order_sn") if isinstance(body, dict) else None
        if not isinstance(order_sn, str) or not ORDER_SN.fullmatch(order_sn.strip()):
            return _error(400, "order_sn missing or not an order number")
        order_no = order_sn.strip().upper()
        try:
            order = await self.orders.get(order_no)
        except OrderSourceUnavailable as exc:
            log.warning("dujiaoka hook for %s: %s", order_no, exc)
            return _error(503, "the shop database did not answer; nothing was changed, send it again later")
        if order is None:
            return _error(404, f"no paid order {order_no} in the shop database")
        async with self.uow_factory() as uow:
            inserted = await uow.orders.upsert(order)
            await uow.commit()
        log.info("dujiaoka hook: order %s %s", order_no, "added" if inserted else "updated")
        return web.json_response({"ok": True, "order_no": order.order_no, "inserted": inserted})


def add_shop_routes(app: web.Application, orders: OrderLookup | None, uow_factory: UnitOfWorkFactory,
                    hook_secret: str) -> None:
    """Mount dujiaoka's hook when orders come from dujiaoka and a hook secret is set."""
    if isinstance(orders, DujiaokaOrders) and hook_secret:
        DujiaokaHook(hook_secret, orders, uow_factory).add_routes(app)
