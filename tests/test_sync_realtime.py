"""RealtimeNudges against a fake Realtime server: a websocket server on loopback that speaks
Phoenix's JSON protocol (join replies, broadcasts) the way Supabase Realtime does."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pysync.sync.realtime import RealtimeNudges, realtime_url

KEY = "3f0c2d1e-0000-4000-8000-000000000001"
OTHER = "9a1b0000-0000-4000-8000-000000000002"


@dataclass
class FakeRealtime:
    """Records joins and leaves; ``broadcast`` pushes a nudge to every joined socket."""

    joins: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[str] = field(default_factory=list)
    sockets: dict[str, ServerConnection] = field(default_factory=dict)
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, socket: ServerConnection) -> None:
        async for raw in socket:
            message = json.loads(raw)
            topic, event, ref = message["topic"], message["event"], message.get("ref")
            if event == "phx_join":
                self.joins.append(message)
                self.sockets[topic] = socket
                response: dict[str, Any] = {"postgres_changes": []}
            elif event == "phx_leave":
                self.leaves.append(topic)
                self.sockets.pop(topic, None)
                response = {}
            else:
                response = {}
            reply = {
                "topic": topic,
                "event": "phx_reply",
                "payload": {"status": "ok", "response": response},
                "ref": ref,
                "join_ref": message.get("join_ref"),
            }
            await socket.send(json.dumps(reply))

    async def _broadcast(self, bucket: str) -> None:
        topic = f"realtime:sync:{bucket}"
        message = {
            "topic": topic,
            "event": "broadcast",
            "payload": {"type": "broadcast", "event": "sync", "payload": {"bucket": bucket}},
            "ref": None,
        }
        await self.sockets[topic].send(json.dumps(message))

    def broadcast(self, bucket: str) -> None:
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self._broadcast(bucket), self.loop).result(5)


@pytest.fixture
def fake() -> Iterator[FakeRealtime]:
    server = FakeRealtime()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    server.loop = loop
    stop = loop.create_future()

    async def main() -> None:
        async with serve(server.handle, "127.0.0.1", 0) as running:
            server.port = next(iter(running.sockets)).getsockname()[1]
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    yield server
    loop.call_soon_threadsafe(stop.set_result, None)
    thread.join(5)
    loop.close()


def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_realtime_url_from_the_project_url() -> None:
    assert realtime_url("https://abc.supabase.co/") == "wss://abc.supabase.co/realtime/v1"
    assert realtime_url("http://127.0.0.1:54321") == "ws://127.0.0.1:54321/realtime/v1"


def test_nudges_join_one_private_channel_per_key_and_report_the_bucket(
    fake: FakeRealtime,
) -> None:
    nudged: list[str] = []
    nudges = RealtimeNudges(
        f"ws://127.0.0.1:{fake.port}/realtime/v1", "anon-key", lambda: "user-token", nudged.append
    )
    try:
        nudges.set_buckets([f"messages:{KEY}", f"conversations:{KEY}", f"courses:{OTHER}"])
        assert nudges.topics == [
            f"sync:conversations:{KEY}",
            f"sync:courses:{OTHER}",
            f"sync:messages:{KEY}",
        ]
        joined = {join["topic"]: join["payload"] for join in fake.joins}
        assert set(joined) == {f"realtime:{topic}" for topic in nudges.topics}
        for payload in joined.values():
            assert payload["config"]["private"] is True
            assert payload["access_token"] == "user-token"

        fake.broadcast(f"messages:{KEY}")
        wait_for(lambda: nudged == [f"messages:{KEY}"])

        nudges.set_buckets([f"messages:{KEY}"])  # the others were dropped
        assert nudges.topics == [f"sync:messages:{KEY}"]
        wait_for(
            lambda: (
                sorted(fake.leaves)
                == [f"realtime:sync:conversations:{KEY}", f"realtime:sync:courses:{OTHER}"]
            )
        )
    finally:
        nudges.close()
