"""bundle export as a library call: seal into the outbox, copy to the stick."""

import errno
import os

import pytest

from bundlekit import forward as forward_mod
from bundlekit.errors import WriteFailed
from bundlekit.fsutil import AtomicFile
from bundlekit.naming import is_bundle_name
from django_adapter.models import ExportedBundle, ImportedBundle, OutgoingTransaction
from django_adapter.workflow import export_to, import_paths
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def bundles_in(folder):
    return sorted(p.name for p in folder.iterdir() if is_bundle_name(p.name))


def test_nothing_pending_writes_nothing(site, usb):
    report = export_to(usb, config=site)
    assert report.nothing_to_do and report.sealed == [] and report.copied == []
    assert list(usb.iterdir()) == []
    assert ExportedBundle.objects.count() == 0


def test_export_into_the_outbox_itself_before_a_rest_push(site):
    """`bundle export --out OUTBOX` seals for `bundle push`; the outbox may not exist yet."""
    assert not site.outbox.exists()
    m.Household.objects.create(code="HH-1")
    report = export_to(site.outbox, config=site)
    assert [b["seq"] for b in report.sealed] == [1]
    assert bundles_in(site.outbox) == [report.sealed[0]["file"]]


def test_two_exports_in_a_row_copy_only_what_is_new(site, server, usb):
    m.Household.objects.create(code="HH-1")
    first = export_to(usb, config=site)
    assert [b["seq"] for b in first.sealed] == [1] and len(first.copied) == 1
    m.Household.objects.create(code="HH-2")
    second = export_to(usb, config=site)
    assert [b["seq"] for b in second.sealed] == [2]
    assert second.copied == [second.sealed[0]["file"]] and second.present == first.copied
    third = export_to(usb, config=site)
    assert third.nothing_to_do and len(third.present) == 2
    assert not OutgoingTransaction.objects.filter(exported=False).exists()
    assert not OutgoingTransaction.objects.filter(is_consumed_server=True).exists()

    run = import_paths([usb], config=server)
    assert [f.status for f in run.files] == ["applied", "applied"]
    assert m.Household.objects.using("server").count() == 2


def test_lost_stick_and_resend(site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    (name,) = export_to(usb, config=site).copied
    # The stick is lost: a fresh one gets every unacknowledged bundle again.
    spare = tmp_path / "spare"
    spare.mkdir()
    again = export_to(spare, config=site)
    assert again.sealed == [] and again.copied == [name]
    assert (spare / name).read_bytes() == (usb / name).read_bytes()
    # A broken stick: without --resend the damaged file counts as present...
    (usb / name).write_bytes((usb / name).read_bytes()[:100])
    assert export_to(usb, config=site).present == [name]
    # ...with --resend it is rewritten from the outbox.
    fixed = export_to(usb, config=site, resend=True)
    assert fixed.copied == [name]
    assert (usb / name).read_bytes() == (site.outbox / name).read_bytes()

    first = import_paths([usb], config=server)
    second = import_paths([spare], config=server)
    assert [f.status for f in first.files] == ["applied"]
    assert [f.status for f in second.files] == ["duplicate"] and second.ok
    assert ImportedBundle.objects.using("server").count() == 1
    assert m.Household.objects.using("server").count() == 1


def test_missing_stick_writes_nothing(site, tmp_path):
    m.Household.objects.create(code="HH-1")
    with pytest.raises(WriteFailed, match="is the stick mounted"):
        export_to(tmp_path / "not-mounted", config=site)
    assert not (tmp_path / "not-mounted").exists()
    assert OutgoingTransaction.objects.filter(exported=False).count() == 1


def test_full_stick_leaves_nothing_that_looks_like_a_bundle(site, usb, monkeypatch, tmp_path):
    m.Household.objects.create(code="HH-1")

    class FullStick(AtomicFile):
        def __init__(self, folder, stem, **kw):
            super().__init__(folder, stem, **kw)
            real = self.file

            class Writer:
                def write(self, data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                def __getattr__(self, name):
                    return getattr(real, name)

            self.file = Writer()

    monkeypatch.setattr(forward_mod, "AtomicFile", FullStick)
    with pytest.raises(WriteFailed, match="full") as caught:
        export_to(usb, config=site)
    assert caught.value.report.copied == []
    assert list(usb.iterdir()) == []  # no temporary file left either
    # Sealed into the outbox all the same: the next export, to a good stick, copies it.
    monkeypatch.undo()
    good = tmp_path / "good"
    good.mkdir()
    report = export_to(good, config=site)
    assert report.sealed == [] and len(report.copied) == 1
