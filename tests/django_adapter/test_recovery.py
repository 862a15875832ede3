"""A laptop restored from backup: `bundle recover` puts its chain back in line with
the server, and everything entered reaches the server exactly once."""

import shutil

import pytest
from django.core import serializers

from bundlekit.errors import BundleError, ReviewError
from django_adapter import capture, review
from django_adapter.models import (
    BundleStatus,
    ExportChainState,
    ExportedBundle,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
    TxStatus,
)
from django_adapter.recovery import FORKED, NoReceipt, recover
from django_adapter.status import server_status
from django_adapter.workflow import export_to, import_paths, import_receipts, prune
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])

#: What a backup of the laptop holds, parents first.
LAPTOP = [m.Household, m.Tag, m.Subject, ExportChainState, ExportedBundle, OutgoingTransaction]


class Backup:
    """The laptop's database and outbox as they were at one moment."""

    def __init__(self, site, folder):
        self.site, self.folder = site, folder
        self.data = serializers.serialize(
            "json", [o for model in LAPTOP for o in model._base_manager.using("default").order_by("pk")]
        )
        shutil.copytree(site.outbox, folder)

    def restore(self):
        """What restoring the disk does: every table and the outbox as they were."""
        with capture.suspended():
            for model in reversed(LAPTOP):
                model._base_manager.using("default").all().delete()
            for obj in serializers.deserialize("json", self.data, using="default"):
                obj.save(using="default")
        shutil.rmtree(self.site.outbox)
        shutil.copytree(self.folder, self.site.outbox)


def round_trip(site, server, usb):
    """Export to the stick, import at the server, bring the receipt back."""
    export_to(usb, config=site)
    run = import_paths([usb], config=server)
    for path in run.receipts_written:
        shutil.copy(path, usb)
    import_receipts([usb], config=site)
    return run


def server_codes():
    return sorted(m.Household.objects.using("server").values_list("code", flat=True))


def test_restored_laptop_recovers_and_every_row_arrives_once(site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    m.Household.objects.create(code="HH-2")
    round_trip(site, server, usb)
    m.Household.objects.create(code="HH-3")
    backup = Backup(site, tmp_path / "backup")

    # After the backup: two exports, both reach the server.
    m.Household.objects.create(code="HH-4")
    export_to(usb, config=site)
    m.Household.objects.create(code="HH-5")
    round_trip(site, server, usb)
    assert server_codes() == ["HH-1", "HH-2", "HH-3", "HH-4", "HH-5"]

    # The disk dies; the backup is restored; the research assistant goes on.
    backup.restore()
    assert ExportChainState.objects.get().last_seq == 1
    m.Household.objects.create(code="HH-6")
    hh1 = m.Household.objects.get(code="HH-1")
    hh1.village = "Mochudi"
    hh1.save()
    # Exporting now seals a second "seq 2": the server quarantines it as a fork.
    run = round_trip(site, server, usb)
    (fork,) = [f for f in run.files if f.kind == "bundle" and f.status == BundleStatus.FORK]
    fork_id = ImportedBundle.objects.using("server").get(status=BundleStatus.FORK).bundle_id
    assert server_codes() == ["HH-1", "HH-2", "HH-3", "HH-4", "HH-5"]

    report = recover([usb], config=site)
    assert (report.server_seq, report.chain_before, report.chain_after) == (3, 2, 3)
    assert [b["seq"] for b in report.forked] == [2] and report.requeued == 3
    assert report.moved and (site.outbox / FORKED / report.forked[0]["file"]).is_file()
    assert OutgoingTransaction.objects.filter(exported=False).count() == 3

    after = export_to(usb, config=site)
    assert [b["seq"] for b in after.sealed] == [4]
    run = import_paths([usb], config=server)
    (seq4,) = [f for f in run.files if f.kind == "bundle" and f.seq == 4]
    # HH-3 was entered before the backup and already delivered in seq 2: a duplicate.
    assert (seq4.status, seq4.applied, seq4.duplicate, seq4.failed) == ("applied", 2, 1, 0)
    assert server_codes() == ["HH-1", "HH-2", "HH-3", "HH-4", "HH-5", "HH-6"]
    assert m.Household.objects.using("server").get(code="HH-1").village == "Mochudi"
    ledger = IncomingTransaction.objects.using("server")
    assert ledger.filter(status=TxStatus.FAILED).count() == 0
    assert ledger.count() == len(set(ledger.values_list("tx_id", flat=True)))

    # The receipt comes back; everything the server holds is pruned at the site.
    for path in run.receipts_written:
        shutil.copy(path, usb)
    import_receipts([usb], config=site)
    prune(config=site)
    assert OutgoingTransaction.objects.count() == 0
    # Recovering again changes nothing.
    again = recover([usb], config=site)
    assert not again.changed and again.chain_after == 4

    # At the server the fork is still quarantined: the data manager settles it with
    # the review tools (its changes came again in seq 4).
    (item,) = review.queue("server", outcome="quarantined")
    assert (item.site, item.seq, item.bundle_id) == ("site-a", 2, fork_id)
    with pytest.raises(ReviewError, match="bundle recover"):
        review.resolve(fork_id, "take-site", note="n", who="dm", using="server")
    decision = review.resolve(fork_id, "discard", who="dm", using="server",
                              note="laptop restored from backup; recovered, data sent again")
    assert (decision.outcome_before, decision.outcome_after, decision.who) == (
        "quarantined", "set-aside", "dm")
    assert review.queue("server", outcome="quarantined") == []
    assert server_status(server)[0]["quarantined_forks"] == 0
    with pytest.raises(ReviewError, match="no quarantined bundle|no transaction"):
        review.resolve(fork_id, "discard", note="again", who="dm", using="server")


def test_many_exports_before_recovering_are_all_forks_and_all_sent_again(site, server, usb, tmp_path):
    """The restored laptop exported four times before anyone noticed: every one of
    those bundles is quarantined (one that follows a quarantined bundle too, rather
    than waiting for a gap), and after recovery their changes arrive once."""
    m.Household.objects.create(code="HH-1")
    round_trip(site, server, usb)
    backup = Backup(site, tmp_path / "backup")
    for code in ("HH-2", "HH-3"):
        m.Household.objects.create(code=code)
        round_trip(site, server, usb)
    backup.restore()
    for i in range(4):
        m.Household.objects.create(code=f"HH-R{i}")
        round_trip(site, server, usb)
    forks = ImportedBundle.objects.using("server").filter(status=BundleStatus.FORK)
    assert sorted(forks.values_list("seq", flat=True)) == [2, 3, 4, 5]
    assert not ImportedBundle.objects.using("server").filter(status=BundleStatus.WAITING).exists()

    report = recover([usb], config=site)
    assert (report.server_seq, report.chain_after, report.requeued) == (3, 3, 4)
    run = round_trip(site, server, usb)
    # The stick still carries the quarantined files: received before, nothing to do.
    (seq4,) = [f for f in run.files if f.kind == "bundle" and f.seq == 4 and f.status != "duplicate"]
    assert (seq4.status, seq4.applied, seq4.failed) == ("applied", 4, 0)
    assert server_codes() == ["HH-1", "HH-2", "HH-3", "HH-R0", "HH-R1", "HH-R2", "HH-R3"]


def test_replaced_laptop_with_the_old_key_continues_after_the_server(site, server, usb):
    for code in ("HH-1", "HH-2"):
        m.Household.objects.create(code=code)
    round_trip(site, server, usb)
    m.Household.objects.create(code="HH-3")
    round_trip(site, server, usb)
    # A new laptop: empty database, the same key.
    with capture.suspended():
        for model in reversed(LAPTOP):
            model._base_manager.using("default").all().delete()
    shutil.rmtree(site.outbox)
    m.Household.objects.create(code="HH-7")

    report = recover([usb], config=site)
    assert (report.server_seq, report.chain_before, report.chain_after, report.forked) == (2, 0, 2, [])
    run = round_trip(site, server, usb)
    # The stick still has seq 1 and 2 (duplicates now); the new laptop's bundle is seq 3.
    assert [(f.seq, f.status, f.applied) for f in run.files if f.kind == "bundle"] == [
        (1, "duplicate", 0), (2, "duplicate", 0), (3, "applied", 1)
    ]
    assert server_codes() == ["HH-1", "HH-2", "HH-3", "HH-7"]


def test_a_site_in_line_with_the_server_is_left_alone(site, server, usb):
    m.Household.objects.create(code="HH-1")
    round_trip(site, server, usb)
    m.Household.objects.create(code="HH-2")
    export_to(usb, config=site)  # on its way, not imported yet
    report = recover([usb], config=site)
    assert not report.changed and report.chain_after == 2 and report.forked == []
    assert ExportedBundle.objects.count() == 2


def test_no_receipt_is_one_clear_error(site, usb):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    with pytest.raises(NoReceipt) as info:
        recover([usb], config=site)
    assert isinstance(info.value, BundleError) and "no receipt for this site" in str(info.value)
    assert ExportChainState.objects.get().last_seq == 1
    assert ImportedBundle.objects.using("server").count() == 0
