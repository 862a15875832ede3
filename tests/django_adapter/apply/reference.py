"""The apply rules read row by row: the reference the engine is checked against.

This is the simplest reading of docs/ARCHITECTURE.md ("Applying"), with no
planning at all: each ledger row in arrival order, in its own savepoint, with
its own queries and ORM calls (``get_by_natural_key``, a raw ``save``, ``set()``
for M2M, ``delete()``), an unresolved reference deferred to the end, passes over
the deferred rows while they make progress.  It shares only the record helpers
of ``serialization`` (find an object, resolve references), the record shape
check of the ledger and the default value rules (``FieldRules``) with the
engine: every decision is made here again.
"""

from __future__ import annotations

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from django_adapter import capture
from django_adapter.apply.ledger import check_record
from django_adapter.apply.policy import FieldRules
from django_adapter.codec import load
from django_adapter.exceptions import SyncError, UnresolvedReference
from django_adapter.models import IncomingTransaction, TxStatus
from django_adapter.serialization import find, is_synced, pk_travels, resolve_values

LATER = "an earlier change of this object is unresolved"


def newer_applied(row, using: str) -> bool:
    """Another change of the same object, later in time, was applied; changes along
    one sender's chain of bundles are ordered by the chain instead."""
    newer = IncomingTransaction.objects.using(using).filter(
        tx_name=row.tx_name, object_key=row.object_key,
        status__in=[TxStatus.APPLIED, TxStatus.DELETED_MISSING], timestamp__gt=row.timestamp,
    ).exclude(pk=row.pk)
    if row.bundle_id is not None:
        newer = newer.exclude(sender=row.sender, bundle__isnull=False)
    if newer.exists():
        return True
    if row.action != "U":
        return False
    # A delete stays a delete: another chain's applied delete with no insert or
    # update applied later in time.
    applied = IncomingTransaction.objects.using(using).filter(
        tx_name=row.tx_name, object_key=row.object_key,
        status__in=[TxStatus.APPLIED, TxStatus.DELETED_MISSING],
    ).exclude(pk=row.pk)
    deletes = applied.filter(action="D")
    if row.bundle_id is not None:
        deletes = deletes.exclude(sender=row.sender, bundle__isnull=False)
    return any(
        not applied.exclude(action="D").filter(timestamp__gt=d.timestamp).exists()
        for d in deletes
    )


class Refused(Exception):
    pass


RULES = FieldRules()


def apply_one(row, record: dict, using: str) -> str:
    try:
        model = apps.get_model(record["model"])
    except (LookupError, ValueError):
        raise SyncError(f"unknown model {record['model']!r} on this server") from None
    if not is_synced(model):
        raise SyncError(f"{model._meta.label} is not a synced model on this server")
    if newer_applied(row, using):
        return TxStatus.STALE
    obj = find(model, record, using)
    if record["action"] == "D":
        if RULES.refuse(model, record, obj, row):
            raise Refused(RULES.refuse(model, record, obj, row))
        if obj is None:
            return TxStatus.DELETED_MISSING
        obj.delete(using=using)
        return TxStatus.APPLIED
    values, m2m = resolve_values(model, record, using)
    why = RULES.refuse(model, record, obj, row)
    if why:
        raise Refused(why)
    if obj is None:
        obj = model()
        if pk_travels(model):
            obj.pk = record["pk"]
    for attname, value in values.items():
        setattr(obj, attname, value)
    obj.save_base(using=using, raw=True)
    for name, pks in m2m.items():
        getattr(obj, name).set(pks)
    return TxStatus.APPLIED


def apply_rows(rows, using: str, result) -> None:
    now = timezone.now()
    state = {"deferred": [], "keys": set(), "progress": False}

    def mark(row, status, reason=""):
        row.status, row.reason = status, reason
        row.is_consumed = status != TxStatus.FAILED
        row.consumed_datetime = now if row.is_consumed else None
        row.save(using=using, update_fields=["status", "reason", "is_consumed", "consumed_datetime"])
        result.count(status)
        if status == TxStatus.FAILED:
            result.messages.append(f"failed: {row.action} {row.tx_name} {row.tx_id}: {reason}")
        state["progress"] = True

    def one(row):
        if getattr(row, "_bk_invalid", False):
            return mark(row, TxStatus.FAILED, row.reason)
        try:
            record = load(row.tx, row.format)
        except Exception as exc:  # noqa: BLE001
            return mark(row, TxStatus.FAILED, f"{type(exc).__name__}: {exc}")
        why = check_record(record, row.bundle)
        if why:
            return mark(row, TxStatus.FAILED, f"not applied: {why}")
        try:
            with transaction.atomic(using=using), capture.suspended():
                status = apply_one(row, record, using)
        except Refused as exc:
            return mark(row, TxStatus.FAILED, str(exc))
        except UnresolvedReference as exc:
            row._ref_reason = str(exc)
            state["deferred"].append(row)
            state["keys"].add(row.object_key)
            return
        except Exception as exc:  # noqa: BLE001
            return mark(row, TxStatus.FAILED, f"{type(exc).__name__}: {exc}")
        mark(row, status)

    def feed(rows):
        for row in rows:
            if row.object_key in state["keys"]:
                state["deferred"].append(row)
            else:
                one(row)

    feed(rows)
    while state["deferred"]:
        if not state["progress"]:
            for row in state["deferred"]:
                mark(row, TxStatus.FAILED, getattr(row, "_ref_reason", "") or LATER)
            return
        queue = state["deferred"]
        state.update(deferred=[], keys=set(), progress=False)
        feed(queue)
