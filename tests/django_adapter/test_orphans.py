"""The orphan sweep (django_adapter/orphans.py, ``bundle files``): attachment files
nothing needs any more are listed, and removed only with ``--sweep``; a file a
failed transaction names is never removed.  On every database backend."""

from __future__ import annotations

import datetime as dt
import io
import json
import os

import pytest
from django.core.files.base import ContentFile

from bundlekit import blobs
from django_adapter import attachments, cli, orphans
from django_adapter.models import IncomingTransaction, ServerFile, TxStatus
from django_adapter.workflow import import_paths
from tests.django_adapter.test_attachments import (
    PHOTO,
    SCAN,
    _document_record,
    _signed,
    media,  # noqa: F401 - a fixture
    sha,
    travel,
)
from tests.django_adapter.workflow_support import server_settings
from tests.test_files import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])

OTHER = b"a file whose transaction never came " * 1000


@pytest.fixture
def left_behind(site, server, usb, media, keys, tmp_path):  # noqa: F811 - the fixture above
    """At the server: D-1's first scan and photo, replaced since (no row names
    them), a failed transaction from site-b naming that photo, and a received
    file no transaction names."""
    doc = m.Document.objects.create(code="D-1", scan=ContentFile(SCAN, name="consent.pdf"),
                                    photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    doc.scan = ContentFile(SCAN + b"v2", name="consent.pdf")
    doc.photo = ContentFile(PHOTO + b"v2", name="label.jpg")
    doc.save()
    for old in usb.iterdir():
        old.unlink()
    travel(site, server, usb, media)
    store = attachments.incoming_store("")
    for data in (SCAN, PHOTO, SCAN + b"v2", PHOTO + b"v2"):
        store.remove(sha(data))  # as each import's commit does (the test never commits)
    media("central")
    refused = _document_record(PHOTO, name="../../outside.jpg", code="D-7")
    refused["producer"] = "site-b/x"
    digest = bytes.fromhex(sha(OTHER))
    chunks = list(blobs.chunks(io.BytesIO(OTHER), digest, len(OTHER)))
    sealed = _signed(keys.ids["site-b"], server, tmp_path, [*chunks, refused], name="site-b")
    import_paths([sealed.path], config=server)
    row = IncomingTransaction.objects.using("server").get(tx_id=refused["id"])
    assert row.status == TxStatus.FAILED
    return m.Document.objects.using("server").get(code="D-1")


def test_orphans_are_listed_and_removed_only_when_asked(left_behind):
    first_scan = ServerFile.objects.using("server").get(sha256=sha(SCAN))
    first_photo = ServerFile.objects.using("server").get(sha256=sha(PHOTO))
    storage = left_behind.scan.storage
    report = orphans.sweep("server", min_age=dt.timedelta(0))
    assert {(o["kind"], o["sha256"]) for o in report.orphans} == {
        ("stored", sha(SCAN)), ("received", sha(OTHER))}
    assert report.stored == 4 and report.needed == 1 and report.removed == []
    assert storage.exists(first_scan.name)  # a dry run removes nothing

    # A received copy younger than --min-age may still be waiting for its transaction.
    assert [o["kind"] for o in orphans.sweep("server").orphans] == ["stored"]

    swept = orphans.sweep("server", remove=True, min_age=dt.timedelta(0))
    assert len(swept.removed) == 2
    assert not storage.exists(first_scan.name)
    assert not ServerFile.objects.using("server").filter(sha256=sha(SCAN)).exists()
    assert not attachments.incoming_store("").has(sha(OTHER))
    # The failed transaction still names the first photo: kept for its retry.
    assert storage.exists(first_photo.name)
    # The rows' own files are untouched.
    assert left_behind.scan.read() == SCAN + b"v2"
    assert orphans.sweep("server", min_age=dt.timedelta(0)).orphans == []


def test_bundle_files_is_a_dry_run_by_default(left_behind, settings, keys, tmp_path, capsys):
    settings.BUNDLEKIT = server_settings(keys, tmp_path, **settings.BUNDLEKIT)
    cli.files(database="server", min_age=0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("orphan   ") and "dry run: give --sweep" in lines[-1]
    assert "2 orphan files" in lines[-1] and "1 file kept for transactions" in lines[-1]
    cli.files(database="server", min_age=0, sweep=True, json_out=True)
    data = json.loads(capsys.readouterr().out)
    assert data["swept"] is True and len(data["removed"]) == 2 and data["orphan_bytes"] > 0
    assert not os.path.exists(os.path.join(settings.MEDIA_ROOT, "scans", "consent.pdf"))
