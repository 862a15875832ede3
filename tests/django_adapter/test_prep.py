"""The engine's value preparation gives exactly what ``get_db_prep_save`` gives.

``prep.preparer`` takes short cuts for values of the type a field keeps; every
field of the test app's models, with values of the right type, of other types,
``None`` and lazy text, must come out as Django's own conversion has them, on
each database the suite runs on.
"""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from decimal import Decimal

import pytest
from django.db import connection, models
from django.utils.functional import lazy

from django_adapter.prep import preparer
from tests.test_app import models as m

pytestmark = pytest.mark.django_db

lazy_text = lazy(lambda: "lazy", str)()
AWARE = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
VALUES = [None, "", "text", lazy_text, 0, 7, -3, 2**40, True, False, 1.5, Decimal("12.50"),
          uuid.UUID(int=42), AWARE, AWARE.replace(tzinfo=None), dt.date(2026, 3, 4),
          AWARE.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
          dt.time(5, 6, 7), dt.timedelta(days=1, seconds=3), "2026-03-04",
          "00000000-0000-0000-0000-00000000002a", "12"]


def outcome(convert, value):
    """What a conversion returns (its type and repr: a driver's wrappers, such as
    psycopg's Jsonb, do not compare equal), or the type of what it raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # naive datetimes
            result = convert(value)
            return ("value", type(result), repr(result))
    except Exception as exc:  # noqa: BLE001 - the same failure is what is compared
        return ("raises", type(exc))


def fields():
    for model in (m.AllFields, m.Visit, m.Crf, m.Requisition, m.Clinic, m.Subject):
        yield from model._meta.concrete_fields


@pytest.mark.parametrize("field", list(fields()), ids=lambda f: f"{f.model.__name__}.{f.name}")
def test_every_value_as_django_prepares_it(field):
    fast = preparer(field, connection)
    for value in VALUES:
        assert outcome(fast, value) == outcome(
            lambda v: field.get_db_prep_save(v, connection), value), (field, value)


class Shouting(models.CharField):
    """A field that converts values its own way: no short cut may skip it."""

    def get_prep_value(self, value):
        return None if value is None else str(value).upper()


def test_a_field_with_its_own_conversion_is_left_to_it():
    field = Shouting(max_length=10)
    field.set_attributes_from_name("loud")
    assert preparer(field, connection)("quiet") == "QUIET"


def test_datetimes_on_text_databases_take_the_short_cut_and_agree_without_use_tz(settings):
    """SQLite and MySQL store datetimes as text: the short cut is taken there, and
    with USE_TZ off an aware value fails as Django's own conversion fails."""
    from django_adapter import prep

    field = m.AllFields._meta.get_field("datetime")
    assert prep._stock_text_datetimes(connection.ops) is (connection.vendor in ("sqlite", "mysql"))
    settings.USE_TZ = False
    fast = preparer(field, connection)
    for value in (AWARE, AWARE.replace(tzinfo=None)):
        assert outcome(fast, value) == outcome(
            lambda v: field.get_db_prep_save(v, connection), value), value


@pytest.mark.parametrize("value", [uuid.UUID(int=0), uuid.UUID(int=1), uuid.UUID(int=2**128 - 1),
                                   uuid.UUID(int=2**127), uuid.UUID(int=42), uuid.uuid4(),
                                   uuid.UUID("01234567-89ab-7def-8123-456789abcdef")])
def test_uuid_text_is_str_of_the_uuid(value):
    from django_adapter.prep import uuid_text

    assert uuid_text(value) == str(value)
