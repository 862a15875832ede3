"""Capture's per-model plan (serialization.to_record): the shortcuts it takes for
values of the exact type a field holds give what ``normalize`` gives, value and
type, for every built-in field and for the values a field may be handed instead
(strings, floats, naive datetimes ...), so the packed record is byte for byte the
one the generic path packs."""

import datetime as dt
import uuid
import warnings
from decimal import Decimal

import pytest

from django_adapter import serialization as ser
from django_adapter.codec import packb
from tests.test_app import models as m

UTC = dt.UTC

#: For each field of AllFields, values of other types than the one it holds.
ODD = {
    "big": ["12", 3.0, True],
    "small": ["-7"],
    "integer": [False, "2000000000"],
    "positive": ["4"],
    "boolean": [1, 0, "t"],
    "null_boolean": [None, "f"],
    "char": [12, Decimal("1.5"), None],
    "text": [uuid.UUID(int=5)],
    "slug": [7],
    "date": [dt.datetime(2024, 5, 1, 23, 30, tzinfo=UTC), "2024-05-01",
             dt.datetime(2024, 5, 1, 23, 30)],
    "datetime": [dt.datetime(2024, 5, 1, 8, 30), "2024-05-01T08:30:00+02:00",
                 dt.date(2024, 5, 1), dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.timezone(
                     dt.timedelta(hours=2)))],
    "decimal": [1.1, "3.14159", 7, Decimal("1E+3"), Decimal("-0"),
                Decimal("12.12345678901234567890")],
    "uuid": ["12345678-1234-5678-1234-567812345678", 5],
}


def _generic(field, obj):
    """What to_record did per field before the plan (kept here as the reference)."""
    if field.many_to_one or field.one_to_one:
        return ser._reference(field, obj, "default")
    return ser.normalize(field, field.value_from_object(obj))


def _check(obj):
    plan = ser._plan(type(obj)._meta.concrete_model)
    fields = {f.name: f for f in ser.synced_fields(type(obj))}
    assert [name for name, _ in plan.fields] == list(fields)
    for name, read in plan.fields:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # naive datetimes
            want = _generic(fields[name], obj)
            got = read(obj)
        assert type(got) is type(want), name
        assert got == want, name
        assert packb({"v": got}) == packb({"v": want}), name


def test_the_plan_gives_what_normalize_gives_for_every_field(field_data):
    _check(m.AllFields(**field_data))
    nones = {k: None for k in field_data if k not in ("code", "boolean", "char", "text", "slug",
                                                       "email", "url", "file_path")}
    _check(m.AllFields(code="x", **nones))


@pytest.mark.parametrize("name", sorted(ODD))
def test_the_plan_gives_what_normalize_gives_for_odd_values(field_data, name):
    for value in ODD[name]:
        _check(m.AllFields(**{**field_data, name: value}))


def test_a_non_finite_decimal_is_refused_as_normalize_refuses_it(field_data):
    from django.core.exceptions import ValidationError

    plan = ser._plan(m.AllFields)
    read = dict(plan.fields)["decimal"]
    with pytest.raises(ValidationError):
        read(m.AllFields(**{**field_data, "decimal": Decimal("NaN")}))


@pytest.mark.django_db(databases=["default", "server"])
def test_references_read_by_the_plan_are_those_of_the_generic_path(subject_tree):
    for obj in subject_tree.values():
        for one in obj if isinstance(obj, list) else [obj]:
            _check(one)
    _check(m.Clinic.objects.create(name="c-1", beds=3, household=subject_tree["household"]))
    _check(m.Clinic(name="c-2"))


def _raw_rows(using):
    from django.db import connections

    from django_adapter.models import OutgoingTransaction

    opts = OutgoingTransaction._meta
    cols = ", ".join(f.column for f in opts.concrete_fields if f.name not in ("id", "created"))
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {cols} FROM {opts.db_table} ORDER BY id")
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in cursor.fetchall()]


@pytest.mark.django_db(databases=["default", "server"])
def test_the_prepared_insert_writes_the_row_djangos_save_writes(subject_tree):
    """Capture's own INSERT (named parameters on SQLite, per-field shortcuts) stores
    exactly the column values ``OutgoingTransaction.save()`` stores for the same row."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from django_adapter.models import OutgoingTransaction

    with CaptureQueriesContext(connections["default"]) as queries:
        subject_tree["visit"].save()  # logged queries format the named parameters too
    assert any("INSERT INTO" in q["sql"] and OutgoingTransaction._meta.db_table in q["sql"]
               for q in queries.captured_queries)
    captured = list(OutgoingTransaction.objects.using("default").order_by("id"))
    for row in captured:
        copy = OutgoingTransaction(**{f.attname: getattr(row, f.attname)
                                      for f in OutgoingTransaction._meta.concrete_fields
                                      if f.name not in ("id", "created")})
        copy.save(using="server")
    assert _raw_rows("default") == _raw_rows("server")
    assert [r.created for r in captured] == sorted(r.created for r in captured)


@pytest.mark.django_db(databases=["default", "server"])
def test_the_captured_row_has_the_id_and_values_the_database_gave_it(subject_tree):
    from django.db.models import signals

    from django_adapter import capture
    from django_adapter.models import OutgoingTransaction

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    rows = [capture.record_change(subject_tree["visit"], "U", "default")]
    signals.post_init.connect(receiver, sender=OutgoingTransaction)
    try:
        rows.append(capture.record_change(subject_tree["visit"], "U", "default"))
    finally:
        signals.post_init.disconnect(receiver, sender=OutgoingTransaction)
    assert seen == [rows[1]]  # with a receiver, the row is built by __init__
    fields = [f.attname for f in OutgoingTransaction._meta.concrete_fields]
    for row in rows:
        assert not row._state.adding and row._state.db == "default"
        stored = OutgoingTransaction.objects.get(pk=row.pk)
        assert [getattr(row, f) for f in fields] == [getattr(stored, f) for f in fields]
        assert bytes(stored.tx) == row.tx


@pytest.mark.django_db(databases=["default", "server"])
def test_settings_capture_keeps_are_read_again_when_they_change(settings):
    """is_enabled() and the producer keep what they read from settings until
    Django says the setting changed (override_settings, the settings fixture)."""
    from django_adapter import capture
    from django_adapter.models import OutgoingTransaction

    settings.BUNDLEKIT_SITE = "site-1"
    m.Household.objects.create(code="H-1")
    settings.BUNDLEKIT_SITE = "site-2"
    m.Household.objects.create(code="H-2")
    settings.ALLOW_MODEL_SERIALIZATION = False
    assert not capture.is_enabled()
    m.Household.objects.create(code="H-3")
    settings.ALLOW_MODEL_SERIALIZATION = True
    m.Household.objects.create(code="H-4")
    del settings.ALLOW_MODEL_SERIALIZATION
    assert capture.is_enabled()
    rows = OutgoingTransaction.objects.order_by("id")
    assert [r.tx_pk and r.producer.split("/")[0] for r in rows] == ["site-1", "site-2", "site-2"]


def test_pack_captured_gives_packbs_bytes(field_data):
    from django_adapter.codec import pack_captured

    record = ser.to_record(m.AllFields(**field_data), "I", tx_id=uuid.UUID(int=7),
                           ts=dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC), producer="s/h",
                           using="default", nk=["all-1"], new=True)
    assert pack_captured(record) == packb(record)
    assert pack_captured({"big": 2**70, "k": [Decimal("1.5"), None]}) == packb(
        {"big": 2**70, "k": [Decimal("1.5"), None]})


@pytest.mark.django_db(databases=["default", "server"])
def test_the_prepared_insert_prepares_its_values_with_prep():
    """Capture's INSERT prepares each column with ``django_adapter.prep``, whose
    short cuts tests/django_adapter/test_prep.py compares with ``get_db_prep_save``
    (capture's own columns included) on every database."""
    from django.db import connections

    from django_adapter import capture, prep
    from django_adapter.models import OutgoingTransaction

    def shape(kind, convert):  # a conversion is a new closure each time: its name
        return kind, getattr(convert, "__qualname__", convert)

    connection = connections["default"]
    stmt = capture._insert_sql(OutgoingTransaction, connection)
    assert [shape(*p[:2]) for p in stmt.prepare] == [
        shape(*prep.parts(f, connection)[:2]) for f in stmt.fields]
    assert [shape(*v[2:4]) for v in stmt.varying] == [
        shape(*prep.parts(OutgoingTransaction._meta.get_field(v[1]), connection)[:2])
        for v in stmt.varying]


def test_pack_captured_writes_every_datetime_as_packb_does():
    from django_adapter.codec import pack_captured

    class Later(dt.datetime):
        pass

    values = [
        dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 3, 4, 5, 0, tzinfo=UTC),  # no fraction: still six zeros
        dt.datetime(2024, 1, 2, 3, 4, 5, 999999),  # naive
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.datetime(2024, 1, 2, 3, 4, 5, 10, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(2024, 1, 2, 3, 4, 5, 10, tzinfo=dt.timezone(dt.timedelta(seconds=-3601))),
        dt.datetime(2024, 1, 2, 3, 4, 5, 10, tzinfo=dt.timezone(
            dt.timedelta(seconds=61, microseconds=5))),
        Later(2024, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
        dt.date(2024, 1, 2),
        dt.time(3, 4, 5, 6),
    ]
    for value in values:
        record = {"ts": value, "nested": [value, {"v": value}]}
        assert pack_captured(record) == packb(record), value
