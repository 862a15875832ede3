"""The stale rule's ledger query (``apply/stale.py``) is compiled once per
connection and run with many key lists: what it returns must be what the ORM
query returns, values converted the same way, for a full list, a short one (its
last key repeated to fill the compiled list) and keys nothing matches."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection

from django_adapter.apply import stale
from django_adapter.models import IncomingTransaction, TxStatus

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


def ledger(n: int, name: str = "test_app.crf"):
    IncomingTransaction.objects.bulk_create([
        IncomingTransaction(
            tx_id=uuid.UUID(int=i + 1), sender="s" if i % 2 else "", tx_name=name,
            tx_pk=str(i), producer="site/host", action="UDI"[i % 3], timestamp=T0 + dt.timedelta(seconds=i),
            tx=b"x", digest="", object_key=f"key-{i // 2:04d}",
            status=(TxStatus.APPLIED, TxStatus.STALE, TxStatus.DELETED_MISSING)[i % 3])
        for i in range(n)])


def orm(name, keys):
    return sorted(IncomingTransaction.objects.filter(tx_name=name, object_key__in=keys)
                  .values_list(*stale._Query.COLUMNS))


@pytest.mark.parametrize("wanted", [1, 7, "size", "size+3"])
def test_the_compiled_query_returns_what_the_orm_returns(wanted):
    query = stale._Query(connection)
    assert query.compiled  # the compiled form, not the ORM fallback, on every database
    count = {"size": query.size, "size+3": query.size + 3}.get(wanted, wanted)
    ledger(2 * count + 10)
    keys = [f"key-{i:04d}" for i in range(count)] + ["no-such-key"]
    keys = sorted(keys)
    got = []
    for i in range(0, len(keys), query.size):
        got += query("test_app.crf", keys[i:i + query.size])
    assert sorted(map(tuple, got)) == orm("test_app.crf", keys)
    assert len(got) == 2 * count
    assert all(type(ts) is dt.datetime and ts.utcoffset() == dt.timedelta(0) for _, _, ts, *_ in got)


def test_another_model_name_is_not_returned():
    ledger(4, name="test_app.visit")
    assert stale._Query(connection)("test_app.crf", ["key-0000", "key-0001"]) == []


def test_applied_changes_counts_applied_and_deleted_missing_rows_other_than_its_own():
    ledger(6)  # keys 0,0,1,1,2,2; statuses applied, stale, deleted-missing, applied, ...
    rows = list(IncomingTransaction.objects.order_by("pk"))
    assert stale.applied_changes([rows[0]], "default") == {}  # itself, and a stale row
    assert stale.applied_changes([rows[2]], "default") == {
        ("test_app.crf", "key-0001"): [(T0 + dt.timedelta(seconds=3), "s", False, "U")]}
    assert stale.applied_changes([rows[1]], "default") == {
        ("test_app.crf", "key-0000"): [(T0, "", False, "U")]}
