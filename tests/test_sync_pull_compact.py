"""Wire version 5 of ``sync_pull``: the buckets at a shared cursor sent by table (``cursor``,
``held``), and ``all_unchanged`` for a pull that found nothing
(``supabase/migrations/20261213090000_sync_pull_compact_requests.sql``).

Run against the real server: a compact request must be answered exactly as the same buckets
sent by name, a malformed one refused with one clear error, and the Python client must send
the compact form only to a server that has answered in version 5.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pysync.gateway import GatewayError
from pysync.sync import SyncCache, SyncError
from pysync.sync.connector import Connector
from pysync.sync.wire import BucketState, PullRequest, PullResponse, parse_pull
from tests.sync_world import RefPuller, SyncWorld, compact_held, enrolled

#: What a malformed request may fail with: a clear "invalid parameter" / "invalid text".
CLEAR = {"22023", "22P02"}


@pytest.fixture(scope="module")
def world(app_url: str) -> Iterator[SyncWorld]:
    made = SyncWorld(app_url)
    yield made
    made.close()


def _pull(puller: RefPuller, request: dict[str, Any]) -> dict[str, Any]:
    page: dict[str, Any] = puller.gateway.rpc("sync_pull", {"request": request}, read_only=True)
    return page


def _normal(page: dict[str, Any]) -> dict[str, Any]:
    """A page without what differs between two calls a moment apart: its time, snapshot (every
    cursor it hands out) and token (signed for that snapshot)."""
    text = json.dumps({k: v for k, v in page.items() if k not in ("server_time", "resolution")})
    return dict(json.loads(text.replace(page["snapshot"], "<snapshot>")))


def test_nothing_changed_is_all_unchanged_in_version_5_and_named_before(
    world: SyncWorld,
) -> None:
    tutor, student, course, _ = enrolled(world)
    world.enroll(student, world.course(tutor))
    v4 = RefPuller(world.gateway(student), version=4)
    v5 = RefPuller(world.gateway(student), version=5)
    v4.pull()
    v5.pull()
    named, quiet = v4.pull(), v5.pull()
    assert set(named["unchanged"]) == set(v4.states) and "all_unchanged" not in named
    assert quiet["all_unchanged"] is True and quiet["unchanged"] == []
    assert {s["cursor"] for s in v5.states.values()} == {quiet["snapshot"]}

    # A change: the bucket is served, the others named unchanged, in both versions.
    lesson = world.lesson(course, 9)
    changed = v5.pull()
    assert "all_unchanged" not in changed
    assert [e["bucket"] for e in changed["buckets"]] == [f"course_content:{course}"]
    assert set(changed["unchanged"]) == set(v5.states) - {f"course_content:{course}"}
    assert lesson in v5.ids("course_content")
    v4.pull()
    assert v4.rows == v5.rows


def test_a_compact_request_is_answered_as_the_same_buckets_by_name(world: SyncWorld) -> None:
    """Same states, same moment, two forms: the same entries, removals and token check. The
    compact form mixes in a bucket that is not at the shared cursor (sent by name)."""
    tutor, student, course, puller = enrolled(world, version=5)
    other = world.course(tutor)
    world.enroll(student, other)
    puller.pull()
    puller.pull()
    states = dict(puller.states)
    behind = f"course_content:{other}"
    states[behind] = {"cursor": None}  # a repair: served whole again
    not_held = "course_content:00000000-0000-4000-8000-000000000001"
    states[not_held] = dict(states[f"course_content:{course}"])
    world.lesson(course, 4)
    by_name = {"version": 5, "buckets": states, "resolution": puller.resolution}
    compact = {"version": 5, "resolution": puller.resolution, **compact_held(states)}
    assert behind in compact["buckets"]
    assert not_held.split(":")[1] in compact["held"]["course_content"]
    first, second = (_normal(_pull(puller, request)) for request in (by_name, compact))
    assert first == second
    assert first["removed_buckets"] == [not_held]
    assert {e["bucket"] for e in first["buckets"]} == {f"course_content:{course}", behind}


def test_a_quiet_compact_pull_hands_the_token_back_as_it_came(world: SyncWorld) -> None:
    """The short way reads the held buckets from `held` too: a pull that finds nothing with a
    token that holds returns that very token."""
    _, _, _, puller = enrolled(world, version=5)
    puller.pull()
    puller.pull()
    token = puller.resolution
    page = puller.pull()
    assert page["all_unchanged"] is True and page["resolution"] == token


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"version": 4}, "held before version 5"),
        ({"cursor": None}, "held without a cursor"),
        ({"cursor": "abc"}, "cursor garbage"),
        ({"held": ["messages"]}, "held a list"),
        ({"held": {"course_content": "x"}}, "keys not an array"),
        ({"both": True}, "a bucket in held and in buckets"),
    ],
)
def test_a_malformed_compact_request_gets_one_clear_error(
    world: SyncWorld, changes: dict[str, Any], why: str
) -> None:
    _, _, course, puller = enrolled(world, version=5)
    puller.pull()
    request: dict[str, Any] = {"version": 5, **compact_held(puller.states)}
    if changes.pop("both", False):
        bucket = f"course_content:{course}"
        request["buckets"] = {bucket: {"cursor": request["cursor"]}}
    request.update(changes)
    request = {k: v for k, v in request.items() if v is not None}
    with pytest.raises(GatewayError) as caught:
        _pull(puller, request)
    assert caught.value.sqlstate in CLEAR, (why, caught.value)


class Recording(Connector):
    """The connector, keeping every pull request and answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pulls: list[tuple[dict[str, Any], PullResponse]] = []

    def pull(self, request: PullRequest) -> PullResponse:
        response = super().pull(request)
        self.pulls.append((request.to_json(), response))
        return response


def test_the_client_sends_held_once_the_server_answered_version_5(
    world: SyncWorld, tmp_path: Path
) -> None:
    tutor, student, _, _ = enrolled(world)
    world.enroll(student, world.course(tutor))
    client = world.client(student)
    connector = Recording(client)
    with SyncCache.open(client, tmp_path / "c.db", connector=connector) as cache:
        cache.pull()
        cache.pull()
        cache.pull()
        held = set(cache.held_buckets())
        (first, _), *_, (last, answer) = connector.pulls
    assert "held" not in first  # nothing learnt yet: sent by name
    assert last["buckets"] == {} and last["cursor"]
    assert {f"{t}:{k}" for t, keys in last["held"].items() for k in keys} == held
    assert answer.version == 5 and set(answer.unchanged) == held


def test_all_unchanged_names_the_buckets_of_the_request_it_answers() -> None:
    sent = PullRequest(
        buckets={"messages:a": BucketState("5:5:"), "courses:b": BucketState("4:4:")},
        compact=True,
    )
    answer = {
        "version": 5,
        "snapshot": "9:9:",
        "server_time": "2026-12-03T10:00:00+00:00",
        "buckets": [],
        "unchanged": [],
        "all_unchanged": True,
    }
    assert set(parse_pull(answer, sent).unchanged) == {"messages:a", "courses:b"}
    with pytest.raises(SyncError, match="all_unchanged"):
        parse_pull(answer)
    body = sent.to_json()
    assert body["held"] in ({"messages": ["a"]}, {"courses": ["b"]})
    assert len(body["buckets"]) == 1
