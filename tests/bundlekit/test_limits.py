"""bundlekit.limits: the walk that bounds a msgpack value before it is decoded."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlekit import limits
from bundlekit.errors import CorruptBundle
from bundlekit.limits import LimitExceeded, Limits, scan

WIDE = Limits(values=10**7, depth=100, length=10**7, size=2**32)

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
           | st.text(max_size=300) | st.binary(max_size=300)
           | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=300)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=20)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=20), max_leaves=200)


@settings(max_examples=300, deadline=None)
@given(value=values, prefix=st.binary(max_size=5))
def test_scan_finds_where_every_msgpack_value_ends(value, prefix):
    packed = msgpack.packb(value, use_bin_type=True)
    assert scan(prefix + packed, WIDE, start=len(prefix)) == len(prefix) + len(packed)
    if packed:
        with pytest.raises(LimitExceeded, match="ends in the middle"):
            scan(packed[:-1], WIDE)


def test_each_bound_is_enforced_at_its_value():
    nested = msgpack.packb([[[1]]])  # depth 3
    assert scan(nested, Limits(values=4, depth=3, length=1, size=0)) == len(nested)
    with pytest.raises(LimitExceeded, match="deeper than 2"):
        scan(nested, Limits(values=4, depth=2, length=1, size=0))
    with pytest.raises(LimitExceeded, match="more than 3 values"):
        scan(nested, Limits(values=3, depth=3, length=1, size=0))
    with pytest.raises(LimitExceeded, match="3 items, more than 2"):
        scan(msgpack.packb({"a": [1, 2, 3]}), Limits(values=10, depth=3, length=2, size=10))
    with pytest.raises(LimitExceeded, match="40 bytes, more than 39"):
        scan(msgpack.packb("x" * 40), Limits(values=1, depth=1, length=1, size=39))
    with pytest.raises(LimitExceeded, match="not msgpack"):
        scan(b"\xc1", WIDE)


def test_a_header_announcing_more_than_is_there_builds_nothing():
    # 1,000 arrays each announcing 60,000 items: refused by depth, then by the missing items.
    data = b"\xdc\xea\x60" * 1000
    with pytest.raises(LimitExceeded, match="deeper than 32"):
        scan(data, limits.RECORD)
    with pytest.raises(LimitExceeded, match="ends in the middle"):
        scan(b"\xdc\xea\x60" * 10, limits.RECORD)


def test_check_record_takes_the_fast_path_only_when_no_bound_can_break():
    ok = msgpack.packb({"id": 1, "m2m": [[i, "x"] for i in range(100)]})
    limits.check_record(ok)  # 101 container headers: walked, and within bounds
    limits.check_record(msgpack.packb({"v": list(range(limits.MAX_RECORD_VALUES - 3))}))
    with pytest.raises(CorruptBundle, match="more than 100,000 values"):
        limits.check_record(msgpack.packb({"v": [None] * limits.MAX_RECORD_VALUES}))
    deep = b"\x81\xa1v" + b"\x91" * 32 + b"\xc0"
    with pytest.raises(CorruptBundle, match="deeper than 32"):
        limits.check_record(deep)
    limits.check_record(b"\x81\xa1v" + b"\x91" * 30 + b"\xc0")  # depth 32 exactly


def test_writers_refuse_what_readers_refuse(tmp_path, site, central):
    from bundlekit.writer import ChainLink, seal

    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper than 32"):
        seal([{"id": 1, "v": deep}], identity=site, recipients=[central.public],
             out_dir=tmp_path, after=ChainLink(0, None))
    assert not list(tmp_path.iterdir())


def test_an_opened_bundle_says_how_many_record_bytes_it_read(tmp_path, site, central):
    """What a consumer batching records closes its batches by (besides their number)."""
    from bundlekit.reader import open_bundle
    from bundlekit.records import packb
    from bundlekit.writer import ChainLink, seal

    records = [{"id": i, "v": "x" * 1000} for i in range(300)]
    (sealed,) = seal(records, identity=site, recipients=[central.public], out_dir=tmp_path,
                     after=ChainLink(0, None))
    yielded = 0
    with open_bundle(sealed.path, [central]) as opened:
        assert opened.bytes_read == 0
        for record in opened:
            yielded += len(packb(record))
            # never behind the records yielded, never more than one read ahead
            assert yielded <= opened.bytes_read <= yielded + 64 * 1024
    assert opened.bytes_read == sealed.manifest.uncompressed_size
