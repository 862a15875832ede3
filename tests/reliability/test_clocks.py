"""Wrong clocks on laptops.  Nothing in the order of application depends on a
clock: bundles apply by sequence number, records by position.  The one place a
timestamp decides is the stale check (a late change never rolls an object back),
and a laptop whose clock jumps backwards (a flat CMOS battery) must not have its
own newest change refused as "stale"."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest

from bundlekit.keys import Identity
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from tests.test_app import models as m

pytestmark = [
    pytest.mark.django_db(databases=["default", "server"]),
]

SITE, CENTRAL = Identity.generate("site-a"), Identity.generate("central")


def at(when):
    return mock.patch("django_adapter.capture.timezone.now", return_value=when)


def ship(tmp_path, name):
    made = export_pending(tmp_path / name, identity=SITE, recipients=[CENTRAL.public])
    for b in made:
        import_bundle(tmp_path / name / b.file_name, identities=[CENTRAL], using="server")


def test_clock_set_back_on_the_same_laptop_still_applies_its_newest_change(tmp_path, record):
    right = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    reset = dt.datetime(2001, 1, 1, 0, 0, tzinfo=dt.UTC)  # the battery died, clock reset
    with at(right):
        h = m.Household.objects.create(code="HH-1", village="first")
    ship(tmp_path, "a")
    with at(reset):
        h.village = "second"
        h.save()
    ship(tmp_path, "b")
    got = m.Household.objects.using("server").get(code="HH-1").village
    record("clocks", trials=1, lost=int(got != "second"), applied_twice=0)
    assert got == "second", "the laptop's own later change was refused because its clock went back"


def test_clock_set_back_within_one_bundle(tmp_path):
    right = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    reset = dt.datetime(2001, 1, 1, 0, 0, tzinfo=dt.UTC)
    with at(right):
        h = m.Household.objects.create(code="HH-2", village="first")
    with at(reset):
        h.village = "second"
        h.save()
    ship(tmp_path, "a")
    assert m.Household.objects.using("server").get(code="HH-2").village == "second"
