"""Fixtures shared by the Django adapter tests: a laptop database (``default``)
and a server database (``server``) on the same backend; for the workflow tests,
keys on disk, a Config per role (see workflow_support.py) and a stick."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from django_adapter import clock
from tests.django_adapter.workflow_support import Keys, config_of, server_settings, site_settings
from tests.test_app import models as m

BOTH = ["default", "server"]
UTC = dt.UTC


@pytest.fixture(autouse=True)
def fresh_clock_offset():
    """A test's database rolls back, but a process caches the site's clock offset
    (django_adapter.clock): every test starts without one."""
    clock.forget()
    yield
    clock.forget()


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path / "keys")


@pytest.fixture
def site(keys, tmp_path):
    """The field laptop's Config (site-a on ``default``)."""
    return config_of(site_settings(keys, tmp_path), tmp_path)


@pytest.fixture
def server(keys, tmp_path):
    """The server's Config (central on ``server``)."""
    return config_of(server_settings(keys, tmp_path), tmp_path)


@pytest.fixture
def usb(tmp_path):
    path = tmp_path / "usb"
    path.mkdir()
    return path


@pytest.fixture
def field_data():
    """Values for AllFields that a lossy format would get wrong."""
    return dict(
        code="all-1",
        big=-(2**62),
        small=-32000,
        integer=2_000_000_000,
        positive=4_000_000,
        positive_small=32000,
        positive_big=2**62,
        boolean=True,
        null_boolean=None,
        char="Ünïcödé ✓ 𝄞",
        text="line1\nline2\ttab",
        slug="a-slug",
        email="ra@example.org",
        url="https://example.org/a?b=c",
        date=dt.date(1999, 12, 31),
        datetime=dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        time=dt.time(13, 14, 15, 654321),
        duration=dt.timedelta(days=3, seconds=7, microseconds=11),
        # 15 significant digits: SQLite keeps decimals as REAL, exact to 15 only.
        decimal=Decimal("-12345678.0123456000"),
        float=0.1 + 0.2,
        uuid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        json={"a": [1, 2.5, None, True, "x"], "nested": {"k": "v"}},
        binary=b"\x00\x01\xff binary",
        ip="2001:db8::1",
        file="files/consent.pdf",
        file_path="forms/crf.txt",
    )


@pytest.fixture
def subject_tree():
    """A household, subject with tags, visit, UUID-pk CRF with panels, requisition."""
    hh = m.Household.objects.create(code="HH-1", village="Molepolole")
    t1 = m.Tag.objects.create(code="hiv")
    t2 = m.Tag.objects.create(code="tb")
    subject = m.Subject.objects.create(code="S-1", household=hh)
    subject.tags.set([t1, t2])
    visit = m.Visit.objects.create(
        subject=subject,
        visit_code="1000",
        report_datetime=dt.datetime(2024, 5, 1, 8, 30, 0, 1, tzinfo=UTC),
    )
    p1 = m.Panel.objects.create(code="CD4")
    p2 = m.Panel.objects.create(code="VL")
    crf = m.Crf.objects.create(visit=visit, weight=Decimal("61.50"))
    crf.panels.set([p1, p2])
    req = m.Requisition.objects.create(
        requisition_identifier="REQ-1",
        crf=crf,
        panel=p1,
        drawn_datetime=dt.datetime(2024, 5, 1, 9, 0, 0, 999999, tzinfo=UTC),
    )
    return dict(household=hh, tags=[t1, t2], subject=subject, visit=visit, panels=[p1, p2], crf=crf, requisition=req)
