"""Conversations and messages, notifications, devices and notification preferences."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from pysync.datasources._base import DataSource, IdLike
from pysync.datasources.models import (
    Category,
    Conversation,
    Cursor,
    Device,
    Message,
    Notification,
    NotificationPreference,
    Page,
    Participant,
    Platform,
    parse,
)
from pysync.gateway import Conflict, NotFound, asc, desc, eq, in_, is_null

__all__ = [
    "ConversationsSource",
    "DevicesSource",
    "MessagesSource",
    "NotificationsSource",
    "PreferencesSource",
]


def _cursor(item: Message | Notification) -> Cursor:
    return Cursor(item.created_at, item.id)


class ConversationsSource(DataSource):
    """Conversations are created by the server's RPCs only, so both people (or the whole
    class) are always in them."""

    table = "conversations"

    def start_direct(self, user_id: IdLike) -> Conversation:
        """Open, or find, the direct conversation between the caller and ``user_id``."""
        return parse(Conversation, self._gw.rpc("start_direct_conversation", {"other": user_id}))

    def start_for_course(self, course_id: IdLike, title: str | None = None) -> Conversation:
        """A course's group conversation (its tutor only); members follow enrollments."""
        args: dict[str, object] = {"course": course_id}
        if title is not None:
            args["title"] = title
        return parse(Conversation, self._gw.rpc("start_course_conversation", args))

    def get(self, conversation_id: IdLike) -> Conversation:
        return self._get(Conversation, conversation_id)

    def list_mine(self) -> list[Conversation]:
        """The caller's conversations, most recent activity first."""
        mine = self._gw.select(
            "conversation_participants",
            columns="conversation_id",
            filters=[eq("user_id", self._me)],
        ).rows
        ids = [row["conversation_id"] for row in mine]
        if not ids:
            return []
        return self._list(
            Conversation,
            [in_("id", ids)],
            [desc("last_message_at", nulls_first=False), desc("created_at")],
        )

    def participants(self, conversation_id: IdLike) -> list[Participant]:
        return self._list(
            Participant,
            [eq("conversation_id", conversation_id)],
            [asc("joined_at")],
            table="conversation_participants",
        )

    def rename(
        self, conversation_id: IdLike, title: str, *, expected_version: int | None = None
    ) -> Conversation:
        return self._update(
            Conversation, conversation_id, {"title": title}, expected_version=expected_version
        )

    def mark_read(self, conversation_id: IdLike, at: datetime | None = None) -> Participant:
        """Move the caller's read marker in a conversation (to now by default)."""
        rows = self._gw.update(
            "conversation_participants",
            {"last_read_at": at or datetime.now(UTC)},
            filters=[eq("conversation_id", conversation_id), eq("user_id", self._me)],
        )
        if not rows:
            raise NotFound(f"you are not in conversation {conversation_id}", code="PGRST116")
        return parse(Participant, rows[0])


class MessagesSource(DataSource):
    table = "messages"

    def send(
        self,
        conversation_id: IdLike,
        body: str,
        id: IdLike | None = None,
        *,
        attachment_path: str | None = None,
        created_at: datetime | None = None,
    ) -> Message:
        """Post a message as the caller.

        ``id`` lets an offline client choose the id when the message is written locally, so
        sending it again after a lost response is harmless: a retry that meets its own
        earlier message (same id, sender and conversation) returns that message.
        ``created_at`` is when it was written offline; the server never lets it lie in the
        future.
        """
        message_id = UUID(str(id)) if id is not None else uuid4()
        row: dict[str, object] = {
            "id": message_id,
            "conversation_id": conversation_id,
            "sender_id": self._me,
            "body": body,
            "attachment_path": attachment_path,
        }
        if created_at is not None:
            row["created_at"] = created_at
        try:
            return self._insert(Message, row)
        except Conflict:
            existing = self._gw.select(self.table, filters=[eq("id", message_id)]).rows
            if existing:
                message = parse(Message, existing[0])
                if message.sender_id == self._me and str(message.conversation_id) == str(
                    conversation_id
                ):
                    return message
            raise

    def get(self, message_id: IdLike) -> Message:
        return self._get(Message, message_id)

    def page(
        self, conversation_id: IdLike, before: Cursor | None = None, limit: int = 50
    ) -> Page[Message]:
        """Messages of a conversation, newest first, ``limit`` at a time; pass the page's
        ``next`` as ``before`` for older ones. A conversation the caller is not in reads as
        empty (row level security shows no row)."""
        return self._keyset(
            Message, [eq("conversation_id", conversation_id)], before, limit, _cursor
        )

    def edit(
        self, message_id: IdLike, body: str, *, expected_version: int | None = None
    ) -> Message:
        return self._update(Message, message_id, {"body": body}, expected_version=expected_version)

    def delete(self, message_id: IdLike, *, expected_version: int | None = None) -> Message:
        """Soft delete: the row stays in the history, its text and attachment are cleared
        (the server stamps ``deleted_at``)."""
        return self._update(
            Message,
            message_id,
            {"deleted_at": datetime.now(UTC)},
            expected_version=expected_version,
        )


class NotificationsSource(DataSource):
    table = "notifications"

    def page(
        self,
        before: Cursor | None = None,
        limit: int = 50,
        unread_only: bool = False,
    ) -> Page[Notification]:
        filters = [eq("recipient_id", self._me)]
        if unread_only:
            filters.append(is_null("read_at"))
        return self._keyset(Notification, filters, before, limit, _cursor)

    def unread_count(self) -> int:
        result = self._gw.select(
            self.table,
            columns="id",
            filters=[eq("recipient_id", self._me), is_null("read_at")],
            limit=0,
            count=True,
        )
        return result.count or 0

    def mark_read(self, notification_id: IdLike) -> Notification:
        return self._update(Notification, notification_id, {"read_at": datetime.now(UTC)})

    def mark_all_read(self) -> int:
        """Mark every unread notification read; how many there were."""
        rows = self._gw.update(
            self.table,
            {"read_at": datetime.now(UTC)},
            filters=[eq("recipient_id", self._me), is_null("read_at")],
        )
        return len(rows)

    def delete(self, notification_id: IdLike) -> None:
        self._delete(notification_id)


class DevicesSource(DataSource):
    table = "devices"

    def register(
        self,
        device_id: str,
        platform: Platform,
        *,
        push_token: str | None = None,
        app_version: str | None = None,
    ) -> Device:
        """Record (or refresh) this app install of the caller; ``device_id`` is the app's own
        stable id, so registering again updates the same row. A token or version left out
        keeps its stored value (:meth:`unregister` removes the install)."""
        row: dict[str, object] = {
            "user_id": self._me,
            "device_id": device_id,
            "platform": platform,
            "last_active_at": datetime.now(UTC),
        }
        if push_token is not None:
            row["push_token"] = push_token
        if app_version is not None:
            row["app_version"] = app_version
        (written,) = self._gw.upsert(self.table, row, on_conflict=("user_id", "device_id"))
        return parse(Device, written)

    def list_mine(self) -> list[Device]:
        return self._list(Device, [eq("user_id", self._me)], [desc("last_active_at")])

    def unregister(self, device_id: str) -> None:
        self._gw.delete(self.table, filters=[eq("user_id", self._me), eq("device_id", device_id)])


class PreferencesSource(DataSource):
    """Per-category push preferences; every category has a row (on by default)."""

    table = "notification_preferences"

    def list_mine(self) -> list[NotificationPreference]:
        return self._list(NotificationPreference, [eq("user_id", self._me)], [asc("category")])

    def as_dict(self) -> dict[str, bool]:
        return {p.category: p.enabled for p in self.list_mine()}

    def set(self, category: Category, enabled: bool) -> NotificationPreference:
        rows = self._gw.update(
            self.table,
            {"enabled": enabled},
            filters=[eq("user_id", self._me), eq("category", category)],
        )
        if not rows:
            raise NotFound(f"no {category!r} preference for you", code="PGRST116")
        return parse(NotificationPreference, rows[0])
