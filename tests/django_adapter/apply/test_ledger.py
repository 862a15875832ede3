"""The duplicate check: which of a window's transaction ids the ledger already holds.

It decides whether a record is applied or counted as a duplicate, so a row it
misses would be applied twice.  It is written as SQL for every database; these
tests pin what it answers on each of them.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from django_adapter.apply import ledger
from django_adapter.models import IncomingTransaction, TxStatus

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
ME, OTHER = "a" * 64, "b" * 64


def stored(tx_id: uuid.UUID, sender: str, digest: str = "") -> IncomingTransaction:
    return IncomingTransaction.objects.create(
        tx_id=tx_id, sender=sender, tx_name="test_app.crf", tx_pk="1", producer="site",
        action="U", timestamp=T0, tx=b"\x80", digest=digest, object_key="0" * 64,
        status=TxStatus.APPLIED)


def found(ids, sender):
    return sorted((row.tx_id, row.sender) for row in ledger._stored_by_id(ids, sender, "default"))


def test_a_bundle_meets_its_own_rows_and_the_servers_direct_copies_not_another_senders():
    mine, copied, theirs, new = (uuid.uuid4() for _ in range(4))
    stored(mine, ME)
    stored(copied, "")  # copied on the server itself, without a bundle (edc-sync's route)
    stored(theirs, OTHER)
    assert found([mine, copied, theirs, new], ME) == sorted([(mine, ME), (copied, "")])


def test_a_direct_copy_meets_every_senders_rows():
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    stored(mine, ME)
    stored(theirs, OTHER)
    assert found([mine, theirs, uuid.uuid4()], "") == sorted([(mine, ME), (theirs, OTHER)])


def test_rows_come_back_with_what_tells_a_duplicate_from_a_conflict():
    tx_id = uuid.uuid4()
    stored(tx_id, ME, digest="d" * 64)
    (row,) = ledger._stored_by_id([tx_id], ME, "default")
    assert (row.tx_id, row.digest, bytes(row.tx), row.format) == (
        tx_id, "d" * 64, b"\x80", IncomingTransaction._meta.get_field("format").default)


def test_a_full_window_of_ids_is_checked_at_once():
    ids = [uuid.uuid4() for _ in range(ledger.IN)]
    for tx_id in ids[::50]:
        stored(tx_id, ME)
    assert found(ids, ME) == sorted((tx_id, ME) for tx_id in ids[::50])
