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

from bundlekit.errors import BundleError

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


class DashboardInputError(BundleError):
    """A form on the pages was sent without what it needs (a note, a known action)."""

    code = "bad-request"


def _review():
    try:
        from django_adapter import review
    except ImportError:  # a version without the review queue: what the ledger shows
        from django_adapter.dashboard import ledger_queue as review
    return review


def queue(using: str, *, site: str | None = None, model: str | None = None,
          outcome: str | None = None) -> list:
    return _review().queue(using, site=site or None, model=model or None, outcome=outcome or None)


def counts_by_sender(using: str) -> dict[str, Counter]:
    """{sender fingerprint: Counter(outcome -> items)} over the whole queue."""
    out: dict[str, Counter] = {}
    for item in queue(using):
        out.setdefault(item.sender, Counter())[item.outcome] += 1
    return out


def actions_for(item) -> list[tuple[str, str]]:
    """The buttons an item gets.  Retry where re-applying can help (failed);
    the three decisions where there is something to decide (failed, stale,
    conflict).  A waiting item settles itself when the missing bundle arrives, and
    a quarantined fork is a whole bundle: neither gets buttons."""
    if not item.tx_id or item.outcome not in ("failed", "stale", "conflict"):
        return []
    names = [a for a in ACTIONS if a != "retry" or item.outcome == "failed"]
    return [(a, ACTIONS[a]) for a in names]


@dataclass
class Done:
    """What an action did, in a sentence for the page."""

    message: str
    ok: bool = True


def act(action: str, tx_id: str, *, note: str, who: str, config) -> Done:
    """Run one button, then write the sender's receipt (as ``bundle retry`` and
    ``bundle resolve`` do) so the decision travels back to the site.

    Bad input raises :class:`DashboardInputError` (or the review module's own
    BundleError) with a message for the page; nothing is changed then.
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
        result = review.retry([tx_id], using=using, who=who, note=note)
        done = (
            Done(f"Retried {tx_id}: applied.") if result.applied or result.deleted_missing
            else Done(f"Retried {tx_id}: superseded by a later change from the same site.")
            if result.stale
            else Done(f"Retried {tx_id}: not applied "
                      f"({'; '.join(result.messages[:1]) or 'it still fails'}).", ok=False)
        )
    else:
        review.resolve(tx_id, action, note=note, who=who, using=using)
        done = Done(f"Resolved {tx_id}: {ACTIONS[action].lower()}.")
    _receipts(review, tx_id, config)
    return done


def _receipts(review, tx_id: str, config) -> None:
    senders_of = getattr(review, "senders_of", None)
    if not config.receipts_out or senders_of is None:
        return
    from django_adapter.receipts import write_receipts

    try:
        write_receipts(senders_of([tx_id], config.database), config=config)
    except (BundleError, OSError):
        # The next import writes it: a receipt lists the sender's whole ledger.
        log.exception("cannot write the receipt after acting on %s", tx_id)
