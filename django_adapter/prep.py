"""Values into the database's form, as ``field.get_db_prep_save`` gives them, for less.

Capture's INSERT of every outgoing row (``capture.py``, once per save of a synced
model) and the engine's own statements (``apply/writes.py``, ``apply/ledger.py``)
put every value of every row through its field's ``get_db_prep_save``: five or
six Python calls a value (prep, to_python, lazy-text check, the backend's
adapter), which adds up to a good part of an import and of a captured save.
:func:`preparer` returns a function that gives the same result, taking a short
cut only for a value of exactly the type the field keeps (a ``str`` for a
CharField, an ``int`` for an IntegerField, an aware ``datetime`` for a
DateTimeField ...), and only for Django's own field classes whose conversion
methods are not overridden: a subclass that converts values its own way (an
encrypted field, say) and every other value go through ``get_db_prep_save``
itself.  :func:`parts` gives the same rule in pieces, for a caller that tests the
type inline (capture).

Two short cuts, SQLite's only, give what sqlite3 binds as Django's result would
be bound rather than Django's object itself: a ``bool`` as the ``int`` it is
(sqlite3 looks for an adapter for a ``bool``, not exactly an ``int``, then binds
it as that ``int``) and ``bytes`` for a BinaryField as they are (Django wraps
them in a ``memoryview``, which sqlite3 binds as the same BLOB).  Each is taken
only while sqlite3 has no adapter registered for those types;
tests/django_adapter/test_prep.py compares what SQLite stores for both.

This module imports only Django and the standard library: capture and the apply
engine both use it, and the engine imports capture.
"""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import fields as F
from django.db.models.fields.related import ForeignKey


def preparer(field, connection) -> Callable:
    """``lambda value: field.get_db_prep_save(value, connection)``, faster where it can be."""
    slow = field.get_db_prep_save

    def prepare_slowly(value):
        return slow(value, connection)

    if type(field).get_db_prep_save is ForeignKey.get_db_prep_save:
        target = preparer(field.target_field, connection)
        if not field.target_field.empty_strings_allowed:

            def prepare_reference(value):
                return None if value is None else target(value) if value != "" else None

            return prepare_reference
        return prepare_slowly
    fast = _short_cut(field, connection)
    if fast is None:
        return prepare_slowly
    kind, convert = fast
    if convert is None:

        def prepare_as_is(value):
            return value if type(value) is kind else slow(value, connection)

        return prepare_as_is

    def prepare(value):
        if type(value) is kind:
            return convert(value)
        return slow(value, connection)

    return prepare


class _Never:
    """A type no value has: the ``kind`` :func:`parts` gives a field without a short cut."""


def parts(field, connection) -> tuple[type, Callable | None, Callable]:
    """(kind, convert, prepare): for a value of exactly the type ``kind``,
    ``get_db_prep_save`` gives ``convert(value)`` (the value itself when ``convert``
    is None); for any value, ``prepare(value)`` (the :func:`preparer`).  For a
    caller that tests the type inline, saving a call per value."""
    fast = None if type(field).get_db_prep_save is ForeignKey.get_db_prep_save else (
        _short_cut(field, connection))
    kind, convert = (_Never, None) if fast is None else fast
    return kind, convert, preparer(field, connection)


def _same(cls, base, *names) -> bool:
    return all(getattr(cls, name) is getattr(base, name) for name in names)


def _short_cut(field, connection):
    """(the value type, its conversion or None for the value itself) for a field
    whose conversion is Django's; None for any other field."""
    cls = type(field)
    if not _same(cls, F.Field, "get_db_prep_save"):
        return None
    ops = connection.ops
    if isinstance(field, F.CharField | F.TextField):
        base = F.CharField if isinstance(field, F.CharField) else F.TextField
        if _same(cls, base, "get_prep_value", "to_python", "get_db_prep_value"):
            return str, None
        return None
    if isinstance(field, F.AutoFieldMixin):
        if _same(cls, F.AutoFieldMixin, "get_db_prep_value") and _same(
                cls, F.IntegerField, "get_prep_value"):
            return int, ops.validate_autopk_value
        return None
    if isinstance(field, F.IntegerField):
        if not _same(cls, F.IntegerField, "get_prep_value"):
            return None
        if _same(cls, F.Field, "get_db_prep_value"):
            return int, None
        if _same(cls, F.IntegerField, "get_db_prep_value"):
            adapt = type(ops).adapt_integerfield_value
            if adapt is getattr(BaseDatabaseOperations, "adapt_integerfield_value", None):
                return int, None  # the base adapter gives the value back
            internal = field.get_internal_type()
            return int, lambda value: ops.adapt_integerfield_value(value, internal)
        return None
    if isinstance(field, F.BooleanField):
        if _same(cls, F.BooleanField, "get_prep_value", "to_python") and _same(
                cls, F.Field, "get_db_prep_value"):
            return bool, (int if _sqlite_binds_plainly(connection, bool) else None)
        return None
    if isinstance(field, F.UUIDField):
        if _same(cls, F.UUIDField, "get_db_prep_value"):
            return uuid.UUID, (None if connection.features.has_native_uuid_field else _hex)
        return None
    if isinstance(field, F.DateTimeField):
        if _same(cls, F.DateTimeField, "get_db_prep_value", "get_prep_value", "to_python"):
            return datetime.datetime, _datetime_conversion(field, connection)
        return None
    if isinstance(field, F.DateField):
        if _same(cls, F.DateField, "get_db_prep_value", "get_prep_value", "to_python"):
            return datetime.date, ops.adapt_datefield_value
        return None
    if isinstance(field, F.BinaryField):
        if _same(cls, F.BinaryField, "get_db_prep_value") and _same(
                cls, F.Field, "get_prep_value"):
            binary = connection.Database.Binary
            if binary is memoryview and _sqlite_binds_plainly(connection, bytes, memoryview):
                return bytes, None
            return bytes, binary
        return None
    return None


def _datetime_conversion(field, connection):
    """The conversion of an exact ``datetime`` for a DateTimeField of Django's own."""
    slow = field.get_db_prep_save
    ops = connection.ops
    if _stock_text_datetimes(ops):
        # SQLite and MySQL store text: Django's adapter, minus its checks.
        if not settings.USE_TZ:  # read once: a preparer lives for one window
            return lambda value: slow(value, connection)
        zone = connection.timezone
        utc = zone is datetime.UTC

        def aware_as_text(value):
            if value.tzinfo is zone:  # already in the connection's zone
                # UTC (timezone.now()'s): isoformat's text without its "+00:00".
                return value.isoformat(" ")[:-6] if utc else str(value.replace(tzinfo=None))
            if value.utcoffset() is None:
                return slow(value, connection)
            return str(value.astimezone(zone).replace(tzinfo=None))

        return aware_as_text

    def aware(value):
        if value.utcoffset() is None:  # naive: Django warns and makes it aware
            return slow(value, connection)
        return ops.adapt_datetimefield_value(value)

    return aware


def _sqlite_binds_plainly(connection, *kinds) -> bool:
    """Whether ``connection`` is sqlite3's and binds values of ``kinds`` with no
    adapter registered for them (so as the int or the BLOB they are)."""
    if connection.vendor != "sqlite":
        return False
    database = connection.Database
    adapters = getattr(database, "adapters", None)
    protocol = getattr(database, "PrepareProtocol", None)
    return (isinstance(adapters, dict) and protocol is not None
            and not any((kind, protocol) in adapters for kind in kinds))


def _stock_text_datetimes(ops) -> bool:
    """Whether ``ops`` adapts datetimes exactly as Django's SQLite or MySQL backend
    does (aware: to the connection's zone, naive, then ``str``), not overridden."""
    method = type(ops).adapt_datetimefield_value
    for module in ("django.db.backends.sqlite3.operations", "django.db.backends.mysql.operations"):
        stock = getattr(sys.modules.get(module), "DatabaseOperations", None)
        if stock is not None and method is stock.adapt_datetimefield_value:
            return True
    return False


def uuid_text(value: uuid.UUID, _to_bytes=int.to_bytes) -> str:
    """``str(value)`` at half the cost of ``UUID.__str__`` (it was a third of the
    time MariaDB's literals took, and a percent of building ledger rows)."""
    h = _to_bytes(value.int, 16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hex(value) -> str:
    return value.hex
