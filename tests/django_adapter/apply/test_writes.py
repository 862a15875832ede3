"""Updates of existing objects write every synced field as ``bulk_update`` would.

On MySQL and MariaDB the engine builds the ``CASE`` statement itself
(``writes._update_case``); what it stores must be what Django's ``bulk_update``
stores, for every built-in field type (``AllFields``) and for NULLs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection

from django_adapter import capture
from django_adapter.apply import writes
from tests.test_app import models as m

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif("connection.vendor != 'mysql'")]

FIELDS = [f for f in m.AllFields._meta.local_concrete_fields if not f.primary_key]


def values(i: int) -> dict:
    return dict(big=2**40 + i, small=-i, integer=i, positive=i, positive_small=i, positive_big=i,
                boolean=bool(i % 2), null_boolean=None if i % 3 else True, char=f"chär {i}",
                text="line\nline 'quoted' \\ back", slug=f"s-{i}", email=f"a{i}@b.org",
                url=f"https://x.org/{i}", date=dt.date(2026, 1, 1 + i),
                datetime=dt.datetime(2026, 1, 2, 3, 4, 5, 600000 + i, tzinfo=dt.UTC),
                time=dt.time(1, 2, 3, i), duration=dt.timedelta(days=i, microseconds=7),
                decimal=Decimal("12345.0000000001") + i, float=1.25 + i, uuid=uuid.UUID(int=i),
                json={"a": [i, None, "ü"]}, binary=bytes([0, 39, 92, i]), ip="10.0.0.1",
                file=f"files/{i}.txt", file_path=f"p{i}")


def stored(codes):
    rows = m.AllFields.objects.filter(code__in=codes).order_by("code")
    return [[f.value_from_object(r) if f.name != "binary" else bytes(r.binary) for f in FIELDS
             if f.name not in ("code", "modified")] for r in rows]


def test_the_case_update_stores_what_bulk_update_stores():
    with capture.suspended():
        mine = [m.AllFields.objects.create(code=f"a{i}") for i in range(5)]
        theirs = [m.AllFields.objects.create(code=f"b{i}") for i in range(5)]
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        for name, value in values(i).items():
            setattr(a, name, value)
            setattr(b, name, value)
    writes._update_case(m.AllFields, FIELDS, mine, connection, size=2)  # batches of 2, and 1
    m.AllFields.objects.bulk_update(theirs, [f.name for f in FIELDS])
    assert stored([a.code for a in mine]) == stored([b.code for b in theirs])
    assert stored([mine[3].code])[0][:3] == [2**40 + 3, -3, 3]


def test_nulls_and_unchanged_rows():
    with capture.suspended():
        made = [m.AllFields.objects.create(code=f"n{i}", integer=i, char="keep") for i in range(3)]
    made[0].integer = None
    writes._update_case(m.AllFields, [m.AllFields._meta.get_field("integer")], made[:2],
                        connection)
    got = dict(m.AllFields.objects.values_list("code", "integer"))
    assert got == {"n0": None, "n1": 1, "n2": 2}
