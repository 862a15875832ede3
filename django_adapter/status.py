"""``bundle status``: what a person needs to see at each end of the loop.

On a site: how much is waiting to leave, how much left but is not confirmed,
what the server confirmed (prunable), and every transaction the server does not
hold (failed, in conflict, waiting ...), listed with the server's reason, which
stays here until a later receipt says the server holds it.  On a server: per sending site, how far
its chain is applied, which sequence numbers are still missing (a stick that
never arrived), when it was last heard from, and anything needing a person.
One machine can be both (a hub), so both parts are always computed.
"""

from __future__ import annotations

from django.db.models import Count, Max, Q, Sum

from bundlekit.naming import is_bundle_name
from django_adapter import clock, schema
from django_adapter.conf import Config
from django_adapter.models import (
    BundleStatus,
    ExportChainState,
    ExportedBundle,
    ImportedBundle,
    OutgoingTransaction,
    SenderState,
)
from django_adapter.outcomes import OUTCOMES
from django_adapter.sitestate import sender_state

#: At most this many missing seqs are listed per sender (the count is always given).
MAX_GAPS_LISTED = 50
#: At most this many kept transactions are listed at a site (the counts are always given).
MAX_KEPT_LISTED = 50


def site_status(config: Config) -> dict:
    using = config.database
    tx = OutgoingTransaction.objects.using(using)
    bundles = ExportedBundle.objects.using(using)
    chains = list(ExportChainState.objects.using(using).order_by("site"))
    try:
        outbox = sorted(p.name for p in config.outbox.iterdir() if is_bundle_name(p.name))
    except OSError:
        outbox = []
    unacked = list(bundles.filter(acknowledged=False).order_by("seq").values_list("seq", flat=True))
    kept = tx.filter(exported=True, is_consumed_server=False).exclude(server_outcome="")
    by_outcome = dict(
        kept.order_by().values_list("server_outcome").annotate(n=Count("id")).values_list(
            "server_outcome", "n"
        )
    )
    listed = [
        {
            "tx_id": str(t.tx_id),
            "model": t.tx_name,
            "pk": t.tx_pk,
            "natural_key": _natural_key(t),
            "action": t.action,
            "seq": t.exported_bundle.seq if t.exported_bundle else None,
            "outcome": t.server_outcome,
            "reason": t.server_reason,
        }
        for t in kept.select_related("exported_bundle").order_by("id")[:MAX_KEPT_LISTED]
    ]
    return {
        "site": config.site,
        "pending": tx.filter(exported=False).count(),
        # Sealed, and no receipt has said anything about them yet.
        "exported": tx.filter(exported=True, is_consumed_server=False, server_outcome="").count(),
        "acknowledged": tx.filter(is_consumed_server=True).count(),
        # A receipt named them, but the server does not hold them: they stay here.
        "kept": sum(by_outcome.values()),
        "kept_by_outcome": by_outcome,
        "kept_transactions": listed,
        "last_seq": max((c.last_seq for c in chains), default=0),
        "bundles_unacknowledged": unacked,
        "bundles_unacknowledged_count": len(unacked),
        "bundles_acknowledged": bundles.filter(acknowledged=True).count(),
        "outbox": str(config.outbox),
        "outbox_files": outbox,
        **clock.state(using),
    }


def _natural_key(t: OutgoingTransaction):
    """The record's natural key (what the research assistant typed), or None."""
    try:
        key = t.record.get("natural_key")
    except Exception:  # noqa: BLE001 - a record that does not decode: show the pk instead
        return None
    return list(key) if isinstance(key, list | tuple) else None


def server_status(config: Config) -> list[dict]:
    using = config.database
    states = {s.fingerprint: s for s in SenderState.objects.using(using)}
    held = ~Q(status__in=[BundleStatus.FORK, BundleStatus.FAILED])
    rows = (
        ImportedBundle.objects.using(using)
        .values("fingerprint")
        .annotate(
            site=Max("site"),
            bundles=Count("id"),
            last_seen=Max("received"),
            **{name: Sum(f"{name}_count") for name in OUTCOMES},
            forks=Count("id", filter=Q(status=BundleStatus.FORK, settled__isnull=True)),
            waiting=Count("id", filter=Q(status=BundleStatus.WAITING)),
        )
        .order_by("site", "fingerprint")
    )
    out = []
    server_schema = schema.Gate(using).server
    for row in rows:
        fp = row["fingerprint"]
        state = states.get(fp)
        last = state.last_seq if state else 0
        received = set(
            ImportedBundle.objects.using(using)
            .filter(held, fingerprint=fp, seq__gt=last)
            .values_list("seq", flat=True)
        )
        gaps, gap_count = open_gaps(last, received)
        out.append(
            {
                "site": state.site if state else row["site"],
                "fingerprint": fp,
                "last_seq_applied": last,
                "open_gaps": gaps,
                "open_gap_count": gap_count,
                "waiting": row["waiting"],
                "bundles": row["bundles"],
                "last_seen": row["last_seen"],
                **{name: row[name] or 0 for name in OUTCOMES},
                "quarantined_forks": row["forks"],
                **sender_state(fp, using, server_schema),
            }
        )
    return out


def open_gaps(last: int, received) -> tuple[list[int], int]:
    """Missing seqs between the last applied one and the highest received (the
    first MAX_GAPS_LISTED of them) and how many there are in all."""
    listed: list[int] = []
    count, prev = 0, last
    for seq in sorted(received):
        if seq > prev + 1:
            count += seq - prev - 1
            room = MAX_GAPS_LISTED - len(listed)
            listed.extend(range(prev + 1, min(seq, prev + 1 + room)))
        prev = max(prev, seq)
    return listed, count


def status(config: Config) -> dict:
    """Both ends; the CLI shows the parts that have anything in them."""
    return {"site": site_status(config), "senders": server_status(config)}


__all__ = ["server_status", "site_status", "status"]
