"""The engine's own multi-row statements, run without Django's per-query rewriting
where that costs.

Django's SQLite cursor rewrites every statement from ``%s`` to ``?`` placeholders
with a regular expression before SQLite sees it; for the engine's multi-row
INSERTs (thousands of placeholders each, a window after window) that rewriting
was a twentieth of a SQLite import.  Here those statements are written with
SQLite's own placeholders and handed to the driver's cursor directly, inside
Django's error translation (a failure is Django's ``IntegrityError`` as
before).  Django's query logging and ``execute_wrapper`` hooks do not see them,
as they do not see PostgreSQL's COPY (``pgcopy.py``).  Other databases take
the statement through Django's cursor unchanged.
"""

from __future__ import annotations


def placeholder(connection) -> str:
    """The parameter marker for statements run by :func:`execute` on ``connection``."""
    return "?" if connection.vendor == "sqlite" else "%s"


def execute(connection, cursor, sql: str, params: list) -> None:
    """Run ``sql`` (written with :func:`placeholder`) on Django's ``cursor``."""
    if connection.vendor == "sqlite":
        import sqlite3

        with connection.wrap_database_errors:
            sqlite3.Cursor.execute(cursor.cursor, sql, params)
    else:
        cursor.execute(sql, params)
