"""Conversations (one row per chat, versioned) and the requests for a human made in them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import AgentRequest, Conversation
from dialogs.io import Button, Reply
from dialogs.ports import ConcurrentUpdate
from storage.models import AgentRequestRow, ConversationRow
from storage.repositories import SessionRepository, execute_core, rowcount

_CONVERSATIONS = cast(Table, ConversationRow.__table__)
_LOAD_CONVERSATION = (
    select(_CONVERSATIONS).where(_CONVERSATIONS.c.chat_id == bindparam("chat_id")).with_for_update()
)
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
# SET takes the parameters named like columns; WHERE the w_ ones.
_UPDATE_CONVERSATION = update(_CONVERSATIONS).where(
    _CONVERSATIONS.c.chat_id == bindparam("w_chat_id"), _CONVERSATIONS.c.version == bindparam("w_version")
)
# Not a step of the dialog, so no new version: a save from a conversation loaded earlier may bring the
# replies back, and they are sent once more at worst.
_SETTLE_REPLIES = update(_CONVERSATIONS).where(
    _CONVERSATIONS.c.chat_id == bindparam("w_chat_id"),
    _CONVERSATIONS.c.unconfirmed_update == bindparam("w_update_id"),
)


class SqlaConversationRepository(SessionRepository):
    async def load(self, chat_id: int) -> Conversation | None:
        row = (await execute_core(self._session, _LOAD_CONVERSATION, {"chat_id": chat_id})).first()
        if row is None:
            return None
        return Conversation(
            chat_id=row.chat_id,
            user_id=row.user_id,
            locale=row.locale,
            step=row.step,
            data=dict(row.data),
            version=row.version,
            unconfirmed=tuple(_reply_from_json(r) for r in row.unconfirmed or ()),
            unconfirmed_update=row.unconfirmed_update,
            unconfirmed_since=row.unconfirmed_since,
            unconfirmed_by=row.unconfirmed_by,
        )

    async def save(self, conversation: Conversation) -> None:
        """Version 0 means never saved: INSERT; otherwise UPDATE guarded by the loaded version.
        On success `conversation.version` is the stored version."""
        values = {
            "user_id": conversation.user_id,
            "locale": conversation.locale,
            "step": conversation.step,
            "data": conversation.data,
            "updated_at": self._clock(),
            **_unconfirmed_values(conversation.unconfirmed, conversation.unconfirmed_update,
                                  conversation.unconfirmed_since, conversation.unconfirmed_by),
        }
        if conversation.version == 0:
            try:
                await execute_core(self._session, _INSERT_CONVERSATION,
                            {"chat_id": conversation.chat_id, "version": 1, **values})
            except IntegrityError as exc:
                raise ConcurrentUpdate(f"conversation {conversation.chat_id} created concurrently") from exc
            conversation.version = 1
            return
        result = await execute_core(self._session, _UPDATE_CONVERSATION, {
            "w_chat_id": conversation.chat_id, "w_version": conversation.version,
            "version": conversation.version + 1, **values,
        })
        if rowcount(result) == 0:
            raise ConcurrentUpdate(
                f"conversation {conversation.chat_id} moved past version {conversation.version}"
            )
        conversation.version += 1

    async def settle_replies(self, chat_id: int, update_id: int, left: Sequence[Reply]) -> None:
        await execute_core(self._session, _SETTLE_REPLIES, {
            "w_chat_id": chat_id, "w_update_id": update_id, **_unconfirmed_values(left, update_id, None, None)})


def _unconfirmed_values(replies: Sequence[Reply], update_id: int | None, since: datetime | None,
                        by: str | None) -> dict[str, Any]:
    if not replies:
        return {"unconfirmed": None, "unconfirmed_update": None, "unconfirmed_since": None, "unconfirmed_by": None}
    return {"unconfirmed": [_reply_to_json(r) for r in replies], "unconfirmed_update": update_id,
            "unconfirmed_since": since, "unconfirmed_by": by}


def _reply_to_json(reply: Reply) -> dict[str, Any]:
    return {"text": reply.text, "buttons": [[[b.text, b.token] for b in row] for row in reply.buttons]}


def _reply_from_json(raw: dict[str, Any]) -> Reply:
    return Reply(str(raw["text"]), tuple(tuple(Button(text, token) for text, token in row)
                                         for row in raw.get("buttons") or ()))


class SqlaAgentRequests(SessionRepository):
    """Each /agent (a customer asking for a person), with the step the conversation was at."""

    async def add(self, request: AgentRequest) -> None:
        await self._session.execute(
            insert(AgentRequestRow).values(
                chat_id=request.chat_id,
                user_id=request.user_id,
                case_no=request.case_no,
                order_no=request.order_no,
                step=request.step,
                created_at=request.created_at,
            )
        )

    async def count_for_chat(self, chat_id: int) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(AgentRequestRow).where(AgentRequestRow.chat_id == chat_id)
        )
        return int(count or 0)
