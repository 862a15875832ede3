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
Connection-level errors (``OperationalError``, ``InterfaceError``) are not row
failures; they propagate so the caller's transaction rolls back as a whole.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from django_adapter import capture
from django_adapter.codec import RECORD_FORMAT, content_digest, load, object_key, packb
from django_adapter.exceptions import SyncError, UnresolvedReference
from django_adapter.models import (
    BundleStatus,
    ConflictingTransaction,
    ImportedBundle,
    IncomingTransaction,
    TxStatus,
)
from django_adapter.serialization import find, is_synced, pk_travels, resolve_values

#: Ledger rows are written in batches of this many.
BATCH = 500


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
        for name in ("applied", "duplicate", "stale", "conflict", "failed", "deleted_missing", "skipped"):
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
    new_rows: list[IncomingTransaction] = []
    batch: list[tuple[int, dict]] = []
    seen: dict = {}

    def flush():
        ids = [r["id"] for _, r in batch]
        known = dict(
            IncomingTransaction.objects.using(using)
            .filter(tx_id__in=ids)
            .values_list("tx_id", "digest")
        )
        rows = []
        for position, record in batch:
            digest = content_digest(record)
            earlier = known.get(record["id"]) or seen.get(record["id"])
            if earlier is None:
                row = _ledger_row(record, digest, bundle, position)
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
                )
        IncomingTransaction.objects.using(using).bulk_create(rows)
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
        new_rows.extend(rows)
        batch.clear()

    for position, record in enumerate(records):
        batch.append((position, record))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return new_rows


def _ledger_row(record: dict, digest: str, bundle, position: int) -> IncomingTransaction:
    try:
        model = str(record["model"])
        action = str(record["action"])
        ts = record["ts"]
        if action not in ("I", "U", "D"):
            raise ValueError(f"unknown action {action!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError(f"record {record.get('id')} is not a django_adapter record: {exc}") from exc
    return IncomingTransaction(
        tx_id=record["id"],
        tx_name=model[:255],
        tx_pk=str(record.get("pk"))[:255],
        producer=str(record.get("producer", ""))[:255],
        action=action,
        timestamp=ts,
        tx=packb(record),
        format=RECORD_FORMAT,
        digest=digest,
        object_key=object_key(model, record.get("pk"), record.get("natural_key")),
        bundle=bundle,
        position=position,
    )


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


def apply_record(row: IncomingTransaction, record: dict, using: str) -> str:
    """Apply one record; returns the status.  Raises UnresolvedReference to defer."""
    try:
        model = apps.get_model(record["model"])
    except (LookupError, ValueError):
        raise SyncError(f"unknown model {record['model']!r} on this server") from None
    if not is_synced(model):
        raise SyncError(f"{model._meta.label} is not a synced model on this server")
    if _newer_applied(row, using):
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


def apply_rows(rows: list, using: str, result: ApplyResult) -> None:
    """Apply ledger rows in the given order, deferring unresolved references."""
    now = timezone.now()
    queue = list(rows)
    while queue:
        deferred, deferred_keys, progress = [], set(), False
        for row in queue:
            if row.object_key in deferred_keys:
                deferred.append(row)
                continue
            try:
                record = load(row.tx, row.format)
                with transaction.atomic(using=using):
                    status = apply_record(row, record, using)
            except UnresolvedReference as exc:
                row._bk_reason = str(exc)
                deferred.append(row)
                deferred_keys.add(row.object_key)
                continue
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:  # noqa: BLE001 - any row failure is recorded, not raised
                reason = f"{type(exc).__name__}: {exc}"
                _mark(row, TxStatus.FAILED, reason, using, now)
                result.count(TxStatus.FAILED)
                result.messages.append(f"failed: {row.action} {row.tx_name} {row.tx_id}: {reason}")
                progress = True
                continue
            _mark(row, status, "", using, now)
            result.count(status)
            progress = True
        if deferred and not progress:
            for row in deferred:
                reason = getattr(row, "_bk_reason", "") or "an earlier change of this object is unresolved"
                _mark(row, TxStatus.FAILED, reason, using, now)
                result.count(TxStatus.FAILED)
                result.messages.append(f"failed: {row.action} {row.tx_name} {row.tx_id}: {reason}")
            break
        queue = deferred


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
