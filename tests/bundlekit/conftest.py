"""Shared fixtures: a field site, three servers, and one small sealed bundle."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from bundlekit.keys import Identity
from bundlekit.writer import ChainLink, seal

FIXED_TIME = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def site() -> Identity:
    return Identity.generate("Site A (Kisumu)")


@pytest.fixture(scope="session")
def community() -> Identity:
    return Identity.generate("community-server")


@pytest.fixture(scope="session")
def central() -> Identity:
    return Identity.generate("central-server")


@pytest.fixture(scope="session")
def middleman() -> Identity:
    return Identity.generate("hub")


@pytest.fixture(scope="session")
def servers(community, central, middleman) -> list[Identity]:
    return [community, central, middleman]


def make_records(n: int, start: int = 0) -> list[dict]:
    """Records shaped like the Django adapter's, with typed values."""
    return [
        {
            "id": uuid.UUID(int=start + i + 1),
            "model": "survey.household" if i % 3 else "survey.member",
            "action": "I",
            "pk": start + i,
            "ts": FIXED_TIME + dt.timedelta(seconds=i),
            "fields": {"name": f"household {start + i}", "income": Decimal("12.50"), "n": i},
        }
        for i in range(n)
    ]


@pytest.fixture
def small_bundle(tmp_path, site, community, central):
    """A sealed bundle of a few hundred bytes, for exhaustive tamper tests."""
    out = tmp_path / "usb"
    out.mkdir()
    (sealed,) = seal(
        [{"id": 1, "model": "m", "v": "x"}],
        identity=site,
        recipients=[community.public, central.public],
        out_dir=out,
        after=ChainLink(0, None),
        created=FIXED_TIME,
    )
    return sealed
