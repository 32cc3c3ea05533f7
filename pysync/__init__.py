"""pysync: the Python layer of the tutoring platform's Supabase backend.

The public face for applications: :class:`Client` and its typed data sources, the models
they return, the gateway they run on, the errors they raise, and the one progress event
every long job (migrations, seeding, import, sync, file transfers) reports
(:mod:`pysync.progress`).

The library logs through :mod:`logging` under the ``pysync`` logger (migrations applied,
sync retries, …) and never prints; an application opts in with ``logging.basicConfig`` or
its own handlers, as with any library.
"""

import logging

from pysync.client import Client
from pysync.datasources import UNSET, LocalStorage, SupabaseStorage
from pysync.datasources.models import (
    Assignment,
    ContentItem,
    Conversation,
    Course,
    Cursor,
    Device,
    Enrollment,
    Message,
    ModelError,
    Notification,
    NotificationPreference,
    Page,
    Participant,
    Payment,
    Profile,
    Refund,
    SessionFeedback,
    StoredObject,
    Submission,
    SupportQuery,
    SupportReply,
    TutoringSession,
    TutorRating,
)
from pysync.errors import PysyncError
from pysync.gateway import (
    Conflict,
    Gateway,
    GatewayError,
    Identity,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostgresGateway,
    PostgrestGateway,
    QueryTimeout,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from pysync.progress import ProgressCallback, ProgressEvent

logging.getLogger("pysync").addHandler(logging.NullHandler())

__all__ = [
    "UNSET",
    "Assignment",
    "Client",
    "Conflict",
    "ContentItem",
    "Conversation",
    "Course",
    "Cursor",
    "Device",
    "Enrollment",
    "Gateway",
    "GatewayError",
    "Identity",
    "InvalidInput",
    "LocalStorage",
    "Message",
    "ModelError",
    "NotFound",
    "Notification",
    "NotificationPreference",
    "Page",
    "Participant",
    "Payment",
    "PermissionDenied",
    "PostgresGateway",
    "PostgrestGateway",
    "Profile",
    "ProgressCallback",
    "ProgressEvent",
    "PysyncError",
    "QueryTimeout",
    "RateLimited",
    "Refund",
    "SessionFeedback",
    "StoredObject",
    "Submission",
    "SupabaseStorage",
    "SupportQuery",
    "SupportReply",
    "TutorRating",
    "TutoringSession",
    "Unauthorized",
    "Unavailable",
]
