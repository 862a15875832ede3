"""Capture: every insert, update and delete of a synced model becomes an
``OutgoingTransaction`` on the same database alias, inside the same DB transaction.

Signals are connected per sender model (like django-reversion), for every concrete
and proxy model that has ``SyncModelMixin``.  The mixin's ``save_base`` and
Django's deletion collector both run the signal inside the change's transaction,
so a rollback removes the captured row with the change.

What cannot be captured (documented, and warned about by ``manage.py check``):
``QuerySet.update()``/``bulk_create()`` on a manager that does not come from
``SyncManager``, raw SQL, ``loaddata`` (``raw`` saves are deliberately ignored),
and ``bulk_create(ignore_conflicts=True)``, which is refused because Django cannot
tell which rows were written.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket

from django.apps import apps
from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections
from django.db.models import signals
from django.db.models.base import Model, ModelState
from django.db.models.query_utils import DeferredAttribute
from django.dispatch import receiver
from django.utils import timezone

from django_adapter import attachments, clock, cursors, m2m_links, prep
from django_adapter.codec import RECORD_FORMAT, pack_captured
from django_adapter.exceptions import NaturalKeyError, SyncError
from django_adapter.models import OutgoingTransaction
from django_adapter.serialization import (
    is_synced,
    natural_key_before,
    natural_key_of,
    remember_saved,
    to_record,
)
from django_adapter.txid import new_tx_id

_suspended: contextvars.ContextVar[bool] = contextvars.ContextVar("bk_capture_suspended", default=False)
_registered: set = set()

#: Chunk size for pk lists in ``IN (...)`` queries (SQLite's variable limit).
CHUNK = 500


def is_enabled() -> bool:
    allowed = _allowed.get("value", _allowed)
    if allowed is _allowed:  # read once, again when the setting changes
        allowed = _allowed["value"] = getattr(settings, "ALLOW_MODEL_SERIALIZATION", True)
    return allowed and not _suspended.get()


#: settings.ALLOW_MODEL_SERIALIZATION as is_enabled() last read it (a setting that
#: is not set costs an AttributeError inside Django's settings at every read).
_allowed: dict = {}


@contextlib.contextmanager
def suspended():
    """Changes made inside are not captured: the importer applies records this way,
    so a server never re-emits what it received under new transaction ids."""
    token = _suspended.set(True)
    try:
        yield
    finally:
        _suspended.reset(token)


def site_name() -> str:
    """The site part of every captured record's producer.

    The server refuses a record whose producer names another site than the one
    that signed its bundle, so the name comes from ``BUNDLEKIT["SITE"]`` (the
    signing machine's settings) whenever that dict is set; edc-sync's
    ``settings.BUNDLEKIT_SITE`` is the fallback for projects without it.  When
    both are set and differ, ``manage.py check`` reports ``django_adapter.E103``.
    """
    raw = getattr(settings, "BUNDLEKIT", None)
    if isinstance(raw, dict) and isinstance(raw.get("SITE"), str) and raw["SITE"]:
        return raw["SITE"]
    return getattr(settings, "BUNDLEKIT_SITE", "") or ""


#: site_name(), kept until a setting it reads changes (capture needs it per save,
#: and reading settings that are not set costs an AttributeError each).
_site: list[str] = []


@receiver(setting_changed)
def _forget_settings(setting, **kwargs):
    if setting in ("BUNDLEKIT", "BUNDLEKIT_SITE"):
        _site.clear()
    elif setting == "ALLOW_MODEL_SERIALIZATION":
        _allowed.clear()


def producer() -> str:
    if not _site:
        _site.append(site_name())
    return f"{_site[0]}/{socket.gethostname()}"


def check_model(model) -> None:
    """Raise SyncError when ``model`` cannot be found again on another database."""
    concrete = model._meta.concrete_model
    if not callable(getattr(concrete, "natural_key", None)):
        raise NaturalKeyError(f"{concrete._meta.label} is synced but has no natural_key() method")
    if not callable(getattr(concrete._default_manager, "get_by_natural_key", None)):
        raise NaturalKeyError(
            f"{concrete._meta.label} is synced but its default manager has no get_by_natural_key()"
        )


#: Models check_model() passed, so capture checks each once, not at every save.
_checked: set = set()


def _check_once(model) -> None:
    if model not in _checked:
        check_model(model)
        _checked.add(model)


def record_change(instance, action: str, using: str, nk=None, nk_before=None, *,
                  new: bool | None = None):
    """Write the OutgoingTransaction for one change of ``instance`` on ``using``.

    An update that changed the natural key carries the key before the change
    (``natural_key_before``), so the server can find the row it renames.
    ``new`` (default: an insert) says the row was inserted just now, so its M2M
    lists are empty without a query; an existing row enqueued as an insert
    (``bundle enqueue-existing``) passes ``new=False`` to carry them."""
    _check_once(type(instance))
    tx_id = new_tx_id()
    ts = clock.now(using)  # the wall clock, never behind the server's last receipt
    who = producer()
    if action == "U" and nk is None:
        nk = natural_key_of(instance)
        if nk_before is None:
            nk_before = natural_key_before(instance, nk)
    record = to_record(instance, action, tx_id=tx_id, ts=ts, producer=who, using=using, nk=nk,
                       nk_before=nk_before, new=action == "I" if new is None else new)
    # The files of file fields travel with the record (django_adapter/attachments.py).
    files, file_rows = attachments.capture(instance, action)
    if files:
        record["files"] = files
    if action != "D":
        remember_saved(instance)
    row, fresh = _new_row(tx_id, record["model"], str(record["pk"]), who, action, ts,
                          pack_captured(record), RECORD_FORMAT)
    _insert(row, using, fresh)
    if file_rows:
        attachments.link(row, file_rows, using)
    return row


#: The fields record_change gives an outgoing row, in _new_row's argument order.
_GIVEN = ("tx_id", "tx_name", "tx_pk", "producer", "action", "timestamp", "tx", "format")


def _new_row(*given) -> tuple[OutgoingTransaction, bool]:
    """``OutgoingTransaction(**dict(zip(_GIVEN, given)))``, the other fields at
    their defaults, without Django's keyword path (a third of the cost): the
    attributes are set as ``Model.__init__`` sets them, and ``__init__`` itself
    runs whenever a receiver of ``pre_init``/``post_init`` would see the difference.
    Also whether the row was built here (its other fields hold the defaults for sure)."""
    model = OutgoingTransaction
    plan = _ROW.get(model, _ROW)
    if plan is _ROW:
        plan = _ROW[model] = _row_plan(model)
    if plan is None or _listened(signals.pre_init, model) or _listened(signals.post_init, model):
        return model(**dict(zip(_GIVEN, given, strict=True))), False
    names, template, where = plan
    values = template.copy()
    for i, value in zip(where, given, strict=True):
        values[i] = value
    row = model.__new__(model)
    row._state = ModelState()
    row.__dict__.update(zip(names, values, strict=True))
    return row, True


_ROW: dict = {}


def _listened(signal, sender) -> bool:
    """``signal.has_listeners(sender)``, without its per-sender lookup when the
    signal has no receiver at all (as ``Signal.send`` does)."""
    return bool(signal.receivers) and signal.has_listeners(sender)


def _row_plan(model):
    """(attname and default value per concrete field, index of each of _GIVEN), or
    None when a field that is not given has a default to call each time, or the
    class builds its instances otherwise (then ``__init__`` runs)."""
    names = [f.attname for f in model._meta.concrete_fields]
    template = []
    for f in model._meta.concrete_fields:
        if f.attname in _GIVEN:
            template.append(None)
        elif f.has_default() and callable(f.default):
            return None
        else:
            template.append(f.get_default())
        if not isinstance(model.__dict__.get(f.attname), DeferredAttribute):
            return None
    if (type(model).__call__ is not type.__call__ or model.__new__ is not object.__new__
            or model.__init__ is not Model.__init__):
        return None
    return names, template, [names.index(name) for name in _GIVEN]


def _insert(row, using: str, fresh: bool = False) -> None:
    """``row.save()`` for a new OutgoingTransaction, with one prepared INSERT.

    Capture runs on every save of every synced model, and Django's generic insert
    path costs more than the save it accompanies: here each value goes through
    ``django_adapter.prep``'s short cut for its type (the same as
    ``get_db_prep_save``; text, ints and, on SQLite, bytes as they are), tested
    inline, and any other value through the field's preparer.  The same signals are sent.
    ``fresh``: the row comes from _new_row's template, so the fields capture does
    not give hold their defaults, whose database values are prepared once.
    """
    model = type(row)
    connection = connections[using]
    stmt = _SQL.get((model, connection.alias, connection.vendor)) or _insert_sql(model, connection)
    row.created = timezone.now()  # auto_now_add
    if _listened(signals.pre_save, model):
        signals.pre_save.send(sender=model, instance=row, raw=False, using=using, update_fields=None)
        fresh = False  # a receiver may have changed any field
    values = row.__dict__
    if fresh and stmt.defaults is not None:
        params = stmt.defaults.copy()
        for i, attname, kind, convert, prepare in stmt.varying:
            value = values[attname]
            if type(value) is kind:
                params[i] = value if convert is None else convert(value)
            else:
                params[i] = prepare(value)
    else:
        params = [(value if convert is None else convert(value)) if type(value) is kind
                  else prepare(value)
                  for value, (kind, convert, prepare) in zip(
                      [values[f.attname] for f in stmt.fields], stmt.prepare, strict=True)]
    raw = None if stmt.native is None else cursors.raw_cursor(connection)
    if raw is not None:  # SQLite, nothing watching its statements: Django's own checks
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            raw.execute(stmt.native, params)  # "?" marks: sqlite3 binds a list fastest
        pk = raw.lastrowid
    else:
        if stmt.names is not None:
            params = dict(zip(stmt.names, params, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(stmt.sql, params)
            if stmt.returning:
                pk = cursor.fetchone()[0]
            else:
                pk = connection.ops.last_insert_id(cursor, model._meta.db_table,
                                                   model._meta.pk.column)
    if stmt.pk_attname is not None:
        values[stmt.pk_attname] = pk  # what the pk setter does for a model without parents
    else:
        row.pk = pk
    row._state.adding = False
    row._state.db = using
    if _listened(signals.post_save, model):
        signals.post_save.send(sender=model, instance=row, created=True, update_fields=None,
                               raw=False, using=using)


_SQL: dict = {}


class _Insert:
    """The prepared INSERT of one model on one connection."""

    __slots__ = ("sql", "fields", "prepare", "returning", "names", "native", "defaults",
                 "varying", "pk_attname")


def _insert_sql(model, connection) -> _Insert:
    key = (model, connection.alias, connection.vendor)
    found = _SQL.get(key)
    if found is None:
        opts = model._meta
        fields = [f for f in opts.local_concrete_fields if not f.primary_key]
        prepare = [prep.parts(f, connection) for f in fields]
        qn = connection.ops.quote_name
        # SQLite gives the new id as the cursor's lastrowid: a RETURNING clause
        # makes it produce a result row besides (5us a row).
        returning = (connection.features.can_return_columns_from_insert
                     and connection.vendor != "sqlite")
        names = None
        if connection.vendor == "sqlite" and not any("%" in n for n in (
                opts.db_table, *(f.column for f in fields))):
            # Named parameters: Django's SQLite cursor turns "%s" into "?" with a
            # regular expression on every execute (7us for this statement), and
            # "%(name)s" into ":name" with one string formatting (2.6us).
            names = [f"p{i}" for i in range(len(fields))]
            marks = [f"%({n})s" for n in names]
        else:
            marks = ["%s"] * len(fields)
        sql = (f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
               f"VALUES ({', '.join(marks)})")
        if returning:
            sql += f" RETURNING {qn(opts.pk.column)}"
        found = _Insert()
        found.sql, found.fields, found.prepare, found.returning, found.names = (
            sql, fields, prepare, returning, names)
        # The statement with SQLite's own "?" marks, for cursors.raw_cursor (never with
        # RETURNING): sqlite3 binds a list of parameters in half the time of a dict.
        found.native = None if names is None or returning else (
            f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['?'] * len(fields))})")
        found.defaults, found.varying = _defaults(model, connection, fields, prepare)
        found.pk_attname = None if opts.parents else opts.pk.attname
        _SQL[key] = found
    return found


def _defaults(model, connection, fields, pieces):
    """(the parameters with the database values of the defaults _new_row gives the
    fields capture does not give, [(position, attname, kind, convert, preparer)]
    (``prep.parts``) of those it gives and ``created``), or (None, None) when
    _new_row builds no row from a template."""
    plan = _ROW.get(model, _ROW)
    if plan is _ROW:
        plan = _ROW[model] = _row_plan(model)
    if plan is None:
        return None, None
    attnames, template, _ = plan
    default = dict(zip(attnames, template, strict=True))
    params = [None] * len(fields)
    varying = []
    for i, (f, (kind, convert, prepare)) in enumerate(zip(fields, pieces, strict=True)):
        if f.attname in _GIVEN or f.attname == "created":
            varying.append((i, f.attname, kind, convert, prepare))
        else:
            params[i] = prepare(default[f.attname])
    return params, varying


# ------------------------------------------------------------------ handlers


def _post_save(sender, instance, created, raw, using, **kwargs):
    if raw or not is_enabled():
        return
    record_change(instance, "I" if created else "U", using)


def _pre_delete(sender, instance, using, **kwargs):
    # The natural key may follow foreign keys whose rows the same delete removes:
    # take it while they are still there.
    if is_enabled():
        _check_once(type(instance))
        nk = instance._bk_natural_key = natural_key_of(instance)
        instance._bk_natural_key_before = natural_key_before(instance, nk)


def _post_delete(sender, instance, using, **kwargs):
    if not is_enabled():
        return
    nk = getattr(instance, "_bk_natural_key", None)
    record_change(instance, "D", using, nk=nk,
                  nk_before=getattr(instance, "_bk_natural_key_before", None))


def _m2m_changed(sender, instance, action, reverse, model, pk_set, using, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear", "pre_clear") or not is_enabled():
        return
    if not reverse:
        if action != "pre_clear":
            record_change(instance, "U", using)
        return
    # Reverse side: ``instance`` is the target, the owners changed.  A reverse
    # clear() names no pks after the fact, so remember the owners before it.
    if action == "pre_clear":
        instance._bk_m2m_owners = _owners(sender, instance, model, None, using)
        return
    owners = (
        getattr(instance, "_bk_m2m_owners", [])
        if action == "post_clear"
        else _owners(sender, instance, model, pk_set, using)
    )
    for owner in owners:
        record_change(owner, "U", using)


def _owners(through, target, owner_model, pk_set, using):
    if pk_set is not None:
        return list(owner_model._base_manager.using(using).filter(pk__in=pk_set).order_by("pk"))
    for f in owner_model._meta.many_to_many:
        if f.remote_field.through is through:
            return list(
                owner_model._base_manager.using(using).filter(**{f.name: target}).order_by("pk")
            )
    return []


# ------------------------------------------------------------ bulk operations


def captured_update(queryset, kwargs, do_update):
    """Run ``update()`` and capture every affected row as it is afterwards."""
    db = queryset.db
    model = queryset.model
    pks = list(queryset.values_list("pk", flat=True))
    # The natural keys before the update: an update may rename the rows.
    before = {}
    for i in range(0, len(pks), CHUNK):
        for obj in model._base_manager.using(db).filter(pk__in=pks[i : i + CHUNK]):
            before[obj.pk] = natural_key_of(obj)
    count = do_update(**kwargs)
    for i in range(0, len(pks), CHUNK):
        for obj in model._base_manager.using(db).filter(pk__in=pks[i : i + CHUNK]).order_by("pk"):
            record_change(obj, "U", db, nk_before=before.get(obj.pk))
    return count


def check_bulk_create(model, kwargs) -> None:
    if kwargs.get("ignore_conflicts"):
        raise SyncError(
            f"bulk_create(ignore_conflicts=True) on synced model {model._meta.label}: "
            "Django cannot tell which rows were written, so they cannot be captured"
        )


def captured_bulk_create(queryset, objs, args, kwargs, do_bulk_create):
    """Run ``bulk_create()`` and capture the created rows, re-read from the database."""
    db = queryset.db
    created = do_bulk_create(objs, *args, **kwargs)
    pks = [o.pk for o in created]
    if any(pk is None for pk in pks):
        raise SyncError(
            f"bulk_create on {queryset.model._meta.label}: this database did not return the new "
            "primary keys, so the rows cannot be captured (rolled back)"
        )
    action = "U" if kwargs.get("update_conflicts") else "I"
    model = queryset.model
    for i in range(0, len(pks), CHUNK):
        for obj in model._base_manager.using(db).filter(pk__in=pks[i : i + CHUNK]).order_by("pk"):
            record_change(obj, action, db)
    return created


# --------------------------------------------------------------- registration


def register(model) -> None:
    """Connect the capture signals for one synced model (concrete or proxy)."""
    if model in _registered:
        return
    uid = f"bundlekit-{model._meta.label_lower}"
    signals.post_save.connect(_post_save, sender=model, dispatch_uid=uid)
    signals.pre_delete.connect(_pre_delete, sender=model, dispatch_uid=uid)
    signals.post_delete.connect(_post_delete, sender=model, dispatch_uid=uid)
    if not model._meta.proxy:
        for f in model._meta.local_many_to_many:
            through = f.remote_field.through
            if through._meta.auto_created:
                signals.m2m_changed.connect(_m2m_changed, sender=through, dispatch_uid=f"{uid}-{f.name}")
                # With a receiver, each add() reads the links it must skip: prepared.
                m2m_links.speed_up(f)
    _registered.add(model)


def register_all() -> None:
    for model in apps.get_models():
        if is_synced(model):
            register(model)


