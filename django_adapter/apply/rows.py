"""The per-record path: one record, its own queries and ORM calls.

The engine (``engine.py``) sends a row here only where planning cannot help:
multi-table inheritance children (their parent rows are written table by table),
models that refer to themselves or sit on a cycle of references, records carrying
files (django_adapter/attachments.py: stored and checked first), and any stage
that raised (redone row by row, each row in its own savepoint).  The decisions
are the same as the engine's; see the rules in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from django.apps import apps

from django_adapter import attachments
from django_adapter.exceptions import SyncError
from django_adapter.models import TxStatus
from django_adapter.serialization import find, is_synced, pk_travels, resolve_values

from . import stale
from .policy import DEFAULT


class _Refused(Exception):
    """The apply policy refused this change; the message is the row's reason."""


def save_raw(obj, model, record: dict, using: str) -> None:
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


def apply_record(row, record: dict, using: str, *, override_stale: bool = False,
                 policy=DEFAULT) -> str:
    """Apply one record; returns the status.  Raises UnresolvedReference to defer,
    _Refused when the apply policy refuses the change."""
    try:
        model = apps.get_model(record["model"])
    except (LookupError, ValueError):
        raise SyncError(f"unknown model {record['model']!r} on this server") from None
    if not is_synced(model):
        raise SyncError(f"{model._meta.label} is not a synced model on this server")
    if not override_stale and stale.newer_applied(row, using):
        return TxStatus.STALE
    obj = find(model, record, using)
    if record["action"] == "D":
        why = policy.refuse(model, record, obj, row)
        if why:
            raise _Refused(why)
        if obj is None:
            return TxStatus.DELETED_MISSING
        obj.delete(using=using, keep_parents=True)
        return TxStatus.APPLIED
    values, m2m = resolve_values(model, record, using)
    why = policy.refuse(model, record, obj, row)
    if why:
        raise _Refused(why)
    # The files of file fields are stored and checked before the row points at them
    # (once its references resolved and the policy agreed: a deferred row stores nothing).
    values.update(attachments.place(model, record, using))
    if obj is None:
        obj = model()
        if pk_travels(model):
            obj.pk = record["pk"]
    for attname, value in values.items():
        setattr(obj, attname, value)
    save_raw(obj, model, record, using)
    for name, pks in m2m.items():
        getattr(obj, name).set(pks)
    return TxStatus.APPLIED
