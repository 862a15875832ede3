"""Capture's statements past Django's cursor layers (django_adapter/cursors.py): only
on SQLite while nothing watches statements; whatever watches them still sees
every statement capture runs, and errors are Django's either way."""

import asyncio
import threading
import uuid

import pytest
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.backends.utils import CursorWrapper
from django.test.utils import CaptureQueriesContext

from django_adapter import capture, cursors
from django_adapter.models import OutgoingTransaction
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])

TABLE = OutgoingTransaction._meta.db_table


def _capture_statements():
    """An insert, an update, an M2M set (its read-back) and a delete."""
    tag = m.Tag.objects.create(code="t-1")
    subject = m.Subject.objects.create(code="S-1")
    subject.tags.set([tag])
    subject.code = "S-2"
    subject.save()
    subject.tags.clear()
    subject.delete()
    return subject


def _ours(sqls):
    inserts = [s for s in sqls if s.startswith("INSERT") and TABLE in s]
    # The read-back selects every column of the targets (Django's own reads in
    # set() and delete() select their ids only).
    qn = connections["default"].ops.quote_name
    code = f"{qn('test_app_tag')}.{qn('code')}"
    reads = [s for s in sqls if s.startswith("SELECT") and "test_app_subject_tags" in s
             and code in s]
    return inserts, reads


def test_the_raw_cursor_is_used_on_sqlite_only_when_nothing_watches():
    connection = connections["default"]
    connection.ensure_connection()
    raw = cursors.raw_cursor(connection)
    if connection.vendor != "sqlite":
        assert raw is None
        return
    assert raw is not None and cursors.raw_cursor(connection) is raw  # kept per connection
    with CaptureQueriesContext(connection):
        assert cursors.raw_cursor(connection) is None
    with connection.execute_wrapper(lambda execute, *args: execute(*args[:-1] + (args[-1],))):
        assert cursors.raw_cursor(connection) is None


def test_captured_statements_are_seen_by_capture_queries_context():
    connection = connections["default"]
    with CaptureQueriesContext(connection) as queries:
        _capture_statements()
    inserts, reads = _ours([q["sql"] for q in queries.captured_queries])
    assert len(inserts) == OutgoingTransaction.objects.count() == 6
    assert len(reads) == 3  # after set(), the update and clear()


def test_captured_statements_are_seen_by_an_execute_wrapper():
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(wrapper):
        _capture_statements()
    inserts, reads = _ours(seen)
    assert len(inserts) == OutgoingTransaction.objects.count() == 6
    assert len(reads) == 3


def test_captured_statements_are_seen_by_a_patched_cursor(monkeypatch):
    """An instrumentation that wraps CursorWrapper.execute (an APM agent) sees them."""
    seen = []
    original = CursorWrapper.execute

    def execute(self, sql, params=None):
        seen.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", execute)
    _capture_statements()
    inserts, reads = _ours(seen)
    assert len(inserts) == OutgoingTransaction.objects.count() == 6
    assert len(reads) == 3


def test_the_raw_path_writes_what_djangos_cursor_writes():
    """The same rows, column for column, with and without a watcher."""
    _capture_statements()
    with CaptureQueriesContext(connections["default"]):
        m.Subject.objects.all().delete()
        m.Tag.objects.all().delete()
        _capture_statements()
    rows = list(OutgoingTransaction.objects.order_by("id"))
    assert len(rows) == 13  # the second run's after the tag's delete
    first, second = rows[:6], rows[7:]

    def same(row):
        record = row.record
        del record["id"], record["ts"], record["pk"]
        return (row.tx_name, row.action, row.format, row.producer, row.exported,
                row.is_consumed_server, row.server_outcome, row.exported_bundle_id, record)

    assert [same(r) for r in first] == [same(r) for r in second]


def test_an_error_of_the_raw_path_is_djangos(monkeypatch):
    fixed = uuid.UUID(int=1)
    monkeypatch.setattr(capture, "new_tx_id", lambda: fixed)
    m.Tag.objects.create(code="t-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        m.Tag.objects.create(code="t-2")  # the same transaction id again
    assert list(m.Tag.objects.values_list("code", flat=True)) == ["t-1"]


def test_an_async_context_or_another_thread_gets_djangos_refusal():
    connection = connections["default"]
    connection.ensure_connection()

    async def inside():
        return cursors.raw_cursor(connection)

    assert asyncio.run(inside()) is None  # connection.cursor() raises there: let it
    if connection.vendor != "sqlite":
        return
    errors = []

    def other():
        try:
            cursors.raw_cursor(connection)
        except DatabaseError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and "thread" in str(errors[0])


def test_a_new_connection_gets_a_new_raw_cursor():
    connection = connections["default"]
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    connection.ensure_connection()
    first = cursors.raw_cursor(connection)
    held = connection.__dict__["_bk_raw_cursor"]
    connection.__dict__["_bk_raw_cursor"] = (object(), first)  # as if the connection changed
    second = cursors.raw_cursor(connection)
    assert second is not first and connection.__dict__["_bk_raw_cursor"][0] is held[0]
