"""The backend side of sync: the four RPCs of ``docs/sync-protocol.md`` through the gateway.

Every attempt asks :attr:`Client.gateway <pysync.Client.gateway>` again, so a retry after an
expired token carries a fresh one (never cache the gateway). Retries use tenacity: exponential
backoff with jitter, only for errors that may pass (:func:`retryable`): SQLSTATE classes 22
and 23 and 42501 are fatal whatever the gateway class says; the rest follow
:attr:`GatewayError.retryable`, plus an expired token (a fresh one may work) and transport
errors that never reached the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

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


class GatewaySource(Protocol):
    """What the connector needs of :class:`~pysync.Client`: a gateway per call."""

    @property
    def gateway(self) -> Gateway: ...


#: Largest JSON argument sent in a ``GET /rpc/…`` query string. A ``GET`` is what Supabase's
#: API gateway may route to a read replica, but proxies cap URLs at 8 KB or so; a larger
#: request (a cache holding hundreds of buckets) is POSTed instead, which PostgREST still
#: runs read-only because the functions are ``stable``.
MAX_GET_ARGUMENT_BYTES = 6000


def _fits_in_url(args: Mapping[str, Any]) -> bool:
    return len(json.dumps(args, separators=(",", ":"))) <= MAX_GET_ARGUMENT_BYTES


def retryable(exc: BaseException) -> bool:
    """Whether sending the same request again may succeed."""
    if isinstance(exc, GatewayError):
        if is_fatal(exc.sqlstate):
            return False
        return exc.retryable or isinstance(exc, Unauthorized)
    # Connection resets, timeouts, DNS: the request may never have reached the server.
    return isinstance(exc, OSError | TimeoutError | ConnectionError)


class Connector:
    """Calls ``sync_schema``, ``sync_pull``, ``sync_checksums`` and ``sync_push``."""

    def __init__(
        self,
        client: GatewaySource,
        *,
        attempts: int = 4,
        wait_initial: float = 0.2,
        wait_max: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._attempts = attempts
        self._wait_initial = wait_initial
        self._wait_max = wait_max
        self._sleep = sleep

    def _call(self, function: str, args: Mapping[str, Any] | None, *, read_only: bool) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._wait_initial, max=self._wait_max),
            retry=retry_if_exception(retryable),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                # A fresh gateway (and token) on every attempt.
                return self._client.gateway.rpc(function, args, read_only=read_only)
        raise SyncError(f"{function}: no attempt was made")  # pragma: no cover

    def schema(self) -> tuple[SchemaInfo, dict[str, Any]]:
        raw = self._call("sync_schema", None, read_only=True)
        if not isinstance(raw, dict):
            raise SyncError("sync_schema returned no object: is the sync migration applied?")
        return parse_schema(raw), raw

    def pull(self, request: PullRequest) -> PullResponse:
        args = {"request": request.to_json()}
        return parse_pull(self._call("sync_pull", args, read_only=_fits_in_url(args)))

    def checksums(
        self, buckets: Sequence[str], subscriptions: Sequence[Subscription] = ()
    ) -> ChecksumsResponse:
        """Checksums of ``buckets``. The server resolves on-demand buckets from
        ``subscriptions`` (not in the doc's request shape, but read by the SQL): without
        them every on-demand bucket comes back in ``removed_buckets``."""
        request = {"buckets": list(buckets), "subscriptions": [s.to_json() for s in subscriptions]}
        args = {"request": request}
        raw = self._call("sync_checksums", args, read_only=_fits_in_url(args))
        return parse_checksums(raw)

    def push(self, client_id: str, ops: Sequence[PushOp]) -> PushResponse:
        raw = self._call(
            "sync_push",
            {"client_id": client_id, "ops": [op.to_json() for op in ops]},
            read_only=False,
        )
        return parse_push(raw, ops)
