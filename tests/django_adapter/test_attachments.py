"""Attachments: the files behind FileField and ImageField travel inside the bundles
(django_adapter/attachments.py, FORMAT.md §5.5), on every database backend.

The laptop (``default``) and the server (``server``) share this process, so each
gets its own MEDIA_ROOT while it works: the server's storage starts empty."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import include, path

from bundlekit import blobs
from bundlekit.errors import CorruptBundle
from bundlekit.writer import ChainLink, seal
from django_adapter import attachments
from django_adapter.apply import retry_failed
from django_adapter.codec import packb
from django_adapter.models import (
    Decision,
    IncomingTransaction,
    OutgoingFile,
    ServerFile,
    SiteFile,
    SiteFileServer,
    TxStatus,
)
from django_adapter.receipts import apply_receipt
from django_adapter.workflow import export_to, import_paths, prune
from tests.test_files import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])

SCAN = b"%PDF-1.4 consent form " + bytes(range(256)) * 300
PHOTO = b"\xff\xd8\xff\xe0 label photo " + os.urandom(200_000)  # a JPEG does not compress


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def media(settings, tmp_path):
    """``media("site-a")`` / ``media("central")``: whose storage is in use now."""
    settings.BUNDLEKIT = {"ATTACHMENTS": str(tmp_path / "attachments")}

    def use(who: str):
        settings.MEDIA_ROOT = str(tmp_path / who / "media")

    use("site-a")
    return use


def server_bytes(obj, field: str) -> bytes:
    with getattr(obj, field).open("rb") as f:
        return f.read()


def travel(site, server, usb, media):
    """Export on the laptop, carry the stick, import at the server."""
    media("site-a")
    report = export_to(usb, config=site)
    media("central")
    run = import_paths([usb], config=server)
    media("site-a")
    return report, run


def test_files_created_replaced_and_deleted_arrive_byte_identical(site, server, usb, media):
    doc = m.Document.objects.create(code="D-1", scan=ContentFile(SCAN, name="consent.pdf"),
                                    photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    media("central")
    got = m.Document.objects.using("server").get(code="D-1")
    assert server_bytes(got, "scan") == SCAN and server_bytes(got, "photo") == PHOTO
    assert got.scan.name.startswith("scans/") and got.photo.name.startswith("photos/")

    # A research assistant replaces the scan: the server gets the new content.
    media("site-a")
    new_scan = SCAN.replace(b"consent", b"CONSENT")
    doc.scan = ContentFile(new_scan, name="consent-v2.pdf")
    doc.save()
    report, run = travel(site, server, usb, media)
    assert [f.status for f in run.files if f.status != "duplicate"] == ["applied"]
    media("central")
    got = m.Document.objects.using("server").get(code="D-1")
    assert server_bytes(got, "scan") == new_scan and server_bytes(got, "photo") == PHOTO
    # The unchanged photo was not sent again (one copy of each content at the server).
    assert ServerFile.objects.using("server").filter(sha256=sha(PHOTO)).count() == 1
    assert SiteFile.objects.get(sha256=sha(PHOTO)).last_bundle.seq == 1

    media("site-a")
    doc.delete()
    travel(site, server, usb, media)
    assert not m.Document.objects.using("server").filter(code="D-1").exists()


def test_the_same_file_on_two_rows_is_sent_once_and_stored_once(site, server, usb, media):
    m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    m.Document.objects.create(code="D-2", photo=ContentFile(PHOTO, name="label.jpg"))
    assert SiteFile.objects.count() == 1 and OutgoingFile.objects.count() == 2
    report, run = travel(site, server, usb, media)
    (bundle,) = report.sealed
    media("central")
    a, b = (m.Document.objects.using("server").get(code=c) for c in ("D-1", "D-2"))
    assert a.photo.name == b.photo.name and server_bytes(b, "photo") == PHOTO
    assert ServerFile.objects.using("server").count() == 1
    stored = os.listdir(os.path.join(os.path.dirname(a.photo.path)))
    assert stored == [os.path.basename(a.photo.name)]  # one file in the server's storage
    # One copy of the bytes went in the bundle, not two.
    assert os.path.getsize(usb / bundle["file"]) < len(PHOTO) * 1.5


def test_a_copy_aside_keeps_what_was_saved_when_the_file_is_overwritten(site, server, usb, media):
    doc = m.Document.objects.create(code="D-1", scan=ContentFile(SCAN, name="consent.pdf"))
    with open(doc.scan.path, "wb") as f:  # replaced in place after the save, not saved again
        f.write(b"something else")
    travel(site, server, usb, media)
    media("central")
    assert server_bytes(m.Document.objects.using("server").get(code="D-1"), "scan") == SCAN


def test_a_file_field_without_its_file_travels_as_its_name(site, server, usb, media):
    m.Document.objects.create(code="D-1", scan="scans/never-uploaded.pdf")
    travel(site, server, usb, media)
    assert m.Document.objects.using("server").get(code="D-1").scan.name == "scans/never-uploaded.pdf"
    assert SiteFile.objects.count() == 0


def _signed(site_keys, server, tmp_path, records, *, seq=1, prev=None, name="crafted"):
    """A bundle signed by site-a around any records: what a buggy or hostile site sends."""
    out = tmp_path / name
    out.mkdir()
    (sealed,) = seal(records, identity=site_keys, recipients=[server.identity.public],
                     out_dir=out, after=ChainLink(seq - 1, prev))
    return sealed


def _document_record(data: bytes, name="photos/label.jpg", code="D-9"):
    """The record a laptop captures for a Document with ``data`` as its photo."""
    import datetime as dt
    import uuid

    return {"id": uuid.uuid4(), "model": "test_files.document", "action": "I", "pk": 1,
            "natural_key": [code], "ts": dt.datetime.now(dt.UTC), "producer": "site-a/x",
            "fields": {"code": code, "scan": "", "photo": name}, "m2m": {},
            "files": {"photo": {"sha256": hashlib.sha256(data).digest(), "size": len(data),
                                "content_type": "image/jpeg", "name": name}}}


def test_a_file_that_does_not_match_its_digest_is_refused_and_the_good_copy_applies(
        site, server, keys, media, tmp_path):
    media("central")
    record = _document_record(PHOTO)
    digest = hashlib.sha256(PHOTO).digest()
    bad = [*blobs.chunks(io.BytesIO(PHOTO), digest, len(PHOTO))]
    bad[-1]["data"] = bytes(len(bad[-1]["data"]))  # damaged before signing: a buggy site
    lie = _signed(keys.ids["site-a"], server, tmp_path, [*bad, record], name="bad")
    run = import_paths([lie.path], config=server)
    assert not run.ok and "does not have the SHA-256" in run.files[0].reason
    assert not m.Document.objects.using("server").exists()
    assert not ServerFile.objects.using("server").exists()
    good = [*blobs.chunks(io.BytesIO(PHOTO), digest, len(PHOTO))]
    fixed = _signed(keys.ids["site-a"], server, tmp_path, [*good, record], name="good")
    run = import_paths([fixed.path], config=server)
    assert [f.status for f in run.files] == ["applied"]
    assert server_bytes(m.Document.objects.using("server").get(code="D-9"), "photo") == PHOTO


def test_a_missing_file_fails_the_record_with_a_reason_and_applies_once_it_arrives(
        site, server, keys, media, tmp_path):
    media("central")
    record = _document_record(PHOTO)
    first = _signed(keys.ids["site-a"], server, tmp_path, [record], name="first")
    import_paths([first.path], config=server)
    row = IncomingTransaction.objects.using("server").get(tx_id=record["id"])
    assert row.status == TxStatus.FAILED and "has not arrived" in row.reason
    assert not m.Document.objects.using("server").exists()  # never a row pointing at nothing
    assert retry_failed(using="server").failed == 1  # a retry before it came changes nothing

    digest = hashlib.sha256(PHOTO).digest()
    chunks = list(blobs.chunks(io.BytesIO(PHOTO), digest, len(PHOTO)))
    second = _signed(keys.ids["site-a"], server, tmp_path, chunks, seq=2,
                     prev=first.digest, name="second")
    (report,) = import_paths([second.path], config=server).files
    # The bundle that completed the file retried the transaction waiting for it.
    assert report.status == "applied" and report.files_arrived == [digest.hex()]
    assert report.retried["applied"] == 1
    row.refresh_from_db()
    assert row.status == TxStatus.APPLIED
    decision = Decision.objects.using("server").get(tx_id=record["id"])
    assert (decision.who, decision.choice) == ("bundlekit", "retry")
    assert server_bytes(m.Document.objects.using("server").get(code="D-9"), "photo") == PHOTO


def test_a_stored_copy_damaged_at_the_server_fails_the_record_not_the_row(
        site, server, keys, media, tmp_path):
    media("central")
    digest = hashlib.sha256(PHOTO).digest()
    chunks = list(blobs.chunks(io.BytesIO(PHOTO), digest, len(PHOTO)))
    first = _signed(keys.ids["site-a"], server, tmp_path, chunks, name="first")
    import_paths([first.path], config=server)
    store = attachments.incoming_store("")
    with open(store.path(digest), "r+b") as f:  # the server's disk damaged it
        f.seek(100)
        f.write(b"rot")
    record = _document_record(PHOTO)
    second = _signed(keys.ids["site-a"], server, tmp_path, [record], seq=2, prev=first.digest,
                     name="second")
    import_paths([second.path], config=server)
    row = IncomingTransaction.objects.using("server").get(tx_id=record["id"])
    assert row.status == TxStatus.FAILED and "is damaged" in row.reason
    assert not m.Document.objects.using("server").exists()
    assert not store.has(digest) and not ServerFile.objects.using("server").exists()


def test_local_copies_are_pruned_only_once_a_receipt_confirms_them(site, server, usb, media):
    m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    copy = SiteFile.objects.get().copy
    assert open(copy, "rb").read() == PHOTO
    assert prune(config=site).attachments == []  # no receipt yet: kept
    assert os.path.exists(copy)
    receipts = sorted(server.receipts_out.iterdir())
    assert receipts
    for r in receipts:
        apply_receipt(r, config=site)
    report = prune(config=site)
    assert report.transactions == 1  # the receipt's outcomes cover the transaction, not the chunk
    assert report.attachments == [copy] and not os.path.exists(copy)
    assert SiteFile.objects.get().copy == ""


def test_a_large_file_spans_bundles_and_arrives_whole(site, server, usb, media, keys, tmp_path):
    data = os.urandom(3 * blobs.BLOB_CHUNK_SIZE + 123)
    from dataclasses import replace

    small = replace(site, max_bytes=2 * blobs.BLOB_CHUNK_SIZE)
    m.Document.objects.create(code="D-1", scan=ContentFile(data, name="ecg.bin"))
    report, run = travel(small, server, usb, media)
    assert len(report.sealed) >= 2
    media("central")
    assert server_bytes(m.Document.objects.using("server").get(code="D-1"), "scan") == data


def test_capture_refuses_a_file_over_the_limit(settings, media):
    settings.BUNDLEKIT = {**settings.BUNDLEKIT, "MAX_FILE_BYTES": 1000}
    with pytest.raises(attachments.AttachmentError, match="MAX_FILE_BYTES"), transaction.atomic():
        m.Document.objects.create(code="D-1", scan=ContentFile(SCAN, name="consent.pdf"))
    assert not m.Document.objects.exists()


def test_the_packed_record_names_the_file_by_digest(media):
    doc = m.Document.objects.create(code="D-1", scan=ContentFile(SCAN, name="consent.pdf"))
    from django_adapter.models import OutgoingTransaction

    record = OutgoingTransaction.objects.get().record
    meta = record["files"]["scan"]
    assert meta["sha256"].hex() == sha(SCAN) and meta["size"] == len(SCAN)
    assert meta["content_type"] == "application/pdf" and meta["name"] == doc.scan.name
    assert packb(record)  # still a plain record


def test_a_corrupt_chunk_record_refuses_the_bundle(site, server, keys, media, tmp_path):
    media("central")
    bad = blobs.chunk_record(b"\x00" * 32, 0, 10, b"x" * 10)
    bad["extra"] = 1
    sealed = _signed(keys.ids["site-a"], server, tmp_path, [bad, _document_record(PHOTO)])
    run = import_paths([sealed.path], config=server)
    assert not run.ok and "other fields" in run.files[0].reason
    assert CorruptBundle  # the class the refusal maps to


# ------------------------------------------------------------------ over REST

urlpatterns = [path("bundles/", include("django_adapter.urls"))]


@pytest.mark.urls(__name__)
def test_files_arrive_over_resumable_rest_upload(client, settings, site, server, keys, media, tmp_path):
    """`bundle push`'s protocol, in pieces: the files inside arrive like the rows."""
    scan = os.urandom(blobs.BLOB_CHUNK_SIZE + 4321)
    m.Document.objects.create(code="D-1", scan=ContentFile(scan, name="ecg.pdf"),
                              photo=ContentFile(PHOTO, name="label.jpg"))
    report = export_to(site.outbox, config=site)
    data = (site.outbox / report.sealed[0]["file"]).read_bytes()
    media("central")
    settings.BUNDLEKIT = {
        "SITE": "central", "IDENTITY": str(keys.key("central")), "TRUSTED": [str(keys.pub("site-a"))],
        "INBOX": str(tmp_path / "rest-inbox"), "RECEIPTS_OUT": None, "DATABASE": "server",
        "ATTACHMENTS": settings.BUNDLEKIT["ATTACHMENTS"],
        "REST": {"TOKENS": ["tok"], "IMPORT_ON_UPLOAD": True, "MAX_UPLOAD_BYTES": 1 << 30,
                 "UPLOAD_DIR": str(tmp_path / "uploads")},
    }
    uid, size, half = hashlib.sha256(data).hexdigest(), len(data), len(data) // 2
    auth = {"HTTP_AUTHORIZATION": "Bearer tok"}
    for start, end in ((0, half), (half, size)):
        r = client.put(f"/bundles/uploads/{uid}", data=data[start:end],
                       content_type="application/octet-stream",
                       HTTP_CONTENT_RANGE=f"bytes {start}-{end - 1}/{size}", **auth)
    assert r.status_code == 201, r.json()
    got = m.Document.objects.using("server").get(code="D-1")
    assert server_bytes(got, "scan") == scan and server_bytes(got, "photo") == PHOTO


def test_a_hostile_file_name_fails_the_record_and_writes_nothing_outside(
        site, server, keys, media, tmp_path):
    media("central")
    digest = hashlib.sha256(PHOTO).digest()
    record = _document_record(PHOTO, name="../../outside.jpg")
    sealed = _signed(keys.ids["site-a"], server, tmp_path,
                     [*blobs.chunks(io.BytesIO(PHOTO), digest, len(PHOTO)), record])
    import_paths([sealed.path], config=server)
    row = IncomingTransaction.objects.using("server").get(tx_id=record["id"])
    assert row.status == TxStatus.FAILED and "is not acceptable" in row.reason
    assert not (tmp_path / "outside.jpg").exists() and not (tmp_path / "central" / "outside.jpg").exists()
    assert not m.Document.objects.using("server").exists()


def test_a_bundle_with_more_file_bytes_than_the_server_takes_is_refused(
        site, server, keys, media, settings, tmp_path):
    media("central")
    settings.BUNDLEKIT = {**settings.BUNDLEKIT, "MAX_FILE_BYTES_PER_BUNDLE": 1000}
    digest = hashlib.sha256(PHOTO).digest()
    sealed = _signed(keys.ids["site-a"], server, tmp_path,
                     [*blobs.chunks(io.BytesIO(PHOTO), digest, len(PHOTO)), _document_record(PHOTO)])
    run = import_paths([sealed.path], config=server)
    assert not run.ok and "MAX_FILE_BYTES_PER_BUNDLE" in run.files[0].reason
    assert not IncomingTransaction.objects.using("server").exists()


# ----------------------------------------------- receipts say which files arrived (issue 16)


def receipts_back(site, server):
    """Every receipt the server wrote so far, applied at the laptop in signed order."""
    from bundlekit.receipt import in_created_order

    return [apply_receipt(r, config=site) for r in in_created_order(server.receipts_out.iterdir())]


def test_a_receipt_says_which_files_the_server_holds_and_exports_leave_them_out(
        site, server, usb, media):
    m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    reports = receipts_back(site, server)
    assert sum(r.files_held for r in reports) == 1
    (state,) = SiteFileServer.objects.all()
    assert (state.server, state.state) == (server.identity.fingerprint, "held")
    # After a restore from backup the laptop's database forgets that it sent the
    # photo; the receipt still says the server holds it, so its bytes stay home.
    SiteFile.objects.update(last_bundle=None, first_bundle=None)
    m.Document.objects.create(code="D-2", photo=ContentFile(PHOTO, name="label.jpg"))
    for old in usb.iterdir():
        old.unlink()
    report, run = travel(site, server, usb, media)
    (bundle,) = report.sealed
    assert os.path.getsize(usb / bundle["file"]) < len(PHOTO) // 2  # the record, not the photo
    assert [f.status for f in run.files] == ["applied"]
    assert run.files[0].failed == 0
    media("central")
    got = m.Document.objects.using("server").get(code="D-2")
    assert server_bytes(got, "photo") == PHOTO
    assert ServerFile.objects.using("server").count() == 1  # never stored twice


def test_a_receipt_older_than_the_last_word_changes_nothing(site, server, usb, media):
    """Receipts are read in any order: what a server said last of a file stands."""
    import datetime as dt

    m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    receipts_back(site, server)
    digest = bytes.fromhex(sha(PHOTO))
    state = SiteFileServer.objects.get()
    before = state.as_of - dt.timedelta(seconds=1)
    assert attachments.note_server_files(state.server, [], [digest], before, "default") == (0, 0)
    assert SiteFileServer.objects.get().state == "held"


def test_a_file_damaged_at_the_server_is_asked_for_sent_again_and_the_record_applies(
        site, server, usb, media):
    """The stored photo rots on the server's disk after the laptop pruned its copy.
    The next change naming it fails there with a reason; the receipt says the
    server needs the file; the laptop sends it again from its own storage; the
    bundle that brings it retries the change, which applies, and the damaged file
    is repaired under its own name (the first row points at good bytes again)."""
    doc = m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    receipts_back(site, server)
    assert prune(config=site).attachments  # confirmed held: the copy aside goes
    # The received copy goes once the stored one is committed (an on-commit hook,
    # which the test's wrapping transaction never runs).
    attachments.incoming_store("").remove(sha(PHOTO))
    media("central")
    first = m.Document.objects.using("server").get(code="D-1")
    with open(first.photo.path, "r+b") as f:  # the server's disk damages it
        f.seek(1000)
        f.write(b"rot")

    media("site-a")
    doc.scan = ContentFile(SCAN, name="consent.pdf")  # the photo is unchanged
    doc.save()
    for old in usb.iterdir():
        old.unlink()
    report, run = travel(site, server, usb, media)
    (failed,) = IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED)
    assert "stored copy of photos/label.jpg" in failed.reason and "is damaged" in failed.reason
    assert run.files[0].details and "is damaged" in run.files[0].details[0]
    assert m.Document.objects.using("server").get(code="D-1").scan.name == ""  # not applied

    reports = receipts_back(site, server)
    assert reports[-1].files_needed == 1
    assert SiteFileServer.objects.get(file__sha256=sha(PHOTO)).state == "needed"
    # The scan's copy goes (held); the photo has none left: it is read from storage.
    assert [os.path.basename(p) for p in prune(config=site).attachments] == [sha(SCAN)]
    for old in usb.iterdir():
        old.unlink()
    report, run = travel(site, server, usb, media)
    (resent,) = report.sealed
    assert resent["records"] == 0  # only the photo's chunks: no change was pending
    assert report.files_unavailable == []
    (imported,) = [f for f in run.files if f.seq == resent["seq"]]
    assert imported.files_arrived == [sha(PHOTO)] and imported.retried["applied"] == 1
    failed.refresh_from_db()
    assert failed.status == TxStatus.APPLIED
    media("central")
    got = m.Document.objects.using("server").get(code="D-1")
    assert server_bytes(got, "scan") == SCAN and server_bytes(got, "photo") == PHOTO
    assert got.photo.name == first.photo.name  # repaired in place
    assert ServerFile.objects.using("server").filter(sha256=sha(PHOTO)).count() == 1

    receipts_back(site, server)
    assert SiteFileServer.objects.get(file__sha256=sha(PHOTO)).state == "held"
    assert prune(config=site).attachments  # confirmed again: the copy taken again goes


def test_a_file_the_site_no_longer_has_is_named_at_export(site, server, usb, media):
    m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    travel(site, server, usb, media)
    receipts_back(site, server)
    prune(config=site)
    row = SiteFile.objects.get()
    os.unlink(m.Document.objects.get(code="D-1").photo.path)  # gone from its storage too
    SiteFileServer.objects.update(state="needed")
    report = export_to(usb, config=site)
    assert report.files_unavailable == [{"name": row.name, "sha256": row.sha256}]
    assert report.sealed == []


def test_only_a_receipt_issuer_can_say_a_file_is_held(site, server, usb, media, keys, tmp_path):
    """A peer laptop may send us bundles (TRUSTED) but never acknowledge ours: its
    receipt claiming the server holds our photo is refused and prunes nothing."""
    from bundlekit.errors import ReceiptUntrusted
    from bundlekit.receipt import write_receipt

    m.Document.objects.create(code="D-1", photo=ContentFile(PHOTO, name="label.jpg"))
    export_to(usb, config=site)
    forged = write_receipt(tmp_path, issuer=keys.ids["site-b"], subject=keys.ids["site-a"].public,
                           entries=[], files_held=[bytes.fromhex(sha(PHOTO))])
    with pytest.raises(ReceiptUntrusted):
        apply_receipt(forged, config=site)
    assert not SiteFileServer.objects.exists()
    assert prune(config=site).attachments == []
    assert os.path.exists(SiteFile.objects.get().copy)
