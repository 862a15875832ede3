"""The prepared read of existing M2M links (django_adapter/m2m_links.py) gives
add() the same answer as Django's own query, on both sides of a relation and for
targets with autoincrement and UUID keys."""

import pytest
from django.db.models import signals

from django_adapter import m2m_links
from tests.test_app import models as m

pytestmark = pytest.mark.django_db(databases=["default", "server"])


def managers(tree):
    """(related manager, its targets) for each side of the two synced M2M relations."""
    subject, crf = tree["subject"], tree["crf"]
    extra_tag = m.Tag.objects.create(code="flu")
    extra_panel = m.Panel.objects.create(code="FBC")
    other_subject = m.Subject.objects.create(code="S-9")
    return [
        (subject.tags, [*tree["tags"], extra_tag]),
        (tree["tags"][0].subject_set, [subject, other_subject]),
        (crf.panels, [*tree["panels"], extra_panel]),
        (tree["panels"][0].crf_set, [crf]),
    ]


def test_capture_gives_both_sides_of_a_synced_relation_the_prepared_read():
    for descriptor in (m.Subject.tags, m.Tag.subject_set, m.Crf.panels, m.Panel.crf_set):
        assert descriptor.related_manager_cls._bk_prepared_links is True


def test_missing_targets_are_the_ones_django_computes(subject_tree):
    for manager, targets in managers(subject_tree):
        cls = type(manager)
        django_own = super(cls, manager)._get_missing_target_ids
        args = (manager.source_field_name, manager.target_field_name, "default")
        ids = manager._get_target_ids(manager.target_field_name, targets)
        for subset in (ids, set(list(ids)[:1]), ids - set(list(ids)[:1])):
            expected = django_own(*args, set(subset))
            assert manager._get_missing_target_ids(*args, set(subset)) == expected
        linked = {t.pk for t in manager.all()}
        assert linked and manager._get_missing_target_ids(*args, set(ids)) == ids - linked


def test_add_signals_only_the_new_links_and_writes_them(subject_tree):
    sent = []

    def receiver(action, pk_set, **kwargs):
        if action == "post_add":
            sent.append(set(pk_set))

    signals.m2m_changed.connect(receiver, sender=m.Crf.panels.through)
    try:
        crf, (p1, p2) = subject_tree["crf"], subject_tree["panels"]
        p3 = m.Panel.objects.create(code="FBC")
        crf.panels.add(p1, p2, p3)
        crf.panels.add(p1)
        p3.crf_set.add(crf)
    finally:
        signals.m2m_changed.disconnect(receiver, sender=m.Crf.panels.through)
    assert sent == [{p3.pk}, set(), set()]
    assert {p.pk for p in crf.panels.all()} == {p1.pk, p2.pk, p3.pk}


def test_many_targets_go_through_djangos_own_query(subject_tree, monkeypatch):
    monkeypatch.setattr(m2m_links, "MAX_TARGETS", 1)
    used = []
    real = m2m_links.existing_links
    monkeypatch.setattr(m2m_links, "existing_links", lambda *a: used.append(a) or real(*a))
    subject = subject_tree["subject"]
    flu = m.Tag.objects.create(code="flu")
    subject.tags.add(*subject_tree["tags"], flu)
    assert used == []
    subject.tags.add(flu)
    assert len(used) == 1
    assert sorted(t.code for t in subject.tags.all()) == ["flu", "hiv", "tb"]


def test_more_targets_than_named_parameters_are_read_the_same(subject_tree):
    """Past the 16 parameter names made ahead (SQLite), the names are made per query."""
    subject = subject_tree["subject"]
    tags = [m.Tag.objects.create(code=f"t-{i}") for i in range(20)]
    subject.tags.add(*tags[::3])
    manager = subject.tags
    django_own = super(type(manager), manager)._get_missing_target_ids
    args = (manager.source_field_name, manager.target_field_name, "default")
    for n in (15, 16, 17, 20):
        ids = {t.pk for t in tags[:n]}
        assert manager._get_missing_target_ids(*args, set(ids)) == django_own(*args, set(ids))
