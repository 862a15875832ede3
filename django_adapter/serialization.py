"""Model instance <-> record, with exact typed values.

A record is the dict documented in docs/ARCHITECTURE.md.  ``fields`` holds every
concrete field except the primary key and multi-table parent links, keyed by field
name, as the Python value the field holds (``Decimal``, aware ``datetime`` with
microseconds, ``UUID``, ``bytes``, ``timedelta`` ...), so nothing is lost to a
text form.

References travel by what is stable across databases: a foreign key or m2m target
whose primary key is an autoincrement integer travels as the target's natural key
(its pk on the laptop means nothing on the server); any other target (a UUID pk, a
``to_field`` that is not an auto field) travels as the raw key value.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from django_adapter import cursors
from django_adapter.exceptions import NaturalKeyError, UnresolvedReference


def is_synced(model) -> bool:
    """A concrete model with ``SyncModelMixin`` (recognised by its marker)."""
    return getattr(model, "bundlekit_synced", False) is True and not model._meta.abstract


def _root_field(field):
    """The field that really holds a key's value (follows FK/parent-link chains)."""
    while field.is_relation:
        field = field.target_field
    return field


def travels_by_natural_key(field) -> bool:
    """True when values of ``field`` (a pk or a reference target) are meaningless
    on another database, i.e. they are autoincrement integers."""
    return isinstance(_root_field(field), AutoFieldMixin)


def pk_travels(model) -> bool:
    """Whether the primary key itself identifies the object on the server."""
    return not travels_by_natural_key(model._meta.pk)


_SEQUENCES = (list, tuple)


def listify(value: Any) -> Any:
    if isinstance(value, _SEQUENCES):
        return [listify(v) if isinstance(v, _SEQUENCES) else v for v in value]
    return value


def natural_key_of(obj) -> list:
    if not hasattr(obj, "natural_key"):
        raise NaturalKeyError(
            f"{obj._meta.label} has no natural_key(); it cannot be referenced across databases"
        )
    return listify(obj.natural_key())


# ------------------------------------------------------------- renames
#
# An update travels under the object's natural key as it is after the change.
# When the change renamed the object (its natural key changed), the server finds
# its row by the key it had before, so the record carries that too, as
# ``natural_key_before`` (only when it differs).  What the key was is taken from
# the values the instance was loaded with (``SyncModelMixin.from_db``) or last
# saved with: no query, and only computed when a field changed.


def remember_saved(obj) -> None:
    """Remember ``obj``'s concrete values as the ones the database now holds."""
    cls = type(obj)
    names = _ATTNAMES.get(cls)
    if names is None:
        names = _ATTNAMES[cls] = tuple(f.attname for f in obj._meta.concrete_fields)
    values = obj.__dict__
    obj._bk_loaded = (names, tuple([values.get(n, _DEFERRED) for n in names]))


#: Model class -> the attnames of its concrete fields (remember_saved, per save).
_ATTNAMES: dict = {}


_DEFERRED = object()


def natural_key_before(obj, now: list):
    """The natural key ``obj`` had when it was loaded or last saved, if it differs
    from ``now`` (its key after the change); else None."""
    loaded = obj.__dict__.get("_bk_loaded")
    if loaded is None:
        return None
    names, values = loaded
    current = obj.__dict__
    changed = [n for n, v in zip(names, values, strict=True)
               if v is not _DEFERRED and n in current and current[n] != v]
    if not changed:
        return None
    before = obj.__class__.__new__(obj.__class__)
    before.__dict__.update(current)
    before.__dict__.update((n, v) for n, v in zip(names, values, strict=True) if v is not _DEFERRED)
    before._state = copy.copy(obj._state)
    # A cached related object is the right one only if its id did not change.
    cache = dict(obj._state.fields_cache)
    for f in obj._meta.concrete_fields:
        if f.is_relation and f.attname in changed:
            cache.pop(f.name, None)  # a forward relation caches under its name
    before._state.fields_cache = cache
    try:
        key = natural_key_of(before)
    except ObjectDoesNotExist:
        return None
    return key if key != now else None


def lookup_keys(record: dict) -> list:
    """The natural keys to look an object up by at the server, in order: the key
    before a rename first (the server's row still has it), then the key now (a
    rename the server already applied, or no rename)."""
    before = record.get("natural_key_before")
    keys = [before] if isinstance(before, list) else []
    if record.get("natural_key") is not None:
        keys.append(record["natural_key"])
    return keys


def synced_fields(model) -> list:
    """Concrete fields that travel in ``fields`` (pk and parent links travel as ``pk``)."""
    return [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key
        and not (f.one_to_one and f.remote_field.parent_link)
        and not getattr(f, "generated", False)
    ]


def synced_m2m(model) -> list:
    """m2m fields carried with their owner; a custom ``through`` model travels as
    its own model instead."""
    return [f for f in model._meta.many_to_many if f.remote_field.through._meta.auto_created]


def normalize(field, value: Any) -> Any:
    """The exact value the database holds for ``value`` in ``field``."""
    if value is None:
        return None
    if isinstance(field, models.FileField):
        return value.name if hasattr(value, "name") else str(value)
    if isinstance(field, models.BinaryField):
        return bytes(value)
    if isinstance(field, models.JSONField):
        return value
    if field.is_relation:
        return normalize(_root_field(field), value)
    value = field.to_python(value)
    if isinstance(field, models.DateTimeField):
        if settings.USE_TZ and timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_default_timezone())
    elif isinstance(field, models.DecimalField):
        context = decimal.Context(prec=max(field.max_digits or 0, 28))
        value = value.quantize(Decimal(1).scaleb(-field.decimal_places), context=context)
    elif isinstance(field, models.DateField) and isinstance(value, datetime.datetime):
        value = value.date()
    return value


def _reference(field, obj, using: str) -> Any:
    value = getattr(obj, field.attname)
    if value is None:
        return None
    if not travels_by_natural_key(field.target_field):
        return normalize(field, value)
    target = getattr(obj, field.name)
    return natural_key_of(target)


_M2M_QUERIES: dict = {}


def m2m_targets(obj, field, using: str) -> list:
    """The objects ``obj``'s M2M ``field`` links to, in pk order.

    Capture reads the set back after every M2M change, so this is a hot path: one
    prepared join with the fields' own converters, instead of building a related
    manager and compiling its query each time (several times the cost of the rows).
    A target whose default manager filters its queryset keeps the related manager,
    so the rows are exactly those ``getattr(obj, field.name).all()`` returns."""
    from django.db import connections

    target = field.remote_field.model
    if type(target._default_manager).get_queryset is not models.Manager.get_queryset:
        return list(getattr(obj, field.name).using(using).order_by("pk"))
    connection = connections[using]
    key = (field, connection.alias, connection.vendor)
    query = _M2M_QUERIES.get(key)
    if query is None:
        query = _M2M_QUERIES[key] = _m2m_query(field, target, connection)
    sql, names, cols, source, named, build = query
    value = source.get_db_prep_value(getattr(obj, source.target_field.attname), connection)
    raw = cursors.raw_cursor(connection) if named else None
    if raw is not None:  # SQLite, nothing watching its statements (django_adapter/cursors.py)
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            raw.execute(named, (value,))
            rows = raw.fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, {"source": value} if named else [value])
            rows = cursor.fetchall()
    if not cols:  # no column to convert: the rows as the database gave them
        if build is not None and not (_listened(models.signals.pre_init, target)
                                      or _listened(models.signals.post_init, target)):
            return [build(using, row) for row in rows]
        return [target.from_db(using, names, row) for row in rows]
    out = []
    for row in rows:
        row = list(row)
        for i, col, converters in cols:
            v = row[i]
            for convert in converters:
                v = convert(v, col, connection)
            row[i] = v
        out.append(target.from_db(using, names, row))
    return out


def _m2m_query(field, target, connection):
    through = field.remote_field.through
    source = through._meta.get_field(field.m2m_field_name())
    dest = through._meta.get_field(field.m2m_reverse_field_name())
    qn = connection.ops.quote_name
    fields = target._meta.concrete_fields
    t, m = qn(target._meta.db_table), qn(through._meta.db_table)
    # A named parameter on SQLite: Django's cursor turns it into ":source" with one
    # string formatting, where "%s" costs a regular expression over the statement.
    def statement(mark):
        return (f"SELECT {', '.join(f'{t}.{qn(f.column)}' for f in fields)} FROM {t} "
                f"INNER JOIN {m} ON {m}.{qn(dest.column)} = {t}.{qn(dest.target_field.column)} "
                f"WHERE {m}.{qn(source.column)} = {mark} "
                f"ORDER BY {t}.{qn(target._meta.pk.column)}")

    named = connection.vendor == "sqlite" and "%" not in statement("")
    sql = statement("%(source)s" if named else "%s")
    # ``named``: the statement with SQLite's own "?" mark, for cursors.raw_cursor.
    named = statement("?") if named else None
    cols = []
    for i, f in enumerate(fields):
        col = f.get_col(target._meta.db_table)
        converters = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
        if converters:
            cols.append((i, col, converters))
    return sql, [f.attname for f in fields], cols, source, named, _builder(target)


def _listened(signal, sender) -> bool:
    return bool(signal.receivers) and signal.has_listeners(sender)


def _builder(model):
    """``(db, values) -> model.from_db(db, attnames, values)`` for a row of every
    concrete field, without ``Model.__init__`` (most of the cost of a read-back),
    or None where ``from_db`` or ``__init__`` could do more than set the fields'
    attributes: a model overriding either, instances made another way, a field
    whose attribute is not Django's plain one.  The caller checks that no
    ``pre_init``/``post_init`` receiver listens (``__init__`` sends them)."""
    from django.db.models.base import Model, ModelState
    from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
    from django.db.models.query_utils import DeferredAttribute

    from django_adapter.mixins import SyncModelMixin

    from_db = getattr(model.from_db, "__func__", None)
    if from_db not in (Model.from_db.__func__, SyncModelMixin.from_db.__func__):
        return None
    if (type(model).__call__ is not type.__call__ or model.__new__ is not object.__new__
            or model.__init__ is not Model.__init__ or model._meta.abstract):
        return None
    attnames = []
    for f in model._meta.concrete_fields:
        if type(getattr(model, f.attname, None)) not in (DeferredAttribute,
                                                          ForeignKeyDeferredAttribute):
            return None
        if getattr(f, "generated", False) or f.column is None:
            return None
        attnames.append(f.attname)
    names = tuple(attnames)
    loaded = from_db is SyncModelMixin.from_db.__func__
    new = object.__new__

    def build(db, values):
        obj = new(model)
        state = ModelState()
        state.adding = False
        state.db = db
        obj._state = state
        obj.__dict__.update(zip(names, values, strict=True))
        if loaded:  # what SyncModelMixin.from_db remembers
            obj._bk_loaded = (names, tuple(values))
        return obj
    return build


# ------------------------------------------------------------------ capture plans
#
# ``to_record`` runs on every captured save: what it works out from a model's
# fields (which fields travel, how each one's value is read and normalized) is
# worked out once per model.  Each normalizer returns what ``normalize`` returns,
# taking a shortcut only for a value of the exact type the field's own
# ``to_python`` hands back unchanged (checked: the field's class must use Django's
# ``to_python`` for its kind); anything else goes through ``normalize``.


def _normalizer(field):
    """A function of one value giving ``normalize(field, value)``."""
    if field.is_relation and not isinstance(field, models.FileField | models.BinaryField
                                            | models.JSONField):
        root = _root_field(field)
        fast = _normalizer(root)
        return fast
    if isinstance(field, models.FileField | models.BinaryField | models.JSONField):
        return lambda value: normalize(field, value)
    to_python = type(field).to_python
    if isinstance(field, models.DateTimeField):
        if to_python is not models.DateTimeField.to_python:
            return lambda value: normalize(field, value)
        datetime_type = datetime.datetime

        def norm_datetime(value):
            # An aware datetime: to_python keeps it, make_aware is not needed.
            if type(value) is datetime_type and value.utcoffset() is not None:
                return value
            return normalize(field, value)
        return norm_datetime
    if isinstance(field, models.DecimalField):
        if to_python is not models.DecimalField.to_python:
            return lambda value: normalize(field, value)
        context = decimal.Context(prec=max(field.max_digits or 0, 28))
        exponent = Decimal(1).scaleb(-field.decimal_places)

        def norm_decimal(value):
            # Decimal(value) of a Decimal is the same number: quantize it as normalize does.
            if type(value) is Decimal and value.is_finite():
                return value.quantize(exponent, context=context)
            return normalize(field, value)
        return norm_decimal
    exact = None
    if isinstance(field, models.DateField):
        if to_python is models.DateField.to_python:
            exact = datetime.date
    elif to_python in (models.CharField.to_python, models.TextField.to_python):
        exact = str
    elif to_python is models.IntegerField.to_python:
        exact = int
    elif to_python is models.BooleanField.to_python:
        exact = bool
    elif to_python is models.UUIDField.to_python:
        exact = uuid.UUID
    if exact is None:
        return lambda value: normalize(field, value)

    def norm_exact(value):
        if type(value) is exact or value is None:
            return value
        return normalize(field, value)
    return norm_exact


def _field_reader(field):
    """``obj -> normalize(field, field.value_from_object(obj))``."""
    norm = _normalizer(field)
    if type(field).value_from_object is not models.Field.value_from_object:
        return lambda obj: norm(field.value_from_object(obj))
    attname = field.attname
    return lambda obj: norm(getattr(obj, attname))


def _reference_reader(field):
    """``obj -> _reference(field, obj, using)`` (which does not use ``using``)."""
    attname, name = field.attname, field.name
    if travels_by_natural_key(field.target_field):
        def by_natural_key(obj):
            if getattr(obj, attname) is None:
                return None
            return natural_key_of(getattr(obj, name))
        return by_natural_key
    norm = _normalizer(field)

    def by_value(obj):
        value = getattr(obj, attname)
        if value is None:
            return None
        return norm(value)
    return by_value


class _Plan:
    __slots__ = ("fields", "m2m", "label", "pk")

    def __init__(self, model):
        self.fields = [(f.name, _reference_reader(f) if f.many_to_one or f.one_to_one
                        else _field_reader(f)) for f in synced_fields(model)]
        self.m2m = [(f, travels_by_natural_key(f.target_field), _normalizer(f.target_field))
                    for f in synced_m2m(model)]
        self.label = model._meta.label_lower
        self.pk = _normalizer(model._meta.pk)


_PLANS: dict = {}


def _plan(model) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None:
        plan = _PLANS[model] = _Plan(model)
    return plan


def to_record(obj, action: str, *, tx_id, ts, producer: str, using: str, nk=None,
              nk_before=None, new: bool = False) -> dict:
    """The record of one change of ``obj``.  ``new``: the row was inserted just now,
    so no M2M row can point at it yet (they reference it): its M2M lists are empty,
    without a query each."""
    model = obj._meta.concrete_model
    plan = _PLANS.get(model) or _plan(model)
    fields = {}
    m2m = {}
    if action != "D":
        for name, read in plan.fields:
            fields[name] = read(obj)
        for f, by_key, norm in plan.m2m:
            if new:
                m2m[f.name] = []
                continue
            related = m2m_targets(obj, f, using)
            if by_key:
                m2m[f.name] = [natural_key_of(t) for t in related]
            else:
                m2m[f.name] = [norm(t.pk) for t in related]
    record = {
        "id": tx_id,
        "model": plan.label,
        "action": action,
        "pk": plan.pk(obj.pk),
        "natural_key": nk if nk is not None else natural_key_of(obj),
        "ts": ts,
        "producer": producer,
        "fields": fields,
        "m2m": m2m,
    }
    if nk_before is not None and nk_before != record["natural_key"]:
        record["natural_key_before"] = nk_before
    return record


# ------------------------------------------------------------------- apply side


def find(model, record: dict, using: str):
    """The server's copy of the record's object, or None."""
    manager = model._default_manager.db_manager(using)
    if pk_travels(model):
        try:
            return model._base_manager.db_manager(using).get(pk=record["pk"])
        except ObjectDoesNotExist:
            return None
    for key in lookup_keys(record):
        try:
            return manager.get_by_natural_key(*key)
        except ObjectDoesNotExist:
            continue
    return None


def unresolved_message(field, value: Any) -> str:
    """Why a reference cannot be resolved (yet): the reason a deferred row carries."""
    target_model = field.remote_field.model
    target_field = field.target_field
    if travels_by_natural_key(target_field):
        return (f"{field.model._meta.label}.{field.name}: no {target_model._meta.label} "
                f"with natural key {value!r}")
    return (f"{field.model._meta.label}.{field.name}: no {target_model._meta.label} "
            f"with {target_field.name}={value!r}")


def resolve_target(field, value: Any, using: str) -> Any:
    """The local key value a reference stands for; raises UnresolvedReference."""
    target_model = field.remote_field.model
    target_field = field.target_field
    if travels_by_natural_key(target_field):
        try:
            target = target_model._default_manager.db_manager(using).get_by_natural_key(*value)
        except ObjectDoesNotExist:
            raise UnresolvedReference(unresolved_message(field, value)) from None
        return getattr(target, target_field.attname)
    if not target_model._base_manager.using(using).filter(**{target_field.attname: value}).exists():
        raise UnresolvedReference(unresolved_message(field, value))
    return value


def resolve_values(model, record: dict, using: str) -> tuple[dict, dict]:
    """attname -> value for the concrete fields, field name -> [target pks] for m2m."""
    values = {}
    for f in synced_fields(model):
        if f.name not in record["fields"]:
            continue
        value = record["fields"][f.name]
        if (f.many_to_one or f.one_to_one) and value is not None:
            value = resolve_target(f, value, using)
        values[f.attname] = value
    m2m = {}
    for f in synced_m2m(model):
        if f.name in (record.get("m2m") or {}):
            m2m[f.name] = [resolve_target(f, v, using) for v in record["m2m"][f.name]]
    return values, m2m
