from __future__ import annotations

from datetime import timedelta

from dialogs.domain import AgentRequest, OutboxMessage
from storage.uow import Database
from tests.storage.factories import T0, make_evidence


async def test_evidence_is_deduplicated_by_file_unique_id_within_a_draft(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.evidence.add_draft("d1", 7, make_evidence("AQAD1")) is True
        assert await uow.evidence.add_draft("d1", 7, make_evidence("AQAD1", file_id="resent")) is False
        assert await uow.evidence.add_draft("d1", 7, make_evidence("AQAD2")) is True
        assert await uow.evidence.add_draft("d2", 7, make_evidence("AQAD1")) is True
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.evidence.list_draft("d1") == [make_evidence("AQAD1"), make_evidence("AQAD2")]
        assert await uow.evidence.list_draft("d2") == [make_evidence("AQAD1")]
        assert await uow.evidence.list_draft("d3") == []


async def test_attach_binds_only_the_drafts_unbound_evidence(database: Database) -> None:
    async with database.uow() as uow:
        await uow.evidence.add_draft("d1", 7, make_evidence("AQAD1"))
        await uow.evidence.add_draft("d1", 7, make_evidence("AQAD2"))
        await uow.evidence.add_draft("d2", 7, make_evidence("AQAD3"))
        assert await uow.evidence.attach("d1", "R20261124-0001") == 2
        assert await uow.evidence.attach("d1", "R20261124-0002") == 0
        await uow.commit()


async def test_outbox_ignores_a_repeated_dedupe_key(database: Database) -> None:
    message = OutboxMessage(
        kind="case_filed", chat_id=7, dedupe_key="case_filed:R20261124-0001", payload={"a": [1]}, created_at=T0
    )
    async with database.uow() as uow:
        assert await uow.outbox.add(message) is True
        assert await uow.outbox.add(message) is False
        await uow.commit()
    async with database.uow() as uow:
        again = OutboxMessage(
            kind="case_filed", chat_id=None, dedupe_key=message.dedupe_key, payload={}, created_at=T0
        )
        assert await uow.outbox.add(again) is False


async def test_agent_requests_are_counted_per_chat(database: Database) -> None:
    async with database.uow() as uow:
        for minutes in range(3):
            await uow.agent_requests.add(
                AgentRequest(chat_id=7, user_id=70, created_at=T0 + timedelta(minutes=minutes), step="ask_order")
            )
        await uow.agent_requests.add(AgentRequest(chat_id=8, user_id=80, created_at=T0, case_no="R1"))
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.agent_requests.count_for_chat(7) == 3
        assert await uow.agent_requests.count_for_chat(8) == 1
        assert await uow.agent_requests.count_for_chat(9) == 0
