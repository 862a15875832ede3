"""Settling a quarantined fork at the server (``bundle resolve BUNDLE_ID``).

A fork is a bundle that contradicts its sender's chain as the server knows it:
typically the first bundle a laptop sealed after being restored from a backup.
The server keeps none of its records (so nothing of it is applied), and the
site keeps its transactions (the receipt says ``rejected``).  Once the laptop
has run ``bundle recover``, those transactions travel again in bundles that
continue the chain, so the quarantined bundle needs nothing more than a person's
word that it is dealt with: it is set aside (``ImportedBundle.settled``), leaves
the review queue and the status counts, and the decision is recorded like any
other (:class:`~django_adapter.models.Decision`: who, when, why).
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from bundlekit.errors import ReviewError
from django_adapter.models import BundleStatus, Choice, Decision, ImportedBundle


def quarantined(bundle_id, using: str) -> ImportedBundle | None:
    """The unsettled quarantined fork with this bundle id, if there is one."""
    try:
        key = str(uuid.UUID(str(bundle_id)))
    except ValueError:
        return None
    return (ImportedBundle.objects.using(using)
            .filter(bundle_id=key, status=BundleStatus.FORK, settled__isnull=True).first())


def set_aside(bundle_id, choice: str, *, note: str, who: str, using: str = "default") -> Decision:
    """Settle the quarantined fork ``bundle_id``: ``discard`` or ``keep-server``
    (the same here: the server's chain stays, the fork applies nothing).
    ``take-site`` is refused: the server holds none of the fork's records."""
    if choice == Choice.TAKE_SITE:
        raise ReviewError(
            f"bundle {bundle_id} is a quarantined fork and the server keeps none of its "
            "records: run `bundle recover` on the laptop (its changes are sent again after "
            "the server's last bundle), then settle this one with --discard"
        )
    with transaction.atomic(using=using):
        bundle = quarantined(bundle_id, using)
        if bundle is None:
            raise ReviewError(f"no quarantined bundle {bundle_id} to settle at this server")
        bundle = ImportedBundle.objects.using(using).select_for_update().get(pk=bundle.pk)
        bundle.settled = timezone.now()
        bundle.save(using=using, update_fields=["settled"])
        return Decision.objects.using(using).create(
            tx_id=uuid.UUID(bundle.bundle_id),
            choice=str(choice),
            outcome_before="quarantined",
            outcome_after="set-aside",
            who=who,
            note=note,
            site=bundle.site,
            sender=bundle.fingerprint,
        )


__all__ = ["quarantined", "set_aside"]
