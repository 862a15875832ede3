"""The links an M2M ``add()`` must skip, read with one prepared query.

Once a receiver listens to ``m2m_changed`` for a relation (capture does, for every
synced M2M), Django's ``add()`` can no longer insert with conflicts ignored: it
first reads which of the given targets are linked already, so that the signal's
``pk_set`` names only the new ones.  Django builds and compiles that query with
the ORM on every ``add()`` (and ``set()``), which costs several times the rows it
reads: it was a third of what capture added to an M2M ``set()``.

For the relations capture listens to, the related manager class (both sides)
gets a ``_get_missing_target_ids`` that runs the same SELECT, its SQL built once
per database alias, with the through model's own conversions of the keys in and
out, so the set is the one Django computes.  That method is Django's, not public
API: where its signature is not the one known here, or for more targets than one
query should carry, Django's own method runs (slower, same result).
"""

from __future__ import annotations

import inspect

from django.db import connections
from django.db.models.fields.related_descriptors import ManyToManyDescriptor

#: More targets than this in one add() go through Django's own query.
MAX_TARGETS = 500

_SIGNATURE = ["self", "source_field_name", "target_field_name", "db", "target_ids"]
_QUERIES: dict = {}


def speed_up(field) -> None:
    """Give both sides of M2M ``field`` (auto-created through model) the prepared read."""
    sides = [getattr(field.model, field.name, None)]
    if not field.remote_field.hidden:
        sides.append(getattr(field.remote_field.model, field.remote_field.get_accessor_name(), None))
    for descriptor in sides:
        if not isinstance(descriptor, ManyToManyDescriptor):
            continue
        base = descriptor.related_manager_cls
        if getattr(base, "_bk_prepared_links", False) or not _known(base):
            continue
        descriptor.related_manager_cls = _prepared(base)


def _known(base) -> bool:
    method = getattr(base, "_get_missing_target_ids", None)
    if method is None or inspect.iscoroutinefunction(method):
        return False
    return list(inspect.signature(method).parameters) == _SIGNATURE


def _prepared(base):
    def _get_missing_target_ids(self, source_field_name, target_field_name, db, target_ids):
        if not target_ids or len(target_ids) > MAX_TARGETS:
            return base._get_missing_target_ids(self, source_field_name, target_field_name, db,
                                                target_ids)
        linked = existing_links(self.through, source_field_name, target_field_name, db,
                                self.related_val[0], target_ids)
        return target_ids.difference(linked)

    return type(base.__name__, (base,), {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "_get_missing_target_ids": _get_missing_target_ids,
        "_bk_prepared_links": True,
    })


def existing_links(through, source_field_name, target_field_name, using, source, target_ids):
    """The ids among ``target_ids`` that ``source`` is linked to in ``through``,
    as ``through.objects.filter(source=..., target__in=...).values_list(target)``
    returns them."""
    connection = connections[using]
    key = (through, source_field_name, target_field_name, connection.alias, connection.vendor)
    query = _QUERIES.get(key)
    if query is None:
        query = _QUERIES[key] = _query(through, source_field_name, target_field_name, connection)
    head, source_field, target_field, col, converters, named = query
    params = [source_field.get_db_prep_value(source, connection)]
    params += [target_field.get_db_prep_value(t, connection) for t in target_ids]
    if named:
        marks = _MARKS[: len(target_ids)] if len(target_ids) <= len(_MARKS) else [
            f"%(t{i})s" for i in range(len(target_ids))]
        sql = head + ", ".join(marks) + ")"
        params = dict(zip(_NAMES, params, strict=False)) if len(params) <= len(_NAMES) else \
            dict(zip(["s", *(f"t{i}" for i in range(len(target_ids)))], params, strict=True))
    else:
        sql = head + ", ".join(["%s"] * len(target_ids)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = []
    for (value,) in rows:
        for convert in converters:
            value = convert(value, col, connection)
        out.append(value)
    return out


def _query(through, source_field_name, target_field_name, connection):
    opts = through._meta
    source_field = opts.get_field(source_field_name)
    target_field = opts.get_field(target_field_name)
    qn = connection.ops.quote_name

    def statement(mark):
        return (f"SELECT {qn(target_field.column)} FROM {qn(opts.db_table)} "
                f"WHERE {qn(source_field.column)} = {mark} AND {qn(target_field.column)} IN (")

    # Named parameters on SQLite: Django's cursor turns them into ":name" with one
    # string formatting, where "%s" costs a regular expression over the statement.
    named = connection.vendor == "sqlite" and "%" not in statement("")
    head = statement("%(s)s" if named else "%s")
    col = target_field.get_col(opts.db_table)
    converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
    return head, source_field, target_field, col, converters, named


#: Parameter names of the named form: the source, then the targets.
_NAMES = ["s", *(f"t{i}" for i in range(16))]
_MARKS = [f"%({n})s" for n in _NAMES[1:]]
