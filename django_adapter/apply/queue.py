"""Entry points over the engine: apply rows, a queryset of the ledger, the failed
rows again, and edc-sync's two-alias copy."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from django_adapter.codec import load
from django_adapter.models import BundleStatus, ImportedBundle, IncomingTransaction, TxStatus
from django_adapter.outcomes import ApplyResult, CopyResult

from .engine import Applier, fewer_collections
from .ledger import store_records


def apply_rows(rows: Iterable, using: str, result: ApplyResult, *, override_stale: bool = False,
               policy=None) -> None:
    """Apply ledger rows in the given order, deferring unresolved references.

    ``override_stale=True`` applies them even where a newer change of the same
    object was applied (``bundle resolve --take-site``); ``policy`` is the
    ``ApplyPolicy`` asked about each change (default: allow what the rules allow)."""
    applier = Applier(using, result, override_stale=override_stale, policy=policy)
    with fewer_collections():
        applier.feed(rows)
        applier.finish()


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
