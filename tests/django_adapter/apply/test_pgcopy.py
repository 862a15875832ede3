"""On PostgreSQL the ledger's new rows go in by COPY (``apply/pgcopy.py``).

They must be stored exactly as the INSERT would have stored them, numbered in the
order given, and a violated constraint must surface as Django's IntegrityError
(the importer's retry and error paths catch Django's exceptions, not psycopg's).
On other databases COPY is not available and nothing changes.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from django_adapter.apply import ledger, pgcopy
from django_adapter.models import IncomingTransaction, TxStatus

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=dt.UTC)
COLUMNS = [f.attname for f in IncomingTransaction._meta.concrete_fields if not f.primary_key]


def rows(n: int, sender: str = "f" * 64, raw_type=bytes):
    made = []
    for i in range(n):
        record = {"id": uuid.UUID(int=i + 1), "model": "test_app.crf", "action": "I",
                  "ts": NOW - dt.timedelta(minutes=i), "producer": "", "pk": uuid.UUID(int=900 + i),
                  "fields": {"n": i}}
        raw = raw_type(ledger.packb(record))
        row = ledger.ledger_row(record, None, i, sender=sender, raw=raw)
        if i % 3 == 0:
            ledger.decide(row, TxStatus.APPLIED, "", NOW)
        elif i % 3 == 1:
            ledger.decide(row, TxStatus.FAILED, "a reason ünïcode", NOW)
        made.append(row)
    return made


def stored(rows_):
    return [tuple(getattr(r, c) if c != "tx" else bytes(r.tx) for c in COLUMNS)
            for r in IncomingTransaction.objects.filter(pk__in=[x.pk for x in rows_]).order_by("pk")]


def test_copy_is_available_exactly_on_postgresql_with_psycopg3():
    expected = connection.vendor == "postgresql"
    if expected:
        import psycopg  # noqa: F401 - the suite's PostgreSQL driver
    assert pgcopy.available(connection) is expected


@pytest.mark.parametrize("raw_type", [bytes, memoryview])
def test_rows_are_stored_as_the_insert_stores_them(raw_type):
    by_copy = rows(7, sender="a" * 64, raw_type=raw_type)
    by_insert = rows(7, sender="b" * 64, raw_type=raw_type)
    ledger.write_new(by_copy, "default")
    ledger.write_new(by_insert, "default", use_copy=False)
    got_copy, got_insert = stored(by_copy), stored(by_insert)
    sender = COLUMNS.index("sender")
    received = COLUMNS.index("received")
    strip = lambda t: t[:sender] + t[sender + 1:received] + t[received + 1:]  # noqa: E731
    assert [strip(t) for t in got_copy] == [strip(t) for t in got_insert]
    assert len(got_copy) == 7 and got_copy[1][COLUMNS.index("reason")] == "a reason ünïcode"


def test_new_rows_are_numbered_in_the_order_given():
    made = rows(50)
    ledger.write_new(made, "default")
    pks = [r.pk for r in made]
    assert pks == sorted(pks) and len(set(pks)) == 50
    assert [r.position for r in IncomingTransaction.objects.filter(pk__in=pks).order_by("pk")] \
        == list(range(50))
    assert all(not r._state.adding and r._state.db == "default" for r in made)


def test_a_violated_constraint_is_djangos_integrity_error():
    ledger.write_new(rows(3), "default")
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.write_new(rows(3), "default")  # the same (sender, tx_id) again
    assert IncomingTransaction.objects.count() == 3
