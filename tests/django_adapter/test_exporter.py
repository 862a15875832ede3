"""export_pending(): which rows a bundle marks exported, and where file chunks go,
when the pending ids are not one run and the files sit past the first read chunk."""

from __future__ import annotations

import os

import pytest
from django.core.files.base import ContentFile

from bundlekit import blobs
from bundlekit.keys import Identity
from bundlekit.reader import open_bundle
from django_adapter import exporter
from django_adapter.exporter import export_pending, id_ranges
from django_adapter.models import ExportedBundle, OutgoingTransaction
from tests.test_app import models as m
from tests.test_files import models as fm

pytestmark = pytest.mark.django_db(databases=["default", "server"])


@pytest.fixture(scope="module")
def keys():
    return {"site": Identity.generate("site-a"), "server": Identity.generate("central")}


@pytest.fixture(params=["sql", "orm"])
def export(request, tmp_path, keys, monkeypatch):
    """Export as this backend does: by the SQL export writes for SQLite, PostgreSQL
    and MariaDB, or (``orm``) through the ORM as on any other backend."""
    if request.param == "orm":
        monkeypatch.setattr(exporter, "_SQL_VENDORS", frozenset())

    def run(**kwargs):
        return export_pending(tmp_path / "outbox", identity=keys["site"],
                              recipients=[keys["server"].public], **kwargs)

    run.outbox = tmp_path / "outbox"
    return run


def test_only_the_sealed_rows_are_marked_whatever_the_gaps_between_them(export, monkeypatch):
    monkeypatch.setattr(exporter, "RANGE_MIN", 4)
    for i in range(30):
        m.Household.objects.create(code=f"HH-{i}", village=os.urandom(48).hex(), note=os.urandom(96).hex())
    ids = list(OutgoingTransaction.objects.order_by("id").values_list("id", flat=True))
    assert len(ids) == 30
    # Gaps of every kind: a long run (ranged UPDATE), short runs and single ids (IN
    # lists), a row gone and rows already exported by an earlier bundle in between.
    gone = {ids[10], ids[12], ids[13], ids[20]}
    earlier = {ids[15], ids[17]}
    OutgoingTransaction.objects.filter(id__in=gone).delete()
    OutgoingTransaction.objects.filter(id__in=earlier).update(exported=True)
    pending = [i for i in ids if i not in gone | earlier]

    bundles = export(max_bytes=4096)
    assert len(bundles) > 1  # roll-over: each bundle marks its own rows only
    sealed = []
    for b in bundles:
        mine = list(OutgoingTransaction.objects.filter(exported_bundle=b)
                    .order_by("id").values_list("id", flat=True))
        assert b.id_ranges == id_ranges(mine)
        assert (b.first_outgoing_id, b.last_outgoing_id, b.record_count) == (
            mine[0], mine[-1], len(mine))
        sealed += mine
    assert sealed == pending
    assert any(count >= 4 for b in bundles for _, count in b.id_ranges)
    assert any(count < 4 for b in bundles for _, count in b.id_ranges)
    # The rows an earlier bundle carried keep their state; nothing else is pending.
    assert set(OutgoingTransaction.objects.filter(exported=True, exported_bundle=None)
               .values_list("id", flat=True)) == earlier
    assert not OutgoingTransaction.objects.filter(exported=False).exists()
    assert ExportedBundle.objects.count() == len(bundles)


def test_a_file_past_the_first_read_chunk_goes_right_before_its_transaction(
        export, keys, monkeypatch, settings, tmp_path):
    settings.BUNDLEKIT = {"ATTACHMENTS": str(tmp_path / "attachments")}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    monkeypatch.setattr(exporter, "CHUNK", 3)
    for i in range(8):  # the document's transaction is the last of the third read chunk
        m.Household.objects.create(code=f"HH-{i}")
    scan = os.urandom(1000)
    fm.Document.objects.create(code="D-1", scan=ContentFile(scan, name="consent.pdf"))
    m.Household.objects.create(code="HH-last")

    (bundle,) = export()
    with open_bundle(export.outbox / bundle.file_name, [keys["server"]]) as opened:
        kinds = [r.get("model", blobs.BLOB_KEY if blobs.BLOB_KEY in r else None)
                 for r in opened]
    assert kinds == ["test_app.household"] * 8 + [blobs.BLOB_KEY, "test_files.document",
                                                  "test_app.household"]
    assert bundle.record_count == 10  # transactions, not the chunk record


@pytest.mark.parametrize("ids, runs", [
    ([], []),
    ([7], [[7, 1]]),
    (list(range(5, 505)), [[5, 500]]),  # one run: the usual bundle
    ([1, 2, 3, 5, 6, 9], [[1, 3], [5, 2], [9, 1]]),
    ([1, 3, 4], [[1, 1], [3, 2]]),  # a gap right after the first
    ([1, 2, 3, 5, 5], [[1, 3], [5, 1], [5, 1]]),  # as many ids as the span, the last slice differs
    ([1, 1, 3], [[1, 1], [1, 1], [3, 1]]),  # as many ids as the span, not one run: walked
])
def test_id_ranges_are_the_runs_of_consecutive_ids(ids, runs, monkeypatch):
    from array import array

    for piece in (1 << 16, 2):  # one run is checked a slice of ids at a time
        monkeypatch.setattr(exporter, "_RUN_SLICE", piece)
        assert id_ranges(ids) == runs
        assert id_ranges(array("q", ids)) == runs
