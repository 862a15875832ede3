"""Capture's and the engine's value preparation gives what ``get_db_prep_save`` gives.

``prep.preparer`` (and ``prep.parts``, its pieces for capture) takes short cuts
for values of the type a field keeps; every field of the test app's models and
of bundlekit's own rows (capture's ``OutgoingTransaction``), with values of the
right type, of other types, ``None`` and lazy text, must come out as Django's
own conversion has them, on each database the suite runs on.  SQLite's two
driver short cuts (a bool as its int, bytes as they are) must be stored by
SQLite exactly as Django's result is.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
import warnings
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection, models
from django.utils.functional import lazy

from django_adapter import models as bk
from django_adapter import prep
from django_adapter.prep import parts, preparer
from tests.test_app import models as m

pytestmark = pytest.mark.django_db

lazy_text = lazy(lambda: "lazy", str)()
AWARE = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
VALUES = [None, "", "text", lazy_text, 0, 7, -3, 2**40, True, False, 1.5, Decimal("12.50"),
          uuid.UUID(int=42), AWARE, AWARE.replace(tzinfo=None), dt.date(2026, 3, 4),
          AWARE.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
          dt.time(5, 6, 7), dt.timedelta(days=1, seconds=3), "2026-03-04",
          "00000000-0000-0000-0000-00000000002a", "12",
          AWARE.replace(microsecond=0), dt.datetime(1, 1, 1, tzinfo=dt.UTC),
          dt.datetime(2024, 10, 27, 1, 30, tzinfo=zoneinfo.ZoneInfo("Africa/Gaborone")),
          b"\x00\xffbytes", b"", bytearray(b"array"), memoryview(b"view")]


def outcome(convert, value):
    """What a conversion returns (its type and repr: a driver's wrappers, such as
    psycopg's Jsonb, do not compare equal; a memoryview's bytes, not its address),
    or the type of what it raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # naive datetimes
            result = convert(value)
            shown = bytes(result) if type(result) is memoryview else result
            return ("value", type(result), repr(shown))
    except Exception as exc:  # noqa: BLE001 - the same failure is what is compared
        return ("raises", type(exc))


#: What SQLite's driver short cuts give instead of Django's result (prep.py).
SQLITE_SHORT_CUTS = {(int, bool), (bytes, memoryview)}


def stored(value):
    """What SQLite stores for ``value`` bound as a parameter: its type and text."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT typeof(%s), quote(%s)", [value, value])
        return cursor.fetchone()


def assert_as_django(field, fast, value):
    """``fast(value)`` is ``field.get_db_prep_save(value, connection)``; on SQLite a
    driver short cut may give another object that SQLite stores the same."""
    def django(v):
        return field.get_db_prep_save(v, connection)

    got, want = outcome(fast, value), outcome(django, value)
    if got != want and connection.vendor == "sqlite" and got[0] == want[0] == "value" and (
            (got[1], want[1]) in SQLITE_SHORT_CUTS):
        got, want = stored(fast(value)), stored(django(value))
    assert got == want, (field, value)


def inline(field):
    """The preparation as capture writes it with ``prep.parts``."""
    kind, convert, prepare = parts(field, connection)

    def prepare_inline(value):
        if type(value) is kind:
            return value if convert is None else convert(value)
        return prepare(value)

    return prepare_inline


def fields():
    for model in (m.AllFields, m.Visit, m.Crf, m.Requisition, m.Clinic, m.Subject,
                  bk.OutgoingTransaction, bk.IncomingTransaction):
        yield from model._meta.concrete_fields


@pytest.mark.parametrize("field", list(fields()), ids=lambda f: f"{f.model.__name__}.{f.name}")
def test_every_value_as_django_prepares_it(field):
    for fast in (preparer(field, connection), inline(field)):
        for value in VALUES:
            assert_as_django(field, fast, value)


class Shouting(models.CharField):
    """A field that converts values its own way: no short cut may skip it."""

    def get_prep_value(self, value):
        return None if value is None else str(value).upper()


class Sealed(models.BinaryField):
    """An encrypted field, as far as conversion goes: its own database value."""

    def get_db_prep_value(self, value, connection, prepared=False):
        return None if value is None else bytes(reversed(value))


class Inverted(models.BooleanField):
    def get_prep_value(self, value):
        return None if value is None else not value


def test_a_field_with_its_own_conversion_is_left_to_it():
    for field, value, want in ((Shouting(max_length=10), "quiet", "QUIET"),
                               (Sealed(), b"abc", b"cba"), (Inverted(), True, False)):
        field.set_attributes_from_name("own")
        assert preparer(field, connection)(value) == want
        assert inline(field)(value) == want
        kind, convert, _ = parts(field, connection)
        assert (kind, convert) == (prep._Never, None)


def test_capture_takes_a_short_cut_for_every_column_it_writes():
    """Capture's columns (those it gives each row) are prepared without Django's path."""
    for name in ("tx_id", "tx_name", "tx_pk", "producer", "action", "timestamp", "tx", "format",
                 "created"):
        kind, _, _ = parts(bk.OutgoingTransaction._meta.get_field(name), connection)
        assert kind is not prep._Never, name
    if connection.vendor == "sqlite":
        got = {name: parts(bk.OutgoingTransaction._meta.get_field(name), connection)[:2]
               for name in ("tx", "is_consumed_server", "tx_name", "format")}
        assert got == {"tx": (bytes, None), "is_consumed_server": (bool, int),
                       "tx_name": (str, None), "format": (int, None)}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="sqlite3's adapters")
def test_an_adapter_registered_with_sqlite3_turns_its_short_cut_off():
    """A bool or bytes adapter changes what sqlite3 binds: Django's result goes."""
    boolean = m.AllFields._meta.get_field("boolean")
    binary = m.AllFields._meta.get_field("binary")
    assert parts(boolean, connection)[:2] == (bool, int)
    assert parts(binary, connection)[:2] == (bytes, None)
    for kind, field, want in ((bool, boolean, (bool, None)), (bytes, binary, (bytes, memoryview)),
                              (memoryview, binary, (bytes, memoryview))):
        sqlite3.register_adapter(kind, lambda v: "adapted")
        try:
            assert parts(field, connection)[:2] == want, kind
        finally:
            del sqlite3.adapters[(kind, sqlite3.PrepareProtocol)]


def test_datetimes_on_text_databases_take_the_short_cut_and_agree_without_use_tz(settings):
    """SQLite and MySQL store datetimes as text: the short cut is taken there, and
    with USE_TZ off an aware value fails as Django's own conversion fails."""
    field = m.AllFields._meta.get_field("datetime")
    assert prep._stock_text_datetimes(connection.ops) is (connection.vendor in ("sqlite", "mysql"))
    settings.USE_TZ = False
    fast = preparer(field, connection)
    for value in (AWARE, AWARE.replace(tzinfo=None)):
        assert_as_django(field, fast, value)


@pytest.mark.parametrize("value", [uuid.UUID(int=0), uuid.UUID(int=1), uuid.UUID(int=2**128 - 1),
                                   uuid.UUID(int=2**127), uuid.UUID(int=42), uuid.uuid4(),
                                   uuid.UUID("01234567-89ab-7def-8123-456789abcdef")])
def test_uuid_text_is_str_of_the_uuid(value):
    assert prep.uuid_text(value) == str(value)
