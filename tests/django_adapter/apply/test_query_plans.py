"""On PostgreSQL the import's ledger lookups must probe the indexes even while the
ledger grows inside the import's own transaction, where the planner has no
statistics for the new rows.  Planned as IN lists, they became a scan of every
row of the sender (or model) for each window: quadratic in the bundle.  These
tests read the plans PostgreSQL makes for the queries as the engine sends them.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection

from django_adapter.apply import ledger, stale
from django_adapter.models import IncomingTransaction, TxStatus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner"),
]

T0 = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
SENDER = "f" * 64


def young_ledger(n: int):
    """``n`` rows of one sender and model, written in this (test) transaction."""
    IncomingTransaction.objects.bulk_create([
        IncomingTransaction(
            tx_id=uuid.UUID(int=i + 1), sender=SENDER, tx_name="test_app.crf", tx_pk=str(i),
            producer="site", action="U", timestamp=T0, tx=b"x", digest="",
            object_key=f"{i:064x}", status=TxStatus.APPLIED)
        for i in range(n)])


def plan(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(line for (line,) in cursor.fetchall())


def _index_conditions(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "Index Cond:" in line)


def test_the_stale_rule_probes_the_object_index():
    young_ledger(5000)
    query = stale._Query(connection)
    sql, _, _, _ = query.compiled
    keys = [f"{i:064x}" for i in range(0, 5000, 10)]
    text = plan(sql, [keys, "test_app.crf"])
    # Each key is an index condition: not a scan of the model's rows filtered after.
    assert "Index Scan using bk_incoming_object" in text, text
    assert "(object_key)::text = k.key" in _index_conditions(text), text
    assert len(query("test_app.crf", keys)) == len(keys)


def test_the_duplicate_check_probes_the_sender_index():
    young_ledger(5000)
    ids = [uuid.UUID(int=i + 1) for i in range(0, 5000, 10)]
    raw = ledger._stored_by_id(ids, SENDER, "default")
    text = plan(raw.raw_query, raw.params)
    # Each id is an index condition: not a scan of the sender's rows filtered after.
    assert "Index Scan using bk_incoming_sender_tx" in text, text
    assert "tx_id = k.id" in _index_conditions(text), text
    assert len(list(raw)) == len(ids)
