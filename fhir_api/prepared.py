"""Server-side prepared statements for the hottest statements on PostgreSQL: a create's insert,
and the statements of a search or ``$lastn`` that read one patient's rows (``search.fetch``).

Why: a create on PostgreSQL is one large statement (``services._insert_new``: a CTE that
inserts the resource, its first version and its index rows from UNNEST arrays). Parsing,
analysing and planning that text again on every request was most of PostgreSQL's CPU per
create: looped on one connection, 1.05-1.17 ms of backend CPU per insert sent as plain text,
0.71 ms as ``EXECUTE`` of the same statement ``PREPARE``d once (bench/crud.py measures the
same per request).

How: psycopg2 has no protocol-level prepare, so the statement is prepared in SQL, once per
database session and statement text: ``PREPARE dth_<n> AS <sql with $1…$n>``; PostgreSQL's
inferred parameter types are read back from ``pg_prepared_statements``, and every later run is
``EXECUTE dth_<n>(%s::type, …)`` with psycopg2's usual client-side quoting. The casts are
needed because an argument such as ``ARRAY[NULL, NULL]`` (a column of the index rows that is
empty for every row) would otherwise be ``text[]``, which PostgreSQL does not coerce to
``numeric[]``; they are the same casts the plain statement states itself, or the assignment to
the column makes, so the rows written are the same.

Correctness:

- Prepared statements belong to a session, so the cache belongs to one raw psycopg2
  connection (compared by identity with Django's ``connection.connection``). When Django
  closes the connection (``CONN_MAX_AGE``, a failed health check, ``close_old_connections``)
  and opens another, the next call finds a different raw connection and starts empty.
- ``PREPARE`` and ``DEALLOCATE`` are not transactional in PostgreSQL: a statement prepared in
  a transaction that rolls back stays prepared, one deallocated stays deallocated. A
  ``PREPARE`` that fails (e.g. in a transaction already aborted) prepared nothing, and the
  cache records a statement only after its ``PREPARE`` succeeded. An ``EXECUTE`` that fails
  because the statement is gone (someone ran ``DISCARD ALL``) forgets them all and, outside a
  transaction, prepares and runs it again; inside one the error stands (the transaction is
  aborted) and the next call prepares it again.
- The statement text is the key: a create's CTE differs with the index tables that get rows.
  At most ``MAX_STATEMENTS`` per connection are kept; the least recently used one is
  deallocated when another is prepared.
- ``DB_PREPARED_STATEMENTS=0`` turns this off (statements sent as plain text), for a pooler
  in transaction mode such as PgBouncer's, whose server sessions are not the client's.

Statements go through Django's cursor, so they are logged, captured by tests and their errors
wrapped as every other query's.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.utils import CursorWrapper

# Statements kept prepared per connection: the shapes of a create's CTE that a server sees
# (a few per resource type) fit; each one costs the backend its parse tree and plan.
MAX_STATEMENTS = 32
# SQLSTATE invalid_sql_statement_name: EXECUTE of a statement the session does not have.
_UNKNOWN_STATEMENT = "26000"
_PLACEHOLDER = re.compile(r"%(.)", re.DOTALL)


@dataclass(frozen=True)
class _Statement:
    name: str
    execute_sql: str  # EXECUTE name(%s::type, …), in psycopg2's parameter style


class _Session:
    """The statements prepared on one raw connection, least recently used first."""

    def __init__(self, raw: object) -> None:
        self.raw = raw
        self.statements: OrderedDict[str, _Statement] = OrderedDict()
        self.refused: set[str] = set()  # statements ``numbered`` refused, sent as they are
        self.made = 0


def numbered(sql: str) -> str:
    """``sql`` with psycopg2's ``%s`` parameter markers as ``$1``, ``$2``….

    ``%%`` is a literal ``%``; any other ``%`` sequence (``%(name)s``) is refused. Quoted
    literals (``''``, ``'date'``) and ``--`` comments are kept as they are; a ``%`` inside one
    is refused (psycopg2 would have replaced it there, PostgreSQL would not), as are other
    quotings (``E'…'``, ``$$…$$``, ``/* … */``), which the statements given here never have.
    Raises ValueError for what it refuses.
    """
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        kind = match.group(1)
        if kind == "%":
            return "%"
        if kind == "s":
            count += 1
            return f"${count}"
        raise ValueError(f"only %s parameter markers can be prepared, not %{kind}")

    out = []
    for code, kept in _segments(sql):
        if "%" in kept:
            # psycopg2 reads markers there too: %% is its literal %, anything else a parameter
            if "%" in kept.replace("%%", ""):
                raise ValueError("a parameter marker in a quoted literal or comment")
            kept = kept.replace("%%", "%")
        escape = kept.startswith("'") and re.search(r"[Ee]\Z", code)
        if "$" in code or "/*" in code or escape:
            raise ValueError("dollar quotes, block comments and E'' strings are not prepared")
        out.append(_PLACEHOLDER.sub(replace, code))
        out.append(kept)
    return "".join(out)


# A quoted literal ('' inside it is a quote) or a -- comment.
_QUOTED = re.compile(r"'(?:[^']|'')*'(?!')|--[^\n]*")


def _segments(sql: str) -> list[tuple[str, str]]:
    """``sql`` cut into (code, the quoted literal or ``--`` comment after it) pairs."""
    out = []
    start = 0
    for match in _QUOTED.finditer(sql):
        out.append((sql[start : match.start()], match.group()))
        start = match.end()
    out.append((sql[start:], ""))
    if any("'" in code for code, _kept in out):  # a quote the pattern skipped: left open
        raise ValueError("an unterminated quoted literal")
    return out


def _session(cursor: CursorWrapper) -> _Session:
    db = cursor.db
    raw = db.connection  # the cursor exists, so the connection is open
    session: _Session | None = getattr(db, "_dth_prepared", None)
    if session is None or session.raw is not raw:
        session = _Session(raw)
        db._dth_prepared = session
    return session


def _prepare(
    cursor: CursorWrapper, session: _Session, sql: str, text: str | None = None
) -> _Statement:
    """``text``: ``numbered(sql)``, when the caller has it already."""
    text = numbered(sql) if text is None else text
    name = f"dth_{session.made + 1}"
    # Raises on failure (an aborted transaction, a statement PostgreSQL cannot type): nothing is
    # recorded then, and the error is the one the statement itself would have raised.
    cursor.execute(f"PREPARE {name} AS {text}")  # no parameters: psycopg2 leaves it as is
    session.made += 1
    cursor.execute(
        "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = %s", [name]
    )
    types: list[str] = cursor.fetchone()[0]  # one per $n, in order
    args = ", ".join(f"%s::{t}" for t in types)
    statement = _Statement(name, f"EXECUTE {name}({args})" if args else f"EXECUTE {name}")
    while len(session.statements) >= MAX_STATEMENTS:
        _, evicted = session.statements.popitem(last=False)
        cursor.execute(f"DEALLOCATE {evicted.name}")
    session.statements[sql] = statement
    return statement


def execute(cursor: CursorWrapper, sql: str, params: Sequence[Any]) -> None:
    """``cursor.execute(sql, params)``, on PostgreSQL as a statement prepared once per
    connection; its results are read from ``cursor`` as usual."""
    if cursor.db.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    session = _session(cursor)
    statement = session.statements.get(sql)
    if statement is None:
        if sql in session.refused:
            cursor.execute(sql, params)
            return
        try:
            text = numbered(sql)
        except ValueError:  # a statement it cannot prepare is sent as it is
            if len(session.refused) >= MAX_STATEMENTS:
                session.refused.clear()
            session.refused.add(sql)
            cursor.execute(sql, params)
            return
        statement = _prepare(cursor, session, sql, text)
    else:
        session.statements.move_to_end(sql)
    try:
        cursor.execute(statement.execute_sql, params)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "pgcode", None) != _UNKNOWN_STATEMENT:
            raise
        # Something deallocated statements behind our back (DISCARD ALL, DEALLOCATE ALL): the
        # others are most likely gone too, and a DEALLOCATE of one of them would fail.
        session.statements.clear()
        db = cursor.db
        if db.in_atomic_block or not db.get_autocommit():
            raise  # the transaction is aborted: the caller's retry prepares it again
        # In autocommit the failed EXECUTE did nothing: prepare again and run it.
        cursor.execute(_prepare(cursor, session, sql).execute_sql, params)
