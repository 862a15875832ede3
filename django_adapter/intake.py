"""One way in for a bundle file, whatever carried it: :func:`take_in`.

A bundle reaches the server by four routes.  Each is a thin face over the same
call, so a bundle is verified, deduplicated, applied, forwarded and
acknowledged the same way whichever route it took, and the ledger records the
route it first arrived by (``ImportedBundle.route``):

==========  =============================================  ===============================
route       face                                           the file afterwards
==========  =============================================  ===============================
``inbox``   ``bundle watch`` (:class:`~django_adapter.     the watcher moves it to
            workflow.WatchedInbox`)                        ``done/`` or ``rejected/``
``import``  ``bundle import FILE`` (:func:`~django_adapter.  left where it is (a stick)
            workflow.import_paths`)
``rest``    ``PUT uploads/<sha256>`` (``bundle push``)      *staged*: kept in
                                                           ``INBOX/done/``, quarantined in
                                                           ``INBOX/rejected/``, or deleted
``upload``  the dashboard's upload page                    *staged*, as ``rest``
==========  =============================================  ===============================

What a route may differ in is only what happens around the import: whether the
file is staged (a copy this call owns) and whether the sender's receipt is
written at once (REST and upload: the sender may be waiting for it) or after a
batch (the watcher's pass, an ``import`` run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from django.db import DatabaseError

from bundlekit.errors import BundleError
from bundlekit.inbox import InboxFolder
from bundlekit.manifest import Manifest
from django_adapter.conf import Config, ConfigError
from django_adapter.importer import DUPLICATE
from django_adapter.models import BundleRoute, BundleStatus, ImportedBundle

log = logging.getLogger(__name__)

#: The routes a bundle can take into the server (``ImportedBundle.route``).
ROUTES = tuple(BundleRoute.values)

#: Import statuses after which this server holds the bundle: it is forwarded
#: (FORWARD), kept, and listed as held in the sender's receipt.
HELD = (BundleStatus.APPLIED.value, BundleStatus.WAITING.value, DUPLICATE)


def take_in(
    path: str | os.PathLike[str],
    *,
    route: str,
    config: Config | None = None,
    forward_dir: str | os.PathLike[str] | None = None,
    staged: bool = False,
    receipt: bool = False,
    progress: Callable[[int], None] | None = None,
):
    """Import one bundle file that arrived by ``route``; return its ``FileReport``.

    Every route calls this, so the rules are the same whatever carried the file:
    verify against TRUSTED/REVOKED, dedupe by bundle id, apply in chain order (a
    later seq waits for its gap), quarantine a fork; then forward a held bundle
    to ``forward_dir`` (default: FORWARD) byte for byte.

    ``route`` is one of :data:`ROUTES`; it is recorded on the bundle's ledger row
    when the bundle is new here (a second copy by another route is a
    ``duplicate`` and leaves the first route in place) and returned in
    ``report.route``.

    ``staged=True`` says the file is a copy this call owns (an upload): afterwards
    it is in ``INBOX/done/`` (taken in), in ``INBOX/rejected/`` with
    ``.reason.txt``/``.reason.json`` beside it (a quarantined fork), or deleted (a
    duplicate: the server holds a copy; or refused: the sender still has it).
    ``report.kept`` says where it is.  Without ``staged`` the file is never
    moved or deleted.

    ``receipt=True`` writes the sender's receipt to RECEIPTS_OUT at once (names
    in ``report.receipts_written``); otherwise the caller writes receipts for a
    batch of senders, as the watcher does after each pass.

    ``config`` defaults to ``django_adapter.conf.get_config()``.

    Raises, and this is the whole contract a face needs:

    * :class:`~django_adapter.conf.ConfigError`: the server's settings are wrong
      (a key file missing, REVOKED naming a missing file).  Not the file's fault:
      it is left untouched, even when staged; stop and tell the operator.
    * another :class:`~bundlekit.errors.BundleError`: the file is refused
      (``exc.code``/``exc.reason``, the path attached); nothing was written.
      Records that cannot be read as sync transactions are refused as
      ``NotSyncRecords``, never an internal error.
    * ``DatabaseError`` or ``OSError``: the file is fine, this server is not
      (database down, disk full).  Nothing was applied; try again later.
    """
    from django_adapter.workflow import NotSyncRecords, import_one

    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, not {route!r}")
    if config is None:
        from django_adapter.conf import get_config

        config = get_config()
    path = Path(path)
    forward_dir = forward_dir or config.forward
    try:
        report = import_one(path, config=config, progress=progress)
    except ConfigError:
        raise
    except BundleError as exc:
        exc.with_path(path)
        _drop(path, staged)
        raise
    except (DatabaseError, OSError):
        raise
    except Exception as exc:  # a signed bundle whose records break the importer
        log.exception("importing %s failed on its records; refusing the bundle", path)
        _drop(path, staged)
        raise NotSyncRecords(
            f"its records cannot be read as sync transactions ({type(exc).__name__}: {exc}); "
            "nothing in it was applied",
            path=path,
        ) from None
    report.route = route
    if report.files_arrived:
        _retry_waiting_for_files(report, path, config)
    if report.status != DUPLICATE and report.bundle_id:
        ImportedBundle.objects.using(config.database).filter(
            bundle_id=report.bundle_id, route=""
        ).update(route=route)
    if forward_dir and report.status in HELD:
        _forward(path, forward_dir, report)
    if staged:
        _settle(path, config, report)
    if receipt and config.receipts_out and report.sender:
        from django_adapter.receipts import write_receipts

        try:
            report.receipts_written = [
                str(p) for p in write_receipts([report.sender], config=config)
            ]
        except (BundleError, OSError):
            # The next import (or watcher pass) writes it: receipts list the whole ledger.
            log.exception("cannot write a receipt for %s now", report.sender)
    return report


def ledger_verdict(manifest: Manifest, digest: bytes, config: Config) -> tuple[str, str]:
    """What the ledger already says about a verified bundle, before it is queued.

    ``("held", why)`` when this bundle id is known (a copy came by another route),
    ``("fork", why)`` when it contradicts a bundle held for the same sender and
    seq (another digest), ``("new", "")`` otherwise.  The importer applies the
    full chain rules when the file is taken in; this lets a route that only
    queues the file (REST with ``IMPORT_ON_UPLOAD`` off) answer at once.
    """
    known = ImportedBundle.objects.using(config.database)
    same = known.filter(bundle_id=str(manifest.bundle_id)).first()
    if same is not None and same.status == BundleStatus.FORK:
        return "fork", f"fork: seq {manifest.seq} of {manifest.sender.site} was quarantined before"
    if same is not None:
        return "held", f"bundle already received ({same.status})"
    rival = (
        known.filter(fingerprint=manifest.sender.fingerprint, seq=manifest.seq)
        .exclude(status__in=[BundleStatus.FORK, BundleStatus.FAILED])
        .exclude(bundle_id=str(manifest.bundle_id))
        .first()
    )
    if rival is not None:
        return "fork", (
            f"fork: seq {manifest.seq} of {manifest.sender.site} was already received "
            f"with another digest ({rival.bundle_id})"
        )
    return "new", ""


def _retry_waiting_for_files(report, path: Path, config: Config) -> None:
    """Failed transactions of this sender that named a file this bundle completed
    (a site sending again what a receipt said the server needs) are retried at
    once, each recorded as a retry decision by ``bundlekit``, so the receipt
    written next already says what became of them."""
    from django_adapter import attachments, review

    using = config.database
    tx_ids = attachments.waiting_for(report.sender, report.files_arrived, using)
    if not tx_ids:
        return
    try:
        result = review.retry(tx_ids, using=using, who="bundlekit", sender=report.sender,
                              note=f"the file(s) it needs arrived in {path.name}")
    except BundleError:
        log.exception("retrying the transactions waiting for the files of %s", path.name)
        return
    report.retried = result.counts()
    report.messages.append(
        f"retried {len(tx_ids)} failed transaction(s) whose files arrived: applied "
        f"{result.applied}, failed {result.failed}")


def _forward(path: Path, forward_dir, report) -> None:
    from django_adapter.workflow import forward_copy

    try:
        report.forwarded = forward_copy(path, forward_dir)
    except (BundleError, OSError) as exc:
        # Taken in all the same: the forward is retried by importing the file again.
        log.exception("cannot forward %s to %s", path.name, forward_dir)
        report.code, report.reason = "not-forwarded", f"not forwarded: {exc}"


def _settle(path: Path, config: Config, report) -> None:
    """Where a staged file goes after its import (see :func:`take_in`)."""
    from django_adapter.workflow import QuarantinedFork

    inbox = InboxFolder(config.inbox)
    if report.status == DUPLICATE:
        path.unlink(missing_ok=True)
        report.kept = ""
    elif report.status == BundleStatus.FORK:
        why = QuarantinedFork("; ".join(report.messages) or "fork of the sender's chain")
        report.kept = str(inbox.reject(path, why))
    else:
        report.kept = str(inbox.hold(path))


def _drop(path: Path, staged: bool) -> None:
    if staged:
        path.unlink(missing_ok=True)


__all__ = ["HELD", "ROUTES", "ledger_verdict", "take_in"]
