"""Adding sync to a project that already has data: ``enqueue_existing`` writes an
insert per existing row, the next export carries them, and the server ends up with
the same rows (m2m, one-to-one, multi-table inheritance and UUID pks included)."""

import pytest

from django_adapter import capture
from django_adapter.enqueue import count_existing, enqueue_existing, synced_models
from django_adapter.models import OutgoingTransaction
from django_adapter.workflow import export_to, import_paths
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


@pytest.fixture
def existing(subject_tree):
    """The subject tree plus a clinic (a Place child) and a plain place, saved as if
    before django_adapter was installed: nothing captured."""
    OutgoingTransaction.objects.all().delete()
    with capture.suspended():
        m.Clinic.objects.create(name="Clinic A", beds=4, household=subject_tree["household"])
        m.Place.objects.create(name="Village hall")
    return subject_tree


def labels_in_order():
    return [OutgoingTransaction.objects.get(id=i).tx_name
            for i in OutgoingTransaction.objects.order_by("id").values_list("id", flat=True)]


def test_every_existing_row_once_in_dependency_order(existing):
    models = synced_models()
    order = [x._meta.label for x in models]
    assert order.index("test_app.Household") < order.index("test_app.Subject")
    assert order.index("test_app.Tag") < order.index("test_app.Subject")
    assert order.index("test_app.Crf") < order.index("test_app.Requisition")
    assert order.index("test_app.Place") < order.index("test_app.Clinic")
    assert "test_app.SubjectProxy" not in order  # travels as Subject

    assert count_existing(models) == 11
    seen = []
    report = enqueue_existing(progress=seen.append)
    assert report.total == 11 and sum(seen) == 11
    # The clinic travels once, as a Clinic (as capture records it), not also as a Place.
    assert report.enqueued["test_app.Place"] == 1 and report.enqueued["test_app.Clinic"] == 1
    assert set(OutgoingTransaction.objects.values_list("action", flat=True)) == {"I"}
    written = labels_in_order()
    assert written.index("test_app.household") < written.index("test_app.subject")

    again = enqueue_existing()
    assert again.total == 0 and sum(again.skipped.values()) == 11
    assert OutgoingTransaction.objects.count() == 11


def test_rows_captured_since_are_not_enqueued_twice(existing):
    m.Household.objects.create(code="HH-2")  # captured: it has its insert already
    report = enqueue_existing([m.Household])
    assert report.enqueued == {"test_app.Household": 1}
    assert report.skipped == {"test_app.Household": 1}


def test_dry_run_counts_and_writes_nothing(existing):
    report = enqueue_existing(dry_run=True)
    assert report.total == 11 and report.dry_run
    assert OutgoingTransaction.objects.count() == 0


def test_the_server_gets_the_existing_rows(existing, site, server, usb):
    enqueue_existing()
    export_to(usb, config=site)
    run = import_paths([usb], config=server)
    assert [f.status for f in run.files] == ["applied"], run.to_dict()
    assert run.files[0].applied == 11
    subject = m.Subject.objects.using("server").get(code="S-1")
    assert subject.household.code == "HH-1"
    assert sorted(t.code for t in subject.tags.all()) == ["hiv", "tb"]
    crf = m.Crf.objects.using("server").get()
    assert crf.pk == existing["crf"].pk and sorted(p.code for p in crf.panels.all()) == ["CD4", "VL"]
    clinic = m.Clinic.objects.using("server").get()
    assert (clinic.name, clinic.beds, clinic.household.code) == ("Clinic A", 4, "HH-1")
    assert m.Place.objects.using("server").count() == 2


def test_a_model_that_is_not_synced_is_refused():
    with pytest.raises(LookupError):
        synced_models(["django_adapter.OutgoingTransaction"])
    with pytest.raises(LookupError):
        synced_models(["test_app.NoSuchModel"])
