"""The statements capture runs at every save, on SQLite, past Django's cursor layers
when nothing is watching them.

``connection.cursor()`` and ``CursorWrapper.execute`` cost about 7us a statement
(the async check, a new cursor and its wrapper, the thread check, the execute
wrappers, the conversion of ``%(name)s`` to ``:name``): as much as SQLite takes
to insert the row.  :func:`raw_cursor` hands out the DB-API cursor itself for the
statements capture prepares (written with SQLite's own ``?`` marks) when
Django's layers would only pass the statement through, and None otherwise, so
the statement goes through Django's cursor whenever something can see it:
``CaptureQueriesContext`` and ``assertNumQueries`` (``force_debug_cursor``),
``DEBUG``'s query log, ``connection.execute_wrapper()``, or a cursor, execute or
backend that is not Django's own (an instrumentation that patched it).  Errors
become Django's exceptions (``wrap_database_errors``) either way.  The raw
statements use SQLite's "?" marks with a list of parameters: sqlite3 binds a
list in half the time of a dict of named ones (Django's "%s" would cost its
regular expression, hence named parameters on Django's cursor).
"""

from __future__ import annotations

import _thread
import os
from asyncio import _get_running_loop

from django.apps import apps
from django.conf import settings
from django.db.backends.utils import CursorWrapper

#: What Django's own cursor path is made of, per connection class: (the
#: functions, whether they are all Django's SQLite ones).
_CHECKED: dict = {}
#: Django's SQLite cursor class, imported on first use (not on other databases).
_SQLITE: list = []


def raw_cursor(connection):
    """``connection``'s DB-API cursor (SQLite, open, unwatched), else None."""
    if connection.vendor != "sqlite" or connection.connection is None:
        return None
    if (connection.execute_wrappers or connection.force_debug_cursor or connection.needs_rollback
            or "cursor" in connection.__dict__ or not apps.ready):
        return None
    if getattr(connection, "health_check_enabled", False) and not connection.health_check_done:
        return None
    if not _django_path(connection) or settings.DEBUG:
        return None
    if _get_running_loop() is not None and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        return None  # connection.cursor() raises SynchronousOnlyOperation: let it
    if connection._thread_ident != _thread.get_ident():
        connection.validate_thread_sharing()
    raw = connection.connection
    held = connection.__dict__.get("_bk_raw_cursor")
    if held is None or held[0] is not raw:
        held = connection.__dict__["_bk_raw_cursor"] = (raw, raw.cursor())
    return held[1]


def _django_path(connection) -> bool:
    """Whether the cursor path is Django's own SQLite one (nothing patched it)."""
    if not _SQLITE:
        from django.db.backends.sqlite3.base import SQLiteCursorWrapper

        _SQLITE.append(SQLiteCursorWrapper)
    cursor_cls = _SQLITE[0]
    cls = type(connection)
    parts = (cls.cursor, cls._cursor, cls._prepare_cursor, cls.create_cursor,
             CursorWrapper.execute, CursorWrapper._execute_with_wrappers, CursorWrapper._execute,
             cursor_cls.execute, cursor_cls.convert_query)
    known = _CHECKED.get(cls)
    if known is None or known[0] != parts:
        ok = all(getattr(p, "__module__", "").startswith("django.db.") for p in parts)
        known = _CHECKED[cls] = (parts, ok)
    return known[1]
