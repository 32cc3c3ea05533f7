"""Typed, immutable views of the rows the gateway returns.

The gateway hands back PostgREST's JSON shape (uuids and timestamps as strings, numerics as
numbers); :func:`parse` turns a row into one of these frozen dataclasses using the field
annotations, so each model is declared once and parsed the same way everywhere. Frozen
dataclasses rather than pydantic: the parsing needed is a dozen lines, the models stay plain
values that mypy checks strictly, and the library does not lean on a package it only gets
transitively (pydantic comes with supabase-py, which local-only users do not otherwise need
at import time).

The row models themselves are generated from the catalog into :mod:`pysync.datasources.rows`
(``pysync gen types --lang python``; a test fails when they drift from the schema) and
re-exported here beside what is written by hand: pagination, aggregates and storage objects.
Columns the model does not name (``sync_xid``, columns added by later migrations) are ignored,
so an older client keeps working against a newer schema. Enum-like columns are ``Literal``
types mirroring the tables' check constraints; a value outside them raises
:class:`ModelError`, because it means the client and the schema disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pysync.datasources import rows
from pysync.datasources.rows import (
    Assignment,
    ContentItem,
    ContentItemContentType,
    ContentItemKind,
    Conversation,
    Course,
    CourseVisibility,
    Device,
    DevicePlatform,
    Enrollment,
    Message,
    Notification,
    NotificationPreference,
    NotificationPreferenceCategory,
    Participant,
    Payment,
    Profile,
    ProfileRole,
    Refund,
    SessionFeedback,
    Submission,
    SupportQuery,
    SupportQueryStatus,
    SupportReply,
    TutoringSession,
    TutoringSessionStatus,
)
from pysync.errors import PysyncError

__all__ = [
    "Assignment",
    "ContentItem",
    "Conversation",
    "Course",
    "Cursor",
    "Device",
    "Enrollment",
    "Message",
    "ModelError",
    "Notification",
    "NotificationPreference",
    "Page",
    "Participant",
    "Payment",
    "Profile",
    "Refund",
    "SessionFeedback",
    "StoredObject",
    "Submission",
    "SupportQuery",
    "SupportReply",
    "TutorRating",
    "TutoringSession",
    "parse",
]

# The enum-like column types under the names the data sources' signatures use.
Role = ProfileRole
CourseStatus = rows.CourseStatus
Visibility = CourseVisibility
ContentKind = ContentItemKind
ContentType = ContentItemContentType
EnrollmentStatus = rows.EnrollmentStatus
SessionStatus = TutoringSessionStatus
SubmissionStatus = rows.SubmissionStatus
ConversationKind = rows.ConversationKind
ParticipantRole = rows.ParticipantRole
NotificationType = rows.NotificationType
Category = NotificationPreferenceCategory
Platform = DevicePlatform
PaymentStatus = rows.PaymentStatus
RefundStatus = rows.RefundStatus
TicketStatus = SupportQueryStatus


class ModelError(PysyncError):
    """A row does not fit its model (a missing column, or a value of the wrong kind)."""


M = TypeVar("M")
T = TypeVar("T")


def _convert(kind: Any, value: Any, where: str) -> Any:
    """``value`` (JSON) as ``kind`` (an annotation), or :class:`ModelError`."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None:
            if type(None) in options:
                return None
            raise ModelError(f"{where} is null")
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(inner, value, where)
    if value is None and kind is not Any:
        raise ModelError(f"{where} is null")
    try:
        if origin is Literal:
            if value not in typing.get_args(kind):
                raise ModelError(f"{where}: {value!r} is not one of {typing.get_args(kind)}")
            return value
        if kind is UUID:
            return value if isinstance(value, UUID) else UUID(str(value))
        if kind is datetime:
            return value if isinstance(value, datetime) else datetime.fromisoformat(value)
        if kind is date:
            return value if isinstance(value, date) else date.fromisoformat(value)
        if kind is Decimal:
            return Decimal(str(value))
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind in (str, bool) and not isinstance(value, kind):
            raise ModelError(f"{where}: expected {kind.__name__}, got {value!r}")
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: cannot read {value!r}: {exc}") from exc
    return value


@functools.cache
def _hints(cls: Any) -> tuple[tuple[str, Any, bool], ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            f.name,
            hints[f.name],
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def parse(model: type[M], row: Mapping[str, Any]) -> M:
    """``row`` (a gateway row) as an instance of the dataclass ``model``."""
    values: dict[str, Any] = {}
    shape: Any = model  # classes are hashable; mypy cannot tell for a type variable
    for name, kind, optional in _hints(shape):
        if name not in row:
            if optional:
                continue
            raise ModelError(f"{model.__name__}.{name} is missing from the row")
        values[name] = _convert(kind, row[name], f"{model.__name__}.{name}")
    return model(**values)


# -- pagination ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A keyset position: the ``(created_at, id)`` of the last item of a page.

    Rows are ordered by ``created_at desc, id desc``; the next page holds the rows strictly
    after this pair in that order, so rows sharing a timestamp are neither repeated nor
    skipped, and rows inserted meanwhile do not shift the pages (as an offset would).
    """

    created_at: datetime
    id: UUID


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items newest first, and the cursor of the next (older) page, ``None`` at the end."""

    items: tuple[T, ...]
    next: Cursor | None = None

    def __iter__(self) -> typing.Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# -- aggregates --------------------------------------------------------------------------


@dataclass(frozen=True)
class TutorRating:
    """Only aggregates leave the server (``public.tutor_rating``); ``None`` without ratings."""

    average_rating: Decimal | None
    ratings: int


# -- storage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """A file in a storage bucket: where it is and what the Storage API recorded about it."""

    bucket_id: str
    name: str
    id: UUID | None = None
    size: int | None = None
    mimetype: str | None = None
    owner_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
