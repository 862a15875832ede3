"""Values into the database's form, as ``field.get_db_prep_save`` gives them, for less.

The engine's own INSERT statements (``writes.py``, ``ledger.py``) put every value
of every row through its field's ``get_db_prep_save``: five or six Python calls a
value (prep, to_python, lazy-text check, the backend's adapter), which adds up to
a good part of an import.  :func:`preparer` returns a function that gives the
same result, taking a short cut only for a value of exactly the type the field
keeps (a ``str`` for a CharField, an ``int`` for an IntegerField, an aware
``datetime`` for a DateTimeField ...), and only for Django's own field classes
whose conversion methods are not overridden: a subclass that converts values its
own way (an encrypted field, say) and every other value go through
``get_db_prep_save`` itself.
"""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import Callable

from django.conf import settings
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

    def prepare(value):
        if type(value) is kind:
            return convert(value)
        return slow(value, connection)

    return prepare


def _same(cls, base, *names) -> bool:
    return all(getattr(cls, name) is getattr(base, name) for name in names)


def _as_is(value):
    return value


def _short_cut(field, connection):
    """(the value type, its conversion) for a field whose conversion is Django's."""
    cls = type(field)
    if not _same(cls, F.Field, "get_db_prep_save"):
        return None
    ops = connection.ops
    if isinstance(field, F.CharField | F.TextField):
        base = F.CharField if isinstance(field, F.CharField) else F.TextField
        if _same(cls, base, "get_prep_value", "to_python", "get_db_prep_value"):
            return str, _as_is
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
            return int, _as_is
        if _same(cls, F.IntegerField, "get_db_prep_value"):
            internal = field.get_internal_type()
            return int, lambda value: ops.adapt_integerfield_value(value, internal)
        return None
    if isinstance(field, F.BooleanField):
        if _same(cls, F.BooleanField, "get_prep_value", "to_python") and _same(
                cls, F.Field, "get_db_prep_value"):
            return bool, _as_is
        return None
    if isinstance(field, F.UUIDField):
        if _same(cls, F.UUIDField, "get_db_prep_value"):
            return uuid.UUID, (_as_is if connection.features.has_native_uuid_field
                               else _hex)
        return None
    if isinstance(field, F.DateTimeField):
        if _same(cls, F.DateTimeField, "get_db_prep_value", "get_prep_value", "to_python"):
            slow = field.get_db_prep_save
            if _stock_text_datetimes(ops):
                # SQLite and MySQL store text: Django's adapter, minus its checks.
                if not settings.USE_TZ:  # read once: a preparer lives for one window
                    return datetime.datetime, lambda value: slow(value, connection)
                zone = connection.timezone

                def aware_as_text(value):
                    if value.tzinfo is zone:  # already in the connection's zone (UTC)
                        return str(value.replace(tzinfo=None))
                    if value.utcoffset() is None:
                        return slow(value, connection)
                    return str(value.astimezone(zone).replace(tzinfo=None))

                return datetime.datetime, aware_as_text

            def aware(value):
                if value.utcoffset() is None:  # naive: Django warns and makes it aware
                    return slow(value, connection)
                return ops.adapt_datetimefield_value(value)

            return datetime.datetime, aware
        return None
    if isinstance(field, F.DateField):
        if _same(cls, F.DateField, "get_db_prep_value", "get_prep_value", "to_python"):
            return datetime.date, ops.adapt_datefield_value
        return None
    return None


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
