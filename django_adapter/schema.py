"""Schema versions: which migrations of the synced apps a bundle's site had applied.

Laptops and the server are upgraded at different times.  Every bundle states,
in its manifest (FORMAT.md §4.5), the migrations of each app with a synced model
that the site's database had applied when the bundle was sealed.  The server
keeps that with the bundle (``ImportedBundle.schema``) and, for each record,
compares the record's app with its own applied migrations:

* the site had a migration the server has not applied (the site is *newer*):
  the record is not applied.  It fails with a reason naming the migration, and
  ``bundle retry`` applies it once the server is migrated.  Applying it anyway
  would drop the fields the server does not know yet, silently;
* the server has migrations the site had not (the site is *older*): the record
  applies; fields it does not carry keep the row's value, or take the model's
  default on an insert;
* no schema (a bundle from before format 2, or a direct copy): applied as before.
"""

from __future__ import annotations

from django.apps import apps
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from django_adapter.serialization import is_synced


def synced_apps() -> list[str]:
    """Labels of the installed apps that hold at least one synced model."""
    return sorted({m._meta.app_label for m in apps.get_models() if is_synced(m)})


def applied(using: str = "default", app_labels=None) -> dict[str, list[str]]:
    """app label -> sorted names of its migrations applied on ``using``, for
    ``app_labels`` (default: the synced apps)."""
    labels = synced_apps() if app_labels is None else list(app_labels)
    out: dict[str, list[str]] = {label: [] for label in labels}
    recorder = MigrationRecorder(connections[using])
    if not recorder.has_table():
        return out
    for app, name in recorder.applied_migrations():
        if app in out:
            out[app].append(name)
    return {label: sorted(names) for label, names in out.items()}


def compare(site: dict | None, server: dict) -> dict:
    """How a site's schema stands against the server's, per app:
    ``{"state": "same"|"newer"|"older"|"mixed"|"unknown", "server_lacks": [...],
    "site_lacks": [...]}`` (migrations as ``app.name``)."""
    if site is None:
        return {"state": "unknown", "server_lacks": [], "site_lacks": []}
    server_lacks, site_lacks = [], []
    for app, names in sorted(site.items()):
        have = set(server.get(app, ()))
        server_lacks += [f"{app}.{n}" for n in names if n not in have]
        site_lacks += [f"{app}.{n}" for n in sorted(have - set(names))]
    state = ("mixed" if server_lacks and site_lacks else "newer" if server_lacks
             else "older" if site_lacks else "same")
    return {"state": state, "server_lacks": server_lacks, "site_lacks": site_lacks}


class Gate:
    """Decides, record by record, whether this server's schema can take it.

    Built once per apply run: the server's applied migrations are read once.
    """

    def __init__(self, using: str):
        self.using = using
        self._server: dict | None = None
        #: (id of a bundle's schema, app) -> (that schema, the answer): asked for every
        #: record, it compared the app's whole migration list each time.
        self._answers: dict = {}

    @property
    def server(self) -> dict:
        if self._server is None:
            labels = {a.label for a in apps.get_app_configs()}
            self._server = applied(self.using, labels)
        return self._server

    def reason(self, record: dict, schema: dict | None) -> str:
        """Why ``record`` (from a bundle whose site had ``schema``) cannot apply
        here yet, or "" when it can."""
        if not schema:
            return ""
        app = str(record.get("model", "")).partition(".")[0]
        key = (id(schema), app)
        known = self._answers.get(key)
        if known is not None and known[0] is schema:
            return known[1]
        answer = self._reason(app, schema)
        self._answers[key] = (schema, answer)  # the schema is kept: its id stays its own
        return answer

    def _reason(self, app: str, schema: dict) -> str:
        names = schema.get(app)
        if not names:
            return ""
        have = set(self.server.get(app, ()))
        missing = [n for n in names if n not in have]
        if not missing:
            return ""
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return (
            f"the site's schema is newer: this server has not applied migration "
            f"{app}.{missing[0]}{more}; run `manage.py migrate` on the server, then `bundle retry`"
        )


__all__ = ["Gate", "applied", "compare", "synced_apps"]
