"""Who is on the desk: the staff directory in the database (dialogs.ports.StaffDirectory), seeded
from `[desk] agents / supervisors / aliases`.

The seed rule, in one place (`unseen`): a TOML member is added when the database has never seen that
user; someone removed in the app stays removed, whatever the TOML says. `seed` writes that at start;
`current_desk` applies the same rule when it reads (so a process that has not seeded yet, or a test
without a seeded database, sees exactly what the seed would write).
"""

from __future__ import annotations

from datetime import datetime

from dialogs.ports import StaffMember, UnitOfWork
from dialogs.settings import DeskSettings

AGENT, SUPERVISOR = "agent", "supervisor"
SEED_BY = "config"


def unseen(desk: DeskSettings, seen: set[int], at: datetime) -> list[StaffMember]:
    """The TOML members the database has never seen, in TOML order (agents, then supervisors)."""
    members: list[StaffMember] = []
    for user_id in dict.fromkeys(desk.agents + desk.supervisors):
        if user_id not in seen:
            role = SUPERVISOR if user_id in desk.supervisors else AGENT
            members.append(StaffMember(user_id=user_id, role=role, alias=desk.aliases.get(user_id),
                                       added_by=SEED_BY, added_at=at))
    return members


async def seed(uow: UnitOfWork, desk: DeskSettings, at: datetime) -> list[StaffMember]:
    """Add the TOML members the database has never seen (in the caller's unit of work); what was added."""
    seen = {m.user_id for m in await uow.staff.members(removed=True)}
    added = unseen(desk, seen, at)
    for member in added:
        await uow.staff.put(member, action="seed")
    return added


def with_staff(desk: DeskSettings, members: list[StaffMember]) -> DeskSettings:
    """`desk` with its agents, supervisors and aliases taken from `members` (a removed member keeps
    their alias, so old cards still name them, but acts no more)."""
    current = [m for m in members if m.removed_at is None]
    aliases = {m.user_id: m.alias for m in members if m.alias}
    return desk.model_copy(update={
        "agents": tuple(m.user_id for m in current if m.role == AGENT),
        "supervisors": tuple(m.user_id for m in current if m.role == SUPERVISOR),
        "aliases": aliases,
    })


async def current_desk(uow: UnitOfWork, desk: DeskSettings, at: datetime) -> DeskSettings:
    """The desk settings with the staff as the database has them now (plus the TOML members it has never
    seen: see the module's rule)."""
    members = await uow.staff.members(removed=True)
    members += unseen(desk, {m.user_id for m in members}, at)
    return with_staff(desk, members)


async def add(uow: UnitOfWork, desk: DeskSettings, user_id: int, *, supervisor: bool, alias: str | None, by: str,
              at: datetime) -> StaffMember:
    """Make `user_id` a current agent (or supervisor), audited as `by`. A TOML member the database has
    not seen yet is written first, so its first-added place stays what the seed gives it."""
    await seed(uow, desk, at)
    member = StaffMember(user_id=user_id, role=SUPERVISOR if supervisor else AGENT, alias=alias or None,
                         added_by=by, added_at=at)
    await uow.staff.put(member, action="add")
    return member


async def remove(uow: UnitOfWork, desk: DeskSettings, user_id: int, *, by: str, at: datetime) -> bool:
    """`user_id` acts on the desk no more (False: not a current member); the seed never brings them back."""
    await seed(uow, desk, at)
    return await uow.staff.remove(user_id, by=by, at=at)
