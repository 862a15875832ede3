"""Natural keys, a window at a time.

A manager's ``get_by_natural_key`` is arbitrary code.  Its common form,
``return self.get(field=value, other__field=value)`` -- including lookups across
foreign keys, as edc-style managers write them
(``self.get(subject_visit__subject_identifier=..., visit_code=...)``) -- is run
against a stand-in that records the lookups.  All keys of a window are then
fetched with one ``__in`` query on the field with the most distinct values, and
the candidate rows are matched on every field exactly, here in Python.

Where the database compares text more loosely than Python (MariaDB/MySQL's
case- and accent-insensitive collations, trailing spaces), a key with no exact
match but a loosely equal candidate is asked of the manager itself, so the
result is always the one ``get_by_natural_key`` would give.

Keys a stand-in cannot record (other code in the manager, lookups that are not
plain field paths, fields with their own collation) are asked of the manager one
at a time: correct, only slower.
"""

from __future__ import annotations

import datetime
import unicodedata
import uuid

from django.core.exceptions import ObjectDoesNotExist
from django.db import connections
from django.db.models import CharField, TextField

from django_adapter.apply.ledger import IN

_PLAIN_VALUES = (str, int, uuid.UUID, datetime.date)


class _NoBatch(Exception):
    """These rows cannot be planned together; apply them one by one."""


def hashable(value):
    """A list (natural keys nest) as nested tuples, usable as a dict key."""
    if type(value) is list or type(value) is tuple:
        return tuple([v if type(v) is not list and type(v) is not tuple else hashable(v)
                      for v in value])
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    return value


class _Recorded(Exception):
    pass


class _LookupRecorder:
    def __init__(self):
        self.lookups = None

    def get(self, *args, **kwargs):
        if args:
            raise _NoBatch("positional lookups")
        self.lookups = kwargs
        raise _Recorded


def _lookups_of(manager, key) -> dict | None:
    method = getattr(type(manager), "get_by_natural_key", None)
    if method is None or not isinstance(key, list | tuple):
        return None
    recorder = _LookupRecorder()
    try:
        method(recorder, *key)
    except _Recorded:
        return recorder.lookups
    except Exception:  # noqa: BLE001 - anything but a plain get(): not batchable
        return None
    return None


def _lookup_field(model, path: str):
    """The concrete, non-relational field at the end of a forward field path, or None."""
    parts = path.split("__")
    for i, part in enumerate(parts):
        try:
            f = model._meta.get_field(part)
        except Exception:  # noqa: BLE001 - a lookup suffix (iexact, ...) or a typo
            return None
        if not getattr(f, "concrete", False):
            return None
        if i < len(parts) - 1:
            if not (f.many_to_one or f.one_to_one):
                return None
            model = f.related_model
        elif f.is_relation or getattr(f, "db_collation", None):
            return None
        else:
            return f
    return None


def _prep(field):
    """``field.get_prep_value``, skipped for text of Django's own text fields (it
    gives the same text back): it ran for every value of every candidate row."""
    if field is None:
        return None
    prep = field.get_prep_value
    cls = type(field)
    for base in (CharField, TextField):
        if (isinstance(field, base) and cls.get_prep_value is base.get_prep_value
                and cls.to_python is base.to_python):
            return lambda value: value if type(value) is str else prep(value)
    return prep


def loose(value):
    """A form of ``value`` equal for any two values a usual text collation may
    judge equal (case, accents, trailing spaces); tuples element by element."""
    if isinstance(value, tuple):
        return tuple(loose(v) for v in value)
    if not isinstance(value, str):
        return value
    decomposed = unicodedata.normalize("NFKD", value.rstrip(" "))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def natural_lookup(model, keys: list, using: str, attname: str) -> dict:
    """natural key (hashable) -> ``attname`` of the object with it, for the keys found."""
    manager = model._default_manager.db_manager(using)
    names = fields = None
    wanted: dict = {}
    slow: dict = {}
    keys_of: dict = {}
    for key in keys:
        hk = hashable(key)
        if hk in keys_of:
            continue
        keys_of[hk] = key
        lookups = _lookups_of(manager, key)
        if lookups and names is None:
            names = sorted(lookups)
            fields = [_lookup_field(model, n) for n in names]
            preps = [_prep(f) for f in fields]
        if (not lookups or sorted(lookups) != names or any(f is None for f in fields)
                or any(not isinstance(lookups[n], _PLAIN_VALUES) for n in names)):
            slow[hk] = key
            continue
        wanted[hk] = tuple(p(lookups[n]) for p, n in zip(preps, names, strict=True))
    out: dict = {}
    loose_db = connections[using].vendor == "mysql"
    items = list(wanted.items())
    for chunk in (items[i : i + IN] for i in range(0, len(items), IN)):
        # Filter on the one field with the most distinct values in this chunk (the
        # participant of a visit, not its visit code): an index on it narrows the
        # rows to a few per key.  The rows are then matched on every field here.
        distinct = [{t[i] for _, t in chunk} for i in range(len(names))]
        best = max(range(len(names)), key=lambda i: len(distinct[i]))
        filters = {f"{names[best]}__in": sorted(distinct[best], key=repr)}
        found: dict = {}
        for row in manager.filter(**filters).order_by().values_list(attname, *names):
            t = tuple([p(v) for p, v in zip(preps, row[1:], strict=True)])
            found.setdefault(t, set()).add(row[0])
        missed = []
        for hk, t in chunk:
            hits = found.get(t)
            if hits:
                if len(hits) > 1:
                    raise _NoBatch("a natural key matches several objects")
                out[hk] = next(iter(hits))
            elif loose_db:
                missed.append((hk, t))
        if missed:
            # Only a key without an exact match can have a loose one: the loose forms
            # (Unicode normalisation of every value) are built for those chunks only.
            loosely = {tuple(loose(v) for v in t) for t in found}
            for hk, t in missed:
                if tuple(loose(v) for v in t) in loosely:
                    slow[hk] = keys_of[hk]
    for hk, key in slow.items():
        try:
            obj = manager.get_by_natural_key(*key)
        except ObjectDoesNotExist:
            continue
        out[hk] = getattr(obj, attname)
    return out
