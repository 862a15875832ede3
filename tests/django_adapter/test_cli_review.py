"""``bundle review``, ``bundle retry`` and ``bundle resolve`` as a data manager
types them (subprocesses, one SQLite file per machine): a refused record is
listed with its reason, retried after the fix, its decision recorded, and the
receipt written so the laptop can prune it."""

import json

import pytest

from tests.django_adapter import test_cli_story

# The story's machines, keys and migrated databases (its fixtures, reused).
template = test_cli_story.template
world = test_cli_story.world

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def refused_panel(laptop, central, root):
    """laptop enters panel P1, which central already has under another id."""
    central.manage("shell", "-c", (
        "from django_adapter import capture\n"
        "from tests.test_app.models import Panel\n"
        "with capture.suspended(): Panel.objects.create(code='P1')\n"
    ))
    laptop.manage("shell", "-c", (
        "from tests.test_app.models import Panel, Tag\n"
        "Panel.objects.create(code='P1'); Tag.objects.create(code='t')\n"
    ))
    (root / "usb").mkdir()
    laptop.bundle("export", "--out", "usb")
    result = central.bundle("import", "usb", code=1)  # one transaction failed: exit 1
    return result.stdout


def test_review_retry_and_the_way_back(world):
    laptop, _, central, root = world
    out = refused_panel(laptop, central, root)
    assert "applied 1, duplicate 0, stale 0, conflict 0, failed 1" in out
    assert "  failed   test_app.panel" in out and "IntegrityError" in out

    listed = json.loads(central.bundle("review", "--json").stdout)
    (item,) = listed["items"]
    assert listed["count"] == 1
    assert (item["outcome"], item["site"], item["model"], item["natural_key"]) == (
        "failed", "site-a", "test_app.panel", ["P1"])
    assert "IntegrityError" in item["reason"] and item["server_values"]["code"] == "P1"
    text = central.bundle("review").stdout
    assert text.startswith("failed") and "test_app.panel P1" in text
    assert central.bundle("review", "--outcome", "conflict").stdout.strip() == "nothing to review"
    assert "outcome must be one of" in central.bundle("review", "--outcome", "lost", code=1).stderr

    # Still failing: exit 1, the reason shown, nothing decided but the retry itself.
    out = central.bundle("retry", "--who", "dm", "--note", "first try", code=1).stdout
    assert "failed 1" in out and "IntegrityError" in out

    central.manage("shell", "-c", (
        "from django_adapter import capture\n"
        "from tests.test_app.models import Panel\n"
        "with capture.suspended(): Panel.objects.filter(code='P1').update(code='P1-central')\n"
    ))
    done = json.loads(central.bundle("retry", "--who", "dm", "--note", "renamed ours",
                                     "--json").stdout)
    assert (done["applied"], done["failed"]) == (1, 0)
    (receipt,) = done["receipts_written"]
    assert central.bundle("review").stdout.strip() == "nothing to review"

    # The laptop kept the refused panel until now; this receipt lets it go.
    back = laptop.bundle("receipt", receipt).stdout
    assert "1 bundle(s) acknowledged (2 transactions)" in back
    assert "pruned 2 confirmed transaction(s)" in laptop.bundle("prune").stdout


def test_resolve_needs_one_choice_and_a_note_and_is_recorded(world):
    laptop, _, central, root = world
    refused_panel(laptop, central, root)
    (item,) = json.loads(central.bundle("review", "--json").stdout)["items"]
    tx = item["tx_id"]
    assert "exactly one of" in central.bundle("resolve", tx, "--note", "x", code=2).stderr
    assert "exactly one of" in central.bundle("resolve", tx, "--discard", "--keep-server",
                                              "--note", "x", code=2).stderr
    assert "--note" in central.bundle("resolve", tx, "--discard", code=2).stderr
    assert "not a transaction id" in central.bundle("resolve", "nope", "--discard", "--note", "x",
                                                    code=1).stderr
    decided = json.loads(central.bundle("resolve", tx, "--discard", "--note", "entered twice",
                                        "--who", "dm", "--json").stdout)
    assert (decided["choice"], decided["outcome_before"], decided["outcome_after"]) == (
        "discard", "failed", "discarded")
    assert decided["who"] == "dm" and decided["note"] == "entered twice"
    assert len(decided["receipts_written"]) == 1
    again = central.bundle("resolve", tx, "--keep-server", "--note", "x", code=1).stderr
    assert "nothing to resolve" in again and len(again.strip().splitlines()) == 1
    # manage.py spells it the same way.
    out = central.manage("bundle", "review").stdout
    assert out.strip() == "nothing to review"
    # The laptop may delete the discarded one: the server holds it, decided.
    back = laptop.bundle("receipt", decided["receipts_written"][0]).stdout
    assert "discarded 1" in back
    assert "pruned 2 confirmed transaction(s)" in laptop.bundle("prune").stdout
