"""Files a customer sends as evidence, as callbacks of the conversation's table (mixed into `Dialog`):
the draft's photos, videos and documents (PDFs, chat exports), and the files a case action adds
(needs_info, an appeal).

A file arrives inspected by the adapter (dialogs.io.FileInspection); one that fails the inspection,
repeats one already kept, or passes the limit is refused with the reason, never silently dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dialogs.dialog_part import DialogPart
from dialogs.domain import EvidenceItem, Reason
from dialogs.io import Button, FileRef


def _received_key(file: FileRef | None) -> str:
    """The thanks names what came: a screenshot, or a video, a PDF, a chat export."""
    mime = file.inspection.mime_type if file is not None and file.inspection is not None else ""
    if mime.startswith("video/"):
        return "evidence_received.video"
    if mime == "application/pdf":
        return "evidence_received.pdf"
    if mime.startswith("text/"):
        return "evidence_received.text"
    return "evidence_received"


class EvidenceIntake(DialogPart):
    """Callbacks of the evidence rows; mixed into dialogs.conversation.Dialog."""

    if TYPE_CHECKING:  # provided by Dialog
        def chosen_reason(self) -> Reason: ...

    def evidence_prompt_buttons(self) -> tuple[tuple[Button, ...], ...]:
        needed = self.settings.policy.evidence_needed(self.chosen_reason())
        done_key = "btn_skip" if needed == 0 and self.evidence_count == 0 else "btn_done"
        return ((self.button(done_key, "done"),), (self.button("btn_cancel", "cancel"),))

    async def ask_evidence(self) -> None:
        self.new_nonce()
        needed = self.settings.policy.evidence_needed(self.chosen_reason())
        key = "ask_evidence_required" if needed else "ask_evidence_optional"
        self.say(key, self.evidence_prompt_buttons(), needed=needed, max=self.settings.policy.max_evidence,
                 kinds=self.t(f"evidence_kinds.{self.chosen_reason().value}"))

    async def take_evidence(self) -> None:
        """Store the file if it is acceptable; the reply says why not otherwise."""
        self.evidence_count = len(await self.uow.evidence.list_draft(self.data["draft_id"]))
        file = self.event.file
        if file is None or file.inspection is None:
            self._evidence_problem = "unreadable"
            return
        if self.evidence_count >= self.settings.policy.max_evidence:
            self._evidence_problem = "too_many"
            return
        found = file.inspection
        if not found.ok:
            self._evidence_problem = found.problem or "unreadable"
            return
        item = EvidenceItem(
            file_unique_id=file.file_unique_id, file_id=file.file_id, path=found.path, sha256=found.sha256,
            mime_type=found.mime_type, width=found.width, height=found.height, size=found.size,
        )
        if await self.uow.evidence.add_draft(self.data["draft_id"], self.event.chat_id, item):
            self.evidence_count += 1
        else:
            self._evidence_problem = "duplicate"

    async def evidence_full(self) -> bool:
        return self._evidence_problem is None and self.evidence_count >= self.settings.policy.max_evidence

    def evidence_limits(self) -> dict[str, Any]:
        return {
            "max_photo_mb": self.settings.policy.max_photo_mb,
            "max_document_mb": self.settings.policy.max_document_mb,
            "max_pixels_mp": round(self.settings.policy.max_pixels / 1_000_000),
            "max": self.settings.policy.max_evidence,
            "max_video_mb": self.settings.policy.max_video_mb,
            "max_video_min": self.settings.policy.max_video_seconds / 60,
            "max_pdf_mb": self.settings.policy.max_pdf_mb,
            "max_text_kb": self.settings.policy.max_text_kb,
        }

    async def say_evidence_progress(self) -> None:
        if self._evidence_problem:
            self.say(f"evidence_problem.{self._evidence_problem}", self.evidence_prompt_buttons(),
                     **self.evidence_limits())
        else:
            self.say(_received_key(self.event.file), self.evidence_prompt_buttons(), count=self.evidence_count,
                     **self.evidence_limits())

    async def count_evidence(self) -> None:
        self.evidence_count = len(await self.uow.evidence.list_draft(self.data["draft_id"]))

    async def enough_evidence(self) -> bool:
        return self.evidence_count >= self.settings.policy.evidence_needed(self.chosen_reason())

    async def say_evidence_required(self) -> None:
        needed = self.settings.policy.evidence_needed(self.chosen_reason())
        self.say("evidence_required", self.evidence_prompt_buttons(), needed=needed, count=self.evidence_count)
