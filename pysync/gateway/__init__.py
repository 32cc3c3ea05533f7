"""How Python reaches data as a given identity: one interface, two implementations.

:class:`PostgrestGateway` talks to a Supabase project's API through supabase-py;
:class:`PostgresGateway` talks to PostgreSQL directly but replays PostgREST's request context
in every transaction, so row level security decides exactly as it would behind the API.
"""

from typing import TYPE_CHECKING

from pysync.gateway.apikeys import ApiKeys
from pysync.gateway.errors import (
    Conflict,
    GatewayError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QueryTimeout,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from pysync.gateway.filters import (
    Filter,
    Op,
    Order,
    and_,
    asc,
    desc,
    eq,
    gt,
    gte,
    ilike,
    in_,
    is_not_null,
    is_null,
    lt,
    lte,
    neq,
    or_,
)
from pysync.gateway.identity import Identity, IdentityKind
from pysync.gateway.jwks import JwksKeys
from pysync.gateway.postgres import PostgresGateway
from pysync.gateway.postgrest import PostgrestGateway
from pysync.gateway.protocol import Columns, Gateway, Row, SelectResult

if TYPE_CHECKING:
    # mypy --strict proves both implementations satisfy the one interface.
    _postgres: type[Gateway] = PostgresGateway
    _postgrest: type[Gateway] = PostgrestGateway

__all__ = [
    "ApiKeys",
    "Columns",
    "Conflict",
    "Filter",
    "Gateway",
    "GatewayError",
    "Identity",
    "IdentityKind",
    "InvalidInput",
    "JwksKeys",
    "NotFound",
    "Op",
    "Order",
    "PermissionDenied",
    "PostgresGateway",
    "PostgrestGateway",
    "QueryTimeout",
    "RateLimited",
    "Row",
    "SelectResult",
    "Unauthorized",
    "Unavailable",
    "and_",
    "asc",
    "desc",
    "eq",
    "gt",
    "gte",
    "ilike",
    "in_",
    "is_not_null",
    "is_null",
    "lt",
    "lte",
    "neq",
    "or_",
]
