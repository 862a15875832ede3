"""The server's review queue: every transaction that needs a person, and what a
person may do about it.

A transaction needs a person when the server does not hold it as the site meant
it (docs/WORKFLOW.md, "Outcomes"): it ``failed`` (with the reason), is in
``conflict`` (its id arrived again with other content), is ``stale`` (a later
change of the same object was applied first, so this one was not), is
``waiting`` for an earlier bundle of its site (a gap), or came in a bundle
``quarantined`` as a fork of its site's chain.

Three calls, used by ``bundle review``/``retry``/``resolve`` and by the web
dashboard alike:

* :func:`queue` lists them, oldest first, with the record's values and the
  server's current row beside them;
* :func:`retry` applies failed ones again after the cause was fixed (a missing
  reference has arrived, the server was migrated).  A failed change of an object
  that a *later* change from the same site has since replaced is not applied
  (that would roll the object back) but marked superseded;
* :func:`resolve` settles one: ``keep-server`` (the site's change is superseded),
  ``take-site`` (it is applied even over a newer change), ``discard`` (it is
  dropped).  Each retry and decision is a :class:`~django_adapter.models.Decision`
  row (who, when, why), visible in the admin, and its outcome goes back to the
  site in the next receipt (the caller writes receipts: see :func:`senders_of`).

A transaction id is unique per sender only (two laptops may use the same one):
:func:`retry` and :func:`resolve` take ``sender`` (a site name or a key
fingerprint) and refuse an id that several senders used until it says which.

Bad input (an unknown id, no note, a choice that does not exist, a site's
version that still cannot be applied) raises
:class:`~bundlekit.errors.ReviewError` and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from bundlekit.errors import ReviewError
from bundlekit.keys import FINGERPRINT
from django_adapter import forks
from django_adapter.apply import ApplyResult, apply_rows
from django_adapter.apply.ledger import digest_of
from django_adapter.codec import load, object_key
from django_adapter.models import (
    BundleStatus,
    Choice,
    ConflictingTransaction,
    Decision,
    ImportedBundle,
    IncomingTransaction,
    TxStatus,
)
from django_adapter.serialization import find, is_synced, synced_fields

#: What ``queue(outcome=...)`` accepts, in the order the queue lists them.
QUEUE_OUTCOMES = ("failed", "conflict", "stale", "waiting", "quarantined")
CHOICES = (Choice.KEEP_SERVER.value, Choice.TAKE_SITE.value, Choice.DISCARD.value)
STALE_REASON = "a later change of this object was applied first"


@dataclass
class ReviewItem:
    """One transaction (or, for ``quarantined``, one bundle) that needs a person."""

    tx_id: str
    site: str
    sender: str  # the signing key's fingerprint
    model: str
    natural_key: Any
    pk: str
    action: str
    outcome: str  # failed | conflict | stale | waiting | quarantined
    reason: str
    received: dt.datetime
    age_days: int
    values: dict = field(default_factory=dict)
    #: The server's row for the object (by its id, else by its natural key), or None.
    server_values: dict | None = None
    bundle_id: str = ""
    seq: int | None = None

    def to_dict(self) -> dict:
        return {
            "tx_id": self.tx_id,
            "site": self.site,
            "sender": self.sender,
            "model": self.model,
            "natural_key": _plain(self.natural_key),
            "pk": self.pk,
            "action": self.action,
            "outcome": self.outcome,
            "reason": self.reason,
            "received": self.received.isoformat(),
            "age_days": self.age_days,
            "values": _plain(self.values),
            "server_values": _plain(self.server_values),
            "bundle_id": self.bundle_id,
            "seq": self.seq,
        }


def _plain(value: Any) -> Any:
    """JSON-friendly: text for decimals, times, UUIDs; hex for bytes."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal | uuid.UUID | dt.date | dt.time | dt.timedelta):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    return value


# ------------------------------------------------------------------ the queue


def queue(
    using: str = "default",
    *,
    site: str | None = None,
    model: str | None = None,
    outcome: str | None = None,
    limit: int | None = None,
) -> list[ReviewItem]:
    """Everything that needs a person, oldest first (``limit``: the first N)."""
    if outcome is not None and outcome not in QUEUE_OUTCOMES:
        raise ReviewError(f"outcome must be one of {', '.join(QUEUE_OUTCOMES)}, not {outcome!r}")
    now = timezone.now()
    items: list[ReviewItem] = []
    wanted = [outcome] if outcome else list(QUEUE_OUTCOMES)
    ledger = IncomingTransaction.objects.using(using).select_related("bundle")
    if site:
        ledger = ledger.filter(bundle__site=site)
    if model:
        ledger = ledger.filter(tx_name=model)
    for name in wanted:
        if name == "failed":
            rows = ledger.filter(status=TxStatus.FAILED)
        elif name == "stale":
            rows = ledger.filter(status=TxStatus.STALE, decisions__isnull=True)
        elif name == "waiting":
            rows = ledger.filter(status=TxStatus.PENDING, bundle__status=BundleStatus.WAITING)
        else:
            items.extend(_conflicts(using, site, model, now) if name == "conflict"
                         else _forks(using, site, model, now))
            continue
        rows = rows.order_by("received", "id")
        if limit is not None:
            rows = rows[:limit]
        items.extend(_item(row, name, using, now) for row in rows)
    items.sort(key=lambda i: i.received)
    return items[:limit] if limit is not None else items


def _item(row: IncomingTransaction, outcome: str, using: str, now) -> ReviewItem:
    record = _record(row.tx, row.format)
    bundle = row.bundle
    reason = row.reason
    if outcome == "stale":
        reason = reason or STALE_REASON
    elif outcome == "waiting":
        reason = f"waiting for an earlier bundle of {bundle.site if bundle else 'its site'}"
    return ReviewItem(
        tx_id=str(row.tx_id),
        site=bundle.site if bundle else row.producer,
        sender=bundle.fingerprint if bundle else "",
        model=row.tx_name,
        natural_key=record.get("natural_key"),
        pk=row.tx_pk,
        action=row.action,
        outcome=outcome,
        reason=reason,
        received=row.received,
        age_days=(now - row.received).days,
        values=dict(record.get("fields") or {}),
        server_values=_server_values(record, using),
        bundle_id=bundle.bundle_id if bundle else "",
        seq=bundle.seq if bundle else None,
    )


def _conflicts(using: str, site, model, now) -> list[ReviewItem]:
    rows = (
        ConflictingTransaction.objects.using(using)
        .select_related("bundle")
        .filter(resolution="")
        .order_by("received", "id")
    )
    if site:
        rows = rows.filter(bundle__site=site)
    if model:
        rows = rows.filter(tx_name=model)
    items = []
    for c in rows:
        record = _record(c.tx, c.format)
        bundle = c.bundle
        items.append(
            ReviewItem(
                tx_id=str(c.tx_id),
                site=bundle.site if bundle else str(record.get("producer", "")),
                sender=bundle.fingerprint if bundle else "",
                model=c.tx_name,
                natural_key=record.get("natural_key"),
                pk=str(record.get("pk", "")),
                action=str(record.get("action", "")),
                outcome="conflict",
                reason="this transaction id was already received with other content; "
                "the first copy is in the ledger, this one is kept aside",
                received=c.received,
                age_days=(now - c.received).days,
                values=dict(record.get("fields") or {}),
                server_values=_server_values(record, using),
                bundle_id=bundle.bundle_id if bundle else "",
                seq=bundle.seq if bundle else None,
            )
        )
    return items


def _forks(using: str, site, model, now) -> list[ReviewItem]:
    if model:  # a quarantined bundle keeps no records, so it names no model
        return []
    rows = ImportedBundle.objects.using(using).filter(
        status=BundleStatus.FORK, settled__isnull=True)
    if site:
        rows = rows.filter(site=site)
    return [
        ReviewItem(
            tx_id="",
            site=b.site,
            sender=b.fingerprint,
            model="",
            natural_key=None,
            pk="",
            action="",
            outcome="quarantined",
            reason=str(((b.report or {}).get("messages") or ["fork of the sender's chain"])[0]),
            received=b.received,
            age_days=(now - b.received).days,
            bundle_id=b.bundle_id,
            seq=b.seq,
        )
        for b in rows.order_by("received", "id")
    ]


def _record(tx, fmt) -> dict:
    try:
        record = load(tx, fmt)
    except Exception:  # noqa: BLE001 - a record that does not decode still needs a person
        return {}
    return record if isinstance(record, dict) else {}


def _server_values(record: dict, using: str) -> dict | None:
    """The server's current row for the record's object, or else the row that holds
    its natural key (what a unique clash clashes with); None: neither is there."""
    try:
        model = apps.get_model(record["model"])
        if not is_synced(model):
            return None
        obj = find(model, record, using)
        if obj is None and isinstance(record.get("natural_key"), list | tuple):
            manager = model._default_manager.db_manager(using)
            obj = manager.get_by_natural_key(*record["natural_key"])
    except Exception:  # noqa: BLE001 - unknown model, malformed or absent key: nothing to show
        return None
    if obj is None:
        return None
    return {f.name: getattr(obj, f.attname) for f in synced_fields(model)}


# ------------------------------------------------------------------ retry


def retry(
    tx_ids=None, *, using: str = "default", who: str = "", note: str = "", sender=None
) -> ApplyResult:
    """Apply failed transactions again (all of them, or those of ``tx_ids``;
    only ``sender``'s, a site name or key fingerprint, when it is given).

    A transaction id is unique per sender only: an id that two senders used is
    refused unless ``sender`` says which (:class:`ReviewError` lists them).

    A failed change whose object has since been changed again by the same site
    (a later bundle, or later in the same bundle) is marked ``stale``
    (superseded) instead: records carry the whole object, so applying the older
    one would undo the newer.  The bundles' counters follow, so ``bundle
    status`` and the next receipt say what happened.
    """
    result = ApplyResult()
    with transaction.atomic(using=using):
        # No join here: PostgreSQL cannot lock the nullable side of an outer join.
        rows = IncomingTransaction.objects.using(using)
        fingerprints = _senders_named(sender, using)
        if fingerprints is not None:
            rows = rows.filter(sender__in=fingerprints)
        if tx_ids is not None:
            ids = _uuids(tx_ids)
            found: dict = {}
            for r in rows.filter(tx_id__in=ids):
                found.setdefault(r.tx_id, []).append(r)
            missing = [str(i) for i in ids if i not in found]
            if missing:
                raise ReviewError(f"no transaction {missing[0]}{_from(sender)} at this server")
            for tid, same in found.items():
                if len(same) > 1:
                    raise ReviewError(_ambiguous(tid, {r.sender for r in same}, using))
            not_failed = [r for same in found.values() for r in same if r.status != TxStatus.FAILED]
            if not_failed:
                r = not_failed[0]
                raise ReviewError(f"transaction {r.tx_id} is {r.status}, not failed: nothing to retry")
            rows = IncomingTransaction.objects.using(using).filter(
                pk__in=[r.pk for same in found.values() for r in same])
        rows = list(rows.filter(status=TxStatus.FAILED).select_for_update().order_by("id"))
        before = {r.pk: r.status for r in rows}
        now = timezone.now()
        to_apply = []
        for row in rows:
            later = _later_change_of_same_site(row, using)
            if later is None:
                to_apply.append(row)
                continue
            row.status = TxStatus.STALE
            row.reason = f"superseded by a later change of this object from {_site(row)} (tx {later})"
            row.is_consumed, row.consumed_datetime = True, now
            row.save(using=using, update_fields=["status", "reason", "is_consumed", "consumed_datetime"])
            result.count(TxStatus.STALE)
        apply_rows(to_apply, using, result)
        for row in rows:
            _recount(row.bundle_id, before[row.pk], row.status, using)
            _decide(row, None, Choice.RETRY, "failed", _outcome(row.status), who, note or "retry",
                    using)
    return result


def _later_change_of_same_site(row: IncomingTransaction, using: str):
    """The tx id of an applied change of the same object that the same sender made
    after ``row`` (by its chain: bundle seq, then position), or None.  The apply
    engine orders one sender's changes by its chain but only among rows it applies
    together; a retry comes later, so the chain is checked here."""
    if row.bundle is None:
        return None
    # One sender, one model, one pk on that laptop: the same object, even when the
    # later change gave it another natural key (a corrected identifier).
    later = (
        IncomingTransaction.objects.using(using)
        .filter(Q(object_key=row.object_key) | Q(tx_pk=row.tx_pk))
        .filter(
            tx_name=row.tx_name,
            status__in=[TxStatus.APPLIED, TxStatus.DELETED_MISSING],
            bundle__fingerprint=row.bundle.fingerprint,
        )
        .filter(
            Q(bundle__seq__gt=row.bundle.seq)
            | Q(bundle__seq=row.bundle.seq, position__gt=row.position)
        )
        .exclude(pk=row.pk)
        .values_list("tx_id", flat=True)
        .first()
    )
    return later


# ------------------------------------------------------------------ resolve


def resolve(tx_id, choice: str, *, note: str, who: str, using: str = "default",
            sender=None) -> Decision:
    """Settle one transaction of the queue; returns the recorded :class:`Decision`.

    A transaction id is unique per sender only: ``sender`` (a site name or a key
    fingerprint) says whose transaction is meant; without it, an id that several
    senders used is refused with the list of them.

    ``keep-server``: the server's version stays, the site's change is superseded.
    ``take-site``: the site's change is applied now, even over a newer one (for a
    conflict: the kept-aside copy replaces the first one in the ledger, and is
    applied).  ``discard``: the site's change is dropped.  Raises
    :class:`ReviewError` (nothing changed) for a bad id, choice or note, for a
    transaction that needs no decision, or when the site's version still cannot be
    applied (the reason says why).
    """
    if choice not in CHOICES:
        raise ReviewError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
    note = " ".join(str(note or "").split())
    if not note:
        raise ReviewError("a note is required: say why, for whoever reads the ledger next")
    who = " ".join(str(who or "").split())
    if not who:
        raise ReviewError("who decided is required (a name or a user id)")
    (tid,) = _uuids([tx_id])
    with transaction.atomic(using=using):
        fingerprint = _one_sender(tid, sender, using)
        conflicts = ConflictingTransaction.objects.using(using).filter(tx_id=tid, resolution="")
        rows = IncomingTransaction.objects.using(using).filter(tx_id=tid)
        if fingerprint is not None:
            conflicts = conflicts.filter(sender=fingerprint)
            rows = rows.filter(sender=fingerprint)
        conflict = conflicts.select_for_update().order_by("id").first()
        row = rows.select_for_update().first()
        if conflict is not None:
            return _resolve_conflict(conflict, row, choice, note, who, using)
        if row is None and forks.quarantined(tid, using) is not None:
            # A quarantined bundle is listed by its bundle id (django_adapter.forks).
            return forks.set_aside(tid, choice, note=note, who=who, using=using)
        if row is None:
            raise ReviewError(f"no transaction {tid} at this server")
        decided = row.status == TxStatus.STALE and row.decisions.using(using).exists()
        if row.status not in (TxStatus.FAILED, TxStatus.STALE) or decided:
            what = "waits for an earlier bundle of its site" if row.status == TxStatus.PENDING \
                else f"is {row.get_status_display()}"
            raise ReviewError(f"transaction {tid} {what}: there is nothing to resolve")
        return _resolve_row(row, choice, note, who, using)


def _resolve_row(row, choice: str, note: str, who: str, using: str) -> Decision:
    before = row.status
    stamp = f"{who}: {note}"
    if choice == Choice.TAKE_SITE:
        _take(row, using)
    else:
        row.status = TxStatus.STALE if choice == Choice.KEEP_SERVER else TxStatus.DISCARDED
        row.reason = (
            f"the server's version was kept ({stamp})" if choice == Choice.KEEP_SERVER
            else f"discarded ({stamp})"
        )
        row.is_consumed, row.consumed_datetime = True, timezone.now()
        row.save(using=using, update_fields=["status", "reason", "is_consumed", "consumed_datetime"])
    _recount(row.bundle_id, before, row.status, using)
    return _decide(row, None, choice, _outcome(before), _outcome(row.status), who, note, using)


def _resolve_conflict(conflict, row, choice: str, note: str, who: str, using: str) -> Decision:
    if choice == Choice.TAKE_SITE:
        if row is None:
            raise ReviewError(f"transaction {conflict.tx_id} is not in the ledger any more")
        # The kept-aside copy takes the ledger row's place; the first copy is kept
        # aside instead (nothing is thrown away), then the row is applied.
        record = load(conflict.tx, conflict.format)
        old_tx, old_format, old_digest = bytes(row.tx), row.format, digest_of(row)
        row.tx, row.format, row.digest = bytes(conflict.tx), conflict.format, conflict.digest
        row.tx_name = str(record.get("model", row.tx_name))[:255]
        row.tx_pk = str(record.get("pk"))[:255]
        row.action = str(record.get("action", row.action))
        row.timestamp = record.get("ts", row.timestamp)
        row.object_key = object_key(row.tx_name, record.get("pk"), record.get("natural_key"))
        row.save(using=using, update_fields=["tx", "format", "digest", "tx_name", "tx_pk",
                                             "action", "timestamp", "object_key"])
        conflict.tx, conflict.format = old_tx, old_format
        conflict.digest, conflict.existing_digest = old_digest, row.digest
        before_row = row.status
        _take(row, using)
        _recount(row.bundle_id, before_row, row.status, using)
    conflict.resolution = choice
    conflict.save(using=using)
    if conflict.bundle_id is not None:
        after = {"keep-server": TxStatus.STALE, "take-site": TxStatus.APPLIED}.get(choice)
        _recount(conflict.bundle_id, TxStatus.CONFLICT, after, using)
    outcome = {"keep-server": "superseded", "take-site": "applied", "discard": "discarded"}[choice]
    return _decide(row, conflict, choice, "conflict", outcome, who, note, using,
                   tx_name=conflict.tx_name, bundle=conflict.bundle)


def _take(row, using: str) -> None:
    """Apply ``row`` over any newer change; refuse (roll back) if it still fails."""
    result = ApplyResult()
    apply_rows([row], using, result, override_stale=True)
    row.refresh_from_db(using=using, fields=["status", "reason", "is_consumed"])
    if row.status not in (TxStatus.APPLIED, TxStatus.DELETED_MISSING):
        raise ReviewError(
            f"the site's version of transaction {row.tx_id} still cannot be applied: "
            f"{row.reason or row.status}"
        )


# ------------------------------------------------------------------ helpers


def senders_of(tx_ids, using: str = "default", sender=None) -> set[str]:
    """Fingerprints of the senders of these transactions: whom to write receipts to
    (only ``sender``'s, a site name or fingerprint, when it is given)."""
    ids = _uuids(tx_ids)
    fingerprints = _senders_named(sender, using)
    found = set()
    for model in (IncomingTransaction, ConflictingTransaction):
        rows = model.objects.using(using).filter(tx_id__in=ids, bundle__isnull=False)
        if fingerprints is not None:
            rows = rows.filter(bundle__fingerprint__in=fingerprints)
        found |= set(rows.values_list("bundle__fingerprint", flat=True))
    return found


def _senders_named(sender, using: str) -> set[str] | None:
    """The key fingerprints ``sender`` names (a fingerprint, or a site name: every
    key that site signed with here); None when no sender is given."""
    name = str(sender or "").strip()
    if not name:
        return None
    found = set(
        ImportedBundle.objects.using(using)
        .filter(Q(fingerprint=name.lower()) | Q(site=name))
        .values_list("fingerprint", flat=True)
    )
    if FINGERPRINT.fullmatch(name.lower()):
        found.add(name.lower())
    if not found:
        raise ReviewError(f"no sender {name!r} at this server (give a site name or a key fingerprint)")
    return found


def _one_sender(tid, sender, using: str) -> str | None:
    """The fingerprint of the one sender whose transaction ``tid`` is meant, None
    when no sender sent it (the caller says so, or finds a quarantined bundle).

    Raises :class:`ReviewError` when several senders used the id and ``sender``
    does not pick one, or when ``sender`` sent no such transaction."""
    fingerprints = _senders_named(sender, using)
    found = set(IncomingTransaction.objects.using(using).filter(tx_id=tid)
                .values_list("sender", flat=True))
    found |= set(ConflictingTransaction.objects.using(using).filter(tx_id=tid, resolution="")
                 .values_list("sender", flat=True))
    if fingerprints is not None:
        found &= fingerprints
        if not found and forks.quarantined(tid, using) is None:
            raise ReviewError(f"no transaction {tid}{_from(sender)} at this server")
    if len(found) > 1:
        raise ReviewError(_ambiguous(tid, found, using))
    return next(iter(found), None)


def _ambiguous(tid, fingerprints, using: str) -> str:
    sites = dict(ImportedBundle.objects.using(using).filter(fingerprint__in=fingerprints)
                 .values_list("fingerprint", "site"))
    names = ", ".join(
        f"{sites.get(fp, '?')} ({fp})" if fp else "a copy without a key (no sender)"
        for fp in sorted(fingerprints)
    )
    return (f"transaction {tid} was sent by {len(fingerprints)} senders: {names}; "
            "say which with --sender SITE or FINGERPRINT")


def _from(sender) -> str:
    return f" from {str(sender).strip()}" if str(sender or "").strip() else ""


def _uuids(values) -> list[uuid.UUID]:
    out = []
    for v in values:
        try:
            out.append(v if isinstance(v, uuid.UUID) else uuid.UUID(str(v).strip()))
        except ValueError:
            raise ReviewError(f"{v!r} is not a transaction id (a UUID)") from None
    return out


def _site(row) -> str:
    return row.bundle.site if row.bundle is not None else row.producer


def _outcome(status: str) -> str:
    return {
        TxStatus.APPLIED: "applied",
        TxStatus.DELETED_MISSING: "applied",
        TxStatus.STALE: "superseded",
        TxStatus.DISCARDED: "discarded",
        TxStatus.FAILED: "failed",
        TxStatus.PENDING: "waiting",
    }.get(status, str(status))


_COUNTER = {
    TxStatus.APPLIED: "applied_count",
    TxStatus.DELETED_MISSING: "deleted_missing_count",
    TxStatus.STALE: "stale_count",
    TxStatus.FAILED: "failed_count",
    TxStatus.CONFLICT: "conflict_count",
}


def _recount(bundle_pk, before, after, using: str) -> None:
    """Move one transaction between the bundle's outcome counters."""
    if bundle_pk is None or before == after:
        return
    changes = {}
    if before in _COUNTER:
        changes[_COUNTER[before]] = F(_COUNTER[before]) - 1
    if after in _COUNTER:
        changes[_COUNTER[after]] = F(_COUNTER[after]) + 1
    if changes:
        ImportedBundle.objects.using(using).filter(pk=bundle_pk).update(**changes)


def _decide(row, conflict, choice, before, after, who, note, using, *, tx_name=None,
            bundle=None) -> Decision:
    bundle = bundle if bundle is not None else (row.bundle if row is not None else None)
    return Decision.objects.using(using).create(
        tx_id=(row or conflict).tx_id,
        choice=str(choice),
        outcome_before=before,
        outcome_after=after,
        who=who or "",
        note=note,
        site=bundle.site if bundle is not None else "",
        sender=bundle.fingerprint if bundle is not None else "",
        tx_name=tx_name or (row.tx_name if row is not None else ""),
        incoming=row,
        conflict=conflict,
    )


__all__ = ["CHOICES", "QUEUE_OUTCOMES", "ReviewItem", "queue", "resolve", "retry", "senders_of"]
