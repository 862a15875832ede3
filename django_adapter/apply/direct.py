"""The engine's own multi-row statements, run without Django's per-query rewriting
where that costs.

Django's SQLite cursor rewrites every statement from ``%s`` to ``?`` placeholders
with a regular expression before SQLite sees it; for the engine's multi-row
INSERTs (thousands of placeholders each, a window after window) that rewriting
was a twentieth of a SQLite import.  Here those statements are written with
SQLite's own placeholders and handed to the driver's cursor directly.

PyMySQL, MariaDB's and MySQL's driver here, binds parameters on the client: each
value passes through four Python calls on its way into the statement's text,
which was a sixth of a MariaDB import.  For the value types the engine writes
(text, integers, bytes, UUIDs, booleans, NULL) the literal is written here in
one step, exactly as PyMySQL writes it (tests/django_adapter/apply/test_direct.py
compares the two on every kind of value); any other type, and every value when
the server runs with ``NO_BACKSLASH_ESCAPES``, goes through PyMySQL's own
``escape``.  Another MySQL driver (mysqlclient escapes in C) keeps its own path.

Both run inside Django's error translation (a failure is Django's
``IntegrityError`` as before).  Django's query logging and ``execute_wrapper``
hooks do not see these statements, as they do not see PostgreSQL's COPY
(``pgcopy.py``).  Other databases take the statement through Django's cursor
unchanged.
"""

from __future__ import annotations

import re
import uuid

from django_adapter.prep import uuid_text


def placeholder(connection) -> str:
    """The parameter marker for statements run by :func:`execute` on ``connection``."""
    return "?" if connection.vendor == "sqlite" else "%s"


def execute(connection, cursor, sql: str, params: list) -> None:
    """Run ``sql`` (written with :func:`placeholder`) on Django's ``cursor``."""
    vendor = connection.vendor
    if vendor == "sqlite":
        import sqlite3

        with connection.wrap_database_errors:
            sqlite3.Cursor.execute(cursor.cursor, sql, params)
        return
    if vendor == "mysql":
        literal = _pymysql_literals(connection.connection)
        if literal is not None:
            text = sql % tuple(literal(params))
            with connection.wrap_database_errors:
                # Django's MySQL cursor (it maps some errors to IntegrityError);
                # no parameters: PyMySQL sends the text as it is.
                cursor.cursor.execute(text, None)
            return
    cursor.execute(sql, params)


def _pymysql_literals(raw):
    """A function from values to their SQL literals on PyMySQL connection ``raw``;
    None on another driver."""
    try:
        from pymysql.connections import Connection
        from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
        from pymysql.converters import escape_string
    except ImportError:  # pragma: no cover - PyMySQL is a dependency
        return None
    if not isinstance(raw, Connection):
        return None
    escape = raw.escape
    if not _SAME_TEXT:
        _SAME_TEXT.append(escape_string(_PROBE) == _PROBE.translate(_TEXT))
    if raw.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES or not _SAME_TEXT[0]:
        return lambda params: map(escape, params)
    table, special = _TEXT, _SPECIAL.search
    others = {
        int: str,
        bool: lambda v: "1" if v else "0",
        type(None): lambda v: "NULL",
        bytes: lambda v: f"X'{v.hex()}'",
        uuid.UUID: _uuid_text,  # PyMySQL's fallback: the text, quoted
    }

    def literals(params):
        out = []
        add = out.append
        for v in params:
            kind = type(v)
            if kind is str:
                # Most text has nothing to escape; finding that out is cheaper
                # than str.translate, which looks every character up in the table.
                add("'" + (v if special(v) is None else v.translate(table)) + "'")
            else:
                write = others.get(kind)
                add(write(v) if write is not None else escape(v))
        return out

    return literals


#: How MySQL's backslash escaping writes text (PyMySQL's ``escape_string``); checked
#: against PyMySQL's own on every character below 256 before it is used.
_TEXT = {0: "\\0", 10: "\\n", 13: "\\r", 26: "\\Z", 34: '\\"', 39: "\\'", 92: "\\\\"}
#: The characters ``_TEXT`` changes: text without any of them is written as it is.
_SPECIAL = re.compile("[" + re.escape("".join(map(chr, _TEXT))) + "]")
_PROBE = "".join(map(chr, range(256))) + "\u00e9\u2028\U0001f600"
#: Whether ``_TEXT`` writes ``_PROBE`` as PyMySQL does (checked once, on first use).
_SAME_TEXT: list = []


def _uuid_text(value: uuid.UUID) -> str:
    return f"'{uuid_text(value)}'"
