"""`pysync sync demo` tells its story on the dev world, converges, and can run again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from pysync.cli.main import main
from pysync.config import LOCAL_JWT_SECRET
from pysync.localdb import LocalDatabase
from pysync.migrate import apply_seed, push
from pysync.seed import seed_dev
from pysync.sync.demo import run_demo
from tests.helpers import PROJECT_ROOT, connect

STEPS = [
    "first_sync",
    "offline_edit",
    "concurrent_edit",
    "conflict_resolved",
    "message_delivered",
    "access_revoked",
    "converged",
]


@pytest.fixture(scope="module")
def dev_url(local_db: LocalDatabase) -> Iterator[str]:
    """A database as `make demo` leaves it: schema, policies, supabase/seed.sql, dev world."""
    name = f"demo_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
        seed_dev(conn)
    yield url
    local_db.drop_database(name)


def test_demo_tells_every_step_and_converges_twice(dev_url: str) -> None:
    for _ in range(2):  # `make demo` twice: the demo puts back what it changed
        lines: list[str] = []
        report = run_demo(dev_url, LOCAL_JWT_SECRET, say=lines.append)
        assert report.steps == STEPS
        assert lines[-1] == "converged: 3 caches match the server"
        conflict = report.conflict
        assert conflict["result"]["display_name"] == conflict["phone"]["display_name"]
        assert conflict["result"]["timezone"] == conflict["laptop"]["timezone"]
        assert conflict["result"]["locale"] == conflict["laptop"]["locale"]
        assert all(report.content_before.values())
        assert report.content_after == {"phone": 0, "laptop": 0}
        assert report.converged == ["phone", "laptop", "tutor"]
        with connect(dev_url) as conn:
            assert conn.execute(
                "select body like 'Written offline%%' from public.messages where id = %s",
                (report.message_id,),
            ).fetchone() == (True,)
            # The photo went up before the message, into the conversation's folder.
            assert conn.execute(
                "select (metadata ->> 'size')::int from storage.objects"
                " where bucket_id = 'chat-attachments' and name = %s",
                (report.attachment_path,),
            ).fetchone() == (report.attachment_bytes,)
            assert conn.execute(
                "select e.status, p.display_name from public.enrollments as e"
                " join public.profiles as p on p.id = e.student_id"
                " where p.display_name = 'Sam Student' and e.course_id ="
                " 'd0000000-0000-4000-8000-000000000001'"
            ).fetchone() == ("active", "Sam Student")


def test_the_cli_prints_the_story_or_its_json(
    dev_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUPABASE_JWT_SECRET", raising=False)
    assert main(["sync", "demo", "--db-url", dev_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1. First sync: student.sam@example.com")
    assert out[-1] == "converged: 3 caches match the server"
    assert main(["sync", "demo", "--db-url", dev_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == STEPS and report["converged"] == ["phone", "laptop", "tutor"]


def test_a_missing_user_is_one_line(dev_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sync", "demo", "--db-url", dev_url, "--student", "nobody@example.com"])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: no user nobody@example.com: the demo runs on the dev world (`pysync seed dev`)"
    ]
