"""Every outcome travels back, and nothing is pruned that the server does not hold
(issue 11): one test per path, each going around the whole loop.

A failed record (unique clash, missing reference, invalid value) is kept at the
site after the receipt and shown in its status, is retried at the server after
the fix, and is pruned after the next receipt; a stale edit is reported to the
site that lost; a conflict is settled with each of the three choices, and every
decision is in the ledger.
"""

import shutil

import pytest
from django.test import override_settings

from bundlekit.errors import ReviewError
from bundlekit.receipt import one_line
from django_adapter import capture, review
from django_adapter.codec import packb
from django_adapter.models import (
    ConflictingTransaction,
    Decision,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
    TxStatus,
)
from django_adapter.receipts import write_receipts
from django_adapter.status import server_status, site_status
from django_adapter.workflow import export_to, import_paths, import_receipts, prune
from tests.django_adapter.workflow_support import config_of, site_settings
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


class Loop:
    """One laptop (``site``) and central (``server``), a fresh stick per trip."""

    def __init__(self, site, server, tmp_path):
        self.site, self.server, self.tmp, self.trips = site, server, tmp_path, 0

    def send(self, site=None):
        """Export what is pending to a new stick and import it at the server."""
        self.trips += 1
        stick = self.tmp / f"stick-{self.trips}"
        stick.mkdir()
        report = export_to(stick, config=site or self.site)
        new = {b["file"] for b in report.sealed}
        for old in stick.iterdir():  # unacknowledged bundles copied again: not this trip's
            if old.name not in new:
                old.unlink()
        run = import_paths([stick], config=self.server)
        return run.files[0], run

    def back(self, site=None):
        """The server's current receipt for the site, applied there."""
        site = site or self.site
        paths = write_receipts([site.identity.fingerprint], config=self.server)
        run = import_receipts(paths, config=site)
        (report,) = run.files
        assert report.status == "accepted", report.reason
        return report


@pytest.fixture
def loop(site, server, tmp_path):
    return Loop(site, server, tmp_path)


def kept_at_site():
    return list(
        OutgoingTransaction.objects.filter(is_consumed_server=False)
        .values_list("tx_name", "server_outcome")
    )


def assert_kept_then_fixed(loop, fix, *, fixed_outcome="applied"):
    """The common second half: kept after the receipt, listed in status, retried
    after ``fix``, pruned after the next receipt."""
    report = loop.back()
    assert report.receipt["kept"] == 1 and report.receipt["kept_outcomes"] == {"failed": 1}
    assert report.details and "failed" in report.details[0]
    pruned = prune(config=loop.site)
    assert pruned.kept == 1
    assert kept_at_site() == [(kept_model(), "failed")]
    status = site_status(loop.site)
    assert status["kept"] == 1 and status["kept_by_outcome"] == {"failed": 1}
    (listed,) = status["kept_transactions"]
    assert listed["outcome"] == "failed" and listed["reason"] and listed["natural_key"]
    reason = listed["reason"]

    (item,) = review.queue("server", outcome="failed")
    # The receipt carries the server's reason on one line.
    assert item.site == "site-a" and one_line(item.reason) == reason
    assert item.model == kept_model()
    assert item.to_dict()["received"]

    fix()
    result = review.retry(using="server", who="data manager", note="fixed at the server")
    assert (result.applied + result.stale, result.failed) == (1, 0)
    assert review.queue("server", outcome="failed") == []
    (decision,) = Decision.objects.using("server").filter(choice="retry")
    assert (decision.who, decision.outcome_before, decision.outcome_after) == (
        "data manager", "failed", fixed_outcome)
    (sender,) = server_status(loop.server)
    assert sender["failed"] == 0

    report = loop.back()
    assert report.receipt["kept"] == 0 and report.receipt["updated"] == 1
    assert prune(config=loop.site).transactions >= 1
    assert OutgoingTransaction.objects.filter(server_outcome="failed").count() == 0
    assert site_status(loop.site)["kept"] == 0
    return reason


_KEPT_MODEL = {}


def kept_model():
    return _KEPT_MODEL["model"]


def test_unique_clash_is_kept_then_retried_after_the_fix(loop):
    _KEPT_MODEL["model"] = "test_app.panel"
    with capture.suspended():
        m.Panel.objects.using("server").create(code="P1")  # entered at central already
    m.Panel.objects.create(code="P1")
    m.Household.objects.create(code="HH-1")
    f, run = loop.send()
    assert (f.applied, f.failed) == (1, 1) and not run.ok
    # The import report gives the reason, not only the count.
    assert len(f.details) == 1 and f.details[0].lstrip().startswith("failed   test_app.panel")
    assert "IntegrityError" in f.details[0]

    def rename_the_servers_panel():
        with capture.suspended():
            m.Panel.objects.using("server").filter(code="P1").update(code="P1-central")

    reason = assert_kept_then_fixed(loop, rename_the_servers_panel)
    assert "IntegrityError" in reason
    assert sorted(m.Panel.objects.using("server").values_list("code", flat=True)) == [
        "P1", "P1-central"]


def test_missing_reference_is_kept_then_retried_when_it_arrives(loop):
    _KEPT_MODEL["model"] = "test_app.subject"
    with capture.suspended():
        household = m.Household.objects.create(code="HH-9")  # never sent
    m.Subject.objects.create(code="S-1", household=household)
    f, _ = loop.send()
    assert f.failed == 1 and "no test_app.Household" in f.details[0]

    def household_arrives():
        with capture.suspended():
            m.Household.objects.using("server").create(code="HH-9")

    assert_kept_then_fixed(loop, household_arrives)
    assert m.Subject.objects.using("server").get().household.code == "HH-9"


def test_invalid_value_is_kept_then_superseded_by_the_sites_correction(loop):
    _KEPT_MODEL["model"] = "test_app.household"
    household = m.Household.objects.create(code="HH-1", village="v")
    # What an older form let through: a value the server's schema refuses.
    tx = OutgoingTransaction.objects.get()
    record = tx.record
    record["fields"]["code"] = None
    tx.tx = packb(record)
    tx.save()
    f, _ = loop.send()
    assert f.failed == 1

    def the_site_corrects_the_record():
        household.village = "corrected"
        household.save()  # captures a new change with every field
        g, _ = loop.send()
        assert g.applied == 1

    assert_kept_then_fixed(loop, the_site_corrects_the_record, fixed_outcome="superseded")
    assert m.Household.objects.using("server").get().village == "corrected"
    # The failed insert was not applied over the correction: it was superseded.
    assert IncomingTransaction.objects.using("server").filter(status=TxStatus.STALE).count() == 1
    assert OutgoingTransaction.objects.count() == 0


def test_a_stale_edit_is_reported_to_the_site_that_lost(loop, keys, tmp_path):
    site_b = config_of(site_settings(keys, tmp_path, site="site-b"), tmp_path)
    household = m.Household.objects.create(code="HH-1")
    loop.send()
    household.village = "from site-a"
    household.save()
    stick_a = tmp_path / "late-stick"
    stick_a.mkdir()
    export_to(stick_a, config=loop.site)  # site-a's edit travels slowly
    with override_settings(BUNDLEKIT_SITE="site-b"):
        household.village = "from site-b"
        household.save()
    loop.send(site=site_b)  # site-b's later edit reaches central first
    run = import_paths([stick_a], config=loop.server)
    f = next(f for f in run.files if f.seq == 2)
    assert f.stale == 1 and "stale" in f.details[0] and "later change" in f.details[0]
    assert m.Household.objects.using("server").get().village == "from site-b"
    (sender,) = [s for s in server_status(loop.server) if s["site"] == "site-a"]
    assert sender["stale"] == 1

    report = loop.back()
    assert report.receipt["overruled"] == {"superseded": 1}
    assert any("superseded 1" in line for line in report.messages)
    lost = OutgoingTransaction.objects.get(server_outcome="superseded")
    assert lost.is_consumed_server and "later change" in lost.server_reason
    # The server holds it (as superseded), so the site may delete it ...
    assert prune(config=loop.site).transactions == 2
    # ... and a person at central sees it, and can settle it.
    (item,) = review.queue("server", outcome="stale")
    assert item.values["village"] == "from site-a"
    assert item.server_values["village"] == "from site-b"
    review.resolve(item.tx_id, "keep-server", note="site-b saw the household later",
                   who="dm", using="server")
    assert review.queue("server", outcome="stale") == []


def make_conflict(loop):
    """site-a's transaction id arrives again with other content (a restored and
    re-edited laptop): the second copy is kept aside, not applied."""
    m.Household.objects.create(code="HH-1", village="first")
    loop.send()
    tx = OutgoingTransaction.objects.get()
    record = tx.record
    record["fields"]["village"] = "second"
    tx.tx = packb(record)
    tx.exported, tx.exported_bundle = False, None
    tx.save()
    f, run = loop.send()
    assert f.conflict == 1 and "conflict" in f.details[0]
    report = loop.back()
    assert report.receipt["kept_outcomes"] == {"conflict": 1}
    assert prune(config=loop.site).transactions == 0
    assert kept_at_site() == [("test_app.household", "conflict")]
    (item,) = review.queue("server", outcome="conflict")
    assert item.values["village"] == "second" and item.server_values["village"] == "first"
    return item


@pytest.mark.parametrize(
    ("choice", "village", "outcome"),
    [
        ("keep-server", "first", "superseded"),
        ("take-site", "second", "applied"),
        ("discard", "first", "discarded"),
    ],
)
def test_a_conflict_is_resolved(loop, choice, village, outcome):
    item = make_conflict(loop)
    decision = review.resolve(item.tx_id, choice, note="asked the RA", who="dm", using="server")
    assert (decision.choice, decision.outcome_before, decision.outcome_after) == (
        choice, "conflict", outcome)
    assert (decision.who, decision.note, decision.site) == ("dm", "asked the RA", "site-a")
    assert decision.conflict == ConflictingTransaction.objects.using("server").get()
    assert ConflictingTransaction.objects.using("server").get().resolution == choice
    assert m.Household.objects.using("server").get().village == village
    assert review.queue("server") == []

    report = loop.back()
    assert report.receipt["kept"] == 0 and report.receipt["updated"] == 1
    assert OutgoingTransaction.objects.get().server_outcome == outcome
    assert prune(config=loop.site).transactions == 1
    # Settled once: a second decision is refused.
    with pytest.raises(ReviewError, match="nothing to resolve"):
        review.resolve(item.tx_id, "discard", note="again", who="dm", using="server")


def test_take_site_applies_a_stale_edit_over_the_newer_one(loop, keys, tmp_path):
    """override_stale: the person chose site-a's edit although site-b's was later."""
    site_b = config_of(site_settings(keys, tmp_path, site="site-b"), tmp_path)
    household = m.Household.objects.create(code="HH-1")
    loop.send()
    household.village = "from site-a"
    household.save()
    slow = tmp_path / "slow"
    slow.mkdir()
    export_to(slow, config=loop.site)
    with override_settings(BUNDLEKIT_SITE="site-b"):
        household.village = "from site-b"
        household.save()
    loop.send(site=site_b)
    import_paths([slow], config=loop.server)
    (item,) = review.queue("server", outcome="stale", site="site-a")
    decision = review.resolve(item.tx_id, "take-site", note="site-b's visit was cancelled",
                              who="dm", using="server")
    assert (decision.outcome_before, decision.outcome_after) == ("superseded", "applied")
    assert m.Household.objects.using("server").get().village == "from site-a"
    report = loop.back()
    assert report.receipt["updated"] + report.receipt["acknowledged"] >= 1
    assert OutgoingTransaction.objects.filter(server_outcome="applied").count() == 2


def test_resolve_refuses_bad_input(loop):
    m.Household.objects.create(code="HH-1")
    loop.send()
    applied = IncomingTransaction.objects.using("server").get()
    for args, message in [
        (("not-a-uuid", "discard"), "not a transaction id"),
        ((str(applied.tx_id), "burn"), "choice must be one of"),
        (("8f0c6c3e-0000-4000-8000-000000000000", "discard"), "no transaction"),
        ((str(applied.tx_id), "discard"), "nothing to resolve"),
    ]:
        with pytest.raises(ReviewError, match=message):
            review.resolve(*args, note="n", who="dm", using="server")
    with pytest.raises(ReviewError, match="note is required"):
        review.resolve(str(applied.tx_id), "discard", note="  ", who="dm", using="server")
    with pytest.raises(ReviewError, match="not failed"):
        review.retry([applied.tx_id], using="server")
    assert Decision.objects.using("server").count() == 0


def test_a_waiting_bundle_is_kept_and_queued(loop, tmp_path):
    m.Household.objects.create(code="HH-1")
    first = tmp_path / "first"
    first.mkdir()
    export_to(first, config=loop.site)
    m.Household.objects.create(code="HH-2")
    f, _ = loop.send()  # seq 2 arrives before seq 1
    assert f.status == "waiting-for-gap"
    report = loop.back()
    assert report.receipt["kept_outcomes"] == {"waiting": 1}
    assert prune(config=loop.site).transactions == 0
    (item,) = review.queue("server")
    assert item.outcome == "waiting" and item.seq == 2
    shutil.copytree(first, tmp_path / "again")
    import_paths([tmp_path / "again"], config=loop.server)
    report = loop.back()
    assert report.receipt["transactions"] == 2 and report.receipt["kept"] == 0
    assert ImportedBundle.objects.using("server").filter(status="applied").count() == 2


def test_an_older_receipt_read_last_does_not_take_back_newer_outcomes(loop, tmp_path):
    """Receipts may be read out of order (two sticks, a pull of old ones): the site
    keeps the newest outcome of each bundle."""
    with capture.suspended():
        m.Panel.objects.using("server").create(code="P1")
    m.Household.objects.create(code="HH-1")
    first = tmp_path / "first"
    first.mkdir()
    export_to(first, config=loop.site)
    m.Panel.objects.create(code="P1")  # will fail once applied
    loop.send()  # seq 2 waits for seq 1
    older = write_receipts([loop.site.identity.fingerprint], config=loop.server)
    import_paths([first], config=loop.server)  # seq 1, then seq 2: the panel fails
    newer = write_receipts([loop.site.identity.fingerprint], config=loop.server)
    import_receipts(newer, config=loop.site)
    assert kept_at_site() == [("test_app.panel", "failed")]
    run = import_receipts(older, config=loop.site)
    assert run.files[0].receipt["updated"] == 0
    assert kept_at_site() == [("test_app.panel", "failed")]


def test_a_folder_of_receipts_is_read_in_the_order_they_were_signed(loop, tmp_path):
    """Two receipts of the same second sort by a random suffix in their names: the
    folder is read by signed creation time instead, so what each report says (and
    the summary a person reads) is the same on every run."""
    with capture.suspended():
        m.Panel.objects.using("server").create(code="P1")
    m.Panel.objects.create(code="P1")  # fails at the server
    loop.send()
    older = write_receipts([loop.site.identity.fingerprint], config=loop.server)
    IncomingTransaction.objects.using("server").filter(status=TxStatus.FAILED).update(
        status=TxStatus.STALE, reason="a person kept the server's version")
    newer = write_receipts([loop.site.identity.fingerprint], config=loop.server)
    folder = tmp_path / "stick"
    folder.mkdir()
    # Names that sort the other way round.
    shutil.copy(newer[0], folder / "receipt-a.receipt")
    shutil.copy(older[0], folder / "receipt-b.receipt")
    run = import_receipts([folder], config=loop.site)
    assert [f.file.rsplit("/", 1)[1] for f in run.files] == ["receipt-b.receipt", "receipt-a.receipt"]
    first, second = (f.receipt for f in run.files)
    assert (first["acknowledged"], first["kept"]) == (1, 1)
    assert (second["already"], second["updated"], second["transactions"]) == (1, 1, 1)
