"""Names in each language's conventions, derived the same way by every generator."""

from __future__ import annotations

import re

__all__ = ["camel", "class_name", "literal_type_name", "pascal", "singular"]

#: Tables whose row is better named than its singular: the names the apps and
#: :mod:`pysync.datasources` already use.
CLASS_NAMES = {
    "course_content": "ContentItem",
    "conversation_participants": "Participant",
}

_IRREGULAR = {"feedback": "feedback", "analytics": "analytics", "data": "data", "status": "status"}


def singular(word: str) -> str:
    """English singular of a table name's last word (``queries`` → ``query``)."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]


def pascal(name: str) -> str:
    """``in_progress`` → ``InProgress``."""
    return "".join(w[:1].upper() + w[1:] for w in _words(name))


def camel(name: str) -> str:
    """``display_name`` → ``displayName``."""
    text = pascal(name)
    return text[:1].lower() + text[1:]


def class_name(table: str) -> str:
    """The model class of a row of ``table``: ``tutoring_sessions`` → ``TutoringSession``."""
    if table in CLASS_NAMES:
        return CLASS_NAMES[table]
    words = _words(table)
    return pascal("_".join([*words[:-1], singular(words[-1])]))


def literal_type_name(table: str, column: str) -> str:
    """The enum-like type of a check-constrained column: ``courses.status`` →
    ``CourseStatus``."""
    return class_name(table) + pascal(column)
