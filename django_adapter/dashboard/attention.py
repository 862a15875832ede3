"""The transactions that need a person, and what a person can do about them.

The review queue is :mod:`django_adapter.review` (the one ``bundle review``,
``bundle retry`` and ``bundle resolve`` use), so a decision taken on a page is
recorded exactly as the command records it.  This module only adapts it to the
pages: the queue with its filters, the counts per sender for the overview, and
one ``act()`` for the four buttons.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from django.db.models import Count

from bundlekit.errors import BundleError, DashboardInputError
from django_adapter.models import (
    BundleStatus,
    ConflictingTransaction,
    ImportedBundle,
    IncomingTransaction,
    TxStatus,
)

log = logging.getLogger(__name__)

#: The queue's outcomes, in the order the pages show them.
OUTCOMES = ("failed", "conflict", "stale", "waiting", "quarantined")
#: The buttons: action -> label.  ``retry`` re-applies (failed rows only); the
#: three others settle the item for good.
ACTIONS = {
    "retry": "Retry",
    "keep-server": "Keep the server's",
    "take-site": "Take the site's",
    "discard": "Discard",
}
RESOLVE = ("keep-server", "take-site", "discard")


def _review():
    from django_adapter import review

    return review


def queue(using: str, *, site: str | None = None, model: str | None = None,
          outcome: str | None = None, limit: int | None = None) -> list:
    """The review queue's items, oldest first (``limit``: the first N)."""
    return _review().queue(using, site=site or None, model=model or None,
                           outcome=outcome or None, limit=limit)


def tally(using: str, *, site: str | None = None, model: str | None = None) -> dict[str, Counter]:
    """{sender fingerprint: Counter(outcome -> items)}: how many items
    :func:`django_adapter.review.queue` lists, counted in the database.

    The overview needs the counts of every sender, and a server's queue can hold
    a great many stale items: listing them all (each with the server's row) only
    to count them would be slow and take memory.  The rules are review.queue's
    own, one query per outcome; tests check the two agree.
    """
    out: dict[str, Counter] = {}

    def add(outcome: str, pairs) -> None:
        for fp, n in pairs:
            out.setdefault(fp or "", Counter())[outcome] += n

    ledger = IncomingTransaction.objects.using(using)
    if site:
        ledger = ledger.filter(bundle__site=site)
    if model:
        ledger = ledger.filter(tx_name=model)
    per_sender = ("bundle__fingerprint",)
    for outcome, rows in (
        ("failed", ledger.filter(status=TxStatus.FAILED)),
        ("stale", ledger.filter(status=TxStatus.STALE, decisions__isnull=True)),
        ("waiting", ledger.filter(status=TxStatus.PENDING, bundle__status=BundleStatus.WAITING)),
    ):
        add(outcome, rows.values_list(*per_sender).annotate(n=Count("id")).order_by())
    conflicts = ConflictingTransaction.objects.using(using).filter(resolution="")
    if site:
        conflicts = conflicts.filter(bundle__site=site)
    if model:
        conflicts = conflicts.filter(tx_name=model)
    add("conflict", conflicts.values_list(*per_sender).annotate(n=Count("id")).order_by())
    if not model:  # a quarantined bundle keeps no records, so it names no model
        forks = ImportedBundle.objects.using(using).filter(status=BundleStatus.FORK,
                                                            settled__isnull=True)
        if site:
            forks = forks.filter(site=site)
        add("quarantined", forks.values_list("fingerprint").annotate(n=Count("id")).order_by())
    return out


def models_in_queue(using: str) -> list[str]:
    """The model labels the queue's filter offers."""
    ledger = IncomingTransaction.objects.using(using).filter(
        status__in=[TxStatus.FAILED, TxStatus.STALE, TxStatus.PENDING]
    )
    names = set(ledger.values_list("tx_name", flat=True).distinct())
    names |= set(
        ConflictingTransaction.objects.using(using).filter(resolution="")
        .values_list("tx_name", flat=True).distinct()
    )
    return sorted(names)


def actions_for(item) -> list[tuple[str, str]]:
    """The buttons an item gets.  Retry where re-applying can help (failed); the
    three decisions where there is something to decide (failed, stale, conflict);
    for a quarantined fork only "set aside" (the server holds none of its records;
    the laptop sends them again after ``bundle recover``).  A waiting item settles
    itself when the missing bundle arrives: no buttons."""
    if item.outcome == "quarantined" and item.bundle_id:
        return [("discard", "Set aside")]
    if not item.tx_id or item.outcome not in ("failed", "stale", "conflict"):
        return []
    names = [a for a in ACTIONS if a != "retry" or item.outcome == "failed"]
    return [(a, ACTIONS[a]) for a in names]


def target(item) -> str:
    """The id the buttons act on: the transaction, or a quarantined bundle."""
    return item.tx_id or item.bundle_id


@dataclass
class Done:
    """What an action did, in a sentence for the page."""

    message: str
    ok: bool = True


def act(action: str, tx_id: str, *, note: str, who: str, config, sender: str = "") -> Done:
    """Run one button, then write the sender's receipt (as ``bundle retry`` and
    ``bundle resolve`` do) so the decision travels back to the site.

    Bad input raises :class:`DashboardInputError` (or the review module's own
    BundleError) with a message for the page; nothing is changed then.
    ``sender`` is the item's sender (its key's fingerprint): a transaction id is
    unique per sender only.
    """
    note = " ".join((note or "").split())
    if action not in ACTIONS:
        raise DashboardInputError(f"unknown action {action!r}")
    if not note:
        raise DashboardInputError("a note is required: say why, for whoever reads the ledger later")
    try:
        tx_id = str(uuid.UUID(str(tx_id)))
    except ValueError:
        raise DashboardInputError(f"{tx_id!r} is not a transaction id") from None
    review = _review()
    using = config.database
    if action == "retry":
        result = review.retry([tx_id], using=using, who=who, note=note, sender=sender or None)
        done = (
            Done(f"Retried {tx_id}: applied.") if result.applied or result.deleted_missing
            else Done(f"Retried {tx_id}: superseded by a later change from the same site.")
            if result.stale
            else Done(f"Retried {tx_id}: not applied "
                      f"({'; '.join(result.messages[:1]) or 'it still fails'}).", ok=False)
        )
    else:
        decision = review.resolve(tx_id, action, note=note, who=who, using=using,
                                  sender=sender or None)
        if decision.outcome_before == "quarantined":
            done = Done(f"Set aside the quarantined bundle {tx_id}.")
        else:
            done = Done(f"Resolved {tx_id}: {ACTIONS[action].lower()}.")
    _receipts(review, tx_id, config, sender)
    return done


def _receipts(review, tx_id: str, config, sender: str = "") -> None:
    senders_of = getattr(review, "senders_of", None)
    if not config.receipts_out or senders_of is None:
        return
    from django_adapter.receipts import write_receipts

    try:
        write_receipts(senders_of([tx_id], config.database, sender=sender or None), config=config)
    except (BundleError, OSError):
        # The next import writes it: a receipt lists the sender's whole ledger.
        log.exception("cannot write the receipt after acting on %s", tx_id)
