"""Payments (read-only for clients) and support tickets with their replies."""

from __future__ import annotations

from pysync.datasources._base import DataSource, IdLike
from pysync.datasources.models import Payment, Refund, SupportQuery, SupportReply, TicketStatus
from pysync.gateway import asc, desc, eq, in_, or_

__all__ = ["PaymentsSource", "SupportSource"]


class PaymentsSource(DataSource):
    """What the caller paid and received. There are no write methods on purpose: payments
    are written by the payment provider's webhook (service_role) only, and the server
    refuses client writes whatever a client sends."""

    table = "payments"

    def list_mine(self) -> list[Payment]:
        """Payments the caller made or received, newest first."""
        me = self._me
        return self._list(
            Payment,
            [or_(eq("payer_id", me), eq("payee_id", me))],
            [desc("created_at"), desc("id")],
        )

    def list_paid(self) -> list[Payment]:
        return self._list(Payment, [eq("payer_id", self._me)], [desc("created_at")])

    def list_received(self) -> list[Payment]:
        return self._list(Payment, [eq("payee_id", self._me)], [desc("created_at")])

    def get(self, payment_id: IdLike) -> Payment:
        return self._get(Payment, payment_id)

    def refunds(self, payment_ids: IdLike | list[IdLike]) -> list[Refund]:
        ids = payment_ids if isinstance(payment_ids, list) else [payment_ids]
        return self._list(Refund, [in_("payment_id", ids)], [asc("created_at")], table="refunds")


class SupportSource(DataSource):
    """Support tickets: the owner and admins see a ticket and talk on it."""

    table = "support_queries"

    def open(self, subject: str, body: str) -> SupportQuery:
        return self._insert(SupportQuery, {"owner_id": self._me, "subject": subject, "body": body})

    def get(self, query_id: IdLike) -> SupportQuery:
        return self._get(SupportQuery, query_id)

    def list_mine(self) -> list[SupportQuery]:
        return self._list(SupportQuery, [eq("owner_id", self._me)], [desc("created_at")])

    def queue(self, status: TicketStatus = "open") -> list[SupportQuery]:
        """Tickets in a status, oldest first (admins see everyone's)."""
        return self._list(SupportQuery, [eq("status", status)], [asc("created_at")])

    def reply(self, query_id: IdLike, body: str) -> SupportReply:
        return self._insert(
            SupportReply,
            {"query_id": query_id, "author_id": self._me, "body": body},
            table="support_replies",
        )

    def replies(self, query_id: IdLike) -> list[SupportReply]:
        return self._list(
            SupportReply, [eq("query_id", query_id)], [asc("created_at")], table="support_replies"
        )

    def set_status(
        self, query_id: IdLike, status: TicketStatus, *, expected_version: int | None = None
    ) -> SupportQuery:
        return self._update(
            SupportQuery, query_id, {"status": status}, expected_version=expected_version
        )

    def resolve(self, query_id: IdLike, *, expected_version: int | None = None) -> SupportQuery:
        return self.set_status(query_id, "resolved", expected_version=expected_version)

    def assign(self, query_id: IdLike, admin_id: IdLike | None) -> SupportQuery:
        """Admins only: hand a ticket to an admin (or back to the queue with ``None``)."""
        return self._update(SupportQuery, query_id, {"assignee_id": admin_id})
