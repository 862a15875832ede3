"""New rows into PostgreSQL with ``COPY ... FROM STDIN (FORMAT binary)``.

Django's PostgreSQL backend binds parameters on the client (psycopg's
``ClientCursor``): every value of a multi-row INSERT is quoted into the SQL text
in Python, and for the ledger's thousands of rows a window that quoting cost
more than everything else the import does on PostgreSQL.  bench/inserts.py
measures it (client CPU a row, 2,000 rows): ledger rows about 30 us through the
UNNEST insert against 7 us by COPY; consents about 20-35 us through Django's
insert against 5 us by COPY; the server's own work is less as well.

COPY returns no ids, so they are taken from the table's sequence first, one
query for the whole batch, in ascending order: rows keep the order they were
given in, as an INSERT ... RETURNING would have numbered them.

Only psycopg 3 has ``cursor.copy()``; with psycopg2 :func:`available` is false
and callers keep their INSERT.  Values must already be in the database's form
(``django_adapter.prep.preparer``): each column is sent with the binary format of its own
column type, read from the catalog.  Model objects go this way only when every
column is of a plain built-in type and every value of the Python type that
type's binary form takes (:func:`python_types`); a field that converts values
its own way leaves its batch to Django's insert.  Errors come out as Django's
database exceptions, like those of any query.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

_TYPES: dict = {}  # (alias, table) -> {column: type oid}
_SEQUENCES: dict = {}  # (alias, table, column) -> its sequence's name, or None


def available(connection) -> bool:
    """Whether ``connection`` can COPY (PostgreSQL through psycopg 3)."""
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    # psycopg 3's connection classes live in the ``psycopg`` package (psycopg2's in
    # ``psycopg2``): asked of the class, no cursor is opened for it.
    return type(connection.connection).__module__.partition(".")[0] == "psycopg"


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


_PLAIN: dict = {}


def _plain() -> dict:
    """Built-in column types (by oid) COPY sends in binary, and the Python types of
    prepared values their binary form takes: anything else goes by INSERT.  Built
    on first use (only a PostgreSQL import needs psycopg loaded)."""
    if not _PLAIN:
        # Django's backend wraps integers in psycopg's sized types (Int4 for an
        # IntegerField) and a BinaryField's bytes in Binary.
        from psycopg.dbapi20 import Binary
        from psycopg.types.numeric import Float4, Float8, Int2, Int4, Int8

        ints = (int, Int2, Int4, Int8)
        floats = (float, Float4, Float8, *ints)
        _PLAIN.update({
            16: (bool,), 20: ints, 21: ints, 23: ints, 25: (str,), 1042: (str,), 1043: (str,),
            700: floats, 701: floats, 1700: (decimal.Decimal, *ints),
            17: (bytes, bytearray, memoryview, Binary), 2950: (uuid.UUID,),
            1082: (datetime.date,), 1184: (datetime.datetime,),
        })
    return _PLAIN


def python_types(connection, table: str, columns: list[str]) -> list | None:
    """For each column, the Python types its prepared values may have to go by COPY;
    None when one of the columns is of another type."""
    types = _column_types(connection, table)
    plain = _plain()
    kinds = [plain.get(types.get(c)) for c in columns]
    return None if any(k is None for k in kinds) else kinds


def _sequence(connection, table: str, column: str) -> str | None:
    """The name of the sequence behind ``table.column`` (serial or identity), or None."""
    key = (connection.alias, table, column)
    if key not in _SEQUENCES:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)",
                           [connection.ops.quote_name(table), column])
            _SEQUENCES[key] = cursor.fetchone()[0]
    return _SEQUENCES[key]


def has_sequence(connection, table: str, column: str) -> bool:
    """Whether ``table.column`` takes its values from a sequence (serial or identity)."""
    return _sequence(connection, table, column) is not None


def next_ids(connection, table: str, pk_column: str, count: int) -> list[int]:
    """``count`` new values of the sequence behind ``table.pk_column``, ascending.
    The sequence is named once: asking the catalog for it on each of the ``count``
    rows cost eight times the ``nextval`` calls themselves."""
    sequence = _sequence(connection, table, pk_column)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                       [sequence, count])
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
    """Drop what was read from the catalog (after a migration in tests)."""
    _TYPES.clear()
    _SEQUENCES.clear()
