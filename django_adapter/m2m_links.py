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
from django.db.models import IntegerField, Manager, UUIDField
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
        if self.__dict__.get("_bk_set_read") and _set_knows(self, source_field_name):
            # set() read every link of the source just now, in this transaction, and
            # adds only targets that were not among them: none is linked.
            return set(target_ids)
        if not target_ids or len(target_ids) > MAX_TARGETS:
            return base._get_missing_target_ids(self, source_field_name, target_field_name, db,
                                                target_ids)
        linked = existing_links(self.through, source_field_name, target_field_name, db,
                                self.related_val[0], target_ids)
        return target_ids.difference(linked)

    attrs = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "_get_missing_target_ids": _get_missing_target_ids,
        "_bk_prepared_links": True,
    }
    if _known_set(base):
        def set_(self, objs, *, clear=False, through_defaults=None):
            objs = tuple(objs)
            # Not after a clear or a remove: their signals' receivers may link
            # anything before the add.  (add() drops a prefetched list before it
            # asks for the missing ids, so that is looked at here.)
            self._bk_set_read = not clear and _distinct(self, objs) and not _prefetched(self)
            try:
                return base.set(self, objs, clear=clear, through_defaults=through_defaults)
            finally:
                self._bk_set_read = False

        def remove(self, *objs):
            if objs:
                self._bk_set_read = False
            return base.remove(self, *objs)

        set_.__name__ = "set"
        set_.alters_data = remove.alters_data = True
        attrs["set"], attrs["remove"] = set_, remove
    return type(base.__name__, (base,), attrs)


def _known_set(base) -> bool:
    """set() and remove() are the ones the shortcut was written for (Django 4.2 and
    5.2): set() reads the links, then calls remove() and add().  Django 6's set()
    goes through ``set_base``/``_remove_base``/``_add_base`` instead, past the
    remove() that must turn the shortcut off: there it is not used."""
    if hasattr(base, "set_base"):
        return False
    for name, params in (("set", ["self", "objs", "clear", "through_defaults"]),
                         ("remove", ["self", "objs"])):
        method = getattr(base, name, None)
        if method is None or inspect.iscoroutinefunction(method):
            return False
        if list(inspect.signature(method).parameters) != params:
            return False
    return True


def _distinct(manager, objs) -> bool:
    """Whether ``objs`` name distinct targets, keyed as set() keys them (a target
    named twice is added again by set() although it is linked)."""
    field, model = manager.target_field, manager.model
    try:
        keys = {field.get_foreign_related_value(o)[0] if isinstance(o, model)
                else field.get_prep_value(o) for o in objs}
    except Exception:  # set() raises its own error for it
        return False
    return len(keys) == len(objs)


def _set_knows(manager, source_field_name) -> bool:
    """Whether the add() inside ``manager.set()`` may take every target it adds as
    not linked yet.  Django's set() reads the source's links through the related
    manager (``old_ids``) and adds only the targets not among them (set_ above
    leaves out the sets that remove or clear links first).  That read saw every link when the target's default
    manager does not filter its rows and no prefetched list stands in for it; and
    the add is the one for this side (a symmetrical relation's mirror add reads).
    Keys are integers or UUIDs, so set() compared them as the database does."""
    if source_field_name != manager.source_field_name or manager.symmetrical:
        return False
    # Keys Python compares as the database does (no collation, no text forms).
    if not isinstance(manager.target_field.target_field, IntegerField | UUIDField):
        return False
    return type(manager.model._default_manager).get_queryset is Manager.get_queryset


def _prefetched(manager) -> bool:
    cache = getattr(manager.instance, "_prefetched_objects_cache", None)
    return bool(cache) and manager.prefetch_cache_name in cache


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
