"""Importers running in parallel (PostgreSQL, MariaDB): one sender's import holds
that sender's lock only; another sender's bundle goes through meanwhile."""

import threading

import pytest
from django.db import connections
from django.db.models.signals import post_save

from bundlekit.keys import Identity
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from tests.test_app import models as m
from tests.test_project.settings import BACKEND


@pytest.mark.skipif(BACKEND == "sqlite", reason="SQLite serializes every writer")
@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_a_slow_import_blocks_its_own_sender_only(tmp_path):
    a, b, server = Identity.generate("site-a"), Identity.generate("site-b"), Identity.generate("central")
    m.Household.objects.create(code="A-1")
    (a1,) = export_pending(tmp_path / "a", identity=a, recipients=[server.public])
    m.Household.objects.create(code="A-2")
    (a2,) = export_pending(tmp_path / "a", identity=a, recipients=[server.public])
    m.Tag.objects.create(code="B-1")
    (b1,) = export_pending(tmp_path / "b", identity=b, recipients=[server.public])

    inside, release = threading.Event(), threading.Event()

    def hold(sender, instance, **kwargs):
        if instance.code == "A-1":
            inside.set()
            release.wait(30)

    results = {}

    def run(name, path):
        try:
            results[name] = import_bundle(path, identities=[server], using="server").status
        finally:
            for conn in connections.all():
                conn.close()

    post_save.connect(hold, sender=m.Household)
    try:
        t1 = threading.Thread(target=run, args=("a1", tmp_path / "a" / a1.file_name))
        t1.start()
        assert inside.wait(30)
        t2 = threading.Thread(target=run, args=("a2", tmp_path / "a" / a2.file_name))
        t2.start()
        run("b1", tmp_path / "b" / b1.file_name)  # another sender: not blocked
        assert results == {"b1": "applied"}
        t2.join(0.5)
        assert t2.is_alive(), "site-a's second import must wait for site-a's lock"
        release.set()
        t1.join(30)
        t2.join(30)
    finally:
        release.set()
        post_save.disconnect(hold, sender=m.Household)
    # The second import saw the first one's commit: it applied in order, no gap.
    assert results == {"b1": "applied", "a1": "applied", "a2": "applied"}
    assert sorted(m.Household.objects.using("server").values_list("code", flat=True)) == ["A-1", "A-2"]
