"""Human renderings of library results, kept apart from the commands that produce them."""

from __future__ import annotations

from typing import Any

from pysync.cli import output
from pysync.migrate import PushResult
from pysync.project import Project


def render_push(result: PushResult) -> None:
    verb = "would apply" if result.dry_run else "applied"
    if result.applied:
        output.table(
            f"Migrations {verb}",
            ["version", "name"],
            [(f.version, f.name) for f in result.applied],
        )
    else:
        output.say("no pending migrations")
    output.say(f"policy files {verb}: {len(result.policies)}")
    if result.dry_run:
        output.say("dry run: everything ran and was rolled back")


def render_status(report: dict[str, Any]) -> None:
    output.say(f"target: {report['target']} — {report['url']}")
    migrations = report["migrations"]
    states = {m["version"]: (m["name"], "applied") for m in migrations["applied"]}
    for m in migrations["pending"]:
        late = m["version"] in migrations["out_of_order"]
        states[m["version"]] = (m["name"], "pending (older than applied)" if late else "pending")
    for version in migrations["unverified"]:
        states[version] = (states[version][0], "applied (no checksum: unverified)")
    for drift in migrations["drift"]:
        states[drift["version"]] = (drift["name"], f"DRIFT: {drift['reason']}")
    rows = [(version, name, state) for version, (name, state) in sorted(states.items())]
    output.table("Migrations", ["version", "name", "state"], rows)
    output.say(f"policy files: {len(report['policies'])}")


def render_tables(project: Project) -> None:
    counts = project.table_counts()
    output.table(
        "Tables",
        ["schema", "table", "rows", "rls"],
        [(c.schema, c.table, c.rows, "on" if c.rls else "OFF") for c in counts],
    )
