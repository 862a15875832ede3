"""The field workflow as library calls: export to a stick, import at the server
(by hand or from the watched inbox), receipts back, prune.

The commands (``bundle export`` ... and ``manage.py bundle ...``) are thin layers
over these functions, and tests call them directly.  Nothing here prints; each
function returns a report the CLI turns into lines, a table or JSON.

Safety rules that shape the code:

* A site seals into its own OUTBOX first and only then copies to the stick, so
  what the database records (exported, seq) never depends on a stick that may be
  full, read-only or pulled out.  Nothing records what is on which stick: every
  export copies whatever is still unacknowledged and not yet on the target, so a
  lost or broken stick is replaced by exporting again (``resend``).
* One bad file never stops the others; each gets its own report line.
* Only a verified receipt from a trusted issuer marks anything delivered, and only
  delivered transactions are ever pruned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import DatabaseError, transaction

from bundlekit.errors import BundleError, NotSyncRecords, QuarantinedFork, WriteFailed
from bundlekit.forward import copy_atomic, need_folder, same_file
from bundlekit.inbox import Inbox, Outcome, is_candidate_name
from bundlekit.naming import is_bundle_name
from bundlekit.reader import read_manifest
from bundlekit.receipt import in_created_order, is_receipt_name
from django_adapter import attachments
from django_adapter.conf import Config, ConfigError
from django_adapter.exceptions import SyncError
from django_adapter.exporter import export_pending
from django_adapter.importer import BundleReport, import_bundle
from django_adapter.models import (
    BundleStatus,
    ConflictingTransaction,
    ExportedBundle,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
    TxStatus,
)
from django_adapter.outcomes import Counts
from django_adapter.receipts import ReceiptReport, apply_receipt, write_receipts

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ export


@dataclass
class ExportReport:
    """``sealed``: new bundles this run; ``copied``: files written to the target;
    ``present``: unacknowledged bundles already there; ``missing``: unacknowledged
    bundles whose outbox copy is gone (they cannot be resent from here)."""

    out_dir: str
    sealed: list[dict] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unacknowledged: int = 0
    #: Files a server needs sent again that this site no longer has (name, digest).
    files_unavailable: list[dict] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.sealed and not self.copied

    def to_dict(self) -> dict:
        return {**self.__dict__, "nothing_to_do": self.nothing_to_do}


def export_to(
    out_dir,
    *,
    config: Config,
    resend: bool = False,
    on_copied: Callable[[ExportedBundle], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Seal pending transactions into OUTBOX (next seq, roll-over), then copy every
    unacknowledged bundle that is not yet in ``out_dir`` there, atomically.

    ``resend`` also rewrites same-named files in ``out_dir`` whose bytes differ
    from the outbox copy (a damaged stick).  A target that refuses (full,
    read-only, removed) raises :class:`WriteFailed` with ``report`` attached; the
    bundles stay sealed in the outbox and go out with the next export.
    ``progress(n)``: records sealed, as in :func:`export_pending`.
    """
    if Path(out_dir).resolve() == config.outbox.resolve():
        # Sealing into the outbox itself (e.g. before a REST push): nothing to copy,
        # and the outbox is ours to create.
        config.outbox.mkdir(parents=True, exist_ok=True)
    target = need_folder(out_dir)
    identity, recipients = config.identity, config.need_recipients()
    report = ExportReport(out_dir=str(target))
    made = export_pending(
        config.outbox,
        identity=identity,
        recipients=list(recipients),
        using=config.database,
        max_bytes=config.max_bytes,
        progress=progress,
    )
    report.sealed = [
        {"seq": b.seq, "file": b.file_name, "records": b.record_count} for b in made
    ]
    report.files_unavailable = attachments.still_needed(config.database)
    waiting = ExportedBundle.objects.using(config.database).filter(
        fingerprint=identity.fingerprint, acknowledged=False
    )
    for bundle in waiting.order_by("seq"):
        report.unacknowledged += 1
        src = config.outbox / bundle.file_name
        dst = target / bundle.file_name
        if not src.is_file():
            report.missing.append(bundle.file_name)
            continue
        try:
            if dst.exists() and (not resend or same_file(src, dst)):
                report.present.append(bundle.file_name)
                continue
            copy_atomic(src, target, replace=resend)
        except WriteFailed as exc:
            exc.report = report  # type: ignore[attr-defined]
            raise
        report.copied.append(bundle.file_name)
        if on_copied is not None:
            on_copied(bundle)
    return report


# ------------------------------------------------------------------------ import


@dataclass
class FileReport(Counts):
    """One file given to ``bundle import`` (a bundle or a receipt); its outcome
    counters are those of ``django_adapter.outcomes``.

    Bundle ``status``: ``applied``, ``waiting-for-gap``, ``quarantined-fork``,
    ``duplicate`` (from the importer), or ``rejected`` (the file was refused;
    ``code``/``reason`` say why) / ``failed`` (the database refused).  Receipt
    ``status``: ``accepted`` or ``rejected``.
    """

    file: str
    kind: str
    status: str
    site: str = ""
    sender: str = ""
    seq: int | None = None
    records: int = 0
    missing_seqs: list[int] = field(default_factory=list)
    code: str = ""
    reason: str = ""
    messages: list[str] = field(default_factory=list)
    forwarded: str = ""
    receipt: dict | None = None
    bundle_id: str = ""
    #: How the file arrived (``django_adapter.intake.ROUTES``); where a staged
    #: file was kept; receipts written for this file alone (REST, upload).
    route: str = ""
    kept: str = ""
    receipts_written: list[str] = field(default_factory=list)
    #: One line per transaction the server did not apply (the first few, then a
    #: count) or, for a receipt, per run of transactions the site keeps.
    details: list[str] = field(default_factory=list)
    #: Files (SHA-256 hex) this bundle completed at the server, and the failed
    #: transactions that waited for them and were applied again (``retried``).
    files_arrived: list[str] = field(default_factory=list)
    retried: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether this file needs no one's attention (drives the exit code)."""
        return (
            self.status not in ("rejected", "failed", BundleStatus.FORK)
            and not self.failed
            and not self.code
        )

    def to_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


@dataclass
class ImportRun:
    files: list[FileReport] = field(default_factory=list)
    receipts_written: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "files": [f.to_dict() for f in self.files],
            "receipts_written": list(self.receipts_written),
        }


def from_bundle_report(path, r: BundleReport) -> FileReport:
    return FileReport(
        file=os.fspath(path),
        kind="bundle",
        status=r.status,
        site=r.site,
        sender=r.sender,
        seq=r.seq,
        records=r.record_count,
        **r.counts(),
        missing_seqs=list(r.missing_seqs),
        messages=list(r.messages),
        bundle_id=r.bundle_id,
        files_arrived=list(r.files_arrived),
    )


#: Transactions described one by one in an import report (the count is always given).
MAX_DETAILS = 5


def not_applied_details(report: BundleReport, using: str) -> list[str]:
    """``outcome model key (tx id): reason`` for the first MAX_DETAILS transactions of
    this bundle (and of the waiting ones it let through) that were not applied, then
    how many more: the reasons the counts alone do not give."""
    from django_adapter.review import STALE_REASON

    if not (report.failed or report.stale or report.conflict):
        return []
    bundles = ImportedBundle.objects.using(using).filter(
        fingerprint=report.sender, seq__in=[report.seq, *report.applied_successors]
    )
    rows = (
        IncomingTransaction.objects.using(using)
        .filter(bundle__in=bundles, status__in=[TxStatus.FAILED, TxStatus.STALE])
        .order_by("bundle__seq", "position")
    )
    conflicts = ConflictingTransaction.objects.using(using).filter(bundle__in=bundles)
    total = rows.count() + conflicts.count()
    lines = []
    for row in rows[:MAX_DETAILS]:
        outcome = "failed" if row.status == TxStatus.FAILED else "stale"
        lines.append(f"  {outcome:<8} {row.tx_name} {row.tx_pk} (tx {row.tx_id}): "
                     f"{row.reason or STALE_REASON}")
    for c in conflicts.order_by("id")[: max(MAX_DETAILS - len(lines), 0)]:
        lines.append(f"  conflict {c.tx_name} (tx {c.tx_id}): this id was already received "
                     "with other content; kept aside")
    if total > len(lines):
        lines.append(f"  ... and {total - len(lines)} more (bundle review)")
    return lines


def import_one(
    path, *, config: Config, progress: Callable[[int], None] | None = None
) -> FileReport:
    """Import one bundle; raise the BundleError family for a file to refuse.

    A valid bundle whose records are not ours raises :class:`NotSyncRecords`;
    database errors propagate (retry later: the data is fine).  ``progress(n)``:
    records dealt with, as in :func:`~django_adapter.importer.import_bundle`.
    """
    try:
        report = import_bundle(
            path,
            identities=[config.identity],
            trusted=list(config.need_trusted()),
            revoked=list(config.revoked_keys),
            using=config.database,
            progress=progress,
        )
    except ConfigError:
        raise  # about the settings, not this file: no file name on it
    except SyncError as exc:
        raise NotSyncRecords(f"its records are not sync transactions ({exc})", path=path) from None
    except BundleError as exc:
        exc.with_path(path)
        raise
    file_report = from_bundle_report(path, report)
    file_report.details = not_applied_details(report, config.database)
    return file_report


def forward_copy(path, forward_dir) -> str:
    """Copy an accepted bundle's original bytes on (hub -> central, middleman -> server)."""
    path, target = Path(path), need_folder(forward_dir)
    dst = target / path.name
    if dst.exists() and same_file(path, dst):
        return str(dst)
    return str(copy_atomic(path, target, replace=True))


def split_files(paths: Iterable) -> tuple[list[Path], list[Path]]:
    """(bundles, receipts): files as given, folders expanded to what they hold."""
    bundles: list[Path] = []
    receipts: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if not child.is_file():
                    continue
                if is_receipt_name(child.name):
                    receipts.append(child)
                elif is_bundle_name(child.name) or is_candidate_name(child.name):
                    bundles.append(child)
        elif p.name.lower().endswith(".receipt"):
            receipts.append(p)
        else:
            bundles.append(p)
    return bundles, receipts


def import_paths(
    paths: Iterable,
    *,
    config: Config,
    forward_dir=None,
    receipts: bool = True,
    on_file: Callable[[FileReport], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportRun:
    """Import bundles and apply receipts from files and folders; see the module doc.

    Every file gets a :class:`FileReport`; nothing one file does stops the
    others.  Afterwards, when ``receipts`` and RECEIPTS_OUT is set, one signed
    receipt per sender touched is written there.  ``forward_dir`` (default
    FORWARD) receives byte-identical copies of accepted bundles.  ``progress(n)``
    is told the records of the bundles as they are dealt with (see
    :func:`records_to_import` for the total).
    """
    run = ImportRun()
    bundle_paths, receipt_paths = split_files(paths)
    forward_dir = forward_dir or config.forward
    touched: set[str] = set()
    for path in bundle_paths:
        report = _import_reporting(path, config, forward_dir, progress)
        if report.sender and report.status != "rejected":
            touched.add(report.sender)
        run.files.append(report)
        if on_file is not None:
            on_file(report)
    for path in in_created_order(receipt_paths):
        report = import_receipt(path, config=config)
        run.files.append(report)
        if on_file is not None:
            on_file(report)
    if receipts and touched and config.receipts_out:
        run.receipts_written = [str(p) for p in write_receipts(touched, config=config)]
    return run


def records_to_import(paths: Iterable, *, config: Config) -> int:
    """The records :func:`import_paths` would deal with: the manifests' record
    counts of the bundles among ``paths``, less this machine's own (read from the
    unauthenticated manifests, so only good for a progress bar's total)."""
    try:
        own = config.identity.fingerprint
    except BundleError:  # import_paths reports that, file by file
        own = None
    total = 0
    for path in split_files(paths)[0]:
        try:
            manifest = read_manifest(path)
        except (BundleError, OSError):
            continue
        if manifest.sender.fingerprint != own:
            total += manifest.record_count
    return total


def _import_reporting(
    path: Path, config: Config, forward_dir=None, progress: Callable[[int], None] | None = None
) -> FileReport:
    """The ``import`` face of :func:`django_adapter.intake.take_in`: a refused file
    is a report line, a wrong configuration stops the whole run."""
    from django_adapter.intake import take_in

    if _sealed_here(path, config):
        # The stick comes back with our own bundles beside the receipts: not an error.
        return FileReport(os.fspath(path), "bundle", "own", site=config.site,
                          reason="sealed by this machine; skipped")
    try:
        return take_in(path, route="import", config=config, forward_dir=forward_dir,
                       progress=progress)
    except ConfigError:
        raise
    except BundleError as exc:
        exc.with_path(path)
        return FileReport(os.fspath(path), "bundle", "rejected", code=exc.code, reason=exc.reason)
    except DatabaseError as exc:
        # The file is fine; the database is not.  Say so, and go on with the others.
        return FileReport(
            os.fspath(path), "bundle", "failed", code="database", reason=f"database error: {exc}"
        )


def _sealed_here(path: Path, config: Config) -> bool:
    """Whether the (unauthenticated) manifest names our own key: only used to skip."""
    try:
        manifest = read_manifest(path)
    except BundleError:
        return False
    return manifest.sender.fingerprint == config.identity.fingerprint


def import_receipt(path, *, config: Config) -> FileReport:
    """Apply one receipt; a refused receipt is a ``rejected`` report, never raised."""
    try:
        r: ReceiptReport = apply_receipt(path, config=config)
    except BundleError as exc:
        exc.with_path(path)
        return FileReport(os.fspath(path), "receipt", "rejected", code=exc.code, reason=exc.reason)
    report = FileReport(os.fspath(path), "receipt", "accepted", site=r.issuer, receipt=r.to_dict())
    for note in r.rejected:
        report.messages.append(f"server refused seq {note['seq']}: {note['reason']}")
    for note in r.quarantined:
        report.messages.append(f"server quarantined seq {note['seq']}: {note['reason']}")
    if r.mismatched:
        report.messages.append(
            f"{r.mismatched} bundles have our id but another digest: not acknowledged"
        )
    if r.kept:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.kept_outcomes.items()))
        report.messages.append(
            f"{r.kept} transaction(s) kept here, the server does not hold them ({counts}); "
            "see bundle status"
        )
    if r.overruled:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.overruled.items()))
        report.messages.append(f"not applied as entered, but held by the server: {counts}")
    if r.files_needed:
        report.messages.append(
            f"the server needs {r.files_needed} file(s) sent again (missing or damaged there); "
            "the next export carries them")
    if r.kept or r.overruled:
        for note in r.notes[:MAX_DETAILS]:
            first, count = note["first"], note["count"]
            where = f"record {first + 1}" if count == 1 else f"records {first + 1}-{first + count}"
            report.details.append(
                f"  {note['outcome']:<8} seq {note['seq']} {where}: {note['reason'] or '-'}"
            )
    return report


def import_receipts(paths: Iterable, *, config: Config, on_file=None) -> ImportRun:
    """``bundle receipt``: every file is treated as a receipt, whatever its name.

    They are read in the order they were signed (``bundlekit.receipt.in_created_order``),
    whatever their names and however many folders hold them: a receipt's report
    says what it changed, which depends on the ones read before it."""
    run = ImportRun()
    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files.extend(c for c in p.iterdir() if is_receipt_name(c.name))
        else:
            files.append(p)
    for f in in_created_order(files):
        report = import_receipt(f, config=config)
        run.files.append(report)
        if on_file is not None:
            on_file(report)
    return run


# ------------------------------------------------------------------------- watch


class WatchedInbox(Inbox):
    """The server's inbox: each complete bundle is imported once; after each pass,
    receipts for the senders touched are written to RECEIPTS_OUT.

    Several processes may watch one folder against one database: the inbox's
    rename claim gives each file to one process, and the importer's per-sender
    lock plus the unique bundle id make a second copy of a bundle (another file
    name, another route) a ``duplicate``.
    """

    def __init__(self, path=None, *, config: Config, forward_dir=None, **kwargs):
        self.config = config
        self.forward_dir = forward_dir or config.forward
        self.touched: set[str] = set()
        self.receipts_written: list[Path] = []
        #: Called for each outcome of a pass, then with the receipts written after
        #: it, so a log reads in the order things happened (the CLI prints both).
        self.on_outcome: Callable[[Outcome], None] | None = None
        self.on_receipts: Callable[[list[Path]], None] | None = None
        kwargs.setdefault("fatal", (ConfigError,))
        super().__init__(path or config.inbox, self.handle, **kwargs)

    def handle(self, path: Path) -> FileReport:
        """The ``inbox`` face of :func:`django_adapter.intake.take_in`.

        A refused file raises (the inbox moves it to ``rejected/`` with the
        reason); a wrong configuration raises :class:`ConfigError`, which puts
        the file back and stops the watcher.
        """
        from django_adapter.intake import take_in

        report = take_in(path, route="inbox", config=self.config, forward_dir=self.forward_dir)
        self.touched.add(report.sender)
        if report.status == BundleStatus.FORK:
            raise QuarantinedFork("; ".join(report.messages) or "fork of the sender's chain", path)
        return report

    def scan_once(self) -> list[Outcome]:
        outcomes = super().scan_once()
        if self.on_outcome is not None:
            for outcome in outcomes:
                self.on_outcome(outcome)
        self.receipts_written = []
        if self.touched and self.config.receipts_out:
            try:
                self.receipts_written = write_receipts(self.touched, config=self.config)
                self.touched.clear()
                if self.on_receipts is not None:
                    self.on_receipts(self.receipts_written)
            except ConfigError:
                raise
            except (BundleError, OSError):
                log.exception("cannot write receipts; will try again after the next pass")
        return outcomes


# ------------------------------------------------------------------------- prune


@dataclass
class PruneReport:
    transactions: int = 0
    files: list[str] = field(default_factory=list)
    kept: int = 0  # transactions a receipt named that the server does not hold
    attachments: list[str] = field(default_factory=list)  # local copies of files the server holds

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def prune(*, config: Config) -> PruneReport:
    """Delete outgoing transactions the server holds (``is_consumed_server``: a
    receipt said applied, duplicate, superseded or discarded) and the outbox files
    of acknowledged bundles (the server has their bytes; resending cannot help).
    Nothing unacknowledged, ever, and nothing the server failed to apply, kept
    aside as a conflict, or still holds waiting: those stay, with their reason."""
    using = config.database
    report = PruneReport()
    with transaction.atomic(using=using):
        done = OutgoingTransaction.objects.using(using).filter(is_consumed_server=True)
        # Counted by model: their links to files (attachments) go with them.
        report.transactions = done.delete()[1].get(OutgoingTransaction._meta.label, 0)
        report.kept = (
            OutgoingTransaction.objects.using(using)
            .filter(exported=True, is_consumed_server=False)
            .exclude(server_outcome="")
            .count()
        )
        names = list(
            ExportedBundle.objects.using(using)
            .filter(acknowledged=True)
            .values_list("file_name", flat=True)
        )
    # Copies of files (attachments.py): only those every carrying bundle had acknowledged.
    report.attachments = attachments.prune_copies(using)
    for name in names:
        path = config.outbox / name
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        report.files.append(str(path))
    return report


__all__ = [
    "ExportReport",
    "FileReport",
    "ImportRun",
    "PruneReport",
    "WatchedInbox",
    "export_to",
    "import_one",
    "import_paths",
    "import_receipt",
    "import_receipts",
    "prune",
    "records_to_import",
]
