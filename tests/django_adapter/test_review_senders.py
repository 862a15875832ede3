"""A transaction id is unique per sender only (migration 0008): two laptops may
use the same id.  ``resolve`` and ``retry`` then need to know whose transaction
is meant: the library takes ``sender`` (a site name or a key fingerprint), the
command line ``--sender``, the dashboard sends the item's sender; without it an
id that several senders used is refused with the list of them, and nothing
changes."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.urls import reverse

from bundlekit import Identity
from bundlekit.cli import main
from bundlekit.errors import ReviewError
from bundlekit.writer import ChainLink, seal
from django_adapter import review
from django_adapter.dashboard import attention
from django_adapter.importer import import_bundle
from django_adapter.models import Decision, IncomingTransaction, TxStatus
from tests.django_adapter.dashboard.conftest import make_user
from tests.django_adapter.workflow_support import config_of

pytestmark = pytest.mark.django_db(databases=["default", "server"])

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
TX = uuid.UUID("0a0a0a0a-0000-4000-8000-000000000001")


@pytest.fixture
def field(tmp_path):
    """laptop-a and laptop-b each sent a household under the same tx id, each
    refused (its village is longer than the field allows)."""
    ids = {name: Identity.generate(name) for name in ("laptop-a", "laptop-b", "central")}
    for n, laptop in enumerate(("laptop-a", "laptop-b")):
        record = {"id": TX, "model": "test_app.household", "action": "I", "pk": 7 + n,
                  "natural_key": [f"HH-{n}"], "ts": T0, "producer": f"{laptop}/x",
                  "fields": {"code": f"HH-{n}", "village": "x" * 101}, "m2m": {}}
        out = tmp_path / laptop
        out.mkdir()
        (sealed,) = seal([record], identity=ids[laptop], recipients=[ids["central"].public],
                         out_dir=out, after=ChainLink(0, None))
        report = import_bundle(sealed.path, identities=[ids["central"]], using="server",
                               trusted=[ids["laptop-a"].public, ids["laptop-b"].public])
        assert report.failed == 1, report.messages
    return {name: i.public.fingerprint for name, i in ids.items()}


def statuses():
    return dict(IncomingTransaction.objects.using("server").filter(tx_id=TX)
                .values_list("sender", "status"))


def test_an_id_of_two_senders_is_refused_until_the_sender_is_named(field):
    before = statuses()
    assert set(before.values()) == {TxStatus.FAILED} and len(before) == 2
    with pytest.raises(ReviewError) as resolved:
        review.resolve(TX, "discard", note="dup", who="dm", using="server")
    with pytest.raises(ReviewError) as retried:
        review.retry([TX], using="server", who="dm")
    for exc in (resolved.value, retried.value):
        line = str(exc)
        assert "2 senders" in line and "\n" not in line
        assert f"laptop-a ({field['laptop-a']})" in line and f"laptop-b ({field['laptop-b']})" in line
    assert statuses() == before and not Decision.objects.using("server").exists()

    decision = review.resolve(TX, "discard", note="dup", who="dm", using="server",
                              sender="laptop-b")
    assert decision.sender == field["laptop-b"] and decision.site == "laptop-b"
    assert statuses() == {field["laptop-a"]: TxStatus.FAILED,
                          field["laptop-b"]: TxStatus.DISCARDED}
    result = review.retry([TX], using="server", who="dm", sender=field["laptop-a"])
    assert result.failed == 1  # laptop-a's, still too long; laptop-b's untouched
    assert statuses()[field["laptop-b"]] == TxStatus.DISCARDED
    assert review.senders_of([TX], "server", sender="laptop-a") == {field["laptop-a"]}
    assert review.senders_of([TX], "server") == {field["laptop-a"], field["laptop-b"]}


def test_a_sender_that_sent_no_such_transaction_is_refused(field):
    with pytest.raises(ReviewError, match="no sender 'laptop-z'"):
        review.resolve(TX, "discard", note="n", who="dm", using="server", sender="laptop-z")
    with pytest.raises(ReviewError, match=f"no transaction {TX} from {field['central']} at this server"):
        review.resolve(TX, "discard", note="n", who="dm", using="server",
                       sender=field["central"])
    assert set(statuses().values()) == {TxStatus.FAILED}


def test_bundle_resolve_takes_sender(field, settings, keys, tmp_path, capsys):
    settings.BUNDLEKIT = {"SITE": "central", "IDENTITY": str(keys.key("central")),
                          "TRUSTED": [str(keys.pub("site-a"))], "DATABASE": "server",
                          "RECEIPTS_OUT": None}
    config_of(settings.BUNDLEKIT, tmp_path)  # the dict is valid
    args = ["resolve", str(TX), "--discard", "--note", "a duplicate", "--who", "dm"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "2 senders" in err and "--sender" in err and "Traceback" not in err
    assert main([*args, "--sender", "laptop-a"]) == 0
    assert f"resolved {TX}: discard by dm" in capsys.readouterr().out
    assert statuses() == {field["laptop-a"]: TxStatus.DISCARDED,
                          field["laptop-b"]: TxStatus.FAILED}


def test_the_dashboard_acts_on_the_items_own_sender(field, keys, tmp_path):
    config = config_of({"SITE": "central", "IDENTITY": str(keys.key("central")),
                        "DATABASE": "server", "RECEIPTS_OUT": None}, tmp_path)
    items = [i for i in review.queue("server") if i.tx_id == str(TX)]
    assert {i.sender for i in items} == {field["laptop-a"], field["laptop-b"]}
    item = next(i for i in items if i.sender == field["laptop-b"])
    done = attention.act("discard", item.tx_id, note="a duplicate", who="dm", config=config,
                         sender=item.sender)
    assert done.ok
    assert statuses() == {field["laptop-a"]: TxStatus.FAILED,
                          field["laptop-b"]: TxStatus.DISCARDED}


def test_the_review_page_posts_the_items_sender(field, keys, settings, client):
    settings.BUNDLEKIT = {"SITE": "central", "IDENTITY": str(keys.key("central")),
                          "DATABASE": "server", "RECEIPTS_OUT": None}
    client.force_login(make_user("manager", perms=("view_dashboard", "act_on_dashboard")))
    html = client.get(reverse("bundlekit-dashboard:review")).content.decode()
    for laptop in ("laptop-a", "laptop-b"):
        assert f'name="sender" value="{field[laptop]}"' in html
    r = client.post(reverse("bundlekit-dashboard:review-act"),
                    {"tx_id": str(TX), "sender": field["laptop-a"], "action": "discard",
                     "note": "a duplicate"}, follow=True)
    assert "Resolved" in r.content.decode()
    assert statuses() == {field["laptop-a"]: TxStatus.DISCARDED,
                          field["laptop-b"]: TxStatus.FAILED}
    r = client.post(reverse("bundlekit-dashboard:review-act"),
                    {"tx_id": str(TX), "action": "discard", "note": "no sender"}, follow=True)
    assert "Nothing was changed" in r.content.decode() and "2 senders" in r.content.decode()
