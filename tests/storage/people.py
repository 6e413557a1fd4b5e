"""Two customers with orders, cases, a payout, evidence on disk and a conversation, for the tests of
`cases list/show`, the finance export and `customers export/forget` (real rows, a real PNG)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from PIL import Image

from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, Conversation, OutboxMessage, PaymentChannel
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_evidence, make_order

ZHANG, OTHER = 424242, 515151  # Telegram user ids (and private chat ids)
ZHANG_PHONE, OTHER_PHONE = "13912345678", "13700001111"
ZHANG_NAME = "张三丰"  # the customer's own words name him
PAID, WAITING, STRANGER = "R20261124-0001", "R20261125-0001", "R20261126-0001"


@dataclass(frozen=True)
class Seeded:
    evidence_file: Path
    evidence_size: int


def png(directory: Path) -> tuple[str, Path, int]:
    data = io.BytesIO()
    Image.new("RGB", (16, 9), "orange").save(data, format="PNG")
    digest = hashlib.sha256(data.getvalue()).hexdigest()
    path = directory / digest[:2] / f"{digest}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.getvalue())
    return digest, path, len(data.getvalue())


A1001_TRADE_NO = "2026112422001412345678901234"  # shaped like an Alipay trade_no


async def seed_people(database: Database, evidence_dir: Path) -> Seeded:
    """ZHANG: PAID (A1001, ¥30 asked, ¥20 approved: refunding, the attempt in flight) and WAITING (A2002,
    ¥50 by WeChat, in review, one picture); a conversation whose draft names him. OTHER: STRANGER."""
    digest, path, size = png(evidence_dir)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", buyer_phone=ZHANG_PHONE, buyer_telegram_id=ZHANG,
                                           amount=Decimal("30.00"), trade_no=A1001_TRADE_NO))
        await uow.orders.upsert(make_order("A2002", buyer_phone=ZHANG_PHONE, buyer_telegram_id=ZHANG,
                                           amount=Decimal("50.00"), payment_channel=PaymentChannel.WECHAT))
        await uow.orders.upsert(make_order("B3003", buyer_phone=OTHER_PHONE, buyer_telegram_id=OTHER))
        await uow.cases.add(make_case(PAID, "A1001", chat_id=ZHANG, user_id=ZHANG, amount=Decimal("30.00"),
                                      status=CaseStatus.IN_REVIEW, description=f"我是{ZHANG_NAME}，卡密无效"))
        await uow.cases.add(make_case(WAITING, "A2002", chat_id=ZHANG, user_id=ZHANG, amount=Decimal("50.00"),
                                      status=CaseStatus.IN_REVIEW, created_at=T0.replace(day=25),
                                      description=f"{ZHANG_NAME}：充值没到账"))
        await uow.cases.add(make_case(STRANGER, "B3003", chat_id=OTHER, user_id=OTHER, created_at=T0.replace(day=26),
                                      description="不能用"))
        await uow.evidence.add_draft("d-waiting", ZHANG, make_evidence("E1", sha256=digest, path=str(path), size=size))
        await uow.evidence.attach("d-waiting", WAITING)
        await uow.conversations.save(Conversation(chat_id=ZHANG, user_id=ZHANG, locale="zh", step="describe",
                                                  data={"description": f"{ZHANG_NAME}的第三个订单"}))
        await uow.outbox.add(OutboxMessage(kind="customer_text", chat_id=ZHANG, dedupe_key="t:1",
                                           payload={"text": f"{ZHANG_NAME}您好"}, created_at=T0))
        await CaseWorkflow(CoreSettings(), WorkingCalendar()).approve(uow, PAID, actor="agent:7001", at=T0,
                                                                      amount=Decimal("20.00"))
        await uow.commit()
    return Seeded(path, size)


async def settle_payout(database: Database) -> None:
    """Finance confirms PAID's payout (manual gateway)."""
    from dialogs.refunds import mark_settled

    await mark_settled(database.uow, CaseWorkflow(CoreSettings(), WorkingCalendar()), PAID, succeeded=True,
                       actor="finance", note="")
