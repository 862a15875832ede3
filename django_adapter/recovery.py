"""``bundle recover``: bring a site whose chain went back in line with the server.

A laptop restored from a backup (or replaced, with the old key) believes it is
at the seq its backup recorded.  The server may already hold later bundles of
that key, sealed before the disk died; the next bundle the laptop seals would
reuse one of their seqs, and the server would quarantine it as a fork.

:func:`recover` learns what the server holds from the newest receipts it is
given (a stick folder, or a folder ``bundle pull`` wrote), then:

1. applies those receipts as ``bundle receipt`` does (bundles the server holds
   are acknowledged, so they are never sealed again);
2. finds this site's bundles that the server does not hold *at their seq*: the
   server holds another bundle there, or refused ours as a fork.  From the first
   of them on, this site's bundles descend from a fork: each one is undone (its
   transactions are pending again, in their capture order, with their own
   transaction ids; its outbox file moves to ``OUTBOX/forked/``);
3. moves the chain to the last bundle the server holds (or this site's last
   good one, if that is later), so the next export continues after it.

Nothing is applied twice: re-sealed transactions keep their ids, and the server
stores a transaction id once (a copy it already holds is a ``duplicate``).
Running it on a site that did not go back changes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from bundlekit.errors import NoReceipt, ReceiptError, ReceiptNotForUs
from bundlekit.receipt import is_receipt_name, read_receipt
from django_adapter.conf import Config
from django_adapter.models import ExportChainState, ExportedBundle, OutgoingTransaction
from django_adapter.receipts import apply_receipt

log = logging.getLogger(__name__)

#: Sub-folder of the outbox where the files of undone (forked) bundles are kept.
FORKED = "forked"


@dataclass
class RecoveryReport:
    """What :func:`recover` found and did.  ``server_seq``: the last seq of this
    site's chain the server holds; ``chain_before``/``chain_after``: this site's
    last seq before and after; ``forked``: this site's bundles undone (seq, file,
    records); ``requeued``: their transactions, pending again."""

    receipts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    server_seq: int = 0
    chain_before: int = 0
    chain_after: int = 0
    acknowledged: int = 0
    forked: list[dict] = field(default_factory=list)
    requeued: int = 0
    moved: list[str] = field(default_factory=list)
    pending: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.forked) or self.chain_after != self.chain_before

    def to_dict(self) -> dict:
        return {**self.__dict__, "changed": self.changed}


def receipt_files(sources: Iterable) -> list[Path]:
    """Receipt files among ``sources`` (files, and the receipts inside folders)."""
    found: list[Path] = []
    for p in map(Path, sources):
        if p.is_dir():
            found.extend(sorted(c for c in p.iterdir() if c.is_file() and is_receipt_name(c.name)))
        else:
            found.append(p)
    return found


def recover(sources: Iterable, *, config: Config) -> RecoveryReport:
    """See the module docstring.  Raises :class:`NoReceipt` when ``sources`` hold
    no valid receipt for this site (nothing is changed then)."""
    identity = config.identity
    issuers = config.trusted_issuers()
    report = RecoveryReport()
    receipts = []
    for path in receipt_files(sources):
        try:
            receipts.append(read_receipt(path, trusted_issuers=issuers, me=identity))
        except ReceiptNotForUs:
            continue  # another laptop's receipt on the same stick
        except ReceiptError as exc:
            report.skipped.append(f"{path}: {exc.reason}")
    if not receipts:
        where = ", ".join(map(str, sources)) or "nothing"
        raise NoReceipt(
            f"no receipt for this site ({identity.public.site}) in {where}: import this site's "
            "bundles at the server, then bring its newest receipt (or `bundle pull` it)"
        )
    receipts.sort(key=lambda r: r.created)
    for r in receipts:
        report.receipts.append(str(r.path))
        report.acknowledged += apply_receipt(r.path, config=config).acknowledged

    # The server's view of this key's chain: per seq, the bundle it holds there
    # (newer receipts win), and the bundles it refused as forks.
    held: dict[int, tuple[str, str]] = {}
    refused: set[str] = set()
    for r in receipts:
        for e in r.entries:
            if e.held:
                held[e.seq] = (str(e.bundle_id), e.digest.hex())
            elif "fork" in e.reason:
                refused.add(str(e.bundle_id))
    report.server_seq = max(held, default=0)

    using = config.database
    with transaction.atomic(using=using):
        state, _ = (
            ExportChainState.objects.using(using)
            .select_for_update()
            .get_or_create(fingerprint=identity.fingerprint, defaults={"site": identity.public.site})
        )
        report.chain_before = state.last_seq
        ours = list(
            ExportedBundle.objects.using(using)
            .select_for_update()
            .filter(fingerprint=identity.fingerprint)
            .order_by("seq")
        )
        # The first of our bundles the server contradicts: it holds another bundle
        # at that seq, or refused ours as a fork.  Every later one descends from it.
        first_fork = next(
            (b.seq for b in ours
             if (b.seq in held and held[b.seq] != (b.bundle_id, b.digest))
             or (b.seq not in held and b.bundle_id in refused)),
            None,
        )
        forked = [b for b in ours if first_fork is not None and b.seq >= first_fork]
        kept = [b for b in ours if first_fork is None or b.seq < first_fork]
        # A bundle of ours the server holds beyond the fork (one waiting for a gap)
        # is not part of the chain to continue.
        undone = {b.bundle_id for b in forked}
        report.server_seq = max((seq for seq, (bid, _) in held.items() if bid not in undone),
                                default=0)
        if not forked and state.last_seq >= report.server_seq:
            report.chain_after = state.last_seq
            report.pending = _pending(using)
            return report  # in line with the server: nothing to do
        for b in forked:
            report.forked.append({"seq": b.seq, "file": b.file_name, "records": b.record_count})
            report.requeued += (
                OutgoingTransaction.objects.using(using)
                .filter(exported_bundle=b)
                .update(exported=False, exported_bundle=None, is_consumed_server=False,
                        consumed_datetime=None, server_outcome="", server_reason="")
            )
            b.delete(using=using)
        last_kept = kept[-1] if kept else None
        if last_kept is not None and last_kept.seq >= report.server_seq:
            # Our good bundles reach further than the server has seen (on their way).
            state.last_seq, state.last_digest = last_kept.seq, last_kept.digest
        elif report.server_seq:
            state.last_seq, state.last_digest = report.server_seq, held[report.server_seq][1]
        else:
            state.last_seq, state.last_digest = 0, None
        state.save(using=using)
        report.chain_after = state.last_seq
        report.pending = _pending(using)
    for entry in report.forked:
        moved = _move_aside(config.outbox, entry["file"])
        if moved:
            report.moved.append(moved)
    return report


def _pending(using: str) -> int:
    return OutgoingTransaction.objects.using(using).filter(exported=False).count()


def _move_aside(outbox: Path, name: str) -> str:
    """Move an undone bundle's outbox file to OUTBOX/forked/ (kept, never deleted)."""
    src = outbox / name
    if not src.is_file():
        return ""
    target = outbox / FORKED
    target.mkdir(exist_ok=True)
    dst = target / name
    os.replace(src, dst)
    return str(dst)


__all__ = ["FORKED", "NoReceipt", "RecoveryReport", "receipt_files", "recover"]
