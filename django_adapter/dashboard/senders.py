"""What the overview and a site's page show about each sender.

Built on :func:`django_adapter.status.server_status` (the numbers ``bundle status``
prints), with what a person looking at a page also needs: how long ago the site
was last heard from, the state of its key, the review queue's counts, and the
records applied per day.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from bundlekit.errors import BundleError
from django_adapter.conf import Config
from django_adapter.dashboard import attention, chart
from django_adapter.dashboard.settings import DashboardSettings
from django_adapter.models import IncomingTransaction, TxStatus
from django_adapter.status import server_status

TRUSTED = "trusted"
ROTATING = "rotating"
REVOKED = "revoked"
NOT_TRUSTED = "not trusted"
UNKNOWN = "unknown"


@dataclass
class Sender:
    """One card of the overview."""

    site: str
    fingerprint: str
    last_seq_applied: int
    open_gaps: list[int]
    open_gap_count: int
    waiting: int
    bundles: int
    last_seen: dt.datetime | None
    age_days: int | None
    quiet: bool
    key_status: str
    attention: Counter = field(default_factory=Counter)
    per_day: list[tuple[dt.date, int]] = field(default_factory=list)

    @property
    def counts(self) -> list[tuple[str, int]]:
        return [(o, self.attention.get(o, 0)) for o in ("failed", "stale", "conflict", "quarantined")]

    @property
    def applied_in_chart(self) -> int:
        return sum(n for _, n in self.per_day)

    @property
    def chart(self):
        return chart.bars_svg(self.per_day)

    @property
    def chart_text(self) -> str:
        return chart.describe(self.per_day)

    @property
    def busy_days(self) -> list[tuple[dt.date, int]]:
        return [(d, n) for d, n in self.per_day if n]


def key_statuses(config: Config) -> tuple[dict[str, str], str]:
    """{fingerprint: trusted|rotating|revoked} for the configured keys, and a
    problem (one line) when the key files cannot be read."""
    try:
        trusted = list(config.trusted)
        revoked = list(config.revoked_keys)
    except BundleError as exc:
        return {}, str(exc)
    revoked_fps = {r.strip().lower() for r in revoked if isinstance(r, str)}
    revoked_signers = {r.ed25519 for r in revoked if not isinstance(r, str)}
    out: dict[str, str] = {}
    live_by_site: Counter = Counter()
    for key in trusted:
        if key.fingerprint in revoked_fps or key.ed25519 in revoked_signers:
            out[key.fingerprint] = REVOKED
        else:
            live_by_site[key.site] += 1
    for key in trusted:
        if key.fingerprint not in out:
            # Two live keys for one site: a rotation accepted, the old key not yet retired.
            out[key.fingerprint] = ROTATING if live_by_site[key.site] > 1 else TRUSTED
    for r in revoked:
        if not isinstance(r, str):
            out[r.fingerprint] = REVOKED
    for fp in revoked_fps:
        out[fp] = REVOKED
    return out, ""


def applied_per_day(using: str, days: int, *, fingerprint: str | None = None) -> dict[str, dict]:
    """{fingerprint: {date: records applied}} over the last ``days`` UTC days."""
    today = timezone.now().astimezone(dt.UTC).date()
    since = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), tzinfo=dt.UTC)
    rows = IncomingTransaction.objects.using(using).filter(
        status=TxStatus.APPLIED, consumed_datetime__gte=since, bundle__isnull=False
    )
    if fingerprint:
        rows = rows.filter(bundle__fingerprint=fingerprint)
    grouped = (
        rows.annotate(day=TruncDate("consumed_datetime", tzinfo=dt.UTC))
        .values("bundle__fingerprint", "day")
        .annotate(n=Count("id"))
        .order_by()
    )
    out: dict[str, dict] = {}
    for row in grouped:
        day = row["day"]
        if isinstance(day, dt.datetime):  # some backends hand back a datetime
            day = day.date()
        out.setdefault(row["bundle__fingerprint"], {})[day] = row["n"]
    return out


def senders(config: Config, options: DashboardSettings, *, fingerprint: str | None = None):
    """(list of :class:`Sender`, problem line or "")."""
    using = config.database
    keys, problem = key_statuses(config)
    per_day = applied_per_day(using, options.chart_days, fingerprint=fingerprint)
    queue_counts = attention.tally(using)
    now = timezone.now()
    today = now.astimezone(dt.UTC).date()
    out = []
    for row in server_status(config):
        fp = row["fingerprint"]
        if fingerprint and fp != fingerprint:
            continue
        last_seen = row["last_seen"]
        age = (now - last_seen).days if last_seen else None
        counts = Counter(queue_counts.get(fp, Counter()))
        days = per_day.get(fp, {})
        out.append(
            Sender(
                site=row["site"],
                fingerprint=fp,
                last_seq_applied=row["last_seq_applied"],
                open_gaps=row["open_gaps"],
                open_gap_count=row["open_gap_count"],
                waiting=row["waiting"],
                bundles=row["bundles"],
                last_seen=last_seen,
                age_days=age,
                quiet=age is None or age > options.quiet_days,
                key_status=keys.get(fp, NOT_TRUSTED if not problem else UNKNOWN),
                attention=counts,
                per_day=[(d, days.get(d, 0)) for d in chart.days_ending(today, options.chart_days)],
            )
        )
    return out, problem
