"""Receipts in the Django adapter: the server writes them, the site applies them.

Server side: after importing bundles, :func:`write_receipts` writes one signed
receipt per sender, listing every bundle of that sender the ledger knows about
(not only this run's), so a receipt lost on the way back costs nothing: the next
one says it all again.  Statuses come from the ledger, never from "duplicate"
arrivals, so a second copy of a quarantined bundle cannot make it look delivered.
Each entry says what became of every transaction (docs/RECEIPTS.md §3.5): the
ledger row's status at its position, a ``ConflictingTransaction`` at its
position, or ``duplicate`` where the bundle's record was already in the ledger.

Site side: :func:`apply_receipt` marks the bundles the receipt says the server
*holds* as acknowledged, and of their transactions only those whose outcome the
server holds for good (applied, duplicate, superseded, discarded) as
``is_consumed_server=True`` (edc-sync's flag), which is what lets ``bundle prune``
delete them.  Failed, conflicting, waiting and quarantined ones stay, marked
with the server's outcome and reason (``server_outcome``/``server_reason``), and
``bundle status`` lists them.  A bundle is acknowledged only when both its id and
its digest match what this site sealed; the receipt's "highest contiguous seq" is
reported but not acted on, because after a restore from backup the server's seq
1..n may be other bundles than ours.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from bundlekit.errors import ReceiptError, ReceiptUntrusted
from bundlekit.keys import PublicKey
from bundlekit.receipt import (
    ReceiptEntry,
    Run,
    Runs,
    read_receipt,
    split_entries,
    split_files,
    write_receipt,
)
from django_adapter import attachments, clock
from django_adapter.conf import Config
from django_adapter.exporter import id_ranges
from django_adapter.models import (
    BundleStatus,
    ConflictingTransaction,
    ExportedBundle,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
    TxStatus,
)

#: Ledger status -> receipt status (docs/RECEIPTS.md §3.4).  A fork keeps no
#: transactions at the server, so the site must keep them: ``rejected``.
_RECEIPT_STATUS = {
    BundleStatus.APPLIED: "applied",
    BundleStatus.WAITING: "held",
    BundleStatus.FORK: "rejected",
    BundleStatus.FAILED: "rejected",
}

#: Ledger row status -> transaction outcome (docs/RECEIPTS.md §3.5).
TX_OUTCOME = {
    TxStatus.APPLIED: "applied",
    TxStatus.DELETED_MISSING: "applied",
    TxStatus.STALE: "superseded",
    TxStatus.FAILED: "failed",
    TxStatus.PENDING: "waiting",
    TxStatus.DISCARDED: "discarded",
}
#: A settled conflict -> the outcome of the site's copy.
CONFLICT_OUTCOME = {
    "": "conflict",
    "keep-server": "superseded",
    "take-site": "applied",
    "discard": "discarded",
}
STALE_REASON = "a later change of this object was applied first"
CONFLICT_REASON = "this transaction id was already received with other content; kept aside"
WAITING_REASON = "waiting for an earlier bundle of this site"


# ------------------------------------------------------------------ server side


def bundle_outcomes(bundle: ImportedBundle, using: str) -> tuple[Run, ...]:
    """What became of each transaction of a held bundle, as runs of positions.

    Bundles whose counters say every record was applied (or all wait for a gap)
    are one run without reading the ledger; the others are read a batch at a
    time, in position order, so memory stays flat whatever the bundle's size.
    """
    n = bundle.record_count
    if n == 0:
        return ()
    if bundle.status == BundleStatus.APPLIED and (
        bundle.applied_count + bundle.deleted_missing_count == n
    ):
        return (Run(0, n, "applied"),)
    if bundle.status == BundleStatus.WAITING and not (bundle.duplicate_count or bundle.conflict_count):
        return (Run(0, n, "waiting", WAITING_REASON),)
    conflicts = dict(
        ConflictingTransaction.objects.using(using)
        .filter(bundle=bundle)
        .values_list("position", "resolution")
    )
    # Conflicts from before positions were kept: the site keeps every record not
    # in the ledger rather than delete one the server does not hold.
    unplaced = conflicts.pop(-1, None) is not None
    runs = Runs()
    position = 0

    def gap(upto: int) -> None:
        nonlocal position
        while position < upto:
            resolution = conflicts.get(position)
            if resolution is not None:
                outcome = CONFLICT_OUTCOME.get(resolution, "conflict")
                runs.add(outcome, CONFLICT_REASON if outcome == "conflict" else "")
            elif unplaced:
                runs.add("conflict", CONFLICT_REASON)
            else:
                runs.add("duplicate")
            position += 1

    rows = (
        IncomingTransaction.objects.using(using)
        .filter(bundle=bundle, position__lt=n)
        .order_by("position")
        .values_list("position", "status", "reason")
    )
    for pos, status, reason in rows.iterator(chunk_size=2000):
        gap(pos)
        if pos < position:  # two rows at one position cannot happen; never count twice
            continue
        outcome = TX_OUTCOME.get(status, "failed")
        if outcome == "superseded" and not reason:
            reason = STALE_REASON
        elif outcome == "waiting":
            reason = WAITING_REASON
        runs.add(outcome, reason)
        position += 1
    gap(n)
    return runs.result()


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
        outcomes = () if status == "rejected" else bundle_outcomes(b, using)
        kept = sum(r.count for r in outcomes if not r.server_holds)
        if kept and status != "rejected":
            reason = f"{kept} transaction(s) not applied; the site keeps them (see the outcomes)"
        entries[b.bundle_id] = ReceiptEntry(
            bundle_id=uuid.UUID(b.bundle_id),
            seq=b.seq,
            digest=bytes.fromhex(b.digest),
            status=status,
            records=b.record_count if status != "rejected" else 0,
            reason=reason,
            outcomes=outcomes,
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
    """One receipt per sender into RECEIPTS_OUT (several when the entries do not
    fit one: 50,000 bundles or 8 MiB, or the file digests do not: 20,000).

    Each also says which files the sender's bundles carried or referenced that
    this server holds, and which its failed transactions need sent again
    (RECEIPTS.md §3.7, ``attachments.receipt_files``)."""
    out = Path(out_dir or config.receipts_out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fingerprint in sorted(set(fingerprints)):
        subject = sender_key(fingerprint, config)
        if subject is None:  # no longer trusted: it gets no receipt from us
            continue
        entries, contiguous = ledger_entries(fingerprint, config.database)
        groups = list(split_entries(entries))
        files = split_files(*attachments.receipt_files(fingerprint, config.database))
        for i in range(max(len(groups), len(files))):
            have, need = files[i] if i < len(files) else ((), ())
            written.append(
                write_receipt(
                    out,
                    issuer=config.identity,
                    subject=subject,
                    entries=groups[i] if i < len(groups) else [],
                    highest_contiguous_seq=contiguous,
                    files_held=have,
                    files_needed=need,
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
    updated: int = 0  # of those, bundles whose outcomes changed (a retry, a decision)
    transactions: int = 0  # transactions newly marked consumed (the server holds them)
    kept: int = 0  # transactions the server does not hold: they stay here
    kept_outcomes: dict = field(default_factory=dict)  # outcome -> transactions kept
    #: superseded/discarded -> transactions: held by the server (prunable) but not
    #: applied as entered, e.g. a later edit from another site won (docs/WORKFLOW.md).
    overruled: dict = field(default_factory=dict)
    notes: list[dict] = field(default_factory=list)  # the first MAX_NOTES runs not applied
    rejected: list[dict] = field(default_factory=list)  # server refused: keep, maybe resend
    quarantined: list[dict] = field(default_factory=list)
    unknown: int = 0  # bundle ids this site never sealed (or pruned long ago)
    mismatched: int = 0  # our bundle id with another digest: not acknowledged
    contiguous: int = 0
    files_held: int = 0  # captured files the server says it holds (their copies may go)
    files_needed: int = 0  # captured files the server needs sent again: the next export does

    def to_dict(self) -> dict:
        return dict(self.__dict__)


#: Kept runs described one by one in a receipt report (the count is always given).
MAX_NOTES = 20


def apply_receipt(path, *, config: Config) -> ReceiptReport:
    """Verify ``path`` against the receipt issuers (RECEIPTS_FROM, else RECIPIENTS)
    and for this site's key, then mark what it says the server holds.  Raises
    :class:`ReceiptError` (nothing marked) for a forged, damaged or foreign
    receipt, or one signed by a key that may not acknowledge our bundles."""
    identity = config.identity
    issuers = config.receipt_issuers()
    try:
        receipt = read_receipt(path, trusted_issuers=issuers, me=identity)
    except ReceiptUntrusted as exc:
        exc.reason += (
            "; only the servers in RECEIPTS_FROM (default: RECIPIENTS) may acknowledge "
            "this site's bundles"
        )
        raise
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
            runs = [[r.first, r.count, r.outcome, r.reason] for r in entry.outcomes]
            known_runs, as_of = _last_outcomes(bundle)
            if bundle.acknowledged and (
                known_runs == runs or (as_of is not None and receipt.created < as_of)
            ):
                # Nothing new, or older news (receipts read out of order): the
                # outcomes of a newer receipt stand.
                report.already += 1
                continue
            _count_kept(report, entry)  # news only: bundle status lists what is kept
            if bundle.acknowledged:
                report.already += 1
                report.updated += 1
            else:
                bundle.acknowledged = True
                bundle.acknowledged_datetime = now
                report.acknowledged += 1
            report.transactions += _mark_outcomes(bundle, entry, using, now)
            bundle.server_outcomes = {"as_of": receipt.created.isoformat(), "runs": runs}
            bundle.save(
                using=using,
                update_fields=["acknowledged", "acknowledged_datetime", "server_outcomes", "id_ranges"],
            )
        # RECEIPTS.md §3.7: the files it holds (exports leave them out, prune may
        # delete their copies) and those it needs again (the next export sends them).
        report.files_held, report.files_needed = attachments.note_server_files(
            receipt.issuer.fingerprint, receipt.files_held, receipt.files_needed,
            receipt.created, using)
    return report


def _last_outcomes(bundle: ExportedBundle) -> tuple[list, dt.datetime | None]:
    """(runs, receipt time) of the last receipt applied to ``bundle``."""
    stored = bundle.server_outcomes
    if isinstance(stored, dict):
        try:
            return stored.get("runs") or [], dt.datetime.fromisoformat(stored["as_of"])
        except (KeyError, TypeError, ValueError):
            return stored.get("runs") or [], None
    return stored or [], None


def _count_kept(report: ReceiptReport, entry: ReceiptEntry) -> None:
    for run in entry.outcomes:
        if run.outcome in ("superseded", "discarded"):
            # Held by the server, so prunable, but not what the site entered: say so.
            report.overruled[run.outcome] = report.overruled.get(run.outcome, 0) + run.count
        elif run.server_holds:
            continue
        else:
            report.kept += run.count
            report.kept_outcomes[run.outcome] = report.kept_outcomes.get(run.outcome, 0) + run.count
        if len(report.notes) < MAX_NOTES:
            report.notes.append(
                {"seq": entry.seq, "first": run.first, "count": run.count,
                 "outcome": run.outcome, "reason": run.reason}
            )


def _mark_outcomes(bundle: ExportedBundle, entry: ReceiptEntry, using: str, now) -> int:
    """Write each run's outcome on the bundle's outgoing rows; returns how many rows
    became consumed.  A row is never un-consumed (a receipt cannot take back what
    an earlier one said the server holds)."""
    if not bundle.id_ranges:
        ids = list(
            OutgoingTransaction.objects.using(using)
            .filter(exported_bundle=bundle).order_by("id").values_list("id", flat=True)
        )
        if len(ids) != bundle.record_count:
            # Sealed before positions were kept, and partly pruned since: positions
            # no longer map to rows.  Leave the rows as they are.
            return 0
        bundle.id_ranges = id_ranges(ids)
    outgoing = OutgoingTransaction.objects.using(using).filter(exported_bundle=bundle)
    consumed = 0
    for run in entry.outcomes:
        for lo, hi in _id_spans(bundle.id_ranges, run.first, run.count):
            rows = outgoing.filter(id__gte=lo, id__lte=hi)
            marks = {"server_outcome": run.outcome, "server_reason": run.reason}
            if run.server_holds:
                consumed += rows.filter(is_consumed_server=False).update(
                    is_consumed_server=True, consumed_datetime=now, **marks
                )
                rows.exclude(server_outcome=run.outcome).update(**marks)
            else:
                rows.filter(is_consumed_server=False).update(**marks)
    return consumed


def _id_spans(ranges: list, first: int, count: int):
    """(lowest id, highest id) of positions first .. first+count-1, given the
    bundle's [first id, count] runs in position order."""
    start = 0
    end = first + count
    for first_id, n in ranges:
        lo, hi = max(first, start), min(end, start + n)
        if lo < hi:
            yield first_id + (lo - start), first_id + (hi - start) - 1
        start += n
        if start >= end:
            return


__all__ = [
    "ReceiptError",
    "ReceiptReport",
    "apply_receipt",
    "bundle_outcomes",
    "ledger_entries",
    "write_receipts",
]
