"""The site's clock for stamping changes: the wall clock, never behind what the
server's receipts showed.

Changes of one object made at two sites are ordered by their timestamps (the
stale rule, docs/WORKFLOW.md), so a laptop whose clock is days behind would lose
every such edit, forever.  Each receipt the laptop applies carries the time the
server wrote it (by the server's clock); a laptop that applies a receipt written
*later* than its own clock says it is now knows its clock is behind by at least
that much.  It stores that offset (:class:`~django_adapter.models.SiteClock`) and
stamps every change it captures from then on with ``wall clock + offset``: a
change made after seeing the server's state is stamped after it (the rule of a
hybrid logical clock, with receipts as the messages).

A clock that is *ahead* is bounded at the server instead: a change cannot have
happened after the server received it, so the server orders it by the earlier of
its timestamp and its arrival (``django_adapter.apply``), and ``bundle status``
names the site.

The offset is read from the database at most once a minute per process (capture
runs at every save and must not pay a query each time).
"""

from __future__ import annotations

import datetime as dt
import time

from django.utils import timezone

#: Seconds a process keeps the offset it read before reading it again.
REFRESH = 60.0
#: A site whose clock is further behind than this is named by its ``bundle status``.
BEHIND_WARNING = dt.timedelta(minutes=10)

_ZERO = dt.timedelta(0)
_cache: dict[str, tuple[float, dt.timedelta]] = {}


def offset(using: str = "default") -> dt.timedelta:
    """How much this site's clock was found behind the server's (0 if not)."""
    hit = _cache.get(using)
    mono = time.monotonic()
    if hit is not None and mono - hit[0] < REFRESH:
        return hit[1]
    from django_adapter.models import SiteClock

    value = SiteClock.objects.using(using).values_list("offset", flat=True).first() or _ZERO
    _cache[using] = (mono, value)
    return value


def now(using: str = "default") -> dt.datetime:
    """The timestamp for a change captured now."""
    return timezone.now() + offset(using)


def observe(server_time: dt.datetime, using: str = "default") -> dt.timedelta:
    """A receipt written at ``server_time`` (the server's clock) arrived now: keep
    how far this clock is behind it.  Only a newer receipt than the one the
    offset came from changes it (an old receipt on a stick says less)."""
    from django_adapter.models import SiteClock

    local = timezone.now()
    found = max(server_time - local, _ZERO)
    row = SiteClock.objects.using(using).filter(pk=1).first()
    if row is not None and row.server_time is not None and row.server_time > server_time:
        return row.offset
    SiteClock.objects.using(using).update_or_create(
        pk=1, defaults={"offset": found, "server_time": server_time, "observed": local}
    )
    forget()
    return found


def forget() -> None:
    """Drop the offsets this process holds (they are read again on next use)."""
    _cache.clear()


def state(using: str = "default") -> dict:
    """For ``bundle status``: the offset, and a note when it is large."""
    from django_adapter.models import SiteClock

    row = SiteClock.objects.using(using).filter(pk=1).first()
    behind = row.offset if row is not None else _ZERO
    note = ""
    if behind > BEHIND_WARNING:
        from django_adapter.sitestate import describe_ahead

        note = (f"this machine's clock was {describe_ahead(behind)} behind the server's at the "
                "last receipt: changes are stamped that much later (set the clock right)")
    return {"clock_behind_seconds": int(behind.total_seconds()), "clock_note": note}


__all__ = ["BEHIND_WARNING", "REFRESH", "forget", "now", "observe", "offset", "state"]
