"""App upgrades reach laptops and the server at different times: every bundle states
the migrations its site had applied, the server refuses records from a newer
schema (until it is migrated, then `bundle retry`) and applies records from an
older one.  Run with two real migration states of the test app (0001 and 0002,
which adds Household.note)."""

import pytest
from django.core.management import call_command

from bundlekit.reader import verify
from django_adapter.apply import retry_failed
from django_adapter.codec import packb
from django_adapter.models import ImportedBundle, IncomingTransaction, OutgoingTransaction, TxStatus
from django_adapter.schema import applied, compare
from django_adapter.status import server_status
from django_adapter.workflow import export_to, import_paths
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"], transaction=True)

NOTE = "0002_household_note"


def migrate(alias, target):
    call_command("migrate", "test_app", target, database=alias, verbosity=0)


@pytest.fixture
def at_0001():
    """Yields a function that takes an alias back to test_app 0001; afterwards every
    alias taken back is migrated forward again."""
    taken = []

    def back(alias):
        migrate(alias, "0001")
        taken.append(alias)

    yield back
    for alias in taken:
        migrate(alias, NOTE)


def sender(server):
    (row,) = server_status(server)
    return row


def test_each_bundle_states_the_migrations_of_the_synced_apps(site, usb):
    m.Household.objects.create(code="HH-1")
    report = export_to(usb, config=site)
    manifest = verify(usb / report.copied[0]).manifest
    assert manifest.format == 2
    assert manifest.schema["test_app"] == ("0001_initial", NOTE)
    assert "django_adapter" not in manifest.schema  # only apps with synced models
    assert dict(manifest.schema) == {k: tuple(v) for k, v in applied("default").items()}


def test_a_record_from_a_newer_schema_fails_until_the_server_is_migrated(site, server, usb, at_0001):
    at_0001("server")
    m.Household.objects.create(code="HH-1", note="asked at the new form's last question")
    export_to(usb, config=site)
    (f,) = import_paths([usb], config=server).files
    assert (f.status, f.applied, f.failed) == ("applied", 0, 1)
    assert f"test_app.{NOTE}" in f.messages[0] and "bundle retry" in f.messages[0]
    (row,) = IncomingTransaction.objects.using("server").all()
    assert row.status == TxStatus.FAILED and f"test_app.{NOTE}" in row.reason
    state = sender(server)
    assert state["schema"]["state"] == "newer"
    assert state["schema"]["server_lacks"] == [f"test_app.{NOTE}"]
    assert any("schema newer" in note for note in state["notes"])

    # Retried before the server is migrated: still refused, nothing dropped.
    assert retry_failed(using="server").failed == 1
    migrate("server", NOTE)
    result = retry_failed(using="server")
    assert (result.applied, result.failed) == (1, 0), result.messages
    hh = m.Household.objects.using("server").get(code="HH-1")
    assert hh.note == "asked at the new form's last question"
    assert sender(server)["schema"]["state"] == "same"


def test_records_from_an_older_schema_apply_with_defaults(site, server, usb, at_0001):
    m.Household.objects.create(code="HH-1", note="kept at the server")
    export_to(usb, config=site)
    import_paths([usb], config=server)
    hh1 = m.Household.objects.get(code="HH-1")
    hh1.village = "Mochudi"
    hh1.save()
    m.Household.objects.create(code="HH-2")
    # The laptop runs the version of the app before 0002: its database has no
    # `note` column and its records carry no `note` field.
    at_0001("default")
    for tx in OutgoingTransaction.objects.filter(exported=False):
        record = tx.record
        del record["fields"]["note"]
        tx.tx = packb(record)
        tx.save(update_fields=["tx"])
    report = export_to(usb, config=site)
    assert verify(usb / report.copied[-1]).manifest.schema["test_app"] == ("0001_initial",)

    run = import_paths([usb], config=server)
    (f,) = [f for f in run.files if f.seq == 2]
    assert (f.status, f.applied, f.failed) == ("applied", 2, 0), f.messages
    server_rows = m.Household.objects.using("server")
    assert server_rows.get(code="HH-1").village == "Mochudi"
    assert server_rows.get(code="HH-1").note == "kept at the server"  # not in the record: kept
    assert server_rows.get(code="HH-2").note == ""  # a new row: the model's default
    state = sender(server)
    assert state["schema"] == {"state": "older", "server_lacks": [],
                               "site_lacks": [f"test_app.{NOTE}"]}
    assert ImportedBundle.objects.using("server").get(seq=2).schema["test_app"] == ["0001_initial"]


def test_compare_names_each_side():
    server = {"a": ["0001", "0002"], "b": ["0001"]}
    assert compare(None, server)["state"] == "unknown"
    assert compare({"a": ["0001", "0002"]}, server)["state"] == "same"
    assert compare({"a": ["0001", "0002", "0003"]}, server) == {
        "state": "newer", "server_lacks": ["a.0003"], "site_lacks": []}
    assert compare({"a": ["0001", "0003"], "b": ["0001"]}, server) == {
        "state": "mixed", "server_lacks": ["a.0003"], "site_lacks": ["a.0002"]}
