"""The overview's counts are the review queue's, counted in the database; and the
buttons run the review module's calls, recorded and sent back in a receipt."""

from collections import Counter

import pytest
from django.test import override_settings

from django_adapter import review
from django_adapter.codec import packb
from django_adapter.dashboard import attention
from django_adapter.exporter import export_pending
from django_adapter.models import Decision, OutgoingTransaction
from django_adapter.workflow import import_paths
from tests.django_adapter.dashboard import scenario
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def every_outcome(tmp_path):
    """The scenario's 2 failed, plus a stale edit, a bundle waiting for its gap
    and a conflicting copy of a transaction, all by real exports and imports."""
    field = scenario.build(tmp_path)
    keys, root, config = field.keys, field.root, field.config
    # stale: site-a's edit of A-0 arrives after site-b's later edit of it.
    household = m.Household.objects.get(code="A-0")
    household.village = "from site-a"
    household.save()
    late = scenario.seal(keys, root, "site-a")  # seq 2
    with override_settings(BUNDLEKIT_SITE="site-b"):
        household.village = "from site-b"
        household.save()
    import_paths([scenario.seal(keys, root, "site-b")], config=config)  # site-b seq 2
    import_paths([late], config=config)
    # waiting: site-a's seq 4 arrives, seq 3 does not.
    m.Household.objects.create(code="A-3")
    scenario.seal(keys, root, "site-a")  # seq 3, never carried
    m.Household.objects.create(code="A-4")
    import_paths([scenario.seal(keys, root, "site-a")], config=config)  # seq 4
    # conflict: a transaction of site-b the server already holds arrives again, with
    # other content, in site-b's next bundle (an id is its signer's: the same id
    # from another site would be another transaction).
    tx = OutgoingTransaction.objects.filter(tx_name="test_app.household", producer__startswith="site-b") \
        .order_by("id").first()
    record = tx.record
    record["fields"]["village"] = "other content"
    tx.tx, tx.exported, tx.exported_bundle = packb(record), False, None
    tx.save()
    import_paths([scenario.seal(keys, root, "site-b")], config=config)  # site-b seq 3
    # quarantined: a "restored" site-a starts its chain again at seq 1 (sealed from
    # another database with site-a's key): a fork.
    m.Tag.objects.using("server").create(code="restored")
    (fork,) = export_pending(root / "restored", identity=keys.ids["site-a"],
                             recipients=[keys.ids["central"].public], using="server")
    (report,) = import_paths([root / "restored" / fork.file_name], config=config).files
    assert report.status == "quarantined-fork"
    return field


def test_the_counts_are_the_queues(tmp_path):
    field = every_outcome(tmp_path)
    a, b = (field.keys.ids[s].fingerprint for s in ("site-a", "site-b"))
    listed: dict[str, Counter] = {}
    for item in review.queue("server"):
        listed.setdefault(item.sender, Counter())[item.outcome] += 1
    assert listed == {a: Counter(stale=1, waiting=1, quarantined=1),
                      b: Counter(failed=2, conflict=1)}
    assert attention.tally("server") == listed
    assert attention.tally("server", site="site-b") == {b: listed[b]}
    assert attention.tally("server", model="test_app.subject") == {b: Counter(failed=2)}
    assert attention.tally("server", model="test_app.household") == {
        a: Counter(stale=1, waiting=1), b: Counter(conflict=1)}
    assert attention.models_in_queue("server") == ["test_app.household", "test_app.subject"]


def test_a_decision_is_recorded_and_leaves_the_queue(tmp_path, settings):
    field = every_outcome(tmp_path)
    settings.BUNDLEKIT = field.settings
    (stale,) = review.queue("server", outcome="stale")
    assert [a for a, _ in attention.actions_for(stale)] == ["keep-server", "take-site", "discard"]
    (waiting,) = review.queue("server", outcome="waiting")
    assert attention.actions_for(waiting) == []
    receipts = field.config.receipts_out
    before = set(receipts.iterdir())
    done = attention.act("keep-server", stale.tx_id, note="site-b saw it later", who="dm",
                         config=field.config)
    assert done.ok and "keep the server's" in done.message
    decision = Decision.objects.using("server").get(tx_id=stale.tx_id)
    assert (decision.who, decision.note, decision.choice) == ("dm", "site-b saw it later", "keep-server")
    assert review.queue("server", outcome="stale") == []
    assert attention.tally("server")[stale.sender].get("stale", 0) == 0
    # The site hears of it in a receipt written now.
    assert any("site-a" in p.name for p in set(receipts.iterdir()) - before)


def test_a_quarantined_bundle_is_set_aside_with_a_note(tmp_path, settings):
    field = every_outcome(tmp_path)
    (fork,) = review.queue("server", outcome="quarantined")
    assert attention.actions_for(fork) == [("discard", "Set aside")]
    done = attention.act("discard", attention.target(fork), note="laptop recovered", who="dm",
                         config=field.config)
    assert "Set aside" in done.message
    assert review.queue("server", outcome="quarantined") == []
    assert "quarantined" not in attention.tally("server")[fork.sender]
