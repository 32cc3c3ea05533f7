"""Error codes map to the gateway's exceptions by SQLSTATE, PostgREST code or HTTP status;
never by message text."""

from __future__ import annotations

import pytest

from pysync.errors import PysyncError
from pysync.gateway import (
    Conflict,
    GatewayError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QueryTimeout,
    RateLimited,
    Unauthorized,
    Unavailable,
    eq,
    in_,
    is_null,
)
from pysync.gateway.errors import error_for
from pysync.gateway.filters import Filter, Op, wire_value


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("42501", PermissionDenied),
        ("28000", PermissionDenied),
        ("0P000", PermissionDenied),
        ("23505", Conflict),
        ("23P01", Conflict),
        ("PT409", Conflict),
        ("23502", InvalidInput),
        ("23503", InvalidInput),
        ("23514", InvalidInput),
        ("22P02", InvalidInput),
        ("22001", InvalidInput),
        ("42703", InvalidInput),
        ("42883", InvalidInput),
        ("25006", InvalidInput),
        ("P0001", InvalidInput),
        ("PT400", InvalidInput),
        ("42P01", NotFound),
        ("P0002", NotFound),
        ("PT404", NotFound),
        ("PT429", RateLimited),
        ("PT401", Unauthorized),
        ("PT403", PermissionDenied),
        ("57014", QueryTimeout),
        ("08006", Unavailable),
        ("40001", Unavailable),
        ("40P01", Unavailable),
        ("53300", Unavailable),
        ("57P01", Unavailable),
        ("PT503", Unavailable),
        ("PGRST000", Unavailable),
        ("PGRST003", Unavailable),
        ("PGRST100", InvalidInput),
        ("PGRST103", InvalidInput),
        ("PGRST204", InvalidInput),
        ("PGRST116", NotFound),
        ("PGRST202", NotFound),
        ("PGRST205", NotFound),
        ("PGRST301", Unauthorized),
        ("PGRST302", Unauthorized),
        ("PGRST303", Unauthorized),
        ("PGRST300", GatewayError),
        ("42P17", GatewayError),
        ("XX000", GatewayError),
        ("PT999", GatewayError),
    ],
)
def test_codes_map_to_their_exception(code: str, expected: type[GatewayError]) -> None:
    error = error_for(code, "whatever the message says")
    assert type(error) is expected
    assert error.code == code


def test_the_message_never_decides_the_class() -> None:
    assert type(error_for("23505", "permission denied")) is Conflict
    assert type(error_for("42501", "duplicate key value violates unique constraint")) is (
        PermissionDenied
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidInput),
        (401, Unauthorized),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (503, Unavailable),
        (500, GatewayError),
    ],
)
def test_without_a_known_code_the_http_status_decides(
    status: int, expected: type[GatewayError]
) -> None:
    assert type(error_for(None, "x", status=status)) is expected
    # postgrest-py reports a non-JSON error body with the status as its code.
    assert type(error_for(str(status), "x")) is expected


def test_retryable_only_where_the_same_request_may_succeed() -> None:
    retryable = {cls for cls in (Unavailable, RateLimited) if cls.retryable}
    assert retryable == {Unavailable, RateLimited}
    for cls in (QueryTimeout, Conflict, InvalidInput, PermissionDenied, NotFound, Unauthorized):
        assert not cls.retryable


def test_errors_carry_postgrests_fields_and_are_pysync_errors() -> None:
    error = error_for("23505", "duplicate key", details="Key (slug)=(a)", hint="h", status=409)
    assert isinstance(error, PysyncError)
    assert str(error) == "duplicate key"
    assert error.sqlstate == "23505"
    assert error.as_dict() == {
        "error": "Conflict",
        "code": "23505",
        "message": "duplicate key",
        "details": "Key (slug)=(a)",
        "hint": "h",
        "status": 409,
    }
    assert error_for("PGRST301", "JWT expired").sqlstate is None


def test_filter_values_travel_as_postgrest_text() -> None:
    assert [wire_value(v) for v in (None, True, False, 5, 1.5, "x")] == [
        "null",
        "true",
        "false",
        "5",
        "1.5",
        "x",
    ]


def test_filters_are_immutable_values() -> None:
    values = [1, 2]
    listed = in_("id", values)
    values.append(3)
    assert listed.value == (1, 2)
    assert eq("a", 1).negated().negated() == eq("a", 1)
    assert is_null("a") == Filter("a", Op.IS, None)
    with pytest.raises(ValueError):
        Filter("a", Op.IS, True)
