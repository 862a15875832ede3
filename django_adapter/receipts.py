"""Receipts in the Django adapter: the server writes them, the site applies them.

Server side: after importing bundles, :func:`write_receipts` writes one signed
receipt per sender, listing every bundle of that sender the ledger knows about
(not only this run's), so a receipt lost on the way back costs nothing: the next
one says it all again.  Statuses come from the ledger, never from "duplicate"
arrivals, so a second copy of a quarantined bundle cannot make it look delivered.

Site side: :func:`apply_receipt` marks the bundles the receipt says the server
*holds* as acknowledged and their transactions ``is_consumed_server=True``
(edc-sync's flag), which is what lets ``bundle prune`` delete them.  A bundle is
acknowledged only when both its id and its digest match what this site sealed;
the receipt's "highest contiguous seq" is reported but not acted on, because
after a restore from backup the server's seq 1..n may be other bundles than ours.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from bundlekit.errors import ReceiptError
from bundlekit.keys import PublicKey
from bundlekit.receipt import MAX_ENTRIES, ReceiptEntry, read_receipt, write_receipt
from django_adapter import clock
from django_adapter.conf import Config
from django_adapter.models import BundleStatus, ExportedBundle, ImportedBundle, OutgoingTransaction

#: Ledger status -> receipt status (docs/RECEIPTS.md §3.4).  A fork keeps no
#: transactions at the server, so the site must keep them: ``rejected``.
_RECEIPT_STATUS = {
    BundleStatus.APPLIED: "applied",
    BundleStatus.WAITING: "held",
    BundleStatus.FORK: "rejected",
    BundleStatus.FAILED: "rejected",
}


# ------------------------------------------------------------------ server side


def ledger_entries(fingerprint: str, using: str) -> tuple[list[ReceiptEntry], int]:
    """Receipt entries for every bundle received from one sender, and the highest
    contiguous seq the server holds for it."""
    entries: dict[str, ReceiptEntry] = {}
    held: set[int] = set()
    rows = ImportedBundle.objects.using(using).filter(fingerprint=fingerprint).order_by("seq", "id")
    for b in rows.iterator():
        status = _RECEIPT_STATUS.get(b.status, "rejected")
        reason = ""
        if status == "rejected":
            messages = (b.report or {}).get("messages") or [b.get_status_display()]
            reason = str(messages[0])
        elif b.failed_count:
            reason = f"{b.failed_count} transactions failed to apply; the server keeps them"
        entries[b.bundle_id] = ReceiptEntry(
            bundle_id=uuid.UUID(b.bundle_id),
            seq=b.seq,
            digest=bytes.fromhex(b.digest),
            status=status,
            records=b.record_count,
            reason=reason,
        )
        if status != "rejected":
            held.add(b.seq)
    contiguous = 0
    while contiguous + 1 in held:
        contiguous += 1
    return list(entries.values()), contiguous


def sender_key(fingerprint: str, config: Config) -> PublicKey | None:
    """The trusted key of a sender: a receipt is addressed to its fingerprint."""
    return next((k for k in config.trusted if k.fingerprint == fingerprint), None)


def write_receipts(fingerprints, *, config: Config, out_dir=None) -> list[Path]:
    """One receipt (several beyond 50,000 bundles) per sender into RECEIPTS_OUT."""
    out = Path(out_dir or config.receipts_out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fingerprint in sorted(set(fingerprints)):
        subject = sender_key(fingerprint, config)
        if subject is None:  # no longer trusted: it gets no receipt from us
            continue
        entries, contiguous = ledger_entries(fingerprint, config.database)
        for i in range(0, max(len(entries), 1), MAX_ENTRIES):
            written.append(
                write_receipt(
                    out,
                    issuer=config.identity,
                    subject=subject,
                    entries=entries[i : i + MAX_ENTRIES],
                    highest_contiguous_seq=contiguous,
                )
            )
    return written


# -------------------------------------------------------------------- site side


@dataclass
class ReceiptReport:
    """What one receipt did at the site."""

    file: str
    issuer: str = ""
    acknowledged: int = 0  # bundles newly acknowledged
    already: int = 0  # bundles acknowledged before
    transactions: int = 0  # transactions newly marked consumed
    rejected: list[dict] = field(default_factory=list)  # server refused: keep, maybe resend
    quarantined: list[dict] = field(default_factory=list)
    unknown: int = 0  # bundle ids this site never sealed (or pruned long ago)
    mismatched: int = 0  # our bundle id with another digest: not acknowledged
    contiguous: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def apply_receipt(path, *, config: Config) -> ReceiptReport:
    """Verify ``path`` against the trusted issuers and for this site's key, then mark
    what it says the server holds.  Raises :class:`ReceiptError` (nothing marked)
    for a forged, damaged or foreign receipt."""
    identity = config.identity
    issuers = config.trusted_issuers()
    receipt = read_receipt(path, trusted_issuers=issuers, me=identity)
    clock.observe(receipt.created, config.database)
    report = ReceiptReport(
        file=os.fspath(path), issuer=receipt.issuer.site, contiguous=receipt.highest_contiguous_seq
    )
    using = config.database
    now = timezone.now()
    with transaction.atomic(using=using):
        ours = {
            b.bundle_id: b
            for b in ExportedBundle.objects.using(using)
            .select_for_update()
            .filter(
                fingerprint=identity.fingerprint,
                bundle_id__in=[str(e.bundle_id) for e in receipt.entries],
            )
        }
        for entry in receipt.entries:
            note = {"seq": entry.seq, "bundle_id": str(entry.bundle_id), "reason": entry.reason}
            if entry.status == "rejected":
                report.rejected.append(note)
                continue
            if entry.status == "quarantined":
                report.quarantined.append(note)
            bundle = ours.get(str(entry.bundle_id))
            if bundle is None:
                report.unknown += 1
                continue
            if bundle.digest != entry.digest.hex():
                report.mismatched += 1
                continue
            if bundle.acknowledged:
                report.already += 1
                continue
            bundle.acknowledged = True
            bundle.acknowledged_datetime = now
            bundle.save(using=using, update_fields=["acknowledged", "acknowledged_datetime"])
            report.acknowledged += 1
            report.transactions += (
                OutgoingTransaction.objects.using(using)
                .filter(exported_bundle=bundle, is_consumed_server=False)
                .update(is_consumed_server=True, consumed_datetime=now)
            )
    return report


__all__ = ["ReceiptError", "ReceiptReport", "apply_receipt", "ledger_entries", "write_receipts"]
