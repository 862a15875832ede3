"""Writing a model's part of a stage as set operations.

Rows are written as "raw" saves are (what ``loaddata`` does): every field as
recorded, ``auto_now`` kept, and ``pre_save``/``post_save`` sent with
``raw=True`` -- once per object and stage, however many of its changes the
stage held.  M2M sets are written as differences on the through table (no
``m2m_changed``, as for any raw write).  Deletes go through Django's collector
(``QuerySet.delete()``), so cascades and ``pre_delete``/``post_delete`` are
those of ``obj.delete()``.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import signals
from django.db.models.constants import OnConflict

from django_adapter.prep import preparer

from . import direct, pgcopy
from .ledger import batch_size, chunks
from .naturalkeys import _NoBatch


def _send(signal, model, objs, using, **kwargs):
    if signal.has_listeners(model):
        for obj in objs:
            signal.send(sender=model, instance=obj, raw=True, using=using, update_fields=None,
                        **kwargs)


def insert(plan, objs: list, using: str) -> None:
    """INSERT new objects as raw saves do, in batches."""
    if not objs:
        return
    model = plan.model
    opts = model._meta
    connection = connections[using]
    auto_pk = not plan.pk_travels
    fields = [f for f in opts.local_concrete_fields
              if not getattr(f, "generated", False) and not (auto_pk and f is opts.pk)]
    returning = opts.db_returning_fields if auto_pk else None
    _send(signals.pre_save, model, objs, using)
    size = max(connection.ops.bulk_batch_size(fields, objs), 1)
    if auto_pk and not connection.features.can_return_rows_from_bulk_insert:
        size = 1
    if (USE_COPY and pgcopy.available(connection)
            and _copy_values(model, fields, objs, auto_pk, returning, connection)):
        pass  # written by COPY (PostgreSQL, plain column types)
    elif (connection.vendor in _PLAIN_VALUES
            and not any(hasattr(f, "get_placeholder") for f in fields)
            and (returning is None or (list(returning) == [opts.pk]
                                       and connection.features.can_return_rows_from_bulk_insert))):
        _insert_values(model, fields, objs, batch_size(connection, len(fields), objs), auto_pk,
                       connection)
    else:
        qs = model._base_manager.using(using)
        for batch in chunks(objs, size):
            rows = qs._insert(batch, fields=fields, returning_fields=returning, raw=True, using=using)
            if returning:
                for obj, values in zip(batch, rows, strict=True):
                    for f, value in zip(returning, values, strict=False):
                        setattr(obj, f.attname, value)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    _send(signals.post_save, model, objs, using, created=True)


#: Backends where multi-row VALUES through ``django_adapter.prep`` costs less than Django's insert
#: compiler (measured by bench/inserts.py: MariaDB about a third, SQLite the same;
#: on PostgreSQL Django's own UNNEST form is faster, so it keeps it).
_PLAIN_VALUES = ("sqlite", "mysql")
#: On PostgreSQL (psycopg 3), new objects of plain column types go by COPY
#: (``pgcopy.py``); bench/inserts.py turns it off to compare.
USE_COPY = True


def _insert_values(model, fields: list, objs: list, size: int, auto_pk: bool, connection) -> None:
    """What Django's raw insert compiles to (each value through its field's
    ``get_db_prep_save``, multi-row VALUES, RETURNING the new ids), without the
    compiler's per-value machinery (``django_adapter/prep.py``).  An expression as a value is left
    to Django."""
    opts = model._meta
    qn = connection.ops.quote_name
    head = f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES "
    one = "(" + ", ".join([direct.placeholder(connection)] * len(fields)) + ")"
    tail = f" RETURNING {qn(opts.pk.column)}" if auto_pk else ""
    columns = [(f.attname, preparer(f, connection)) for f in fields]
    with connection.cursor() as cursor:
        for batch in chunks(objs, size):
            params = []
            for obj in batch:
                for attname, prepare in columns:
                    value = getattr(obj, attname)
                    if hasattr(value, "resolve_expression"):
                        raise _NoBatch("an expression as a field value")
                    params.append(prepare(value))
            direct.execute(connection, cursor, head + ", ".join([one] * len(batch)) + tail, params)
            if auto_pk:
                for obj, (pk,) in zip(batch, cursor.fetchall(), strict=True):
                    setattr(obj, opts.pk.attname, pk)


def _copy_values(model, fields: list, objs: list, auto_pk: bool, returning,
                 connection) -> bool:
    """The objects by COPY on PostgreSQL (``pgcopy.py``), when every column is of a
    plain built-in type and every prepared value is of the Python type its binary
    form takes; else False, and nothing was written (the caller inserts)."""
    opts = model._meta
    kinds = pgcopy.python_types(connection, opts.db_table, [f.column for f in fields])
    if (kinds is None or any(hasattr(f, "get_placeholder") for f in fields)
            or (returning is not None and list(returning) != [opts.pk])
            or (auto_pk and not pgcopy.has_sequence(connection, opts.db_table, opts.pk.column))):
        return False
    columns = [(f.attname, preparer(f, connection), kind)
               for f, kind in zip(fields, kinds, strict=True)]
    rows = []
    for obj in objs:
        row = []
        for attname, prepare, kind in columns:
            value = getattr(obj, attname)
            if hasattr(value, "resolve_expression"):
                raise _NoBatch("an expression as a field value")
            value = prepare(value)
            if value is not None and type(value) not in kind:
                return False  # a field converting values its own way: Django's insert
            row.append(value)
        rows.append(row)
    names = [f.column for f in fields]
    if auto_pk:
        pks = pgcopy.next_ids(connection, opts.db_table, opts.pk.column, len(objs))
        names = [opts.pk.column, *names]
        rows = [[pk, *row] for pk, row in zip(pks, rows, strict=True)]
    pgcopy.copy_rows(connection, opts.db_table, names, rows)
    if auto_pk:
        for obj, pk in zip(objs, pks, strict=True):
            setattr(obj, opts.pk.attname, pk)
    return True


def update(plan, objs: list, using: str) -> None:
    """UPDATE existing objects (every synced field), as raw saves do, in batches:
    ``INSERT ... ON CONFLICT (pk) DO UPDATE`` where the database has it (the row
    exists, so only the pk can conflict; any other unique field still raises),
    ``bulk_update`` elsewhere (MariaDB's ``ON DUPLICATE KEY`` would act on a
    conflict of any unique field, not only the pk)."""
    if not objs:
        return
    model = plan.model
    opts = model._meta
    connection = connections[using]
    _send(signals.pre_save, model, objs, using)
    names = [f.attname for f in opts.local_concrete_fields
             if not f.primary_key and not getattr(f, "generated", False)]
    if connection.features.supports_update_conflicts_with_target:
        fields = [f for f in opts.local_concrete_fields if not getattr(f, "generated", False)]
        update_fields = [f for f in fields if not f.primary_key]
        size = max(connection.ops.bulk_batch_size(fields, objs), 1)
        qs = model._base_manager.using(using)
        for batch in chunks(objs, size):
            qs._insert(batch, fields=fields, raw=True, using=using, on_conflict=OnConflict.UPDATE,
                       update_fields=update_fields, unique_fields=[opts.pk])
    elif connection.vendor == "mysql":
        _update_case(model, [f for f in opts.local_concrete_fields if f.attname in names], objs,
                     connection)
    else:
        model._base_manager.using(using).bulk_update(objs, names, batch_size=200)
    _send(signals.post_save, model, objs, using, created=False)


def _update_case(model, fields: list, objs: list, connection, size: int = 200) -> None:
    """What ``bulk_update(objs, fields)`` runs on MySQL and MariaDB, one
    ``UPDATE ... SET col = CASE pk WHEN .. THEN .. END ... WHERE pk IN (..)`` a
    batch, with the values through ``django_adapter.prep`` instead of one ``When``/``Value``
    expression per object and field (compiling those was half of what updates
    cost there)."""
    opts = model._meta
    qn = connection.ops.quote_name
    pk = opts.pk
    prep_pk = preparer(pk, connection)
    columns = [(f.attname, qn(f.column), preparer(f, connection)) for f in fields]
    for batch in chunks(objs, size):
        pks = [prep_pk(obj.pk) for obj in batch]
        whens = " ".join(["WHEN %s THEN %s"] * len(batch))
        sets, params = [], []
        for attname, column, prepare in columns:
            sets.append(f"{column} = CASE {qn(pk.column)} {whens} ELSE {column} END")
            for obj, key in zip(batch, pks, strict=True):
                value = getattr(obj, attname)
                if hasattr(value, "resolve_expression"):
                    raise _NoBatch("an expression as a field value")
                params += (key, prepare(value))
        sql = (f"UPDATE {qn(opts.db_table)} SET {', '.join(sets)} "
               f"WHERE {qn(pk.column)} IN ({', '.join(['%s'] * len(batch))})")
        with connection.cursor() as cursor:
            direct.execute(connection, cursor, sql, params + pks)


def delete(plan, pks: list, using: str) -> None:
    """Delete these objects (and what cascades from them) as ``obj.delete()`` would."""
    qs = plan.model._base_manager.using(using)
    for chunk in chunks(pks):
        qs.filter(pk__in=chunk).delete()


def set_m2m(field, wanted: dict, using: str) -> None:
    """Make each owner's set of targets exactly ``wanted[owner pk]`` (a set of target
    pks), by deleting and inserting through rows."""
    if not wanted:
        return
    through = field.remote_field.through
    src = through._meta.get_field(field.m2m_field_name()).attname
    tgt = through._meta.get_field(field.m2m_reverse_field_name()).attname
    manager = through._base_manager.using(using)
    have: set = set()
    drop: list = []
    for chunk in chunks(list(wanted)):
        for pk, owner, target in manager.filter(**{f"{src}__in": chunk}).values_list("pk", src, tgt):
            if target in wanted[owner]:
                have.add((owner, target))
            else:
                drop.append(pk)
    for chunk in chunks(drop):
        manager.filter(pk__in=chunk).delete()
    add = [(owner, target) for owner, targets in wanted.items() for target in targets
           if (owner, target) not in have]
    if add:
        connection = connections[using]
        fields = [through._meta.get_field(field.m2m_field_name()),
                  through._meta.get_field(field.m2m_reverse_field_name())]
        qn = connection.ops.quote_name
        sql = (f"INSERT INTO {qn(through._meta.db_table)} ({qn(fields[0].column)}, "
               f"{qn(fields[1].column)}) VALUES ")
        size = batch_size(connection, 2, add)
        owner_value, target_value = (preparer(f, connection) for f in fields)
        if USE_COPY and pgcopy.available(connection) and _copy_links(
                through._meta.db_table, fields, add, owner_value, target_value, connection):
            return
        pair = "({0}, {0})".format(direct.placeholder(connection))
        with connection.cursor() as cursor:
            for batch in chunks(add, size):
                params = []
                for owner, target in batch:
                    params.append(owner_value(owner))
                    params.append(target_value(target))
                direct.execute(connection, cursor, sql + ", ".join([pair] * len(batch)), params)


def _copy_links(table: str, fields: list, add: list, owner_value, target_value,
                connection) -> bool:
    """M2M through rows by COPY on PostgreSQL (their own id from the column's
    default); False, with nothing written, where a value is not of a type COPY
    takes (see :func:`_copy_values`)."""
    kinds = pgcopy.python_types(connection, table, [f.column for f in fields])
    if kinds is None:
        return False
    rows = [(owner_value(owner), target_value(target)) for owner, target in add]
    if any(type(a) not in kinds[0] or type(b) not in kinds[1] for a, b in rows):
        return False
    pgcopy.copy_rows(connection, table, [f.column for f in fields], rows)
    return True
