"""Macros ([[desk.macros]]): `/m` lists them, `/m KEY` in a taken-over case's topic sends one to the
customer, in the customer's language, filled with the case's facts. It leaves through the outbox like
everything else the customer gets, and the topic shows what was sent. Anything wrong (an unknown key,
not the owner, a fact the item does not have) is refused in the topic and sends nothing.
"""

from __future__ import annotations

from dialogs import ledger
from dialogs.desk.base import DeskBase, Turn
from dialogs.domain import DeskItem
from dialogs.outbox import CUSTOMER_TEXT
from dialogs.ports import UnitOfWork
from dialogs.settings import Macro, placeholders
from dialogs.sla import next_deadline
from dialogs.texts import money

COMMAND = "m"


class Macros(DeskBase):
    def _macro_named(self, key: str) -> Macro | None:
        return next((m for m in self.desk.macros if m.key.lower() == key.lower()), None)

    async def _macros(self, uow: UnitOfWork, turn: Turn, args: str) -> None:
        key = args.split()[0] if args.split() else ""
        if not key:
            if not self.desk.macros:
                await self._answer(uow, turn, "desk.macro.none")
                return
            lines = "\n".join(f"• {m.key}: {m.zh_CN if self.t.locale == 'zh_CN' else m.en}"[:120]
                              for m in self.desk.macros)
            await self._answer(uow, turn, "desk.macro.list", {"macros": lines})
            return
        item = turn.topic_item
        if item is None or turn.event.private:
            await self._answer(uow, turn, "desk.macro.not_here")
            return
        macro = self._macro_named(key)
        if macro is None:
            await self._answer(uow, turn, "desk.macro.unknown", {"name": key})
            return
        await self._lock(uow, item)
        item = await uow.desk.get(item.key) or item
        if item.owner_id != turn.event.user_id or item.closed_at is not None:
            await self._answer(uow, turn, "desk.macro.not_owner", {"case": item.key})
            return
        conv = await uow.conversations.load(item.chat_id)
        locale = conv.locale if conv is not None else self.settings.i18n.default_locale
        template = macro.zh_CN if locale == "zh_CN" else macro.en
        values = await self._macro_values(uow, item, locale)
        missing = sorted(name for name in placeholders(template) if not values.get(name))
        if missing:
            await self._answer(uow, turn, "desk.macro.missing",
                               {"name": macro.key, "missing": ", ".join(f"{{{n}}}" for n in missing)})
            return
        text = template.format(**values)
        stamp = f"u{turn.event.update_id}"
        await uow.desk.touch(item.key, at=turn.now)
        await self._record(uow, turn.event.user_id, item, "macro", turn.now, macro.key)
        await self._queue(uow, CUSTOMER_TEXT, item.chat_id, f"desk:{item.key}:macro:{stamp}",
                          {"text_key": "desk.macro.to_customer", "params": {"text": text}, "locale": locale},
                          turn.now)
        await self._answer(uow, turn, "desk.macro.sent", {"name": macro.key, "text": text})

    async def _macro_values(self, uow: UnitOfWork, item: DeskItem, locale: str) -> dict[str, str]:
        """The facts a macro may name; a request without a case has only the agent's alias."""
        assert item.owner_id is not None
        values = {"alias": self.desk.alias(item.owner_id, locale)}
        case = await uow.cases.get(item.case_no) if item.case_no else None
        if case is None:
            return values
        deadline = next_deadline(case)
        values.update(case_no=case.case_no, order_no=case.order_no, amount=money(case.amount),
                      refundable=money(await ledger.refundable(uow, case)),
                      deadline=deadline[1].isoformat() if deadline else "")
        return values
