"""Wrong clocks: a laptop whose clock is behind learns it from the server's receipts
and stamps its changes no earlier than the server's time; a clock that is ahead is
named in the server's status."""

import datetime as dt
import shutil
from types import SimpleNamespace

import pytest
from django.test import override_settings
from django.utils import timezone

import bundlekit.writer as writer
from bundlekit.receipt import write_receipt
from django_adapter import clock
from django_adapter.models import IncomingTransaction, OutgoingTransaction, TxStatus
from django_adapter.receipts import ledger_entries
from django_adapter.status import server_status, site_status
from django_adapter.workflow import export_to, import_paths, import_receipts
from tests.django_adapter.workflow_support import config_of, site_settings
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


# ------------------------------------------------------------ at the server


@pytest.fixture
def site_b(keys, tmp_path):
    """A second laptop (site-b).  It shares the test's laptop database with site-a:
    each export seals whatever is pending, so the tests export between the sites'
    changes."""
    return config_of(site_settings(keys, tmp_path, "site-b"), tmp_path)


def wrong_clock(monkeypatch, by):
    """This laptop's clock is off by ``by`` (what django_adapter.clock reads)."""
    real = timezone.now
    monkeypatch.setattr(clock, "timezone", SimpleNamespace(now=lambda: real() + by))


def send(config, server, tmp_path, name):
    """Export to a new stick and import the bundle sealed now; its FileReport."""
    stick = tmp_path / name
    stick.mkdir()
    (sealed,) = export_to(stick, config=config).sealed
    (report,) = import_paths([stick / sealed["file"]], config=server).files
    return report


def edit(code, village, *, at="site-a"):
    """A research assistant edits a household on the laptop of site ``at``."""
    with override_settings(BUNDLEKIT_SITE=at):
        hh = m.Household.objects.get(code=code)
        hh.village = village
        hh.save()


def test_a_laptop_ahead_does_not_win_forever(site, site_b, server, tmp_path, monkeypatch):
    m.Household.objects.create(code="HH-1")
    send(site, server, tmp_path, "a1")
    with monkeypatch.context() as patch:
        wrong_clock(patch, dt.timedelta(days=3))  # site-a's clock: three days ahead
        edit("HH-1", "site-a, wrong clock")
    f = send(site, server, tmp_path, "a2")
    row = IncomingTransaction.objects.using("server").get(bundle__bundle_id=f.bundle_id)
    assert row.record["ts"] > timezone.now() + dt.timedelta(days=2)  # as the laptop stamped it
    assert row.timestamp <= row.bundle.received  # as the server orders it
    # site-b, clock right, edits the same household afterwards: its change wins.
    edit("HH-1", "site-b, later", at="site-b")
    f = send(site_b, server, tmp_path, "b1")
    assert (f.applied, f.stale) == (1, 0), f.messages
    assert m.Household.objects.using("server").get(code="HH-1").village == "site-b, later"


def test_a_laptop_behind_wins_once_it_has_seen_the_server(site, site_b, server, tmp_path,
                                                           monkeypatch):
    m.Household.objects.create(code="HH-1")
    send(site, server, tmp_path, "a1")
    edit("HH-1", "site-b first", at="site-b")
    send(site_b, server, tmp_path, "b1")
    with monkeypatch.context() as patch:
        wrong_clock(patch, -dt.timedelta(days=1))  # site-a's clock: a day behind
        # An edit made before site-a saw a receipt is stamped a day early: it loses...
        edit("HH-1", "site-a, clock behind")
        assert send(site, server, tmp_path, "a2").stale == 1
        # ...after a receipt, its changes are stamped no earlier than the server's time.
        back = tmp_path / "back"
        back.mkdir()
        receipt_written_at(timezone.now(), site, server, back)
        import_receipts([back], config=site)
        assert clock.offset("default") > dt.timedelta(hours=23)
        edit("HH-1", "site-a, after the receipt")
    f = send(site, server, tmp_path, "a3")
    assert (f.applied, f.stale) == (1, 0), f.messages
    assert m.Household.objects.using("server").get(code="HH-1").village == "site-a, after the receipt"


def test_a_delete_is_not_undone_by_another_sites_update(site, site_b, server, tmp_path,
                                                         monkeypatch):
    for code in ("HH-1", "HH-2"):
        m.Household.objects.create(code=code)
    send(site, server, tmp_path, "a1")
    # site-b edits both households: HH-1 with its clock an hour behind (stamped before
    # site-a's delete), HH-2 with its clock an hour ahead (stamped after it).
    with monkeypatch.context() as patch:
        wrong_clock(patch, -dt.timedelta(hours=1))
        edit("HH-1", "site-b, older", at="site-b")
    with monkeypatch.context() as patch:
        wrong_clock(patch, dt.timedelta(hours=1))
        edit("HH-2", "site-b, newer", at="site-b")
    stick_b = tmp_path / "b1"
    stick_b.mkdir()
    export_to(stick_b, config=site_b)
    # site-a deletes both, and its deletes reach the server first.
    m.Household.objects.all().delete()
    send(site, server, tmp_path, "a2")
    (f,) = import_paths([stick_b], config=server).files
    assert (f.applied, f.stale) == (0, 2), f.messages
    assert not m.Household.objects.using("server").exists()
    ledger = IncomingTransaction.objects.using("server")
    stale = {r.record["natural_key"][0]: r for r in ledger.filter(status=TxStatus.STALE)}
    deleted = {r.record["natural_key"][0]: r for r in ledger.filter(action="D")}
    # HH-2's update is later than its delete, as the server orders them: still stale,
    # kept in the ledger for a person to decide (bundle review / resolve --take-site).
    assert stale["HH-2"].timestamp > deleted["HH-2"].timestamp
    assert stale["HH-1"].timestamp < deleted["HH-1"].timestamp
    assert stale["HH-2"].record["fields"]["village"] == "site-b, newer"
