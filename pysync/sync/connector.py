"""The backend side of sync: the four RPCs of ``docs/sync-protocol.md`` through the gateway.

Every attempt asks :attr:`Client.gateway <pysync.Client.gateway>` again, so a retry after an
expired token carries a fresh one (never cache the gateway). Retries use tenacity: exponential
backoff with jitter, only for errors that may pass (:func:`retryable`): SQLSTATE classes 22
and 23 and 42501 are fatal whatever the gateway class says; the rest follow
:attr:`GatewayError.retryable`, plus an expired token (a fresh one may work) and transport
errors that never reached the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from pysync.gateway import Gateway, GatewayError, Unauthorized
from pysync.sync.errors import SyncError
from pysync.sync.protocol import is_fatal
from pysync.sync.wire import (
    ChecksumsResponse,
    PullRequest,
    PullResponse,
    PushOp,
    PushResponse,
    SchemaInfo,
    Subscription,
    parse_checksums,
    parse_pull,
    parse_push,
    parse_schema,
)

__all__ = ["Connector", "GatewaySource", "retryable"]

_log = logging.getLogger(__name__)


class GatewaySource(Protocol):
    """What the connector needs of :class:`~pysync.Client`: a gateway per call."""

    @property
    def gateway(self) -> Gateway: ...


def retryable(exc: BaseException) -> bool:
    """Whether sending the same request again may succeed."""
    if isinstance(exc, GatewayError):
        if is_fatal(exc.sqlstate):
            return False
        return exc.retryable or isinstance(exc, Unauthorized)
    # Connection resets, timeouts, DNS: the request may never have reached the server.
    return isinstance(exc, OSError | TimeoutError | ConnectionError)


class Connector:
    """Calls ``sync_schema``, ``sync_pull``, ``sync_checksums`` and ``sync_push``.

    ``read``, when given, serves the three read-only calls (schema, pulls, checksums): a
    client on a read replica (:meth:`Client.reading_from <pysync.Client.reading_from>`).
    Pushes always go to ``client`` (the primary). The guarantees hold across the two: a
    cursor is a ``pg_snapshot`` and a hot standby shares the primary's transaction ids, so a
    cursor from either side is valid on the other; a standby that lags only serves a change
    at a later pull (its snapshot does not yet see the change's transaction), never skips
    it (``private.sync_snapshot()`` explains a standby's cursors). A push's own write comes
    back once the replica has replayed it; until then a pull neither serves nor removes it,
    but a checksum repair (``reconcile``) against a lagging replica may set a bucket back to
    the replica's state until a later pull brings the write again.
    """

    def __init__(
        self,
        client: GatewaySource,
        *,
        read: GatewaySource | None = None,
        attempts: int = 4,
        wait_initial: float = 0.2,
        wait_max: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._read = read or client
        self._attempts = attempts
        self._wait_initial = wait_initial
        self._wait_max = wait_max
        self._sleep = sleep

    def _call(
        self,
        function: str,
        args: Mapping[str, Any] | None,
        *,
        read_only: bool,
        source: GatewaySource | None = None,
    ) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._wait_initial, max=self._wait_max),
            retry=retry_if_exception(retryable),
            sleep=self._sleep,
            before_sleep=before_sleep_log(_log, logging.WARNING),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                # A fresh gateway (and token) on every attempt.
                gateway = (source or self._client).gateway
                return gateway.rpc(function, args, read_only=read_only)
        raise SyncError(f"{function}: no attempt was made")  # pragma: no cover

    def schema(self) -> tuple[SchemaInfo, dict[str, Any]]:
        raw = self._call("sync_schema", None, read_only=True, source=self._read)
        if not isinstance(raw, dict):
            raise SyncError("sync_schema returned no object: is the sync migration applied?")
        return parse_schema(raw), raw

    def pull(self, request: PullRequest) -> PullResponse:
        args = {"request": request.to_json()}
        # Read-only: a GET where the gateway has URLs (it POSTs a request too long for one).
        raw = self._call("sync_pull", args, read_only=True, source=self._read)
        return parse_pull(raw, request)

    def checksums(
        self, buckets: Sequence[str], subscriptions: Sequence[Subscription] = ()
    ) -> ChecksumsResponse:
        """Checksums of ``buckets``. The server resolves on-demand buckets from
        ``subscriptions`` (not in the doc's request shape, but read by the SQL): without
        them every on-demand bucket comes back in ``removed_buckets``."""
        request = {"buckets": list(buckets), "subscriptions": [s.to_json() for s in subscriptions]}
        args = {"request": request}
        raw = self._call("sync_checksums", args, read_only=True, source=self._read)
        return parse_checksums(raw)

    def push(self, client_id: str, ops: Sequence[PushOp]) -> PushResponse:
        raw = self._call(
            "sync_push",
            {"client_id": client_id, "ops": [op.to_json() for op in ops]},
            read_only=False,
        )
        return parse_push(raw, ops)
