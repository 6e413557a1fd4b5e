"""`refundbot cases move` obeys the desk's rules: a named person, two people above confirm_above, the
owner rule; and money moves only with the outcome of the attempt in flight (mark-failed, never a blind
fail_refund). Real SQLite database, real CLI (Typer's runner)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from dialogs.domain import CaseStatus, DeskItem
from storage import migrate
from storage.models import CaseEventRow, OutboxRow
from storage.uow import Database
from tests.storage.factories import make_case, make_order

AGENT, OTHER_AGENT, SUPERVISOR = 7001, 7002, 7009
BIG, SMALL = "R20261124-0001", "R20261124-0002"  # ¥800 and ¥50, both in review


def setup(tmp_path, desk: bool) -> str:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/cli.db"
    migrate.upgrade(url)
    settings = f'[database]\nurl = "{url}"\n[desk]\nconfirm_above = 500\n'
    if desk:
        settings += (f"chat_id = -100500\nagents = [{AGENT}, {OTHER_AGENT}]\nsupervisors = [{SUPERVISOR}]\n"
                     f'[desk.aliases]\n{AGENT} = "小李"\n')
    path = tmp_path / "config.toml"
    path.write_text(settings, encoding="utf-8")

    async def seed() -> None:
        database = Database.from_url(url)
        async with database.uow() as uow:
            for case_no, order_no, amount in ((BIG, "A1001", "800.00"), (SMALL, "A1002", "50.00")):
                await uow.orders.upsert(make_order(order_no, amount=Decimal(amount)))
                await uow.cases.add(make_case(case_no, order_no, amount=Decimal(amount), status=CaseStatus.IN_REVIEW))
                if desk:
                    await uow.desk.open(DeskItem(key=case_no, chat_id=424242, user_id=424242,
                                                 opened_at=datetime.now(UTC), case_no=case_no))
            await uow.commit()
        await database.dispose()

    asyncio.run(seed())
    return str(path)


def query(tmp_path, statement) -> list[Any]:  # type: ignore[no-untyped-def]
    async def go() -> list[Any]:
        database = Database.from_url(f"sqlite:///{tmp_path}/cli.db")
        async with database.uow() as uow:
            rows = list((await uow.session.execute(statement)).all())
        await database.dispose()
        return rows
    return asyncio.run(go())


def cli(config: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["cases", *args, "--config", config])


def status(tmp_path, case_no: str) -> str:  # type: ignore[no-untyped-def]
    from storage.models import CaseRow
    return query(tmp_path, select(CaseRow.status).where(CaseRow.case_no == case_no))[0][0]


def test_a_decision_needs_a_named_person_and_records_them(tmp_path):
    config = setup(tmp_path, desk=False)
    nobody = cli(config, "move", SMALL, "approve", "--by", "  ")
    assert nobody.exit_code == 2 and "--by" in nobody.output
    done = cli(config, "move", SMALL, "approve", "--by", "王会计")
    assert done.exit_code == 0, done.output
    actors = [row[0] for row in query(tmp_path, select(CaseEventRow.actor))]
    assert "cli:王会计" in actors


def test_without_a_desk_an_approval_above_confirm_above_is_refused_for_want_of_a_second_person(tmp_path):
    config = setup(tmp_path, desk=False)
    refused = cli(config, "move", BIG, "approve", "--by", "王会计")
    assert refused.exit_code == 4 and "second person" in refused.output
    assert status(tmp_path, BIG) == "in_review"
    partial = cli(config, "move", BIG, "approve", "--amount", "300", "--by", "王会计")
    assert partial.exit_code == 0 and status(tmp_path, BIG) == "refunding"


def test_with_a_desk_a_big_approval_waits_for_a_supervisor_other_than_the_approver(tmp_path):
    config = setup(tmp_path, desk=True)
    stranger = cli(config, "move", BIG, "approve", "--by", "12345")
    assert stranger.exit_code == 2 and "not one of" in stranger.output
    asked = cli(config, "move", BIG, "approve", "--by", "小李")
    assert asked.exit_code == 0 and "waits for a supervisor" in asked.output
    assert status(tmp_path, BIG) == "in_review"
    by_an_agent = cli(config, "move", BIG, "confirm", "--by", str(OTHER_AGENT))
    assert by_an_agent.exit_code == 4 and status(tmp_path, BIG) == "in_review"
    confirmed = cli(config, "move", BIG, "confirm", "--by", str(SUPERVISOR))
    assert confirmed.exit_code == 0, confirmed.output
    assert status(tmp_path, BIG) == "refunding"


def test_with_a_desk_the_owner_rule_holds_and_every_move_redraws_the_desk_card(tmp_path):
    config = setup(tmp_path, desk=True)
    async def take() -> None:
        database = Database.from_url(f"sqlite:///{tmp_path}/cli.db")
        async with database.uow() as uow:
            await uow.desk.take(SMALL, AGENT, at=datetime.now(UTC))
            await uow.commit()
        await database.dispose()
    asyncio.run(take())
    cards_before = len(query(tmp_path, select(OutboxRow.id).where(OutboxRow.kind == "desk_card")))
    refused = cli(config, "move", SMALL, "approve", "--by", str(OTHER_AGENT))
    assert refused.exit_code == 4 and status(tmp_path, SMALL) == "in_review"
    done = cli(config, "move", SMALL, "reject", "--note", "卡密已被兑换", "--by", "小李")
    assert done.exit_code == 0, done.output
    assert status(tmp_path, SMALL) == "rejected"
    assert len(query(tmp_path, select(OutboxRow.id).where(OutboxRow.kind == "desk_card"))) > cards_before


def test_a_case_with_money_in_flight_cannot_be_failed_blindly_only_with_the_outcome(tmp_path):
    from storage.models import RefundAttemptRow

    config = setup(tmp_path, desk=False)
    assert cli(config, "move", SMALL, "approve", "--by", "王会计").exit_code == 0
    blind = cli(config, "move", SMALL, "fail_refund", "--by", "王会计")
    assert blind.exit_code == 4 and "still pending" in blind.output
    assert cli(config, "move", SMALL, "retry_refund", "--by", "王会计").exit_code == 4
    failed = cli(config, "mark-failed", SMALL, "--by", "王会计", "--note", "支付宝账户已注销")
    assert failed.exit_code == 0 and "refund_failed" in failed.output
    assert cli(config, "move", SMALL, "retry_refund", "--by", "王会计").exit_code == 0
    attempts = query(tmp_path, select(RefundAttemptRow.idempotency_key, RefundAttemptRow.status)
                     .order_by(RefundAttemptRow.id))
    assert [tuple(a) for a in attempts] == [(f"{SMALL}-1", "failed"), (f"{SMALL}-2", "pending")]
