"""Capture: every change of a synced model leaves exactly one OutgoingTransaction,
in the change's own database and transaction."""

import pytest
from django.db import transaction

from django_adapter.codec import unpackb
from django_adapter.models import OutgoingTransaction
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def actions(using="default"):
    return [(o.tx_name, o.action) for o in OutgoingTransaction.objects.using(using).order_by("id")]


def test_insert_update_delete_are_captured_in_order(settings):
    settings.BUNDLEKIT_SITE = "site-a"  # edc-sync's setting, read when there is no BUNDLEKIT dict
    hh = m.Household.objects.create(code="HH-1")
    hh.village = "Mochudi"
    hh.save()
    hh.delete()
    assert actions() == [
        ("test_app.household", "I"),
        ("test_app.household", "U"),
        ("test_app.household", "D"),
    ]
    rows = list(OutgoingTransaction.objects.order_by("id"))
    assert len({r.tx_id for r in rows}) == 3
    assert rows[0].timestamp <= rows[1].timestamp <= rows[2].timestamp
    record = unpackb(rows[1].tx)
    assert record["fields"]["village"] == "Mochudi"
    assert record["natural_key"] == ["HH-1"]
    assert record["producer"].startswith("site-a/")
    assert unpackb(rows[2].tx)["natural_key"] == ["HH-1"]


def test_capture_goes_to_the_alias_of_the_change():
    m.Household.objects.using("server").create(code="HH-S")
    assert actions("default") == []
    assert actions("server") == [("test_app.household", "I")]


@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_rollback_leaves_no_outgoing_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        m.Household.objects.create(code="HH-1")
        raise RuntimeError("form validation failed later")
    assert not m.Household.objects.exists()
    assert OutgoingTransaction.objects.count() == 0


@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_autocommit_save_and_its_capture_commit_together(monkeypatch):
    """A failure while capturing undoes the save itself: never a committed change
    without its transaction."""
    from django_adapter import capture

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(capture, "to_record", broken)
    with pytest.raises(OSError):
        m.Household.objects.create(code="HH-1")
    assert not m.Household.objects.exists()


@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_a_failed_capture_inside_a_transaction_dooms_it(monkeypatch):
    """Inside a transaction, a save whose capture failed cannot be committed without
    it, even when the caller catches the error: the transaction must roll back."""
    from django.db import DatabaseError

    from django_adapter import capture

    def broken(*args, **kwargs):
        raise OSError("disk full")

    with transaction.atomic():
        m.Household.objects.create(code="HH-0")
    monkeypatch.setattr(capture, "to_record", broken)
    with pytest.raises(DatabaseError), transaction.atomic():  # TransactionManagementError
        try:
            m.Household.objects.create(code="HH-1")
        except OSError:
            pass
        assert transaction.get_rollback()
        m.Household.objects.count()  # refused: the transaction is doomed
    assert list(m.Household.objects.values_list("code", flat=True)) == ["HH-0"]
    assert OutgoingTransaction.objects.count() == 1


def test_capture_off_via_setting(settings):
    settings.ALLOW_MODEL_SERIALIZATION = False
    m.Household.objects.create(code="HH-1")
    m.Household.objects.filter(code="HH-1").update(village="x")
    assert OutgoingTransaction.objects.count() == 0


def test_m2m_changes_are_updates_of_the_owner_with_natural_keys():
    s = m.Subject.objects.create(code="S-1")
    t1, t2 = m.Tag.objects.create(code="a"), m.Tag.objects.create(code="b")
    s.tags.add(t1, t2)
    s.tags.remove(t1)
    t2.subject_set.clear()  # reverse side
    rows = list(OutgoingTransaction.objects.filter(tx_name="test_app.subject").order_by("id"))
    assert [r.action for r in rows] == ["I", "U", "U", "U"]
    assert [unpackb(r.tx)["m2m"]["tags"] for r in rows] == [[], [["a"], ["b"]], [["b"]], []]


def test_proxy_model_travels_as_its_concrete_model():
    m.SubjectProxy.objects.create(code="S-P")
    assert actions() == [("test_app.subject", "I")]


def test_multi_table_child_is_one_record_with_parent_fields():
    c = m.Clinic.objects.create(name="Clinic 1", district="Kweneng", beds=4)
    record = unpackb(OutgoingTransaction.objects.get().tx)
    assert record["model"] == "test_app.clinic"
    assert record["fields"]["name"] == "Clinic 1" and record["fields"]["beds"] == 4
    assert "place_ptr" not in record["fields"] and "id" not in record["fields"]
    c.delete()
    # The collector deletes child then parent; both travel.
    assert actions()[1:] == [("test_app.clinic", "D"), ("test_app.place", "D")]


def test_queryset_update_and_bulk_create_are_captured():
    objs = m.Tag.objects.bulk_create([m.Tag(code=f"t{i}") for i in range(3)])
    assert all(o.pk for o in objs)
    n = m.Tag.objects.filter(code__in=["t0", "t1"]).update(code=m.models.functions.Upper("code"))
    assert n == 2
    rows = list(OutgoingTransaction.objects.order_by("id"))
    assert [r.action for r in rows] == ["I", "I", "I", "U", "U"]
    assert sorted(unpackb(r.tx)["fields"]["code"] for r in rows[3:]) == ["T0", "T1"]


def test_queryset_delete_is_captured_per_row():
    m.Tag.objects.bulk_create([m.Tag(code=f"t{i}") for i in range(3)])
    m.Tag.objects.all().delete()
    assert [a for _, a in actions()] == ["I"] * 3 + ["D"] * 3


def test_bulk_create_ignore_conflicts_is_refused():
    from django_adapter.exceptions import SyncError

    with pytest.raises(SyncError):
        m.Tag.objects.bulk_create([m.Tag(code="x")], ignore_conflicts=True)
    assert not m.Tag.objects.exists()


def test_foreign_keys_travel_as_natural_keys_or_uuid_pks(subject_tree):
    crf_record = unpackb(OutgoingTransaction.objects.filter(tx_name="test_app.crf").first().tx)
    assert crf_record["pk"] == subject_tree["crf"].pk  # UUID pk travels
    assert crf_record["fields"]["visit"] == ["1000", ["S-1"]]  # nested natural key
    req = unpackb(OutgoingTransaction.objects.filter(tx_name="test_app.requisition").get().tx)
    assert req["fields"]["crf"] == subject_tree["crf"].pk
    assert req["fields"]["panel"] == subject_tree["panels"][0].pk


def test_an_update_carries_the_m2m_rows_an_insert_cannot_have_yet():
    s = m.Subject.objects.create(code="S-2")
    s.tags.add(m.Tag.objects.create(code="c"))
    s.save()
    rows = list(OutgoingTransaction.objects.filter(tx_name="test_app.subject").order_by("id"))
    assert [(r.action, unpackb(r.tx)["m2m"]["tags"]) for r in rows] == [
        ("I", []), ("U", [["c"]]), ("U", [["c"]])]


def test_transaction_ids_are_time_ordered_uuids_in_capture_order():
    for i in range(50):
        m.Household.objects.create(code=f"HH-T{i}")
    ids = [r.tx_id for r in OutgoingTransaction.objects.order_by("id")]
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert ids == sorted(ids, key=lambda u: u.int) and len(set(ids)) == 50


def test_m2m_read_back_matches_the_related_manager(subject_tree):
    """Capture reads an M2M set back with one prepared query: the same objects, in
    the same order and with the same typed values, as the related manager, for
    targets travelling by natural key (tags) and by UUID pk (panels)."""
    from django_adapter.serialization import m2m_targets

    for owner, name in ((subject_tree["subject"], "tags"), (subject_tree["crf"], "panels")):
        field = type(owner)._meta.get_field(name)
        fast = m2m_targets(owner, field, "default")
        slow = list(getattr(owner, name).order_by("pk"))
        assert fast == slow and len(fast) == 2
        for a, b in zip(fast, slow, strict=True):
            for f in a._meta.concrete_fields:
                assert getattr(a, f.attname) == getattr(b, f.attname)
                assert type(getattr(a, f.attname)) is type(getattr(b, f.attname))
    crf = subject_tree["crf"]
    record = unpackb(OutgoingTransaction.objects.filter(tx_name="test_app.crf").latest("id").tx)
    # In the database's pk order (MariaDB's native UUID type does not sort as Python does).
    in_db_order = list(crf.panels.order_by("pk").values_list("pk", flat=True))
    assert record["m2m"]["panels"] == in_db_order
    assert sorted(in_db_order) == sorted(p.pk for p in subject_tree["panels"])
    assert record["pk"] == crf.pk


def test_m2m_read_back_keeps_a_filtering_default_manager(subject_tree, monkeypatch):
    from django_adapter.serialization import m2m_targets

    subject = subject_tree["subject"]
    manager = type(m.Tag._default_manager)
    monkeypatch.setattr(manager, "get_queryset",
                        lambda self: super(manager, self).get_queryset().exclude(code="tb"),
                        raising=False)
    assert [t.code for t in m2m_targets(subject, m.Subject._meta.get_field("tags"), "default")] \
        == ["hiv"]


def test_m2m_read_back_builds_the_objects_from_db_builds(subject_tree):
    """The read-back's objects, made without Model.__init__, are those from_db makes:
    the same attributes in the same order, the same state, what SyncModelMixin
    remembers; with a post_init receiver, __init__ runs (the receiver sees them)."""
    from django.db.models import signals

    from django_adapter.serialization import m2m_targets

    for owner, name in ((subject_tree["subject"], "tags"), (subject_tree["crf"], "panels")):
        field = type(owner)._meta.get_field(name)
        fast = m2m_targets(owner, field, "default")
        target = field.remote_field.model
        names = [f.attname for f in target._meta.concrete_fields]
        slow = [target.from_db("default", names, [getattr(o, n) for n in names]) for o in fast]
        assert len(fast) == 2
        for a, b in zip(fast, slow, strict=True):
            assert type(a) is type(b)
            da, db = dict(a.__dict__), dict(b.__dict__)
            sa, sb = da.pop("_state"), db.pop("_state")
            assert list(da) == list(db) and da == db
            assert (sa.adding, sa.db, sa.fields_cache) == (sb.adding, sb.db, sb.fields_cache)
        seen = []

        def receiver(sender, instance, seen=seen, **kwargs):
            seen.append(instance)

        signals.post_init.connect(receiver, sender=target)
        try:
            again = m2m_targets(owner, field, "default")
        finally:
            signals.post_init.disconnect(receiver, sender=target)
        assert seen == again and again == fast
