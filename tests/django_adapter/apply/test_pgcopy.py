"""On PostgreSQL the ledger's new rows, and new objects of plain column types, go
in by COPY (``apply/pgcopy.py``).

They must be stored exactly as the INSERT would have stored them, numbered in the
order given (from the table's own sequence), and a violated constraint must surface as Django's IntegrityError
(the importer's retry and error paths catch Django's exceptions, not psycopg's).
On other databases COPY is not available and nothing changes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from django_adapter.apply import ledger, pgcopy, writes
from django_adapter.apply.plan import ModelPlan
from django_adapter.models import IncomingTransaction, TxStatus
from tests.test_app import models as m

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


# ------------------------------------------------------------------ model objects


def households(prefix: str, n: int):
    return [m.Household(code=f"{prefix}{i}", village="Mochudi ünï" if i % 2 else "", note="")
            for i in range(n)]


def test_objects_with_autoincrement_keys_are_numbered_and_stored_as_the_insert_stores_them(
        monkeypatch):
    plan = ModelPlan("test_app.household")
    by_copy = households("c", 5)
    writes.insert(plan, by_copy, "default")
    monkeypatch.setattr(writes, "USE_COPY", False)
    by_insert = households("i", 5)
    writes.insert(plan, by_insert, "default")
    pks = [h.pk for h in by_copy]
    assert all(pk is not None for pk in pks) and pks == sorted(pks)
    assert all(not h._state.adding and h._state.db == "default" for h in by_copy)
    got = {h.code: (h.pk, h.village, h.note) for h in m.Household.objects.all()}
    for made in (by_copy, by_insert):
        assert all(got[h.code] == (h.pk, h.village, h.note) for h in made)
    # The sequence moved past the copied ids: the next insert takes a new one.
    assert m.Household.objects.create(code="later").pk > max(pks)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_value_of_another_type_than_its_column_takes_goes_by_insert(monkeypatch):
    """A field that converts values its own way (here: to an int for a text
    column) makes the batch go by Django's insert, and nothing is copied."""
    plan = ModelPlan("test_app.household")
    real = writes.preparer
    monkeypatch.setattr(writes, "preparer", lambda f, c: (lambda v: 42) if f.name == "village"
                        else real(f, c))
    copied = []
    monkeypatch.setattr(pgcopy, "copy_rows", lambda *a: copied.append(a))
    made = households("x", 3)
    writes.insert(plan, made, "default")
    assert copied == []
    assert sorted(m.Household.objects.values_list("code", "village")) == [
        ("x0", ""), ("x1", "Mochudi ünï"), ("x2", "")]


def test_objects_whose_pk_travels_keep_it():
    plan = ModelPlan("test_app.panel")
    made = [m.Panel(id=uuid.UUID(int=77 + i), code=f"p{i}") for i in range(3)]
    writes.insert(plan, made, "default")
    assert sorted(m.Panel.objects.values_list("id", "code")) == [
        (uuid.UUID(int=77 + i), f"p{i}") for i in range(3)]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_integers_decimals_dates_and_references_go_by_copy(monkeypatch):
    """The values Django's backend prepares (psycopg's Int4 for an IntegerField, a
    Decimal, an aware datetime, a reference's key) are ones COPY takes."""
    copied = []
    real = pgcopy.copy_rows
    monkeypatch.setattr(pgcopy, "copy_rows", lambda c, table, *a: (copied.append(table),
                                                                    real(c, table, *a)))
    subject = m.Subject.objects.create(code="S1")
    visits = [m.Visit(subject=subject, visit_code=f"{i}000", report_datetime=NOW)
              for i in range(3)]
    writes.insert(ModelPlan("test_app.visit"), visits, "default")
    crfs = [m.Crf(id=uuid.UUID(int=500 + i), visit=v, weight=Decimal("61.25") + i)
            for i, v in enumerate(visits)]
    writes.insert(ModelPlan("test_app.crf"), crfs, "default")
    assert copied == ["test_app_visit", "test_app_crf"]
    assert sorted(m.Crf.objects.values_list("visit__visit_code", "weight", "visit__report_datetime")) \
        == [(f"{i}000", Decimal("61.25") + i, NOW) for i in range(3)]


TYPICAL = {"BigIntegerField": 2**40, "SmallIntegerField": -3, "IntegerField": 7,
           "PositiveIntegerField": 7, "PositiveSmallIntegerField": 7, "PositiveBigIntegerField": 7,
           "BooleanField": True, "CharField": "x", "TextField": "x", "SlugField": "x",
           "DateField": dt.date(2026, 1, 2), "DateTimeField": NOW, "DecimalField": Decimal("1.5"),
           "FloatField": 1.5, "UUIDField": uuid.UUID(int=3), "BinaryField": b"\x00\x01",
           "AutoField": 1, "BigAutoField": 1, "FileField": "files/a.txt", "FilePathField": "a.txt",
           "GenericIPAddressField": "10.0.0.1", "EmailField": "a@b.c",
           "URLField": "https://example.org", "ForeignKey": 1, "OneToOneField": 1}


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_every_plain_column_takes_what_django_prepares_for_it():
    """For each field of every built-in type whose column COPY sends (AllFields has
    one of each), the value Django's backend prepares is of a type COPY takes."""
    opts = m.AllFields._meta
    checked = []
    for field in opts.concrete_fields:
        kinds = pgcopy.python_types(connection, opts.db_table, [field.column])
        if kinds is None:
            continue  # time, interval, jsonb: by INSERT
        value = field.get_db_prep_save(TYPICAL[field.get_internal_type()], connection)
        assert isinstance(value, kinds[0]) and type(value) in kinds[0], (field.name, type(value))
        checked.append(field.get_internal_type())
    assert {"IntegerField", "BigIntegerField", "DecimalField", "FloatField", "DateField",
            "DateTimeField", "UUIDField", "BooleanField", "BinaryField"} <= set(checked)


def test_m2m_links_are_set_exactly(monkeypatch):
    """Through rows (by COPY on PostgreSQL): a set difference, each link once."""
    copied = []
    real = pgcopy.copy_rows
    monkeypatch.setattr(pgcopy, "copy_rows", lambda c, table, *a: (copied.append(table),
                                                                    real(c, table, *a)))
    tags = [m.Tag.objects.create(code=f"t{i}") for i in range(4)]
    subjects = [m.Subject.objects.create(code=f"s{i}") for i in range(3)]
    subjects[0].tags.set(tags[:2])
    field = m.Subject._meta.get_field("tags")
    writes.set_m2m(field, {subjects[0].pk: {tags[1].pk, tags[2].pk},
                           subjects[1].pk: {tags[3].pk}, subjects[2].pk: set()}, "default")
    assert {s.code: sorted(t.code for t in s.tags.all()) for s in subjects} == {
        "s0": ["t1", "t2"], "s1": ["t3"], "s2": []}
    assert copied == (["test_app_subject_tags"] if connection.vendor == "postgresql" else [])
