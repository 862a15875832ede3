"""The transactions that need a person, and what a person can do about them.

The review queue is :mod:`django_adapter.review` (the one ``bundle review``,
``bundle retry`` and ``bundle resolve`` use), so a decision taken on a page is
recorded exactly as the command records it.  This module only adapts it to the
pages: the queue with its filters, the counts per sender for the overview, and
one ``act()`` for the four buttons.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from bundlekit.errors import BundleError

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
    """The buttons an item gets: retry only where re-applying can help."""
    names = [a for a in ACTIONS if a != "retry" or item.outcome == "failed"]
    return [(a, ACTIONS[a]) for a in names]


@dataclass
class Done:
    """What an action did, in a sentence for the page."""

    message: str
    ok: bool = True


def act(action: str, tx_id: str, *, note: str, who: str, using: str) -> Done:
    """Run one button.  Bad input raises :class:`DashboardInputError` (or the review
    module's own BundleError) with a message for the page, never a 500."""
    note = (note or "").strip()
    if action not in ACTIONS:
        raise DashboardInputError(f"unknown action {action!r}")
    if not note:
        raise DashboardInputError("a note is required: say why, for whoever reads the ledger later")
    try:
        tx_id = str(uuid.UUID(str(tx_id)))
    except ValueError:
        raise DashboardInputError(f"{tx_id!r} is not a transaction id") from None
    review = _review()
    if action == "retry":
        result = review.retry([tx_id], using=using, who=who, note=note)
        if result.applied:
            return Done(f"Retried {tx_id}: applied.")
        why = "; ".join(result.messages[:1]) or "it still fails"
        return Done(f"Retried {tx_id}: not applied ({why}).", ok=False)
    review.resolve(tx_id, action, note=note, who=who, using=using)
    return Done(f"Resolved {tx_id}: {ACTIONS[action].lower()}.")
