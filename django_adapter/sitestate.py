"""What the server can tell of a sending site's field state: its schema (which
migrations it had when it sealed its latest bundle, against the server's) and
its clock (how far ahead of the server's clock it sealed its latest bundle).

Both are read from the latest bundle received from the site, so they describe
the site as it was when it sealed that bundle.
"""

from __future__ import annotations

import datetime as dt

from django_adapter import schema as schema_mod
from django_adapter.models import ImportedBundle

#: A site whose clock is further ahead of the server's than this is flagged.
CLOCK_AHEAD_WARNING = dt.timedelta(minutes=10)


def describe_ahead(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    return f"{seconds // 60} minutes"


def sender_state(fingerprint: str, using: str, server_schema: dict) -> dict:
    """``schema``: :func:`django_adapter.schema.compare` of the latest bundle that
    stated one; ``clock_ahead_seconds``: by how much the site's clock was ahead
    when it sealed its latest bundle (0 if not ahead; a clock that is behind
    cannot be seen here, the site's own status shows it); ``notes``: lines for
    a person, empty when all is well."""
    bundles = ImportedBundle.objects.using(using).filter(fingerprint=fingerprint)
    stated = (bundles.filter(schema__isnull=False).order_by("-received", "-id")
              .values_list("schema", flat=True).first())
    compared = schema_mod.compare(stated, server_schema)
    latest = bundles.filter(sealed__isnull=False).order_by("-received", "-id").values_list(
        "sealed", "received").first()
    ahead = max(latest[0] - latest[1], dt.timedelta(0)) if latest else dt.timedelta(0)
    notes = []
    if compared["server_lacks"]:
        notes.append("schema newer than the server's: the server lacks "
                     + ", ".join(compared["server_lacks"]))
    if compared["site_lacks"]:
        notes.append("schema older than the server's: the site lacks "
                     + ", ".join(compared["site_lacks"]))
    if ahead > CLOCK_AHEAD_WARNING:
        notes.append(f"clock ahead of the server's by {describe_ahead(ahead)}")
    return {"schema": compared, "clock_ahead_seconds": int(ahead.total_seconds()), "notes": notes}


__all__ = ["CLOCK_AHEAD_WARNING", "sender_state"]
