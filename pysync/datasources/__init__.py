"""Typed data sources, one per entity, written once against the gateway (layer 5).

Reach them through :class:`pysync.Client`; each method is one thing an app does
(``client.courses.list_enrolled()``, ``client.messages.send(...)``) and returns the typed
models of :mod:`pysync.datasources.models`.
"""

from pysync.datasources._base import UNSET, Context, DataSource, Unset
from pysync.datasources.learning import (
    AssignmentsSource,
    CoursesSource,
    EnrollmentsSource,
    ProfilesSource,
    SubmissionsSource,
)
from pysync.datasources.messaging import (
    ConversationsSource,
    DevicesSource,
    MessagesSource,
    NotificationsSource,
    PreferencesSource,
)
from pysync.datasources.platform import PaymentsSource, SupportSource
from pysync.datasources.storage import LocalStorage, SupabaseStorage
from pysync.datasources.tutoring import FeedbackSource, SessionsSource

__all__ = [
    "UNSET",
    "AssignmentsSource",
    "Context",
    "ConversationsSource",
    "CoursesSource",
    "DataSource",
    "DevicesSource",
    "EnrollmentsSource",
    "FeedbackSource",
    "LocalStorage",
    "MessagesSource",
    "NotificationsSource",
    "PaymentsSource",
    "PreferencesSource",
    "ProfilesSource",
    "SessionsSource",
    "SubmissionsSource",
    "SupabaseStorage",
    "SupportSource",
    "Unset",
]
