"""异次元发卡 acg-faka (PHP, MySQL): orders read from the shop's own tables, read-only.

Tables and columns as in acg-faka's kernel/Install/Install.sql (table prefix chosen at install, acg_ by
default): `order` (trade_no, amount, commodity_id, pay_id, create_time, pay_time, status, secret,
password, contact, delivery_status), `commodity` (id, name, delivery_way, shared_id), `pay` (id, code,
handle). Times are Asia/Shanghai (kernel/Kernel.php).

status 0 未支付 is no sale ("not found"); 1 已支付 with delivery_status 0 is pending, with 1 delivered.
When the stock ran out between order and payment, acg-faka still marks the order delivered and puts an
apology in `secret` instead of codes (app/Service/Bind/Order.php pullCardForLocal): that is a failed
delivery. `secret` of an undelivered order delivered by hand holds the goods' delivery message, not codes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, column, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AcgFakaConfig, AppConfig
from bot.shops import mapping
from bot.shops.sql import guarded, shop_engine
from dialogs.clock import utcnow
from dialogs.domain import DeliveryStatus, Order

SECTION = "orders.acg_faka"
PAID = 1  # order.status: 0 未支付, 1 已支付
DELIVERED = 1  # order.delivery_status: 0 未发货, 1 已发货
AUTO_DELIVERY = 0  # commodity.delivery_way: 0 自动发货, 1 手动发货/插件发货
SOLD_OUT = "很抱歉，有人在你付款之前抢走了商品"  # the apology written in place of codes


class AcgFakaOrders:
    """dialogs.ports.OrderLookup over an acg-faka database."""

    name = "acg_faka"

    def __init__(self, config: AcgFakaConfig, engine: AsyncEngine | None = None) -> None:
        self.config = config
        self.engine = engine or shop_engine(config, SECTION)
        prefix = config.table_prefix
        self.orders = table(f"{prefix}order", *map(column, (
            "trade_no", "amount", "commodity_id", "pay_id", "create_time", "pay_time", "status", "secret",
            "password", "contact", "delivery_status")))
        self.commodities = table(f"{prefix}commodity", column("id"), column("name"), column("delivery_way"),
                                 column("shared_id"))
        self.pays = table(f"{prefix}pay", column("id"), column("code"), column("handle"))
        self.query = self._query()

    @classmethod
    def from_config(cls, config: AppConfig) -> AcgFakaOrders:
        return cls(config.orders.acg_faka)

    @property
    def tables(self) -> list[str]:
        return [self.orders.name, self.commodities.name, self.pays.name]

    async def get(self, order_no: str) -> Order | None:
        row = await guarded(lambda: self._row(order_no), self.config.query_timeout_seconds,
                            f"acg-faka order {order_no}")
        return None if row is None else self.to_order(row)

    def _query(self) -> Any:
        """The lookup, built once: SQLAlchemy compiles it once and reuses it for every order number."""
        o, c, p = self.orders.c, self.commodities.c, self.pays.c
        return (select(o.trade_no, o.amount, o.commodity_id, o.create_time, o.pay_time, o.status, o.secret,
                       o.password, o.contact, o.delivery_status, c.name, c.delivery_way, c.shared_id,
                       p.code, p.handle)
                .select_from(self.orders.outerjoin(self.commodities, c.id == o.commodity_id)
                             .outerjoin(self.pays, p.id == o.pay_id))
                .where(o.trade_no == bindparam("order_no")))

    async def _row(self, order_no: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            found = (await connection.execute(self.query, {"order_no": order_no})).mappings().first()
        return dict(found) if found is not None else None

    def to_order(self, row: dict[str, Any]) -> Order | None:
        """The row as refundbot's Order; None for an unpaid order (nothing to refund)."""
        if int(row["status"]) != PAID:
            return None
        order_no = str(row["trade_no"]).strip()
        secret = row["secret"] or ""
        # Codes from the shop's own stock or a shared (对接) platform are delivered automatically.
        auto = row["delivery_way"] is None or int(row["delivery_way"]) == AUTO_DELIVERY or bool(row["shared_id"])
        if int(row["delivery_status"]) != DELIVERED:
            delivery, delivered = DeliveryStatus.PENDING, ()
        elif secret.strip().startswith(SOLD_OUT):
            delivery, delivered = DeliveryStatus.FAILED, ()
        else:
            delivery, delivered = DeliveryStatus.DELIVERED, mapping.codes(secret)
        zone = self.config.timezone
        paid_at = mapping.shop_time(row["pay_time"], zone) or mapping.shop_time(row["create_time"], zone) or utcnow()
        name = str(row["name"] or f"#{row['commodity_id']}")
        return Order(
            order_no=order_no,
            buyer_phone="",  # card shops collect no phone numbers
            product_name=name,
            product_kind=mapping.product_kind(self.config, row["commodity_id"], name, auto),
            amount=Decimal(row["amount"]),
            payment_channel=mapping.payment_channel(self.config, row["code"], row["handle"]),
            paid_at=paid_at,
            delivery_status=delivery,
            # acg-faka delivers at payment and records no separate delivery time.
            delivered_at=paid_at if delivery is DeliveryStatus.DELIVERED else None,
            trade_no=None,  # acg-faka keeps no payment serial of the rail: refunds go by the order number
            buyer_contact=mapping.contact(row["contact"]),
            query_secret=mapping.query_secret(order_no, row["password"]),
            delivered_codes=delivered,
        )

    async def check(self) -> str:
        """For `refundbot doctor`: reach the database and read one row of each table (ShopUnavailable if not)."""
        async def probe() -> str:
            async with self.engine.connect() as connection:
                for each in (self.orders, self.commodities, self.pays):
                    await connection.execute(select(*each.c).limit(1))
            return f"tables {', '.join(self.tables)} readable"
        return await guarded(probe, self.config.query_timeout_seconds, "acg-faka database")

    async def close(self) -> None:
        await self.engine.dispose()
