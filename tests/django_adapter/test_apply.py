"""Apply through the edc-sync two-alias route: copy OutgoingTransaction rows from the
laptop (``default``) into the server's ledger, then deserialize them there."""

import datetime as dt

import pytest
from django.utils import timezone

from django_adapter.apply import retry_failed
from django_adapter.models import (
    ConflictingTransaction,
    IncomingTransaction,
    OutgoingTransaction,
    TxStatus,
)
from tests.django_adapter.helpers import assert_same, comparable
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def sync():
    """The calls exactly as edc-sync users write them."""
    OutgoingTransaction.objects.using("default").filter(
        is_consumed_server=False
    ).copy_to_incoming_transaction("server")
    return IncomingTransaction.objects.using("server").filter(is_consumed=False).deserialize(
        custom_device=None, check_hostname=False
    )


def test_every_field_type_round_trips_exactly(field_data):
    m.AllFields.objects.create(**field_data)
    result = sync()
    assert (result.applied, result.failed) == (1, 0), result.messages
    site, server = assert_same(m.AllFields, ["all-1"])
    for name, value in field_data.items():
        got = getattr(server, name)
        got = got.name if name == "file" else bytes(got) if name == "binary" else got
        assert got == value and type(got) is type(value), name
    assert server.modified == site.modified  # auto_now keeps the laptop's time


def test_microseconds_and_decimal_scale_survive(field_data):
    field_data["decimal"] = field_data["decimal"].__class__("1.5")
    m.AllFields.objects.create(**field_data)
    sync()
    server = m.AllFields.objects.using("server").get()
    assert str(server.decimal) == "1.5000000000"
    assert server.datetime.microsecond == 123456


def test_chains_of_foreign_keys_m2m_and_uuid_pks(subject_tree):
    result = sync()
    assert result.failed == 0, result.messages
    for model, key in [
        (m.Household, ["HH-1"]),
        (m.Subject, ["S-1"]),
        (m.Visit, ["1000", ["S-1"]]),
        (m.Crf, [["1000", ["S-1"]]]),
        (m.Requisition, ["REQ-1"]),
    ]:
        assert_same(model, key)
    assert m.Crf.objects.using("server").get().pk == subject_tree["crf"].pk
    assert sorted(p.code for p in m.Crf.objects.using("server").get().panels.all()) == ["CD4", "VL"]


def test_autoincrement_pks_may_differ_and_references_still_resolve():
    m.Household.objects.using("server").create(code="SERVER-ONLY")  # shifts server pks
    hh = m.Household.objects.create(code="HH-1")
    m.Subject.objects.create(code="S-1", household=hh)
    sync()
    server_subject = m.Subject.objects.using("server").get(code="S-1")
    assert server_subject.household.code == "HH-1"
    assert server_subject.household.pk != hh.pk


def test_updates_deletes_proxy_and_multi_table_inheritance():
    clinic = m.Clinic.objects.create(name="C1", district="Kweneng", beds=2)
    m.SubjectProxy.objects.create(code="S-P")
    sync()
    clinic.beds = 9
    clinic.district = "Central"
    clinic.save()
    sync()
    server_clinic = m.Clinic.objects.using("server").get()
    assert (server_clinic.name, server_clinic.district, server_clinic.beds) == ("C1", "Central", 9)
    assert m.Place.objects.using("server").count() == 1
    assert m.Subject.objects.using("server").filter(code="S-P").exists()
    clinic.delete()
    result = sync()
    assert (result.applied, result.deleted_missing, result.failed) == (2, 0, 0)
    assert not m.Place.objects.using("server").exists()


def test_same_transaction_copied_twice_is_stored_and_applied_once():
    m.Household.objects.create(code="HH-1")
    qs = OutgoingTransaction.objects.using("default").all()
    first = qs.copy_to_incoming_transaction("server")
    second = qs.copy_to_incoming_transaction("server")
    assert (first.copied, second.copied, second.duplicate) == (1, 0, 1)
    result = IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    again = IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    assert (result.applied, again.applied) == (1, 0)
    assert m.Household.objects.using("server").count() == 1


def test_same_id_with_different_content_is_a_conflict_kept_aside():
    m.Household.objects.create(code="HH-1", village="A")
    out = OutgoingTransaction.objects.get()
    OutgoingTransaction.objects.all().copy_to_incoming_transaction("server")
    from django_adapter.codec import packb, unpackb

    record = unpackb(out.tx)
    record["fields"]["village"] = "tampered"
    out.tx = packb(record)
    out.save()
    result = OutgoingTransaction.objects.all().copy_to_incoming_transaction("server")
    assert result.conflict == 1 and result.copied == 0
    assert ConflictingTransaction.objects.using("server").get().tx_id == out.tx_id
    sync()
    assert m.Household.objects.using("server").get().village == "A"


def test_late_update_is_stale_and_never_rolls_an_object_back():
    hh = m.Household.objects.create(code="HH-1", village="v1")
    hh.village = "v2"
    hh.save()
    rows = list(OutgoingTransaction.objects.order_by("id"))
    # The newer update reaches the server first (another route), then the older one.
    OutgoingTransaction.objects.filter(pk__in=[rows[0].pk, rows[1].pk]).order_by("-id")
    OutgoingTransaction.objects.filter(pk=rows[0].pk).copy_to_incoming_transaction("server")
    OutgoingTransaction.objects.filter(pk=rows[1].pk).copy_to_incoming_transaction("server")
    IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    hh.village = "v3"
    hh.save()
    newest = OutgoingTransaction.objects.order_by("-id").first()
    # Re-time the middle update so it is older than v3 but arrives after it.
    late = OutgoingTransaction.objects.create(
        tx_name=newest.tx_name, tx_pk=newest.tx_pk, producer=newest.producer, action="U",
        timestamp=rows[1].timestamp + dt.timedelta(microseconds=1), tx=_retimed(rows[1], "v-late"),
    )
    OutgoingTransaction.objects.filter(pk=newest.pk).copy_to_incoming_transaction("server")
    IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    OutgoingTransaction.objects.filter(pk=late.pk).copy_to_incoming_transaction("server")
    result = IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    assert (result.stale, result.applied) == (1, 0)
    assert m.Household.objects.using("server").get().village == "v3"
    assert IncomingTransaction.objects.using("server").get(status=TxStatus.STALE).is_consumed


def _retimed(row, village):
    import uuid

    from django_adapter.codec import packb, unpackb

    record = unpackb(row.tx)
    record["id"] = uuid.uuid4()
    record["ts"] = row.timestamp + dt.timedelta(microseconds=1)
    record["fields"]["village"] = village
    return packb(record)


def test_delete_of_missing_object_is_recorded_as_such():
    hh = m.Household.objects.create(code="HH-1")
    OutgoingTransaction.objects.all().delete()  # the insert never reached the server
    hh.delete()
    result = sync()
    assert result.deleted_missing == 1
    assert IncomingTransaction.objects.using("server").get().status == TxStatus.DELETED_MISSING


def test_failed_transaction_is_recorded_and_retried_after_the_fix():
    hh = m.Household.objects.create(code="HH-1")
    m.Subject.objects.create(code="S-1", household=hh)
    # Only the subject reaches the server: its household is unknown there.
    OutgoingTransaction.objects.filter(tx_name="test_app.subject").copy_to_incoming_transaction("server")
    result = IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    assert result.failed == 1 and "HH-1" in result.messages[0]
    row = IncomingTransaction.objects.using("server").get()
    assert (row.status, row.is_consumed) == (TxStatus.FAILED, False)
    assert "natural key" in row.reason
    # The cause is fixed: the household arrives (and is applied).
    OutgoingTransaction.objects.filter(tx_name="test_app.household").copy_to_incoming_transaction("server")
    IncomingTransaction.objects.using("server").filter(tx_name="test_app.household").deserialize(
        check_hostname=False
    )
    again = retry_failed(using="server")
    assert (again.applied, again.failed) == (1, 0)
    assert m.Subject.objects.using("server").get().household.code == "HH-1"


def test_check_hostname_skips_own_transactions_like_edc_sync():
    m.Household.objects.create(code="HH-1")
    OutgoingTransaction.objects.all().copy_to_incoming_transaction("server")
    result = IncomingTransaction.objects.using("server").filter(is_consumed=False).deserialize()
    assert (result.applied, result.skipped) == (0, 1)
    other = IncomingTransaction.objects.using("server").deserialize(custom_device="central-server")
    assert other.applied == 1


def test_server_does_not_re_emit_what_it_applies(subject_tree):
    sync()
    assert OutgoingTransaction.objects.using("server").count() == 0
    assert comparable(subject_tree["subject"], "default")["tags"] == [("hiv",), ("tb",)]


def test_incoming_timestamp_is_aware():
    m.Household.objects.create(code="HH-1")
    sync()
    assert timezone.is_aware(IncomingTransaction.objects.using("server").get().timestamp)


def test_row_in_an_unknown_record_format_fails_visibly_and_stays_retryable():
    m.Household.objects.create(code="HH-1")
    OutgoingTransaction.objects.all().copy_to_incoming_transaction("server")
    IncomingTransaction.objects.using("server").update(format=99)
    result = IncomingTransaction.objects.using("server").deserialize(check_hostname=False)
    assert result.failed == 1 and "format 99" in result.messages[0]
    IncomingTransaction.objects.using("server").update(format=1)  # a release that reads it
    assert retry_failed(using="server").applied == 1
