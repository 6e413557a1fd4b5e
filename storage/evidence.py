"""Evidence: photos kept in a draft while the customer files, then bound to the case."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import EvidenceItem
from dialogs.ports import ConcurrentUpdate
from storage.models import EvidenceRow
from storage.repositories import SessionRepository, execute_core, rowcount

_EVIDENCE = cast(Table, EvidenceRow.__table__)
_EVIDENCE_IN_DRAFT = select(_EVIDENCE.c.id).where(
    _EVIDENCE.c.draft_id == bindparam("draft_id"), _EVIDENCE.c.file_unique_id == bindparam("file_unique_id"))
_INSERT_EVIDENCE = insert(_EVIDENCE)
_LIST_DRAFT = select(_EVIDENCE).where(_EVIDENCE.c.draft_id == bindparam("draft_id")).order_by(_EVIDENCE.c.id)
_ATTACH = (  # only unbound rows: evidence already bound to a case stays with it
    update(_EVIDENCE).where(_EVIDENCE.c.draft_id == bindparam("w_draft_id"), _EVIDENCE.c.case_no.is_(None))
)


def evidence_from_row(row: EvidenceRow | Row[Any]) -> EvidenceItem:
    return EvidenceItem(
        file_unique_id=row.file_unique_id,
        file_id=row.file_id,
        path=row.path,
        sha256=row.sha256,
        mime_type=row.mime_type,
        width=row.width,
        height=row.height,
        size=row.size,
    )


class SqlaEvidenceRepository(SessionRepository):
    async def add_draft(self, draft_id: str, chat_id: int, item: EvidenceItem) -> bool:
        found = await execute_core(self._session, _EVIDENCE_IN_DRAFT,
                            {"draft_id": draft_id, "file_unique_id": item.file_unique_id})
        if found.first() is not None:
            return False
        try:
            await execute_core(self._session, _INSERT_EVIDENCE, {
                "draft_id": draft_id, "case_no": None, "chat_id": chat_id, "file_unique_id": item.file_unique_id,
                "file_id": item.file_id, "path": item.path, "sha256": item.sha256, "mime_type": item.mime_type,
                "width": item.width, "height": item.height, "size": item.size, "created_at": self._clock(),
            })
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"evidence {item.file_unique_id} added to {draft_id} concurrently") from exc
        return True

    async def list_draft(self, draft_id: str) -> list[EvidenceItem]:
        rows = await execute_core(self._session, _LIST_DRAFT, {"draft_id": draft_id})
        return [evidence_from_row(row) for row in rows]

    async def attach(self, draft_id: str, case_no: str) -> int:
        return rowcount(await execute_core(self._session, _ATTACH, {"w_draft_id": draft_id, "case_no": case_no}))

    async def prune_drafts(self, before: datetime) -> int:
        stale = (select(EvidenceRow.draft_id).where(EvidenceRow.case_no.is_(None))
                 .group_by(EvidenceRow.draft_id).having(func.max(EvidenceRow.created_at) < before))
        result = await self._session.execute(
            delete(EvidenceRow).where(EvidenceRow.case_no.is_(None), EvidenceRow.draft_id.in_(stale))
            .execution_options(synchronize_session=False))
        return rowcount(result)

    async def stored_digests(self) -> set[str]:
        return set((await self._session.scalars(select(EvidenceRow.sha256).distinct())).all())
