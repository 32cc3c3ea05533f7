"""Splitting SQL into statements with the server's own grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysync.errors import MigrationFileError
from pysync.migrate import split_statements


def test_split_keeps_bodies_and_lines_together() -> None:
    source = (
        "-- leading comment; not a statement\n"
        "create table a (x int); -- trailing\n"
        "\n"
        "create function f() returns int language plpgsql as $body$\n"
        "begin\n"
        "    return 1; -- a semicolon inside the body\n"
        "end\n"
        "$body$;\n"
        "/* block /* nested */ comment */ select 'a;b', E'c\\';d';\n"
        "create function g() returns int language sql\n"
        "begin atomic select 1; select 2; end;\n"
    )
    statements = split_statements(source)
    assert [s.line for s in statements] == [2, 4, 9, 10]
    assert [s.number for s in statements] == [1, 2, 3, 4]
    assert statements[0].text == "create table a (x int)"
    assert statements[1].text.endswith("$body$") and "return 1;" in statements[1].text
    assert statements[2].text == "select 'a;b', E'c\\';d'"
    assert statements[3].text.endswith("end")


def test_postgresql_17_syntax_splits_as_the_server_sees_it() -> None:
    # Each statement is new in PostgreSQL 17 (JSON_TABLE, MERGE ... RETURNING, COPY's
    # ON_ERROR); PostgreSQL 15's grammar refuses all three.
    source = (
        "select * from json_table('[1, 2]'::jsonb, '$[*]' columns (x int path '$'));\n"
        "merge into t using s on t.id = s.id when matched then delete returning merge_action();\n"
        "copy t from stdin with (on_error ignore);\n"
    )
    statements = split_statements(source)
    assert [s.line for s in statements] == [1, 2, 3]
    assert statements[1].text.endswith("returning merge_action()")


def test_line_at_maps_positions_inside_a_statement() -> None:
    statements = split_statements("select 1;\n\ncreate table t (\n  id int,\n  bad nope\n);\n")
    create = statements[1]
    assert create.line == 3
    position = create.text.index("nope") + 1  # the server reports 1-based positions
    assert create.line_at(position) == 5
    assert create.line_at(None) == 3


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(
        MigrationFileError, match=r"^x\.sql \(line 3\): syntax error at or near \"selec\""
    ):
        split_statements("select 1;\n\nselec 2;\n", path="x.sql")


def test_empty_and_comment_only_sources_have_no_statements() -> None:
    assert split_statements("") == []
    assert split_statements("-- nothing here\n/* still nothing */\n") == []


_literal_text = st.text(alphabet=st.sampled_from("ab;'$ -\n/*é"), max_size=12)


@st.composite
def _statement(draw: st.DrawFn) -> str:
    """A statement whose literals are full of characters that fool naive splitters."""
    text = draw(_literal_text)
    kind = draw(st.sampled_from(["quoted", "dollar", "function"]))
    if kind == "quoted":
        return "select '" + text.replace("'", "''") + "'"
    if kind == "dollar":
        return "select $q$" + text.replace("$q$", "") + "$q$"
    return (
        "create function f() returns text language plpgsql as $fn$ begin return '"
        + text.replace("'", "''").replace("$fn$", "")
        + "'; end $fn$"
    )


@given(st.lists(_statement(), min_size=1, max_size=5))
def test_split_roundtrips_generated_statements(statements: list[str]) -> None:
    source = "".join(f"-- statement {i}\n{s};\n" for i, s in enumerate(statements))
    found = split_statements(source)
    assert [s.text for s in found] == statements
    # Each statement follows its comment line; earlier statements take their own lines.
    expected_lines, line = [], 1
    for statement in statements:
        expected_lines.append(line + 1)
        line += 1 + statement.count("\n") + 1
    assert [s.line for s in found] == expected_lines
