"""The redeemed check: before the verdict of a card-code order, ask the shop whether its delivered 卡密
were redeemed (used) already. The answer becomes Order.card_redeemed, which the policy reads: redeemed →
CARD_REDEEMED (not eligible); not redeemed, within the window → CARD_DEFECT_IN_WINDOW (auto-approval);
unknown → CARD_REDEEM_UNKNOWN (a person reviews).

    POST [orders.redeem_check] url
    X-Refundbot-Timestamp / X-Refundbot-Signature   (bot.platform.signed_headers, with its own secret)
    {"order_no": "KM20261124000001", "codes": ["AB12-CD34-EF56", ...]}

    200 {"redeemed": true}    any of the codes was redeemed
    200 {"redeemed": false}   none was
    200 {"redeemed": null}    the shop cannot tell

One answer for the order, not per code: the policy decides per order, and one redeemed code of several
already makes the claim a person's to weigh. Anything else (no answer, a timeout, a redirect, a non-200,
a body that is not that object, an answer over 64 KiB) is unknown: a failure never auto-approves.
Nothing here logs a code, nor the shop's answer (it may echo them).

Where it hooks in: around the order lookup the service asks before each update's unit of work opens
(dialogs.service.RefundService(orders=...)), for every order source. The platform's and the shops' own
lookups are wrapped; for source "local", which has no lookup, `StoredOrders` reads the orders table
outside the unit of work. The service keeps the checked order in the local store, so the verdict, the
filing (auto-approval) and the desk read the checked value; every later lookup is checked again, so it
never overwrites a check with the source's own (often unknown) flag. dialogs/ stays framework-free: it
only sees an OrderLookup.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot import bodies
from bot.config import RedeemCheckConfig
from bot.platform import PlatformCallFailed, PlatformClient, signed_headers
from dialogs.domain import Order, ProductKind
from dialogs.ports import OrderLookup, UnitOfWorkFactory

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024


class RedeemChecker(PlatformClient):
    """The signed POST to the shop's endpoint; `redeemed` is True, False or None (unknown, or failed).
    The HTTP side is the platform client's: no redirects followed, the answer capped, one session."""

    def __init__(self, url: str, secret: str, timeout: float = 5, *, clock: Callable[[], float] = time.time) -> None:
        if not url:
            raise ValueError("[orders.redeem_check] needs url")
        if not secret:
            raise ValueError("[orders.redeem_check] needs secret (or REFUNDBOT_REDEEM_SECRET)")
        super().__init__(url, secret, timeout, clock, "redeem_check", "url", MAX_ANSWER_BYTES)
        self.url = url

    async def redeemed(self, order_no: str, codes: Sequence[str]) -> bool | None:
        body = json.dumps({"order_no": order_no, "codes": list(codes)}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **signed_headers(self._secret, body, self._clock())}
        try:
            status, raw = await self._call("POST", self.url, headers, body)
        except PlatformCallFailed as exc:
            # A redirect, an answer over the cap, a timeout or a network error. The cause's type only: its
            # text may carry the URL or a Location, never the body, but stay terse.
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "refused"
            log.warning("redeem check for order %s failed (%s); the codes count as unknown", order_no, cause)
            return None
        if status != 200:
            log.warning("redeem check for order %s: HTTP %s; the codes count as unknown", order_no, status)
            return None
        try:
            answer = bodies.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "redeemed" not in answer or answer["redeemed"] not in (True, False, None):
            log.warning("redeem check for order %s: not a {\"redeemed\": true|false|null} answer; unknown", order_no)
            return None
        value: bool | None = answer["redeemed"]
        return value


class StoredOrders:
    """OrderLookup over the local orders table, in a short unit of work of its own (source "local" has
    no lookup of its own; the redeemed check needs one to wrap). What it returns, checked, the service
    writes back to the same row: an import landing in those milliseconds between would be overwritten
    with the row as read (the next lookup or import puts it right)."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def get(self, order_no: str) -> Order | None:
        async with self._uow_factory() as uow:
            return await uow.orders.get(order_no)


def needs_check(order: Order | None) -> bool:
    return order is not None and order.product_kind is ProductKind.CARD_CODE and bool(order.delivered_codes)


class RedeemCheckedOrders:
    """An OrderLookup whose card-code orders with delivered codes carry the shop's redeemed answer."""

    def __init__(self, inner: OrderLookup, checker: RedeemChecker) -> None:
        self.inner, self.checker = inner, checker

    async def get(self, order_no: str) -> Order | None:
        order = await self.inner.get(order_no)
        if order is None or not needs_check(order):
            # Over the local table an unchecked order is nothing new: None leaves the row alone (the
            # service writes back only what a lookup returns; the dialog reads the table itself).
            return None if isinstance(self.inner, StoredOrders) else order
        return replace(order, card_redeemed=await self.checker.redeemed(order.order_no, order.delivered_codes))

    async def close(self) -> None:
        # The inner lookup is closed by whoever opened it (bot.app); the checker's session is ours.
        await self.checker.close()


def checked_lookup(inner: OrderLookup | None, config: RedeemCheckConfig,
                   uow_factory: UnitOfWorkFactory) -> OrderLookup | None:
    """The service's order lookup with the redeemed check around it, or `inner` as it is without a url."""
    if not config.url:
        return inner
    checker = RedeemChecker(config.url, config.secret, config.timeout_seconds)
    return RedeemCheckedOrders(inner if inner is not None else StoredOrders(uow_factory), checker)
