"""Wrong clocks: a laptop whose clock is behind learns it from the server's receipts
and stamps its changes no earlier than the server's time; a clock that is ahead is
named in the server's status."""

import datetime as dt
import shutil
from types import SimpleNamespace

import pytest
from django.utils import timezone

import bundlekit.writer as writer
from bundlekit.receipt import write_receipt
from django_adapter import clock
from django_adapter.models import OutgoingTransaction
from django_adapter.receipts import ledger_entries
from django_adapter.status import server_status, site_status
from django_adapter.workflow import export_to, import_paths, import_receipts
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def receipt_written_at(when, site, server, folder):
    """The server's receipt for site-a, as if its clock read ``when``."""
    entries, contiguous = ledger_entries(site.identity.fingerprint, "server")
    return write_receipt(folder, issuer=server.identity, subject=site.identity.public,
                         entries=entries, created=when, highest_contiguous_seq=contiguous)


def last_ts():
    return OutgoingTransaction.objects.order_by("-id").first().timestamp


def test_a_laptop_behind_stamps_its_changes_after_the_receipt_it_saw(site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    import_paths([usb], config=server)
    before = timezone.now()
    assert abs(last_ts() - before) < dt.timedelta(minutes=1)

    # The server's clock reads three days later than the laptop's.
    server_now = timezone.now() + dt.timedelta(days=3)
    back = tmp_path / "back"
    back.mkdir()
    receipt_written_at(server_now, site, server, back)
    import_receipts([back], config=site)
    assert clock.offset("default") >= dt.timedelta(days=3) - dt.timedelta(minutes=1)

    m.Household.objects.create(code="HH-2")
    assert last_ts() >= server_now
    status = site_status(site)
    assert status["clock_behind_seconds"] >= 3 * 86400 - 60
    assert "behind the server's" in status["clock_note"]

    # An older receipt found later on a stick does not undo what a newer one said.
    older = tmp_path / "older"
    older.mkdir()
    receipt_written_at(timezone.now() - dt.timedelta(days=1), site, server, older)
    import_receipts([older], config=site)
    assert clock.offset("default") >= dt.timedelta(days=3) - dt.timedelta(minutes=1)


def test_a_laptop_on_time_keeps_its_clock(site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    run = import_paths([usb], config=server)
    for path in run.receipts_written:
        shutil.copy(path, usb)
    import_receipts([usb], config=site)
    assert clock.offset("default") == dt.timedelta(0)
    assert site_status(site)["clock_note"] == ""


def test_a_laptop_ahead_is_named_in_the_server_status(site, server, usb, monkeypatch):
    m.Household.objects.create(code="HH-1")
    ahead = timezone.now() + dt.timedelta(days=2, hours=1)
    # The laptop seals with its clock two days ahead (the manifest's `created`).
    ahead_clock = SimpleNamespace(
        UTC=dt.UTC, datetime=SimpleNamespace(now=lambda tz=None: ahead.astimezone(tz)))
    monkeypatch.setattr(writer, "dt", ahead_clock)
    export_to(usb, config=site)
    monkeypatch.undo()
    import_paths([usb], config=server)
    (sender,) = server_status(server)
    assert sender["clock_ahead_seconds"] >= 2 * 86400
    assert "clock ahead of the server's by 2 days" in sender["notes"]
