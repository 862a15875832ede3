"""bundle import / receipt / prune / status / forward as library calls."""

import shutil

import pytest

from bundlekit.forward import forward_bundles
from bundlekit.receipt import write_receipt
from django_adapter.exporter import export_pending
from django_adapter.models import (
    ExportedBundle,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
    SenderState,
)
from django_adapter.receipts import ledger_entries
from django_adapter.status import open_gaps, server_status, site_status
from django_adapter.workflow import export_to, import_paths, import_receipts, prune
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def server_state():
    return (
        ImportedBundle.objects.using("server").count(),
        IncomingTransaction.objects.using("server").count(),
        SenderState.objects.using("server").count(),
        m.Household.objects.using("server").count(),
    )


def test_the_loop_import_receipt_prune_status(site, server, usb):
    for i in range(3):
        m.Household.objects.create(code=f"HH-{i}")
    export_to(usb, config=site)
    assert site_status(site)["exported"] == 3

    run = import_paths([usb], config=server)
    (f,) = run.files
    assert (f.status, f.site, f.seq, f.applied, f.failed, f.missing_seqs) == ("applied", "site-a", 1, 3, 0, [])
    assert run.ok and len(run.receipts_written) == 1
    (sender,) = server_status(server)
    assert (sender["site"], sender["last_seq_applied"], sender["open_gaps"]) == ("site-a", 1, [])

    # Nothing is prunable before the receipt comes back.
    assert prune(config=site).transactions == 0
    assert OutgoingTransaction.objects.count() == 3

    shutil.copy(run.receipts_written[0], usb)
    back = import_paths([usb], config=site)  # the site's own bundle is skipped, not refused
    assert back.ok and {f.kind: f.status for f in back.files} == {"bundle": "own", "receipt": "accepted"}
    receipt = next(f for f in back.files if f.kind == "receipt").receipt
    assert (receipt["acknowledged"], receipt["transactions"]) == (1, 3)
    assert OutgoingTransaction.objects.filter(is_consumed_server=True).count() == 3
    assert ExportedBundle.objects.get().acknowledged
    status = site_status(site)
    assert (status["pending"], status["exported"], status["acknowledged"]) == (0, 0, 3)

    pruned = prune(config=site)
    assert pruned.transactions == 3 and len(pruned.files) == 1
    assert OutgoingTransaction.objects.count() == 0 and site_status(site)["outbox_files"] == []
    # The same receipt again changes nothing and is not an error.
    again = import_receipts([usb], config=site)
    assert again.ok and again.files[0].receipt["already"] == 1
    # A later export goes on with seq 2; nothing acknowledged is copied again.
    m.Household.objects.create(code="HH-9")
    later = export_to(usb, config=site)
    assert [b["seq"] for b in later.sealed] == [2] and later.copied == [later.sealed[0]["file"]]


def test_same_stick_twice_is_all_duplicate(site, server, usb):
    m.Household.objects.create(code="HH-1")
    m.Tag.objects.create(code="t")
    export_to(usb, config=site)
    import_paths([usb], config=server)
    before = server_state()
    run = import_paths([usb], config=server)
    (f,) = run.files
    assert run.ok and (f.status, f.duplicate, f.applied) == ("duplicate", 2, 0)
    assert server_state() == before


def test_stick_from_another_project_changes_nothing(keys, site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    # Sealed by a trusted site, but for another project's server.
    export_pending(usb, identity=keys.ids["site-a"], recipients=[keys.ids["stranger"].public])
    run = import_paths([usb], config=server)
    (f,) = run.files
    assert not run.ok and (f.status, f.code) == ("rejected", "not-a-recipient")
    assert "none of the keys given can read it" in f.reason and str(f.file) in f.file
    assert server_state() == (0, 0, 0, 0) and run.receipts_written == []
    # Sealed by someone we do not trust at all.
    other = tmp_path / "other"
    m.Tag.objects.create(code="t")
    export_pending(other, identity=keys.ids["stranger"], recipients=[keys.ids["central"].public])
    (g,) = import_paths([other], config=server).files
    assert g.code == "unknown-sender" and server_state() == (0, 0, 0, 0)


def test_a_bad_bundle_does_not_stop_the_others(site, server, usb):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    m.Household.objects.create(code="HH-2")
    export_to(usb, config=site)
    first, second = sorted(usb.iterdir())
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 1
    first.write_bytes(bytes(data))
    run = import_paths([usb], config=server)
    assert not run.ok
    assert [f.status for f in run.files] == ["rejected", "waiting-for-gap"]
    assert run.files[0].code and run.files[0].file == str(first)
    assert run.files[1].missing_seqs == [1]
    (sender,) = server_status(server)
    assert sender["open_gaps"] == [1] and sender["waiting"] == 1
    # The receipt tells the site only seq 2 arrived: seq 1 stays unacknowledged.
    fp = site.identity.fingerprint
    entries, contiguous = ledger_entries(fp, "server")
    assert [(e.seq, e.status) for e in entries] == [(2, "held")] and contiguous == 0


def test_forged_or_foreign_receipts_mark_nothing(keys, site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    run = import_paths([usb], config=server)
    good = run.receipts_written[0]
    out = tmp_path / "receipts"
    out.mkdir()
    # Forged: one byte of the signed body changed.
    data = bytearray(open(good, "rb").read())
    data[40] ^= 1
    (out / "forged.receipt").write_bytes(bytes(data))
    # Signed by central, but for site-b.
    entries, contiguous = ledger_entries(site.identity.fingerprint, "server")
    write_receipt(out, issuer=keys.ids["central"], subject=keys.ids["site-b"].public, entries=entries)
    # For us, but signed by a key we do not trust.
    write_receipt(out, issuer=keys.ids["stranger"], subject=keys.ids["site-a"].public, entries=entries)
    result = import_receipts([out], config=site)
    assert not result.ok
    assert [f.status for f in result.files] == ["rejected"] * 3
    reasons = " ".join(f.reason for f in result.files)
    assert "not for us" in reasons and "do not trust" in reasons and "forged" in reasons
    assert not OutgoingTransaction.objects.filter(is_consumed_server=True).exists()
    assert not ExportedBundle.objects.filter(acknowledged=True).exists()
    assert prune(config=site).transactions == 0


def test_forward_copies_originals_and_refuses_bad_ones(keys, site, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    (good,) = list(usb.iterdir())
    bad = usb / "site-a-00000009-00000000.bundle"
    bad.write_bytes(good.read_bytes()[:-10])
    target = tmp_path / "to-central"
    target.mkdir()
    results = forward_bundles([usb], target)  # no key at all
    assert [(r.status, r.code) for r in results] == [("forwarded", ""), ("refused", "truncated")]
    assert (target / good.name).read_bytes() == good.read_bytes()
    assert not (target / bad.name).exists()
    again = forward_bundles([good], target, trusted=[keys.ids["site-a"].public])
    assert again[0].status == "present"
    refused = forward_bundles([good], target, trusted=[keys.ids["site-b"].public])
    assert refused[0].code == "unknown-sender"


def test_hub_forwards_what_it_accepts(site, server, usb, tmp_path):
    m.Household.objects.create(code="HH-1")
    export_to(usb, config=site)
    onward = tmp_path / "to-central"
    onward.mkdir()
    run = import_paths([usb], config=server, forward_dir=onward)
    (f,) = run.files
    assert f.forwarded and (onward / f.forwarded.rsplit("/", 1)[-1]).read_bytes() == (
        usb / f.forwarded.rsplit("/", 1)[-1]
    ).read_bytes()


def test_open_gaps_are_bounded():
    assert open_gaps(0, []) == ([], 0)
    assert open_gaps(2, [5, 7]) == ([3, 4, 6], 3)
    listed, count = open_gaps(0, [10**12])
    assert len(listed) == 50 and count == 10**12 - 1
