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


def _set_story(tree):
    """set() calls on both sides of both synced relations; the m2m_changed
    signals they send (action, pk_set) and the links at the end."""
    subject, crf = tree["subject"], tree["crf"]
    t1, t2 = tree["tags"]
    p1, p2 = tree["panels"]
    t3 = m.Tag.objects.create(code="flu")
    p3 = m.Panel.objects.create(code="FBC")
    other = m.Subject.objects.create(code="S-9")
    sent = []

    def receiver(sender, action, pk_set, **kwargs):
        if action in ("post_add", "post_remove"):
            sent.append((sender._meta.label, action, sorted(map(str, pk_set))))

    throughs = (m.Subject.tags.through, m.Crf.panels.through)
    for through in throughs:
        signals.m2m_changed.connect(receiver, sender=through)
    try:
        subject.tags.set([t1, t3])  # t1 stays, t2 goes, t3 comes
        subject.tags.set([t1, t3, t3, t2.pk])  # a duplicate, a raw pk
        subject.tags.set([t2], clear=True)
        t1.subject_set.set([subject, other])  # the reverse side
        crf.panels.set([p3, p1])  # UUID keys
        crf.panels.set([str(p2.pk)])  # a UUID given as text
        p3.crf_set.set([crf])
        crf.panels.set([])
    finally:
        for through in throughs:
            signals.m2m_changed.disconnect(receiver, sender=through)
    links = (sorted(t.code for t in subject.tags.all()), sorted(s.code for s in t1.subject_set.all()),
             sorted(p.code for p in crf.panels.all()))
    return sent, links


@pytest.mark.parametrize("shortcut", [True, False])
def test_set_skips_the_links_read_and_signals_what_django_signals(subject_tree, monkeypatch,
                                                                   shortcut):
    """Inside set(), add() takes its targets as not linked when set() just read
    every link: the signals and the links are those of Django's own read (the
    same story with the shortcut off), and a target named twice still reads."""
    reads = []
    real = m2m_links.existing_links
    monkeypatch.setattr(m2m_links, "existing_links", lambda *a: reads.append(a) or real(*a))
    if not shortcut:
        monkeypatch.setattr(m2m_links, "_set_knows", lambda *a: False)
    sent, links = _set_story(subject_tree)
    t1, t2 = (str(t.pk) for t in subject_tree["tags"])
    p1, p2 = (str(p.pk) for p in subject_tree["panels"])
    t3, p3 = str(m.Tag.objects.get(code="flu").pk), str(m.Panel.objects.get(code="FBC").pk)
    s1, s9 = (str(m.Subject.objects.get(code=c).pk) for c in ("S-1", "S-9"))
    crf = str(subject_tree["crf"].pk)
    tags, panels = m.Subject.tags.through._meta.label, m.Crf.panels.through._meta.label
    assert sent == [
        (tags, "post_remove", [t2]), (tags, "post_add", [t3]),
        (tags, "post_add", [t2]),
        (tags, "post_add", [t2]),
        (tags, "post_add", sorted([s1, s9])),
        (panels, "post_remove", [p2]), (panels, "post_add", [p3]),
        (panels, "post_remove", sorted([p1, p3])), (panels, "post_add", [p2]),
        (panels, "post_add", [crf]),
        (panels, "post_remove", sorted([p2, p3])),
    ]
    assert links == (["hiv", "tb"], ["S-1", "S-9"], [])
    # With the shortcut, only the sets that remove or clear links first, or name a
    # target twice, read the links.
    active = shortcut and m2m_links._known_set(type(subject_tree["subject"].tags).__mro__[1])
    assert len(reads) == (5 if active else 7)


def test_set_reads_the_links_when_its_own_read_may_have_missed_some(subject_tree, monkeypatch):
    """A prefetched list stands in for set()'s read: add() reads the links itself."""
    from django.db.models import Prefetch

    reads = []
    real = m2m_links.existing_links
    monkeypatch.setattr(m2m_links, "existing_links", lambda *a: reads.append(a) or real(*a))
    t1, t2 = subject_tree["tags"]
    subject = m.Subject.objects.prefetch_related(
        Prefetch("tags", queryset=m.Tag.objects.filter(code="hiv"))).get(pk=subject_tree["subject"].pk)
    subject.tags.set([t1, t2])
    if not hasattr(type(subject.tags), "set_base"):
        assert reads  # t2 looked new to set() but is linked: the read finds it
    # (Django 6's set() drops the prefetched list and reads the links itself.)
    assert sorted(t.code for t in subject.tags.all()) == ["hiv", "tb"]
