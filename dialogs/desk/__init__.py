"""The agents' desk: what agents do in their forum supergroup (and, for /queue and /take, in a private
chat with the bot), what a taken-over customer chat does meanwhile, and how the desk looks there.

One room per concern:
- commands.py   the commands and button actions, and how they are read
- auth.py       who may do what (agents, owners, supervisors, the two-person rule)
- service.py    DeskService: which updates are the desk's, and routing each to its action
- takeover.py   taking over a customer's chat, releasing, closing, notes, copying messages both ways
- decisions.py  approve (and confirm), reject, ask for more
- queue.py      /queue
- idle.py       reminding a quiet owner, handing the item back
- base.py       what they share: answers, outbox rows, the audit, the lock order
- cards.py      the desk card's text and buttons, a topic's name, quoted batches (rendered by
                dialogs.notify when the relay sends a desk row)
- history.py    the card's history in words: a phrase for every event the lifecycle and the desk record
"""

from dialogs.desk.auth import OWNER_ACTIONS, Refusal, refusal
from dialogs.desk.commands import (
    ACTIONS,
    COMMANDS,
    PRIVATE_COMMANDS,
    TOKEN_PREFIX,
    desk_token,
    parse_amount,
    parse_token,
    request_key,
)
from dialogs.desk.service import DeskService
from dialogs.desk.takeover import TAKEOVER

__all__ = [
    "ACTIONS",
    "COMMANDS",
    "OWNER_ACTIONS",
    "PRIVATE_COMMANDS",
    "TAKEOVER",
    "TOKEN_PREFIX",
    "DeskService",
    "Refusal",
    "desk_token",
    "parse_amount",
    "parse_token",
    "refusal",
    "request_key",
]
