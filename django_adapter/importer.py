"""import_bundle(): verify -> ledger -> apply in order, one DB transaction per bundle.

Order and chain rules, per sender (its signing key fingerprint):

* bundles apply strictly by ``seq``; records within a bundle by their position;
* ``seq == last applied + 1`` whose ``prev`` is the last applied digest applies now,
  then any waiting successors that continue the chain apply in the same transaction;
* ``seq > last applied + 1``: its transactions are stored ``pending`` and the bundle
  waits (``waiting-for-gap``); the report names the missing seqs;
* a bundle that disagrees with what is already known for its chain position (same
  seq with another digest, a ``prev`` that is not the digest of the bundle before
  it, a seq already passed) is a fork: quarantined, nothing stored or applied.
  The first bundle received for a position wins;
* the same bundle id again is a duplicate: nothing happens.

The sender's ``SenderState`` row is locked (SELECT ... FOR UPDATE) for the whole
transaction, so importers running in parallel on PostgreSQL/MariaDB serialize per
sender and never wait for another sender.  (SQLite serializes all writers.)
A killed process leaves nothing: the transaction never committed, and a rerun
imports the bundle from scratch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from bundlekit.errors import BundleError
from bundlekit.reader import open_bundle
from django_adapter import attachments
from django_adapter.apply import BATCH, Applier, ApplyResult, fewer_collections, store_chunks
from django_adapter.exceptions import SyncError
from django_adapter.models import (
    BundleStatus,
    ImportedBundle,
    IncomingTransaction,
    SenderState,
    TxStatus,
)
from django_adapter.outcomes import OUTCOMES, Counts
from django_adapter.signals import bundle_imported

DUPLICATE = "duplicate"
#: ``progress`` is called at most once per this many records (and once at the end).
PROGRESS_STEP = 1000


@dataclass
class BundleReport(Counts):
    """What importing one bundle file did: the outcome counters of
    ``django_adapter.outcomes`` and the bundle's place in its chain.  ``status`` is
    a BundleStatus value or ``duplicate`` (the bundle id was already received)."""

    bundle_id: str
    site: str
    sender: str
    seq: int
    status: str
    file_name: str
    record_count: int = 0
    missing_seqs: list[int] = field(default_factory=list)
    applied_successors: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    #: SHA-256 hex digests of the files this bundle's chunks completed here.
    files_arrived: list[str] = field(default_factory=list)

    def add(self, result: ApplyResult) -> None:
        self.add_counts(result)
        self.messages.extend(result.messages)

    def to_dict(self) -> dict:
        return {
            "bundle_id": self.bundle_id,
            "site": self.site,
            "sender": self.sender,
            "seq": self.seq,
            "status": self.status,
            "file_name": self.file_name,
            "record_count": self.record_count,
            **self.counts(),
            "missing_seqs": list(self.missing_seqs),
            "applied_successors": list(self.applied_successors),
            "messages": list(self.messages),
            "files_arrived": list(self.files_arrived),
        }


def import_bundle(
    path,
    *,
    identities,
    trusted=None,
    revoked=(),
    using="default",
    progress: Callable[[int], None] | None = None,
) -> BundleReport:
    """Import one bundle file into the ``using`` database; see the module docstring.

    ``progress(n)`` is told how many of the bundle's records were just dealt with
    (applied, or stored to wait for a gap, or found to be duplicates), in steps of
    about ``PROGRESS_STEP``; the counts add up to the manifest's record count.

    Raises bundlekit's ``BundleError`` family for a file that is not acceptable
    (nothing is written then) and ``SyncError`` for records that are not
    django_adapter records.
    """
    tick = _Ticker(progress)
    # One pass over the file: open_bundle authenticates the manifest and checks the
    # payload digest before decrypting, and the records stream from the same read.
    with open_bundle(path, identities=identities, trusted=trusted, revoked=revoked) as opened, \
            fewer_collections():
        return _import(opened, path, using, tick)


def _import(opened, path, using: str, tick: _Ticker) -> BundleReport:
    m = opened.manifest
    report = BundleReport(
        bundle_id=str(m.bundle_id),
        site=m.sender.site,
        sender=m.sender.fingerprint,
        seq=m.seq,
        status="",
        file_name=os.path.basename(os.fspath(path)),
        record_count=m.record_count,
    )
    with transaction.atomic(using=using):
        state = _lock_sender(m.sender.fingerprint, m.sender.site, using)
        known = ImportedBundle.objects.using(using).filter(bundle_id=report.bundle_id).first()
        if known is not None:
            report.status = DUPLICATE
            # Its transactions (the records its kinds count; chunks of files have none).
            report.duplicate = report.record_count = sum(m.kinds.values())
            report.messages.append(f"bundle already received ({known.status}); nothing to do")
            report.missing_seqs = _missing(state, using)
            tick.add(m.record_count, flush=True)
            return report
        digest, prev = opened.digest.hex(), (m.prev.hex() if m.prev else None)
        bundle = ImportedBundle(
            bundle_id=report.bundle_id,
            fingerprint=report.sender,
            site=report.site,
            seq=m.seq,
            digest=digest,
            prev=prev,
            record_count=m.record_count,
            file_name=report.file_name[:255],
            status=BundleStatus.WAITING,
            sealed=m.created,
            schema=None if m.schema is None else {k: list(v) for k, v in m.schema.items()},
        )
        why = _fork_reason(state, bundle, using)
        if why:
            bundle.status = BundleStatus.FORK
            bundle.report = {"messages": [why]}
            bundle.save(using=using)
            report.status = BundleStatus.FORK
            report.messages.append(why)
            report.missing_seqs = _missing(state, using)
            tick.add(m.record_count, flush=True)
            return report
        bundle.save(using=using)
        stored = _Counted(ticker=tick)  # duplicates and conflicts are counted as they are found
        applied = _Counted(ticker=tick)  # each new row as it is applied
        apply_now = m.seq == state.last_seq + 1
        # The next bundle of the chain is applied as it streams in, window by window
        # (memory stays flat whatever its size), each ledger row written once with
        # its outcome; a later one is only stored, pending, to wait for the gap.
        applier = Applier(using, applied)
        chunks = _Chunks(tick)
        # Chunks of files go to the incoming store as they stream by (attachments.py).
        # Read as pairs of a record and its bytes: the ledger keeps the bytes as
        # the bundle carried them, without packing each record again.
        records = attachments.divert(opened, m.sender.fingerprint, path=path,
                                      on_chunk=chunks.append, packed=True, bundle=bundle,
                                      using=using)
        for rows in store_chunks(records, using, bundle=bundle, result=stored,
                                 insert=not apply_now, packed=True):
            if apply_now:
                applier.feed(rows)
            else:
                tick.add(len(rows))  # stored; they wait for the gap to be filled
        if chunks.n:
            # Its transactions are what a receipt's outcomes cover, not its chunks of files.
            bundle.record_count = report.record_count = m.record_count - chunks.n
        report.files_arrived = sorted(records.arrived)
        _count(bundle, stored)
        report.add(stored)
        if apply_now:
            applier.finish()
            _finish(bundle, state, applied, using)
            report.add(applied)
            _apply_successors(state, report, using)
        else:
            bundle.report = {"messages": stored.messages}
            bundle.save(using=using)
        tick.flush()
        report.status = ImportedBundle.objects.using(using).get(pk=bundle.pk).status
        report.missing_seqs = _missing(state, using)
        if report.missing_seqs:
            report.messages.append(
                f"waiting for seq {', '.join(map(str, report.missing_seqs))} from {report.site}"
            )
        transaction.on_commit(
            lambda: bundle_imported.send(sender=ImportedBundle, report=report, using=using),
            using=using,
        )
    return report


class _Chunks:
    """Counts the chunk records of files a bundle carried (each ticks progress)."""

    def __init__(self, ticker: _Ticker):
        self.ticker, self.n = ticker, 0

    def append(self) -> None:
        self.n += 1
        self.ticker.add(1)


class _Ticker:
    """Batches calls to a ``progress(n)`` callback; costs an addition per record."""

    def __init__(self, progress: Callable[[int], None] | None):
        self.progress, self.pending = progress, 0

    def add(self, n: int, *, flush: bool = False) -> None:
        if self.progress is None:
            return
        self.pending += n
        if flush or self.pending >= PROGRESS_STEP:
            self.flush()

    def flush(self) -> None:
        if self.pending and self.progress is not None:
            n, self.pending = self.pending, 0
            self.progress(n)


@dataclass
class _Counted(ApplyResult):
    """An ApplyResult that ticks once for every record it counts: ``store_records``
    counts each duplicate or conflicting record, the ``Applier`` each row it decides."""

    ticker: _Ticker | None = None

    def count(self, status: str, n: int = 1) -> None:
        super().count(status, n)
        if self.ticker is not None:
            self.ticker.add(n)


def _lock_sender(fingerprint: str, site: str, using: str) -> SenderState:
    qs = SenderState.objects.using(using).select_for_update()
    try:
        with transaction.atomic(using=using):
            state, _ = qs.get_or_create(fingerprint=fingerprint, defaults={"site": site})
    except IntegrityError:  # another importer created it first
        state = qs.get(fingerprint=fingerprint)
    return state


def _fork_reason(state: SenderState, bundle: ImportedBundle, using: str) -> str:
    chain = ImportedBundle.objects.using(using).filter(fingerprint=bundle.fingerprint).exclude(
        status__in=[BundleStatus.FORK, BundleStatus.FAILED]
    )
    same = chain.filter(seq=bundle.seq).first()
    if same is not None:
        return f"fork: seq {bundle.seq} was already received with another digest ({same.bundle_id})"
    if bundle.seq <= state.last_seq:
        return f"fork: seq {bundle.seq} is already passed (applied through {state.last_seq})"
    if bundle.seq == state.last_seq + 1 and bundle.prev != state.last_digest:
        return f"fork: seq {bundle.seq} does not follow the last applied bundle (prev differs)"
    # A bundle that continues a quarantined one descends from the fork: quarantined
    # too (else it would wait for a gap that is never filled, and the first bundle
    # received for a position wins: it would refuse the chain's real next bundle).
    forked = ImportedBundle.objects.using(using).filter(
        fingerprint=bundle.fingerprint, status=BundleStatus.FORK, seq=bundle.seq - 1,
        digest=bundle.prev).first()
    if forked is not None:
        return f"fork: seq {bundle.seq} follows the quarantined seq {bundle.seq - 1}"
    before = chain.filter(seq=bundle.seq - 1).first()
    if before is not None and before.digest != bundle.prev:
        return f"fork: seq {bundle.seq} does not follow the received seq {bundle.seq - 1}"
    after = chain.filter(seq=bundle.seq + 1).first()
    if after is not None and after.prev != bundle.digest:
        return f"fork: the received seq {bundle.seq + 1} does not follow this bundle"
    return ""


def _count(bundle: ImportedBundle, result: ApplyResult) -> None:
    for name in OUTCOMES:  # ImportedBundle keeps one <outcome>_count column per outcome
        setattr(bundle, f"{name}_count", getattr(bundle, f"{name}_count") + getattr(result, name))


def _finish(bundle: ImportedBundle, state: SenderState, applied: ApplyResult, using: str) -> None:
    _count(bundle, applied)
    bundle.status = BundleStatus.APPLIED
    bundle.applied_datetime = timezone.now()
    messages = list(bundle.report.get("messages", [])) + applied.messages
    bundle.report = {"messages": messages}
    bundle.save(using=using)
    state.last_seq = bundle.seq
    state.last_digest = bundle.digest
    state.save(using=using)


def _apply_successors(state: SenderState, report: BundleReport, using: str) -> None:
    """Apply waiting bundles that now continue the chain (a filled gap)."""
    while True:
        nxt = (
            ImportedBundle.objects.using(using)
            .filter(fingerprint=state.fingerprint, seq=state.last_seq + 1, status=BundleStatus.WAITING)
            .first()
        )
        if nxt is None:
            return
        if nxt.prev != state.last_digest:
            nxt.status = BundleStatus.FORK
            nxt.save(using=using)
            report.messages.append(f"fork: waiting seq {nxt.seq} does not follow seq {state.last_seq}")
            return
        applied = ApplyResult()
        applier = Applier(using, applied)
        for rows in _pending_rows(nxt, using):
            applier.feed(rows)
        applier.finish()
        _finish(nxt, state, applied, using)
        report.applied_successors.append(nxt.seq)
        report.add(applied)


def _pending_rows(bundle: ImportedBundle, using: str):
    """The bundle's pending ledger rows in order, a batch at a time."""
    last = -1
    while True:
        rows = list(
            IncomingTransaction.objects.using(using)
            .filter(bundle=bundle, status=TxStatus.PENDING, position__gt=last)
            .order_by("position")[:BATCH]
        )
        if not rows:
            return
        yield rows
        last = rows[-1].position


def _missing(state: SenderState, using: str) -> list[int]:
    received = set(
        ImportedBundle.objects.using(using)
        .filter(fingerprint=state.fingerprint, seq__gt=state.last_seq)
        .exclude(status__in=[BundleStatus.FORK, BundleStatus.FAILED])
        .values_list("seq", flat=True)
    )
    if not received:
        return []
    return [s for s in range(state.last_seq + 1, max(received)) if s not in received]


__all__ = ["BundleReport", "import_bundle", "BundleError", "SyncError"]
