"""Stand-in for :mod:`django_adapter.review` where it is not installed: the failed,
stale and conflicting transactions straight from the ledger, and retry through
:func:`django_adapter.apply.retry_failed`.  Resolving needs the review module
(it records the decision in the ledger); here it says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from django.apps import apps
from django.utils import timezone

from bundlekit.errors import BundleError
from django_adapter.models import ConflictingTransaction, IncomingTransaction, TxStatus

LIMIT = 1000


@dataclass
class ReviewItem:
    tx_id: str
    site: str
    sender: str
    model: str
    natural_key: list
    pk: Any
    action: str
    outcome: str
    reason: str
    received: dt.datetime
    age_days: int
    values: dict = field(default_factory=dict)
    server_values: dict | None = None
    bundle_id: str = ""
    seq: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ResolveUnavailable(BundleError):
    code = "bad-request"


def _server_values(label: str, record: dict, using: str) -> dict | None:
    from django_adapter.serialization import find, synced_fields

    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return None
    try:
        obj = find(model, record, using)
    except Exception:  # a natural key that no longer fits the model
        return None
    if obj is None:
        return None
    return {f.name: f.value_from_object(obj) for f in synced_fields(model)}


def _item(row: IncomingTransaction, outcome: str, reason: str, record: dict, using: str) -> ReviewItem:
    now = timezone.now()
    bundle = row.bundle
    return ReviewItem(
        tx_id=str(row.tx_id),
        site=bundle.site if bundle else row.producer.split("/", 1)[0],
        sender=bundle.fingerprint if bundle else "",
        model=row.tx_name,
        natural_key=list(record.get("natural_key") or []),
        pk=record.get("pk"),
        action=row.action,
        outcome=outcome,
        reason=reason,
        received=row.received,
        age_days=(now - row.received).days,
        values=dict(record.get("fields") or {}),
        server_values=_server_values(row.tx_name, record, using),
    )


def queue(using: str = "default", *, site=None, model=None, outcome=None) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    rows = IncomingTransaction.objects.using(using).select_related("bundle")
    rows = rows.filter(status__in=[TxStatus.FAILED, TxStatus.STALE])
    if model:
        rows = rows.filter(tx_name=model)
    if site:
        rows = rows.filter(bundle__site=site)
    if outcome in ("failed", "stale"):
        rows = rows.filter(status=outcome)
    if outcome in (None, "failed", "stale"):
        for row in rows.order_by("id")[:LIMIT]:
            items.append(_item(row, row.status, row.reason, row.record, using))
    if outcome in (None, "conflict"):
        conflicts = ConflictingTransaction.objects.using(using).select_related("bundle")
        if model:
            conflicts = conflicts.filter(tx_name=model)
        if site:
            conflicts = conflicts.filter(bundle__site=site)
        for c in conflicts.order_by("id")[:LIMIT]:
            first = IncomingTransaction.objects.using(using).filter(tx_id=c.tx_id).first()
            if first is None:
                continue
            from django_adapter.codec import load

            record = load(c.tx, c.format)
            item = _item(first, "conflict", "same id, different content", record, using)
            item.received = c.received
            items.append(item)
    return items


def retry(tx_ids=None, *, using: str = "default", who: str = "", note: str = ""):
    from django_adapter.apply import retry_failed

    qs = IncomingTransaction.objects.using(using)
    if tx_ids is not None:
        qs = qs.filter(tx_id__in=list(tx_ids))
    return retry_failed(using, queryset=qs)


def resolve(tx_id, choice, *, note, who, using="default"):
    raise ResolveUnavailable(
        "resolving needs django_adapter.review, which this version does not have; "
        "use retry, or bundle resolve on a newer version"
    )
