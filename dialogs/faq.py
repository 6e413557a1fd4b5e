"""FAQ auto-replies ([[faq]]): a customer's free text that contains a configured keyword gets the
entry's answer, in the customer's language. Only where the bot expects no free text (the router asks at
the idle step, before a text that is not an order number would get the idle hint): a description, an
order number, phone digits or anything an agent is reading in a takeover never reach here.

An entry's `*_with_case` answer is for a customer with an open case and may name it (FAQ_VARIABLES);
without one, or when a variable it uses is empty, the plain answer is given.
"""

from __future__ import annotations

from dialogs.domain import OPEN_STATUSES, Case
from dialogs.ports import UnitOfWork
from dialogs.settings import FaqEntry, placeholders
from dialogs.sla import next_deadline
from dialogs.texts import Texts


def match(text: str, entries: tuple[FaqEntry, ...]) -> FaqEntry | None:
    """The first entry (in configuration order) one of whose keywords, in either language, is in `text`."""
    said = text.casefold()
    for entry in entries:
        if any(k.strip() and k.strip().casefold() in said for k in entry.keywords_zh_CN + entry.keywords_en):
            return entry
    return None


def _values(case: Case, t: Texts) -> dict[str, str]:
    deadline = next_deadline(case)
    return {"case_no": case.case_no, "order_no": case.order_no, "status": t(f"status.{case.status.value}"),
            "deadline": deadline[1].isoformat() if deadline else ""}


async def open_case(uow: UnitOfWork, user_id: int, chat_id: int) -> Case | None:
    """The customer's newest case still in progress in this chat."""
    return next((c for c in await uow.cases.list_for_user(user_id)
                 if c.status in OPEN_STATUSES and c.chat_id == chat_id), None)


async def answer(uow: UnitOfWork, entry: FaqEntry, user_id: int, chat_id: int, t: Texts) -> str:
    plain, with_case = (entry.zh_CN, entry.zh_CN_with_case) if t.locale == "zh_CN" else (entry.en, entry.en_with_case)
    if with_case:
        case = await open_case(uow, user_id, chat_id)
        if case is not None:
            values = _values(case, t)
            if all(values.get(name) for name in placeholders(with_case)):
                return with_case.format(**values)
    return plain
