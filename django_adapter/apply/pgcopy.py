"""New rows into PostgreSQL with ``COPY ... FROM STDIN (FORMAT binary)``.

Django's PostgreSQL backend binds parameters on the client (psycopg's
``ClientCursor``): every value of a multi-row INSERT is quoted into the SQL text
in Python, and for the ledger's thousands of rows a window that quoting cost
more than everything else the import does on PostgreSQL (bench/inserts.py, the
``ledger`` lines: about 35 us of client CPU a row through Django's UNNEST
insert, about 3 us through COPY, and less server time as well).

COPY returns no ids, so they are taken from the table's sequence first, one
query for the whole batch, in ascending order: rows keep the order they were
given in, as an INSERT ... RETURNING would have numbered them.

Only psycopg 3 has ``cursor.copy()``; with psycopg2 :func:`available` is false
and callers keep their INSERT.  Values must already be in the database's form
(``prep.preparer``): each column is sent with the binary format of its own
column type, read from the catalog, so a value of the wrong Python type is an
error from psycopg rather than a silent cast.  Errors come out as Django's
database exceptions, like those of any query.
"""

from __future__ import annotations

_TYPES: dict = {}  # (alias, table) -> {column: type oid}


def available(connection) -> bool:
    """Whether ``connection`` can COPY (PostgreSQL through psycopg 3)."""
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    return callable(getattr(connection.connection.cursor(), "copy", None))


def _column_types(connection, table: str) -> dict:
    key = (connection.alias, table)
    found = _TYPES.get(key)
    if found is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, atttypid FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [connection.ops.quote_name(table)])
            found = _TYPES[key] = dict(cursor.fetchall())
    return found


def next_ids(connection, table: str, pk_column: str, count: int) -> list[int]:
    """``count`` new values of the sequence behind ``table.pk_column``, ascending."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [connection.ops.quote_name(table), pk_column, count])
        return sorted(pk for (pk,) in cursor.fetchall())


def copy_rows(connection, table: str, columns: list[str], rows) -> None:
    """COPY ``rows`` (sequences of prepared values, in ``columns`` order) into
    ``table`` in binary format."""
    types = _column_types(connection, table)
    qn = connection.ops.quote_name
    sql = (f"COPY {qn(table)} ({', '.join(qn(c) for c in columns)}) "
           "FROM STDIN (FORMAT binary)")
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        with cursor.copy(sql) as copy:
            copy.set_types([types[c] for c in columns])
            for row in rows:
                copy.write_row(row)


def forget() -> None:
    """Drop the column types read from the catalog (after a migration in tests)."""
    _TYPES.clear()
