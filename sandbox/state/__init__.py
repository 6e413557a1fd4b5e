"""The in-memory world of the emulated Telegram, one `EmulatorState` made of parts by concern.

The HTTP layer (server.py, botapi.py, webhook.py) only translates requests into calls on the state;
`Notifier` lets long polls and the webhook deliverer sleep until something changes. Each part owns its
data, gets the parts it needs when it is built, and is rebuilt whole by `reset()`:

    people.py     BotIdentity, User, Chat; `People`: the users and every chat by id, blocking the bot
    updates.py    UpdateRecord, WebhookConfig; `UpdateQueue`: what the bot has still to hear
    files.py      StoredFile; `FileStore`: uploads by file_id, getFile's paths
    messages.py   Message; `MessageStore`: messages by chat, their Bot API and control shapes, edits
    groups.py     `Groups`: supergroups, members, privacy mode (`bot_sees`), service messages
    topics.py     `Topics`: where a message lands (`resolve_thread`), forum topics and General
    actions.py    `UserActions`: what people do through the control API; callback queries
    faults.py     ApiCall, FaultRule, Limits; `CallLog`: the call log, faults on demand, flood limits
    settings.py   `BotSettings`: commands, other settings, tokens, chat actions
    directory.py  read-only views: the web page's directory, the control API's summary
    notifier.py   `Notifier` and `now_ts`

Why composition behind a forwarding table rather than mixins: with mixins every part would write
into one shared `self`, and who owns `queue` or `chats` would be a convention; here each part holds
its own data and says what it depends on in its constructor. The rest of the sandbox and the tests
keep calling the same names on `EmulatorState`: the table below sends each name to the part that
owns it (data attributes read and write through), so "where does X live" is answered by one line.
"""

from __future__ import annotations

from typing import Any

from ..formatting import utf16_len
from ..forum import ForumTopic, Member, ThreadError, ThreadTarget
from . import directory as _views
from .actions import CallbackQueryRecord, UserActions, find_callback_data, iter_buttons
from .faults import CALL_LOG_MAX, ApiCall, CallLog, FaultRule, Limits
from .files import GETFILE_MAX_BYTES, FileStore, StoredFile
from .groups import Groups
from .messages import Message, MessageStore
from .notifier import Notifier, now_ts
from .people import BOT_USER_ID, BotIdentity, Chat, People, User
from .settings import BotSettings
from .topics import Topics
from .updates import NOT_DEFAULT_UPDATES, UpdateQueue, UpdateRecord, WebhookConfig


class _On:
    """A public name of EmulatorState that one of its parts owns: reads and writes go to that part."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, state: Any, owner: type | None = None) -> Any:
        if state is None:
            return self
        return getattr(getattr(state, self.part), self.name)

    def __set__(self, state: Any, value: Any) -> None:
        setattr(getattr(state, self.part), self.name, value)


class EmulatorState:
    def __init__(self, bot: BotIdentity | None = None, update_id_base: int | None = None) -> None:
        self.bot = bot or BotIdentity()
        self.changed = Notifier()
        # Bumped (by touch) when something a person would see changes: a message, an edit, a deletion, a
        # topic, a member, a user; not by polling or confirmations. The web page's live feed follows it.
        self.revision = 0
        self._clear(update_id_base)

    def _clear(self, update_id_base: int | None = None) -> None:
        """Build every part afresh; the bot identity, the notifier and the revision stay."""
        touch = self.touch
        self._updates = UpdateQueue(self.changed, update_id_base)
        self._people = People(self.bot, touch, self._updates)
        self._files = FileStore()
        self._messages = MessageStore(self._people, self._files, touch)
        self._calls = CallLog()
        self._settings = BotSettings()
        self._groups = Groups(self.bot, self._people, self._messages, self._updates, touch)
        self._topics = Topics(self.bot, self._people, self._messages, self._groups, touch)
        self._actions = UserActions(self._people, self._messages, self._files, self._groups, self._topics,
                                    self._updates)

    def touch(self) -> None:
        """Something people see changed: bump the revision and wake the waiters."""
        self.revision += 1
        self.changed.notify()

    def reset(self) -> None:
        """Forget everything except the bot identity."""
        self._clear()
        self.touch()

    def clear_chats(self) -> None:
        """Empty every chat as "clear history" would, for a fresh demo: messages, forum topics, pending
        updates, callback queries, files and chat actions go; users (with their language), groups, members,
        the bot's settings, webhook, polling offset, limits and faults stay. Message and update ids keep
        counting up, so nothing the bot still remembers can point at a new message."""
        for chat in self._people.chats.values():
            chat.message_ids.clear()
            chat.topics.clear()
            chat.general_closed = chat.general_hidden = False
        self._messages.messages.clear()
        self._updates.clear()
        self._actions.callback_queries.clear()
        self._files.clear()
        self._settings.chat_actions.clear()
        self.touch()

    def directory(self) -> dict[str, Any]:
        """Who and where, for the web page (directory.py)."""
        return _views.directory(self.bot, self._people, self._messages, self.revision)

    def summary(self) -> dict[str, Any]:
        """What /control/state shows (directory.py)."""
        return _views.summary(self._updates, self._people, self._settings, self._calls)

    # ---- users and chats: people.py ----------------------------------------------------------------
    users = _On("_people")
    chats = _On("_people")
    add_user = _On("_people")
    require_user = _On("_people")
    set_language = _On("_people")
    chat_to_api = _On("_people")
    user_to_api = _On("_people")
    set_blocked = _On("_people")

    # ---- supergroups, members, privacy mode: groups.py ---------------------------------------------
    create_group = _On("_groups")
    require_group = _On("_groups")
    require_present = _On("_groups")
    member_to_api = _On("_groups")
    set_member = _On("_groups")
    can_manage_topics = _On("_groups")
    bot_sees = _On("_groups")

    # ---- forum topics: topics.py -------------------------------------------------------------------
    resolve_thread = _On("_topics")
    in_thread = _On("_topics")
    create_topic = _On("_topics")
    edit_topic = _On("_topics")
    set_topic_closed = _On("_topics")
    delete_topic = _On("_topics")
    set_general = _On("_topics")

    # ---- messages: messages.py ---------------------------------------------------------------------
    messages = _On("_messages")
    add_message = _On("_messages")
    get_message = _On("_messages")
    chat_messages = _On("_messages")
    new_media_group_id = _On("_messages")
    message_to_api = _On("_messages")
    message_to_control = _On("_messages")
    record_edit = _On("_messages")

    # ---- files: files.py ---------------------------------------------------------------------------
    files = _On("_files")
    files_by_path = _On("_files")
    store_file = _On("_files")
    store_photo = _On("_files")
    photo_size = _On("_files")
    document_dict = _On("_files")
    assign_file_path = _On("_files")

    # ---- the update queue, getUpdates and the webhook: updates.py ----------------------------------
    updates = _On("_updates")
    queue = _On("_updates")
    next_update_id = _On("_updates")
    last_offset = _On("_updates")
    allowed_updates = _On("_updates")
    polling_generation = _On("_updates")
    webhook = _On("_updates")
    queue_update = _On("_updates")
    queue_raw = _On("_updates")
    redeliver = _On("_updates")
    confirm = _On("_updates")
    drop_pending = _On("_updates")
    is_allowed = _On("_updates")
    apply_offset = _On("_updates")
    take_updates = _On("_updates")

    # ---- what people do: actions.py ----------------------------------------------------------------
    callback_queries = _On("_actions")
    user_send_text = _On("_actions")
    user_send_photo = _On("_actions")
    user_send_document = _On("_actions")
    user_send_video = _On("_actions")
    user_send_file_ref = _On("_actions")
    user_send_sticker = _On("_actions")
    user_send_voice = _On("_actions")
    user_send_location = _On("_actions")
    user_edit_text = _On("_actions")
    user_press = _On("_actions")
    user_create_topic = _On("_actions")
    user_topic_action = _On("_actions")

    # ---- the call log, faults and flood limits: faults.py ------------------------------------------
    calls = _On("_calls")
    faults = _On("_calls")
    limits = _On("_calls")
    log_call = _On("_calls")
    calls_to_control = _On("_calls")
    add_fault = _On("_calls")
    take_fault = _On("_calls")

    # ---- the bot's settings: settings.py -----------------------------------------------------------
    commands = _On("_settings")
    bot_settings = _On("_settings")
    chat_actions = _On("_settings")
    tokens = _On("_settings")
    commands_key = _On("_settings")
    commands_to_control = _On("_settings")


__all__ = [
    "BOT_USER_ID", "CALL_LOG_MAX", "GETFILE_MAX_BYTES", "NOT_DEFAULT_UPDATES", "ApiCall", "BotIdentity",
    "CallbackQueryRecord", "Chat", "EmulatorState", "FaultRule", "ForumTopic", "Limits", "Member", "Message",
    "Notifier", "StoredFile", "ThreadError", "ThreadTarget", "UpdateRecord", "User", "WebhookConfig",
    "find_callback_data", "iter_buttons", "now_ts", "utf16_len",
]
