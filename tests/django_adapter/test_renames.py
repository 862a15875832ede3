"""Renamed natural keys: an update that changes an object's natural key carries the
key before the change, and the server renames its row (every reference follows)."""

import datetime as dt

import pytest

from django_adapter.models import IncomingTransaction, OutgoingTransaction
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def sync():
    OutgoingTransaction.objects.using("default").filter(
        is_consumed_server=False
    ).copy_to_incoming_transaction("server")
    result = IncomingTransaction.objects.using("server").filter(is_consumed=False).deserialize(
        check_hostname=False
    )
    assert result.failed == 0, result.messages
    return result


def last_record():
    return OutgoingTransaction.objects.using("default").order_by("-id").first().record


def test_an_update_carries_the_key_before_only_when_it_changed():
    tag = m.Tag.objects.create(code="solar")
    assert "natural_key_before" not in last_record()
    tag = m.Tag.objects.get(pk=tag.pk)
    tag.save()
    assert "natural_key_before" not in last_record()
    tag.code = "solar-panel"
    tag.save()
    record = last_record()
    assert record["natural_key"] == ["solar-panel"] and record["natural_key_before"] == ["solar"]
    # Saved again (same instance, no reload): the key before is now the new one.
    tag.code = "solar-pv"
    tag.save()
    assert last_record()["natural_key_before"] == ["solar-panel"]


def test_rename_of_an_autoincrement_row_referenced_by_fk_and_m2m():
    hh = m.Household.objects.create(code="HH-1")
    solar = m.Tag.objects.create(code="solar")
    subject = m.Subject.objects.create(code="S-1", household=hh)
    subject.tags.set([solar])
    sync()

    solar = m.Tag.objects.get(code="solar")  # loaded fresh, as a form view does
    solar.code = "solar-panel"
    solar.save()
    hh = m.Household.objects.get(code="HH-1")
    hh.code = "HH-1-renamed"
    hh.save()
    result = sync()
    assert result.applied == 2

    server_tags = m.Tag.objects.using("server")
    assert list(server_tags.values_list("code", flat=True)) == ["solar-panel"]
    s = m.Subject.objects.using("server").get(code="S-1")
    assert list(s.tags.values_list("code", flat=True)) == ["solar-panel"]
    assert s.household.code == "HH-1-renamed"
    assert m.Household.objects.using("server").count() == 1


def test_rename_of_a_parent_carries_the_children_whose_key_includes_it():
    """Visit's natural key is (visit_code, subject's key): renaming the subject
    renames the visit's key too, with no change of the visit itself."""
    subject = m.Subject.objects.create(code="S-1")
    visit = m.Visit.objects.create(
        subject=subject, visit_code="1000", report_datetime=dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    )
    m.Crf.objects.create(visit=visit)
    sync()

    subject = m.Subject.objects.get(code="S-1")
    subject.code = "S-1b"
    subject.save()
    visit = m.Visit.objects.get(pk=visit.pk)
    visit.report_datetime = dt.datetime(2024, 5, 2, tzinfo=dt.UTC)
    visit.save()
    assert "natural_key_before" not in last_record()  # the visit's own fields kept its key
    sync()

    visits = m.Visit.objects.using("server")
    assert visits.count() == 1 and m.Subject.objects.using("server").count() == 1
    v = visits.get()
    assert v.subject.code == "S-1b" and v.report_datetime.day == 2
    assert m.Crf.objects.using("server").get().visit_id == v.pk


def test_rename_by_queryset_update_and_then_delete():
    m.Tag.objects.create(code="a")
    m.Tag.objects.create(code="b")
    sync()
    m.Tag.objects.filter(code="a").update(code="a2")
    assert last_record()["natural_key_before"] == ["a"]
    sync()
    assert sorted(m.Tag.objects.using("server").values_list("code", flat=True)) == ["a2", "b"]

    tag = m.Tag.objects.get(code="b")
    tag.code = "b2"
    tag.save()
    tag.delete()
    sync()
    assert list(m.Tag.objects.using("server").values_list("code", flat=True)) == ["a2"]


def test_rename_of_a_uuid_pk_row_and_a_rename_applied_twice():
    panel = m.Panel.objects.create(code="CD4")
    sync()
    panel = m.Panel.objects.get(pk=panel.pk)
    panel.code = "CD4-count"
    panel.save()
    assert last_record()["natural_key_before"] == ["CD4"]
    sync()
    assert list(m.Panel.objects.using("server").values_list("pk", "code")) == [(panel.pk, "CD4-count")]

    # A rename the server already has (its row carries the new key): found by that.
    tag = m.Tag.objects.create(code="x")
    sync()
    tag = m.Tag.objects.get(pk=tag.pk)
    tag.code = "y"
    tag.save()
    m.Tag.objects.using("server").filter(code="x").update(code="y")
    sync()
    assert list(m.Tag.objects.using("server").values_list("code", flat=True)) == ["y"]
