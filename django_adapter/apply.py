"""Apply transactions from the ledger to this database.

Decisions, in order, for one ledger row:

* unknown or unsynced model -> ``failed`` (retry once the code is deployed);
* a change to the same object with a later timestamp was already applied
  (``applied`` or ``deleted-missing``) -> ``stale``, not applied: a late bundle
  never rolls an object back.  Equal timestamps apply in arrival order;
* delete of an object that is not there -> ``deleted-missing``;
* insert/update -> upsert: the object is found by natural key (or by its UUID pk)
  and every field is written as recorded; ``auto_now`` fields keep the site's
  value because rows are written as "raw" saves, like ``loaddata``;
* a reference whose target is not (yet) here defers the row to the end of the
  batch; later rows for the same object are deferred with it, so one object's
  changes never overtake each other.  Passes repeat while they make progress;
  what still cannot resolve is ``failed`` with the reason.

Each row runs in its own savepoint: a failed row never undoes the others.
Runs of inserts and updates of plain synced models take a batched path
(:class:`Applier`: a few queries per model per batch instead of several per row)
that makes the same decisions; a batch that raises is redone row by row.
Connection-level errors (``OperationalError``, ``InterfaceError``) are not row
failures; they propagate so the caller's transaction rolls back as a whole.
"""

from __future__ import annotations

import datetime
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from django_adapter import capture, schema
from django_adapter.codec import RECORD_FORMAT, content_digest, load, object_key, packb
from django_adapter.exceptions import SyncError, UnresolvedReference
from django_adapter.models import (
    BundleStatus,
    ConflictingTransaction,
    ImportedBundle,
    IncomingTransaction,
    TxStatus,
)
from django_adapter.serialization import (
    find,
    is_synced,
    pk_travels,
    resolve_target,
    resolve_values,
    synced_fields,
    synced_m2m,
    travels_by_natural_key,
)

#: Ledger rows are written in batches of this many.
BATCH = 500
#: Values per ``IN (...)`` list (SQLite's variable limit).
_IN = 500


#: The outcome counters every result and report carries, in display order.
OUTCOMES = ("applied", "duplicate", "stale", "conflict", "failed", "deleted_missing")


@dataclass
class ApplyResult:
    """Counts per outcome and one message per row that needs a person's attention."""

    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    conflict: int = 0
    failed: int = 0
    deleted_missing: int = 0
    skipped: int = 0
    messages: list[str] = field(default_factory=list)

    def count(self, status: str, n: int = 1) -> None:
        name = {TxStatus.DELETED_MISSING: "deleted_missing"}.get(status, str(status))
        setattr(self, name, getattr(self, name) + n)

    def merge(self, other: ApplyResult) -> None:
        for name in (*OUTCOMES, "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.messages.extend(other.messages)

    def to_dict(self) -> dict:
        return {
            "applied": self.applied,
            "duplicate": self.duplicate,
            "stale": self.stale,
            "conflict": self.conflict,
            "failed": self.failed,
            "deleted_missing": self.deleted_missing,
            "skipped": self.skipped,
            "messages": list(self.messages),
        }


@dataclass
class CopyResult:
    copied: int = 0
    duplicate: int = 0
    conflict: int = 0
    messages: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ ledger


def store_records(records: Iterable[dict], using: str, *, bundle=None, result: ApplyResult) -> list:
    """Put records into the ledger as ``pending`` rows; returns the new rows in order.

    A transaction id already in the ledger is a duplicate when its content digest
    matches and a conflict (kept in ``ConflictingTransaction``) when it does not;
    neither is stored twice nor applied again.
    """
    return [row for rows in store_chunks(records, using, bundle=bundle, result=result) for row in rows]


def store_chunks(records: Iterable[dict], using: str, *, bundle=None, result: ApplyResult):
    """:func:`store_records`, yielding the new rows of each batch as it is stored, so
    a caller can apply a bundle while it streams in (memory stays flat)."""
    batch: list[tuple[int, dict]] = []

    def flush():
        ids = [r["id"] for _, r in batch]
        # Rows stored by earlier batches are in the database already (same
        # transaction): only this batch needs remembering here.
        known = dict(
            IncomingTransaction.objects.using(using)
            .filter(tx_id__in=ids)
            .order_by()
            .values_list("tx_id", "digest")
        )
        seen: dict = {}
        rows = []
        for position, record in batch:
            digest = content_digest(record)
            earlier = known.get(record["id"]) or seen.get(record["id"])
            if earlier is None:
                row = _ledger_row(record, digest, bundle, position)
                row._bk_record = record
                rows.append(row)
                seen[record["id"]] = digest
            elif earlier == digest:
                result.count(TxStatus.DUPLICATE)
            else:
                result.count(TxStatus.CONFLICT)
                result.messages.append(
                    f"conflict: transaction {record['id']} ({record.get('model')}) arrived again "
                    "with different content; kept aside, not applied"
                )
                ConflictingTransaction.objects.using(using).create(
                    tx_id=record["id"],
                    tx_name=str(record.get("model", ""))[:255],
                    digest=digest,
                    existing_digest=earlier,
                    tx=packb(record),
                    format=RECORD_FORMAT,
                    bundle=bundle,
                    position=position,
                )
        _insert_ledger(rows, using)
        if rows and rows[-1].pk is None:  # backends that do not return pks
            got = dict(
                IncomingTransaction.objects.using(using)
                .filter(tx_id__in=[r.tx_id for r in rows])
                .values_list("tx_id", "pk")
            )
            for r in rows:
                r.pk = r.id = got[r.tx_id]
                r._state.adding = False
                r._state.db = using
        batch.clear()
        return rows

    for position, record in enumerate(records):
        batch.append((position, record))
        if len(batch) >= BATCH:
            yield flush()
    if batch:
        yield flush()


def _insert_ledger(rows: list, using: str) -> None:
    """``bulk_create(rows)`` without its per-value machinery, on backends that return
    the new ids: the values are the ones :func:`_ledger_row` built (text, ints, bytes),
    and only the transaction id and the datetimes go through their fields' conversion."""

    connection = connections[using]
    if not rows:
        return
    if not connection.features.can_return_rows_from_bulk_insert:
        IncomingTransaction.objects.using(using).bulk_create(rows)
        return
    opts = IncomingTransaction._meta
    fields = [f for f in opts.local_concrete_fields if not f.primary_key]
    convert = [f.get_internal_type() in ("UUIDField", "DateTimeField") for f in fields]
    qn = connection.ops.quote_name
    head = (f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES ")
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    tail = f" RETURNING {qn(opts.pk.column)}"
    now = timezone.now()
    unnest = connection.vendor == "postgresql"
    if unnest:
        # One array per column (as Django's own bulk insert does on PostgreSQL): a
        # short statement, planned and parsed quickly whatever the number of rows.
        types = [f.db_type(connection).split("(")[0] for f in fields]
        sql = (head.replace(" VALUES ", " SELECT * FROM UNNEST(")
               + ", ".join(f"%s::{t}[]" for t in types) + ")" + tail)
    size = len(rows) if unnest else max(connection.ops.bulk_batch_size(fields, rows), 1)
    with connection.cursor() as cursor:
        for batch in _chunks(rows, size):
            params = []
            for row in batch:
                row.received = now  # auto_now_add, as bulk_create sets it
                for f, conv in zip(fields, convert, strict=True):
                    value = getattr(row, f.attname)
                    params.append(f.get_db_prep_save(value, connection) if conv else value)
            if unnest:
                width = len(fields)
                cursor.execute(sql, [params[i::width] for i in range(width)])
            else:
                cursor.execute(head + ", ".join([one] * len(batch)) + tail, params)
            for row, (pk,) in zip(batch, cursor.fetchall(), strict=True):
                row.pk = pk
                row._state.adding = False
                row._state.db = using


def _ledger_row(record: dict, digest: str, bundle, position: int) -> IncomingTransaction:
    try:
        model = str(record["model"])
        action = str(record["action"])
        ts = record["ts"]
        if action not in ("I", "U", "D"):
            raise ValueError(f"unknown action {action!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError(f"record {record.get('id')} is not a django_adapter record: {exc}") from exc
    values = {
        "tx_id": record["id"],
        "tx_name": model[:255],
        "tx_pk": str(record.get("pk"))[:255],
        "producer": str(record.get("producer", ""))[:255],
        "action": action,
        "timestamp": ts,
        "tx": packb(record),
        "format": RECORD_FORMAT,
        "digest": digest,
        "object_key": object_key(model, record.get("pk"), record.get("natural_key")),
        "bundle_id": bundle.pk if bundle is not None else None,
        "position": position,
    }
    # Positional arguments in field order: a third of the cost of keyword ones,
    # which matters at one ledger row per record.
    row = IncomingTransaction(*[values[f.attname] if f.attname in values else f.get_default()
                                for f in IncomingTransaction._meta.concrete_fields])
    if bundle is not None:
        IncomingTransaction._meta.get_field("bundle").set_cached_value(row, bundle)
    return row


def copy_to_incoming(queryset, using: str) -> CopyResult:
    """edc-sync's two-alias route: OutgoingTransaction rows -> another alias's ledger."""
    source = queryset.db
    copied = CopyResult()
    result = ApplyResult()
    rows = list(queryset.order_by("id"))
    with transaction.atomic(using=using):
        new = store_records((load(r.tx, r.format) for r in rows), using, result=result)
    copied.copied = len(new)
    copied.duplicate = result.duplicate
    copied.conflict = result.conflict
    copied.messages = result.messages
    now = timezone.now()
    queryset.model.objects.using(source).filter(pk__in=[r.pk for r in rows]).update(
        is_consumed_server=True, consumed_datetime=now
    )
    return copied


# ------------------------------------------------------------------- apply


def _newer_applied(row: IncomingTransaction, using: str) -> bool:
    """A later change to the same object already applied: this one is stale.

    Changes that came in bundles from the same producer are ordered by its chain
    (sequence, then position), not by its clock: a laptop whose clock was set
    back (a flat battery) must still have its newest change applied. Rows copied
    without a chain (edc-sync's copy_to_incoming_transaction) have only their
    timestamps to go by.
    """
    # The batched path of Applier decides the same with _applied_changes/_is_stale:
    # a change here needs the same change there.
    newer = (
        IncomingTransaction.objects.using(using)
        .filter(
            tx_name=row.tx_name,
            object_key=row.object_key,
            status__in=[TxStatus.APPLIED, TxStatus.DELETED_MISSING],
            timestamp__gt=row.timestamp,
        )
        .exclude(pk=row.pk)
    )
    if row.bundle_id is not None:
        newer = newer.exclude(producer=row.producer, bundle__isnull=False)
    return newer.exists()


def _save_raw(obj, model, record: dict, using: str) -> None:
    """Write every table of ``obj`` (multi-table parents first) as raw saves."""
    parents = list(reversed(model._meta.get_parent_list()))
    if not parents:
        obj.save_base(using=using, raw=True)
        return
    root_pk = obj.pk
    if root_pk is None:
        # The parent row may already be here (synced as itself earlier).
        existing = find(parents[0], record, using)
        root_pk = existing.pk if existing is not None else None
    for level in parents:
        inst = level(**{f.attname: getattr(obj, f.attname) for f in level._meta.concrete_fields})
        inst.pk = root_pk
        inst._state.adding = root_pk is None
        inst.save_base(using=using, raw=True)
        root_pk = inst.pk
    obj.pk = root_pk
    obj.save_base(using=using, raw=True)


def apply_record(
    row: IncomingTransaction, record: dict, using: str, *, override_stale: bool = False
) -> str:
    """Apply one record; returns the status.  Raises UnresolvedReference to defer.

    ``override_stale`` applies it even if a newer change of the object was applied
    (a person chose the site's version: ``bundle resolve --take-site``)."""
    try:
        model = apps.get_model(record["model"])
    except (LookupError, ValueError):
        raise SyncError(f"unknown model {record['model']!r} on this server") from None
    if not is_synced(model):
        raise SyncError(f"{model._meta.label} is not a synced model on this server")
    if not override_stale and _newer_applied(row, using):
        return TxStatus.STALE
    obj = find(model, record, using)
    with capture.suspended():
        if record["action"] == "D":
            if obj is None:
                return TxStatus.DELETED_MISSING
            obj.delete(using=using, keep_parents=True)
            return TxStatus.APPLIED
        values, m2m = resolve_values(model, record, using)
        if obj is None:
            obj = model()
            if pk_travels(model):
                obj.pk = record["pk"]
        for attname, value in values.items():
            setattr(obj, attname, value)
        _save_raw(obj, model, record, using)
        for name, pks in m2m.items():
            getattr(obj, name).set(pks)
    return TxStatus.APPLIED


def _mark(row: IncomingTransaction, status: str, reason: str, using: str, now) -> None:
    row.status = status
    row.reason = reason
    done = status != TxStatus.FAILED
    row.is_consumed = done
    row.consumed_datetime = now if done else None
    row.save(using=using, update_fields=["status", "reason", "is_consumed", "consumed_datetime"])


def apply_rows(
    rows: Iterable, using: str, result: ApplyResult, *, override_stale: bool = False
) -> None:
    """Apply ledger rows in the given order, deferring unresolved references.

    ``override_stale``: apply them even where a newer change of the same object
    was applied (``bundle resolve --take-site``); row by row, never batched."""
    applier = Applier(using, result, override_stale=override_stale)
    applier.feed(rows)
    applier.finish()


#: Rows applied together by the batched path of :class:`Applier`.
APPLY_BATCH = 1000


class _NoBatch(Exception):
    """These rows cannot take the batched path; apply them one by one."""


class Applier:
    """Applies ledger rows in order: :meth:`feed` them (the first pass, in as many
    calls as the caller likes, so a bundle can be applied as it streams in), then
    :meth:`finish` (the passes over deferred rows).

    Runs of inserts/updates of distinct objects of plain synced models (no
    multi-table inheritance, no reference to their own model) are applied in
    batches: one query per model for the stale check, for finding the objects,
    for each kind of reference and for each insert batch, with the decisions
    :func:`apply_record` makes row by row.  Everything else -- deletes, unknown
    models, natural-key managers that are not a plain ``get(**lookups)`` -- and
    any batch that raises goes row by row through :func:`apply_record`, in its
    own savepoint, exactly as before.
    """

    def __init__(self, using: str, result: ApplyResult, *, override_stale: bool = False):
        self.using, self.result = using, result
        self.override_stale = override_stale
        self.now = timezone.now()
        self.deferred: list = []
        self.deferred_keys: set = set()
        self.progress = False
        self._plans: dict = {}
        self._schemas: dict = {}
        self._gate = schema.Gate(using)

    # -------------------------------------------------------------- passes

    def feed(self, rows: Iterable) -> None:
        segment: list = []
        idents: set = set()
        for row in rows:
            if row.object_key in self.deferred_keys:
                self.deferred.append(row)
                continue
            why = self._schema_reason(row)
            if why:
                self._flush(segment)
                segment, idents = [], set()
                self._failed(row, why)
                continue
            record, plan = (None, None) if self.override_stale else self._batchable(row)
            if plan is None:
                self._flush(segment)
                segment, idents = [], set()
                self._one(row)
                continue
            ident = plan.ident(record)
            if len(segment) >= APPLY_BATCH or row.object_key in idents or ident in idents:
                self._flush(segment)
                segment, idents = [], set()
                if row.object_key in self.deferred_keys:
                    self.deferred.append(row)
                    continue
            segment.append((row, record, plan))
            idents.add(row.object_key)
            idents.add(ident)
        self._flush(segment)

    def finish(self) -> None:
        while self.deferred:
            if not self.progress:
                for row in self.deferred:
                    reason = getattr(row, "_bk_reason", "") or "an earlier change of this object is unresolved"
                    self._failed(row, reason)
                self.deferred = []
                return
            queue = self.deferred
            self.deferred, self.deferred_keys, self.progress = [], set(), False
            self.feed(queue)

    # ------------------------------------------------------------ one row

    def _one(self, row) -> None:
        using = self.using
        try:
            record = getattr(row, "_bk_record", None)
            if record is None:
                record = load(row.tx, row.format)
            with transaction.atomic(using=using):
                status = apply_record(row, record, using, override_stale=self.override_stale)
        except UnresolvedReference as exc:
            row._bk_reason = str(exc)
            self.deferred.append(row)
            self.deferred_keys.add(row.object_key)
            return
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - any row failure is recorded, not raised
            self._failed(row, f"{type(exc).__name__}: {exc}")
            self.progress = True
            return
        _mark(row, status, "", using, self.now)
        self.result.count(status)
        self.progress = True

    def _schema_reason(self, row) -> str:
        """Why the server's schema cannot take this row yet (django_adapter.schema)."""
        if row.bundle_id is None:
            return ""
        if row.bundle_id not in self._schemas:
            self._schemas[row.bundle_id] = (
                ImportedBundle.objects.using(self.using).filter(pk=row.bundle_id)
                .values_list("schema", flat=True).first())
        stated = self._schemas[row.bundle_id]
        if not stated:
            return ""
        try:
            record = getattr(row, "_bk_record", None)
            if record is None:
                record = row._bk_record = load(row.tx, row.format)
        except Exception:  # noqa: BLE001 - the row-by-row path reports what is wrong
            return ""
        return self._gate.reason(record, stated)

    def _failed(self, row, reason: str) -> None:
        _mark(row, TxStatus.FAILED, reason, self.using, self.now)
        self.result.count(TxStatus.FAILED)
        self.result.messages.append(f"failed: {row.action} {row.tx_name} {row.tx_id}: {reason}")

    # ------------------------------------------------------------ batches

    def _batchable(self, row):
        """(record, plan) when ``row`` may take the batched path, else (None, None)."""
        try:
            record = getattr(row, "_bk_record", None)
            if record is None:
                record = row._bk_record = load(row.tx, row.format)
            label = record["model"]
            if record["action"] not in ("I", "U") or type(record.get("fields")) is not dict:
                return None, None
            plan = self._plans.get(label)
            if plan is None:
                plan = self._plans[label] = _Plan.for_label(label, self.using)
            if not plan.ok or not plan.record_ok(record):
                return None, None
            return record, plan
        except Exception:  # noqa: BLE001 - the row-by-row path reports what is wrong
            return None, None

    def _flush(self, segment: list) -> None:
        if not segment:
            return
        try:
            with transaction.atomic(using=self.using), capture.suspended():
                done, deferred = _apply_batch(segment, self.using, self.now)
        except (OperationalError, InterfaceError):
            raise
        except Exception:  # noqa: BLE001 - includes _NoBatch: redo these rows one by one
            for row, _, _ in segment:
                if row.object_key in self.deferred_keys:
                    self.deferred.append(row)
                else:
                    self._one(row)
            return
        for _row, status in done:
            self.result.count(status)
        if done:
            self.progress = True
        for row, reason in deferred:
            row._bk_reason = reason
            self.deferred.append(row)
            self.deferred_keys.add(row.object_key)


class _Plan:
    """What the batched path needs to know about one synced model."""

    ok = False

    @classmethod
    def for_label(cls, label: str, using: str) -> _Plan:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            return cls()
        plan = cls()
        if not is_synced(model) or model._meta.proxy or model._meta.parents:
            return plan
        plan.model = model
        plan.pk_travels = pk_travels(model)
        plan.fields = synced_fields(model)
        plan.concrete = model._meta.concrete_fields
        plan.fks = [f for f in plan.fields if f.many_to_one or f.one_to_one]
        plan.m2m = synced_m2m(model)
        targets = {f.remote_field.model._meta.concrete_model for f in plan.fks + plan.m2m}
        plan.targets = targets
        plan.ok = model not in targets
        return plan

    def record_ok(self, record: dict) -> bool:
        if self.pk_travels:
            return record.get("pk") is not None
        # A rename is found by its key before the change: row by row (find()).
        return type(record.get("natural_key")) is list and "natural_key_before" not in record

    def ident(self, record: dict):
        if self.pk_travels:
            return (self.model, self.model._meta.pk.to_python(record["pk"]))
        return (self.model, _hashable(record["natural_key"]))


def _hashable(value):
    return tuple(_hashable(v) for v in value) if isinstance(value, list | tuple) else value


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _apply_batch(segment: list, using: str, now):
    """Apply a run of rows of distinct objects; returns ([(row, status)], [(row, reason)])."""
    applied = _applied_changes([row for row, _, _ in segment], using)
    done: list = []
    deferred: list = []
    groups: dict = {}
    for index, (row, record, plan) in enumerate(segment):
        if _is_stale(row, applied.get((row.tx_name, row.object_key), ())):
            done.append((row, TxStatus.STALE))
        else:
            groups.setdefault(plan, []).append((index, row, record))
    for plan in _dependency_order(list(groups)):
        _apply_model(plan, groups[plan], using, done, deferred)
    _mark_many(done, using, now)
    deferred.sort(key=lambda d: d[0])
    return done, [(row, reason) for _, row, reason in deferred]


def _applied_changes(rows: list, using: str) -> dict:
    """(tx_name, object_key) -> [(timestamp, producer, came in a bundle)] of the applied
    (or deleted-missing) ledger rows of those objects, other than ``rows`` themselves:
    what :func:`_newer_applied` looks at, for a whole batch in a few queries."""
    own = {row.pk for row in rows}
    by_name: dict = {}
    for row in rows:
        by_name.setdefault(row.tx_name, set()).add(row.object_key)
    changes: dict = {}
    counted = {TxStatus.APPLIED, TxStatus.DELETED_MISSING}
    # One model name per query, no ORDER BY (the model's default ordering made
    # SQLite walk the name index in id order), the status checked here rather than
    # in SQL, and short key lists on PostgreSQL: so that both databases search the
    # (tx_name, object_key) index for exactly these objects.  Otherwise, on a
    # ledger that grows inside this transaction (no statistics yet), they read
    # every applied row of the model, and each batch cost more than the one before.
    size = 20 if connections[using].vendor == "postgresql" else _IN
    for name, keys in sorted(by_name.items()):
        for chunk in _chunks(sorted(keys), size):
            qs = (IncomingTransaction.objects.using(using)
                  .filter(tx_name=name, object_key__in=chunk).order_by())
            for pk, key, ts, producer, bundle_id, status in qs.values_list(
                "pk", "object_key", "timestamp", "producer", "bundle_id", "status"
            ):
                if status in counted and pk not in own:
                    changes.setdefault((name, key), []).append((ts, producer, bundle_id is not None))
    return changes


def _is_stale(row, changes: list) -> bool:
    """:func:`_newer_applied` for one row, from :func:`_applied_changes`; keep the two
    in step."""
    for ts, producer, bundled in changes:
        if ts > row.timestamp and not (
            row.bundle_id is not None and bundled and producer == row.producer
        ):
            return True
    return False


def _dependency_order(plans: list) -> list:
    """Models referenced by others in this batch come first."""
    order, placed = [], set()
    pending = list(plans)
    while pending:
        ready = [p for p in pending if not any(q.model in p.targets for q in pending if q is not p)]
        if not ready:
            raise _NoBatch("references between these models form a cycle")
        for p in ready:
            order.append(p)
            placed.add(p)
        pending = [p for p in pending if p not in placed]
    return order


def _apply_model(plan: _Plan, items: list, using: str, done: list, deferred: list) -> None:
    model = plan.model
    existing = _find_existing(plan, [record for _, _, record in items], using)
    refs = {f.name: _resolve_refs(f, [r["fields"].get(f.name) for _, _, r in items], using)
            for f in plan.fks}
    new, old = [], []
    for (index, row, record), obj in zip(items, existing, strict=True):
        values = {}
        unresolved = False
        fields = record["fields"]
        for f in plan.fields:
            if f.name not in fields:
                continue
            value = fields[f.name]
            if value is not None and f.name in refs:
                value = refs[f.name].get(_hashable(value), _MISSING)
                if value is _MISSING:
                    unresolved = True
                    break
            values[f.attname] = value
        m2m = None
        if not unresolved:
            try:
                m2m = {f.name: [resolve_target(f, v, using) for v in record["m2m"][f.name]]
                       for f in plan.m2m if f.name in (record.get("m2m") or {})}
            except UnresolvedReference:
                unresolved = True
        if unresolved:
            deferred.append((index, row, _unresolved_reason(model, record, using)))
            continue
        if obj is None:
            # model(), pk and values set as apply_record() does, in one positional call.
            obj = model(*[values[f.attname] if f.attname in values
                          else record["pk"] if f.primary_key and plan.pk_travels
                          else f.get_default()
                          for f in plan.concrete])
            new.append((obj, m2m))
        else:
            for attname, value in values.items():
                setattr(obj, attname, value)
            old.append((obj, m2m))
        done.append((row, TxStatus.APPLIED))
    _insert_raw(plan, [obj for obj, _ in new], using)
    for obj, _ in old:
        obj.save_base(using=using, raw=True)
    for obj, m2m in new + old:
        for name, pks in m2m.items():
            getattr(obj, name).set(pks)


_MISSING = object()


def _unresolved_reason(model, record: dict, using: str) -> str:
    try:
        resolve_values(model, record, using)
    except UnresolvedReference as exc:
        return str(exc)
    raise _NoBatch("a reference resolved row by row but not in the batch")


def _find_existing(plan: _Plan, records: list, using: str) -> list:
    """The server's copy of each record's object, or None (what :func:`find` returns)."""
    model = plan.model
    base = model._base_manager.db_manager(using)
    if plan.pk_travels:
        to_python = model._meta.pk.to_python
        pks = [to_python(r["pk"]) for r in records]
    else:
        by_key = _natural_lookup(model, [r["natural_key"] for r in records], using, "pk")
        if by_key is None:  # a manager we cannot batch: ask it, one key at a time
            return [find(model, r, using) for r in records]
        pks = [by_key.get(_hashable(r["natural_key"])) for r in records]
    wanted = [pk for pk in pks if pk is not None]
    objs = {}
    for chunk in _chunks(wanted, _IN):
        for obj in base.filter(pk__in=chunk).order_by():
            objs[obj.pk] = obj
    return [objs.get(pk) if pk is not None else None for pk in pks]


def _resolve_refs(field, values: list, using: str) -> dict:
    """reference value (hashable) -> local key value, for the values that resolve."""
    target_model = field.remote_field.model
    target_field = field.target_field
    wanted = [v for v in values if v is not None]
    if not wanted:
        return {}
    if travels_by_natural_key(target_field):
        found = _natural_lookup(target_model, wanted, using, target_field.attname)
        if found is not None:
            return found
        out = {}
        for v in wanted:
            try:
                out[_hashable(v)] = resolve_target(field, v, using)
            except UnresolvedReference:
                pass
        return out
    to_python = target_field.to_python
    present = set()
    base = target_model._base_manager.using(using)
    distinct = list({to_python(v) for v in wanted})
    for chunk in _chunks(distinct, _IN):
        present.update(base.filter(**{f"{target_field.attname}__in": chunk}).order_by()
                       .values_list(target_field.attname, flat=True))
    return {_hashable(v): v for v in wanted if to_python(v) in present}


# Natural keys in batches.  A manager's get_by_natural_key is arbitrary code; the
# common form, ``return self.get(field=value, other__field=value)``, is run
# against a stand-in that records the lookups, and all keys of a batch are then
# fetched with one ``__in`` query per field and matched exactly in Python.  Any
# other form, lookups that are not plain field paths, values whose equality the
# database might judge differently (collations, decimals, floats), and MySQL
# (case-insensitive collations by default) fall back to the manager, key by key.

_PLAIN_VALUES = (str, int, uuid.UUID, datetime.date)


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


def _natural_lookup(model, keys: list, using: str, attname: str) -> dict | None:
    """natural key (hashable) -> ``attname`` of the object with it, for the keys found;
    None when these keys cannot be looked up in a batch."""

    if connections[using].vendor == "mysql":
        return None
    manager = model._default_manager.db_manager(using)
    names = None
    fields = None
    wanted: dict = {}
    for key in keys:
        hk = _hashable(key)
        if hk in wanted:
            continue
        lookups = _lookups_of(manager, key)
        if not lookups:
            return None
        if names is None:
            names = sorted(lookups)
            fields = [_lookup_field(model, n) for n in names]
            if any(f is None for f in fields):
                return None
        elif sorted(lookups) != names:
            return None
        if any(not isinstance(lookups[n], _PLAIN_VALUES) for n in names):
            return None
        wanted[hk] = tuple(f.get_prep_value(lookups[n]) for f, n in zip(fields, names, strict=True))
    if not wanted:
        return {}
    found: dict = {}
    items = list(wanted.items())
    for chunk in _chunks(items, _IN):
        # Filter on the one field with the most distinct values in this batch (the
        # participant of a visit, not its visit code): an index on it narrows the
        # rows to a few per key, where one on a field with few distinct values
        # would make the query scan a large part of the table as it grows.  The
        # rows are then matched on every field here.
        distinct = [{t[i] for _, t in chunk} for i in range(len(names))]
        best = max(range(len(names)), key=lambda i: len(distinct[i]))
        filters = {f"{names[best]}__in": sorted(distinct[best], key=repr)}
        for row in manager.filter(**filters).order_by().values_list(attname, *names):
            t = tuple(f.get_prep_value(v) for f, v in zip(fields, row[1:], strict=True))
            found.setdefault(t, set()).add(row[0])
    out = {}
    for hk, t in wanted.items():
        hits = found.get(t)
        if hits:
            if len(hits) > 1:
                raise _NoBatch("a natural key matches several objects")
            out[hk] = next(iter(hits))
    return out


def _insert_raw(plan: _Plan, objs: list, using: str) -> None:
    """INSERT new objects as raw saves do (field values as they are, auto_now kept),
    in batches, sending the same pre_save/post_save signals with ``raw=True``."""
    if not objs:
        return
    from django.db.models import signals

    model = plan.model
    opts = model._meta
    connection = connections[using]
    auto_pk = not plan.pk_travels
    fields = [f for f in opts.local_concrete_fields
              if not getattr(f, "generated", False) and not (auto_pk and f is opts.pk)]
    returning = opts.db_returning_fields if auto_pk else None
    if signals.pre_save.has_listeners(model):
        for obj in objs:
            signals.pre_save.send(sender=model, instance=obj, raw=True, using=using,
                                  update_fields=None)
    size = max(connection.ops.bulk_batch_size(fields, objs), 1)
    if auto_pk and not connection.features.can_return_rows_from_bulk_insert:
        size = 1
    if (connection.vendor == "sqlite" and not any(hasattr(f, "get_placeholder") for f in fields)
            and (returning is None or (list(returning) == [opts.pk]
                                       and connection.features.can_return_rows_from_bulk_insert))):
        _insert_sqlite(model, fields, objs, size, auto_pk, connection)
    else:
        _insert_django(model, fields, objs, size, returning, using)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    if signals.post_save.has_listeners(model):
        for obj in objs:
            signals.post_save.send(sender=model, instance=obj, created=True, update_fields=None,
                                   raw=True, using=using)


def _insert_sqlite(model, fields: list, objs: list, size: int, auto_pk: bool, connection) -> None:
    """What Django's raw insert compiles to on SQLite (each value through its field's
    ``get_db_prep_save``, multi-row VALUES, RETURNING the new ids), without the
    compiler's per-value machinery.  An expression as a value is left to Django."""
    opts = model._meta
    qn = connection.ops.quote_name
    head = f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    tail = f" RETURNING {qn(opts.pk.column)}" if auto_pk else ""
    with connection.cursor() as cursor:
        for batch in _chunks(objs, size):
            params = []
            for obj in batch:
                for f in fields:
                    value = getattr(obj, f.attname)
                    if hasattr(value, "resolve_expression"):
                        raise _NoBatch("an expression as a field value")
                    params.append(f.get_db_prep_save(value, connection))
            cursor.execute(head + ", ".join([one] * len(batch)) + tail, params)
            if auto_pk:
                for obj, (pk,) in zip(batch, cursor.fetchall(), strict=True):
                    setattr(obj, opts.pk.attname, pk)


def _insert_django(model, fields: list, objs: list, size: int, returning, using: str) -> None:
    qs = model._base_manager.using(using)
    for batch in _chunks(objs, size):
        rows = qs._insert(batch, fields=fields, returning_fields=returning, raw=True, using=using)
        if returning:
            for obj, values in zip(batch, rows, strict=True):
                for f, value in zip(returning, values, strict=False):
                    setattr(obj, f.attname, value)


def _mark_many(done: list, using: str, now) -> None:
    by_status: dict = {}
    for row, status in done:
        by_status.setdefault(status, []).append(row)
    for status, rows in by_status.items():
        for chunk in _chunks([r.pk for r in rows], _IN):
            IncomingTransaction.objects.using(using).filter(pk__in=chunk).update(
                status=status, reason="", is_consumed=True, consumed_datetime=now
            )
        for r in rows:
            r.status, r.reason, r.is_consumed, r.consumed_datetime = status, "", True, now


def apply_queryset(queryset, *, custom_device=None, check_hostname=True) -> ApplyResult:
    """Apply the pending and failed rows of ``queryset`` in ledger order, in one DB
    transaction.  Rows of bundles that wait for a gap or are quarantined are left
    alone: their turn is decided by the importer."""
    using = queryset.db
    result = ApplyResult()
    host = custom_device or socket.gethostname()
    with transaction.atomic(using=using):
        rows = list(
            queryset.filter(status__in=[TxStatus.PENDING, TxStatus.FAILED])
            .exclude(
                bundle__in=ImportedBundle.objects.using(using).filter(
                    status__in=[BundleStatus.WAITING, BundleStatus.FORK]
                )
            )
            .select_for_update()
            .order_by("id")
        )
        if check_hostname:
            own = [r for r in rows if r.producer.rsplit("/", 1)[-1] == host]
            if own:
                result.skipped += len(own)
                result.messages.append(
                    f"skipped {len(own)} transaction(s) produced on this host ({host}); "
                    "pass check_hostname=False to apply them"
                )
                rows = [r for r in rows if r.producer.rsplit("/", 1)[-1] != host]
        apply_rows(rows, using, result)
    return result


def retry_failed(using: str = "default", queryset=None) -> ApplyResult:
    """Apply again the rows that failed (after the cause was fixed: code deployed,
    a missing referenced row synced)."""
    qs = queryset if queryset is not None else IncomingTransaction.objects.using(using)
    return apply_queryset(qs.filter(status=TxStatus.FAILED), check_hostname=False)
