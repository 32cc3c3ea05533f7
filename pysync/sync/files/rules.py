"""Which columns of synced tables name files, in which Storage bucket, under which path.

A :class:`FileRule` ties one column (``messages.attachment_path``) to one bucket
(``chat-attachments``) and builds the object path of a file attached to a row from the row
itself. The path is *deterministic*: the same row and file name always give the same path, so
an upload retried after a crash or a lost answer writes the same object again instead of a
second one. Each path starts with the folders the bucket's policies check
(``policies/storage.sql``), so Storage decides an upload exactly as it decides any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pysync.sync.errors import SyncError

__all__ = ["PLATFORM_RULES", "FileRule", "safe_filename"]

Row = Mapping[str, Any]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """``name`` as one path segment Storage accepts everywhere: letters, digits, ``.``, ``_``
    and ``-`` (anything else becomes ``_``), at most 100 characters, never empty or dots."""
    cleaned = _UNSAFE.sub("_", name.rsplit("/", 1)[-1]).strip("._")[-100:]
    if not cleaned:
        raise SyncError(f"{name!r} is not a usable file name")
    return cleaned


def _folders(*columns: str) -> Callable[[Row, str], str]:
    """A path builder: the row's ``columns`` as folders, then the row id, then the file."""

    def build(row: Row, filename: str) -> str:
        parts = []
        for column in (*columns, "id"):
            value = row.get(column)
            if value in (None, ""):
                raise SyncError(f"a file path needs the row's {column}")
            parts.append(str(value))
        return "/".join([*parts, safe_filename(filename)])

    return build


@dataclass(frozen=True)
class FileRule:
    """``table.column`` holds object paths in Storage bucket ``bucket``."""

    table: str
    column: str
    bucket: str
    #: Builds the object path of ``filename`` attached to a row (its values, id included).
    path: Callable[[Row, str], str]
    #: Retried uploads overwrite (``x-upsert``): the object of a deterministic path is the
    #: same file, so replacing it is idempotent. Off for a bucket whose policies allow
    #: inserts but not updates: a retry then accepts an existing object with the same ETag.
    upsert: bool = True
    #: Download this column's files after every sync, not only when opened (course
    #: materials of an enrolled course).
    eager: bool = False


#: The platform's file columns (``supabase/migrations``, ``policies/storage.sql``).
PLATFORM_RULES: Sequence[FileRule] = (
    FileRule("messages", "attachment_path", "chat-attachments", _folders("conversation_id")),
    FileRule("submissions", "storage_path", "submissions", _folders("student_id", "assignment_id")),
    FileRule("course_content", "storage_path", "course-materials", _folders("course_id")),
)
