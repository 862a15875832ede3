"""The engine's multi-row statements go to the driver directly (``apply/direct.py``).

On MariaDB/MySQL the values are written into the statement by the engine, not by
PyMySQL's per-value calls: the literals must be exactly PyMySQL's, for every kind
of value, and what is stored must read back the same.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils.safestring import SafeString

from django_adapter.apply import direct

pytestmark = pytest.mark.django_db

TEXTS = [
    "", "plain", "it's", 'say "hi"', "back\\slash", "nul\0byte", "line\nbreak\r\n", "\x1a",
    "%s and %(name)s", "é ü ß", "\u2028", "😀 emoji", "".join(map(chr, range(1, 128))),
    "x" * 5000,
]
VALUES = [
    *TEXTS, SafeString("it's safe"), 0, 1, -7, 2**63 - 1, -(2**63), True, False, None,
    b"", b"\x00\x01'\"\\\xff" * 3, bytes(range(256)), bytearray(b"ab'"), 1.5, -0.0, 1e300,
    Decimal("12.340"), dt.date(2026, 11, 30), dt.time(1, 2, 3, 4),
    dt.datetime(2026, 11, 30, 1, 2, 3, 456789), uuid.UUID(int=5), uuid.uuid4(),
]

mysql_only = pytest.mark.skipif(connection.vendor != "mysql", reason="PyMySQL's literals")


@mysql_only
def test_literals_are_pymysqls_own():
    connection.ensure_connection()
    raw = connection.connection
    literal = direct._pymysql_literals(raw)
    assert literal is not None
    assert list(literal(VALUES)) == [raw.escape(v) for v in VALUES]
    # Every character below 256 alone and inside text (text with nothing to
    # escape is written without translating it).
    texts = [c for i in range(256) for c in (chr(i), f"a{chr(i)}b")]
    assert list(literal(texts)) == [raw.escape(v) for v in texts]


@mysql_only
def test_without_backslash_escapes_pymysql_writes_every_value():
    from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES

    connection.ensure_connection()
    raw = connection.connection
    before = raw.server_status
    raw.server_status |= SERVER_STATUS_NO_BACKSLASH_ESCAPES
    try:
        literal = direct._pymysql_literals(raw)
        assert list(literal(["it's\\"])) == [raw.escape("it's\\")] == ["'it''s\\'"]
    finally:
        raw.server_status = before


def _table(cursor):
    text = "longtext" if connection.vendor == "mysql" else "text"
    blob = {"mysql": "longblob", "postgresql": "bytea"}.get(connection.vendor, "blob")
    cursor.execute(f"CREATE TEMPORARY TABLE bk_direct_probe (n integer PRIMARY KEY, t {text}, "
                   f"b {blob} NULL)")


@pytest.mark.django_db(transaction=True)
def test_values_are_stored_as_given():
    mark = direct.placeholder(connection)
    texts = [t for t in TEXTS if connection.vendor != "postgresql" or "\0" not in t]
    rows = [(i, text, text.encode() if i % 2 else None) for i, text in enumerate(texts)]
    with connection.cursor() as cursor:
        _table(cursor)
        try:
            params = [v for row in rows for v in row]
            sql = ("INSERT INTO bk_direct_probe (n, t, b) VALUES "
                   + ", ".join([f"({mark}, {mark}, {mark})"] * len(rows)))
            with transaction.atomic():
                direct.execute(connection, cursor, sql, params)
            cursor.execute("SELECT n, t, b FROM bk_direct_probe ORDER BY n")
            got = [(n, t, None if b is None else bytes(b)) for n, t, b in cursor.fetchall()]
            assert got == rows
            # A violated constraint is Django's IntegrityError, as through Django's cursor.
            with pytest.raises(IntegrityError), transaction.atomic():
                direct.execute(connection, cursor, sql.split(", (")[0], list(rows[0]))
        finally:
            cursor.execute("DROP TABLE bk_direct_probe")


@mysql_only
def test_a_pymysql_that_escapes_text_otherwise_writes_every_value(monkeypatch):
    """Should a PyMySQL release escape text differently from the engine's table,
    the engine stops writing literals itself."""
    connection.ensure_connection()
    raw = connection.connection
    monkeypatch.setattr(direct, "_SAME_TEXT", [False])
    calls = []
    monkeypatch.setattr(raw, "escape", lambda v, mapping=None: calls.append(v) or "X")
    assert list(direct._pymysql_literals(raw)(["a", 1, None])) == ["X", "X", "X"]
    assert calls == ["a", 1, None]
