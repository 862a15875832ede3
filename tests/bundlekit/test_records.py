"""Typed values survive a trip through a bundle's record codec and the JSON form exactly."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundlekit import records
from bundlekit.errors import CorruptBundle

ODD = dt.timezone(dt.timedelta(hours=5, minutes=45))  # Nepal
WEST = dt.timezone(-dt.timedelta(hours=3, minutes=30))  # Newfoundland
SECONDS = dt.timezone(dt.timedelta(hours=1, seconds=7, microseconds=3))

VALUES = {
    "none": None,
    "true": True,
    "int": -42,
    "int64_max": 2**63 - 1,
    "uint64_max": 2**64 - 1,
    "big": 2**200 + 1,
    "big_neg": -(2**100) - 7,
    "float": 1.25,
    "nan_free_tiny": 5e-324,
    "text": "Zoë — 北京 — 🌍",
    "empty": "",
    "bytes": b"\x00\xffbin",
    "decimal": Decimal("1.50"),
    "decimal_long": Decimal("-12345678901234567890.123456789012345678901234567890"),
    "decimal_exp": Decimal("1.2E-30"),
    "decimal_negzero": Decimal("-0.00"),
    "decimal_nan": Decimal("NaN"),
    "decimal_inf": Decimal("-Infinity"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "naive": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
    "naive_zero_us": dt.datetime(2024, 1, 1),
    "utc": dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
    "nepal": dt.datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=ODD),
    "newfoundland": dt.datetime(2030, 6, 1, 1, 2, 3, 4, tzinfo=WEST),
    "seconds_offset": dt.datetime(2024, 1, 1, 12, tzinfo=SECONDS),
    "date": dt.date(1, 1, 1),
    "time": dt.time(23, 59, 59, 999999),
    "time_tz": dt.time(8, 30, tzinfo=ODD),
    "duration": dt.timedelta(days=-3, seconds=5, microseconds=7),
    "duration_max": dt.timedelta.max,
    "list": [1, [2, [3, {"deep": Decimal("0.1")}]]],
    "map": {"a": {"b": {"c": uuid.UUID(int=7)}}},
    "dollar_map": {"$decimal": "not a tag, user data"},
}


def _same(a, b) -> bool:
    """Equal, of the same type, and for aware values with the same UTC offset."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()  # keeps precision, sign of zero, NaN
    if isinstance(a, dt.datetime | dt.time):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.utcoffset() == b.utcoffset()
    return a == b


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_value_type_round_trips_exactly(name):
    record = {"v": VALUES[name]}
    (back,) = records.iter_records(io.BytesIO(records.packb(record)))
    assert _same(back, record)


@pytest.mark.parametrize("name", sorted(VALUES))
def test_json_form_round_trips_exactly(name):
    record = {"v": VALUES[name]}
    text = json.dumps(records.to_jsonable(record), allow_nan=False)
    assert _same(records.from_jsonable(json.loads(text)), record)


def test_json_form_is_readable_by_people():
    assert records.to_jsonable({"price": Decimal("1.50"), "id": uuid.UUID(int=1)}) == {
        "price": {"$decimal": "1.50"},
        "id": {"$uuid": "00000000-0000-0000-0000-000000000001"},
    }
    assert records.to_jsonable({"$ref": 1}) == {"$map": [["$ref", 1]]}
    assert records.to_jsonable(float("inf")) == {"$float": "inf"}


def test_many_records_stream_from_one_file_object():
    recs = [{"i": i, "when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)} for i in range(1000)]
    stream = io.BytesIO(b"".join(records.packb(r) for r in recs))
    assert list(records.iter_records(stream)) == recs


def test_ext_codes_are_plain_msgpack_for_other_readers():
    packed = records.packb({"d": Decimal("2.5"), "u": uuid.UUID(int=1)})
    plain = msgpack.unpackb(packed)
    assert plain["d"] == msgpack.ExtType(records.EXT_DECIMAL, b"2.5")
    assert plain["u"] == msgpack.ExtType(records.EXT_UUID, uuid.UUID(int=1).bytes)


def test_unsupported_values_and_shapes_are_refused_at_packing():
    with pytest.raises(TypeError):
        records.packb({"v": object()})
    with pytest.raises(TypeError):
        records.packb({1: "int key"})
    with pytest.raises(TypeError):
        records.packb(["not", "a", "map"])


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb({"v": msgpack.ExtType(99, b"")}),  # unknown ext code
        msgpack.packb({"v": msgpack.ExtType(records.EXT_UUID, b"short")}),
        msgpack.packb({"v": msgpack.ExtType(records.EXT_DATETIME, b"\xff")}),
        msgpack.packb([1, 2]),  # not a map
        b"\xc1",  # never-used msgpack byte
    ],
)
def test_malformed_records_raise_corrupt_bundle(payload):
    with pytest.raises(CorruptBundle):
        list(records.iter_records(io.BytesIO(payload)))


def _big(v: int, length: int) -> bytes:
    return v.to_bytes(length, "big", signed=True)


@pytest.mark.parametrize(
    ("code", "data"),
    [
        # FORMAT.md §5.2: exactly the forms the table gives, nothing fromisoformat or
        # Decimal would also accept.
        (records.EXT_DATETIME, b"2024-05-01T12:00:00"),  # no fraction digits
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.123"),
        (records.EXT_DATETIME, b"20240501T120000"),  # basic form
        (records.EXT_DATETIME, b"20240501T120000.000000"),
        (records.EXT_DATETIME, b"2024-05-01 12:00:00.000000"),
        (records.EXT_DATETIME, b"2024-W18-3T12:00:00.000000"),
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.000000Z"),
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.000000+0545"),
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.000000+05"),
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.000000-00:00"),
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.000000+05:45:00"),  # seconds not needed
        (records.EXT_DATETIME, b"2024-05-01T12:00:00.000000+01:00:07.000000"),
        (records.EXT_DATETIME, b"2024-02-30T12:00:00.000000"),
        (records.EXT_DATE, b"20240501"),
        (records.EXT_DATE, b"2024-W18-3"),
        (records.EXT_DATE, b"2024-05-01T00:00:00.000000"),
        (records.EXT_TIME, b"08:30:00"),
        (records.EXT_TIME, b"083000.000000"),
        (records.EXT_TIME, b"T08:30:00.000000"),
        (records.EXT_TIME, b"08:30:00.000000Z"),
        (records.EXT_DECIMAL, b"1.5e3"),  # str(Decimal) writes 1.5E+3
        (records.EXT_DECIMAL, b"1500E0"),
        (records.EXT_DECIMAL, b"+1.5"),
        (records.EXT_DECIMAL, b" 1.5"),
        (records.EXT_DECIMAL, b"1_5"),
        (records.EXT_DECIMAL, b"nan"),
        (records.EXT_DECIMAL, b"inf"),
        (records.EXT_DECIMAL, b""),
        (records.EXT_DECIMAL, b"one"),
        (records.EXT_BIGINT, b""),
        (records.EXT_BIGINT, _big(5, 9)),  # fits in int64
        (records.EXT_BIGINT, _big(-(2**63), 9)),
        (records.EXT_BIGINT, _big(2**64 - 1, 9)),  # fits in uint64
        (records.EXT_BIGINT, _big(2**64, 10)),  # one byte longer than needed
        (records.EXT_BIGINT, _big(-(2**71), 10)),
        (records.EXT_BIGINT, _big(-(2**100), 14)),
    ],
)
def test_ext_data_not_in_the_specified_form_is_refused(code, data):
    with pytest.raises(ValueError):
        records.ext_hook(code, data)
    with pytest.raises(CorruptBundle):
        list(records.iter_records(io.BytesIO(msgpack.packb({"v": msgpack.ExtType(code, data)}))))


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 2**71 - 1, 2**71, -(2**71), -(2**71) - 1, -(2**64), -(2**128), 2**200],
)
def test_big_ints_are_written_in_the_shortest_form(value):
    ext = records._default(value)
    assert ext.code == records.EXT_BIGINT
    shortest = min(n for n in range(1, 64) if -(2 ** (8 * n - 1)) <= value < 2 ** (8 * n - 1))
    assert len(ext.data) == shortest
    assert records.ext_hook(ext.code, ext.data) == value


def test_a_partial_last_record_is_an_error_when_the_size_is_known():
    data = records.packb({"a": 1}) + records.packb({"b": "xyz"})[:-1]
    with pytest.raises(CorruptBundle):
        list(records.iter_records(io.BytesIO(data), expected_size=len(data)))


json_scalars = st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.decimals(
    allow_nan=False
) | st.uuids() | st.datetimes(timezones=st.none() | st.timezones()) | st.dates() | st.timedeltas()
values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_generated_records_round_trip_both_ways(record):
    (back,) = records.iter_records(io.BytesIO(records.packb(record)))
    assert _same(back, record)
    assert _same(records.from_jsonable(json.loads(json.dumps(records.to_jsonable(record)))), record)


# ----------------------------------------------------------------- JSON straight to packing


@pytest.mark.parametrize("name", sorted(VALUES))
def test_packable_json_packs_to_the_same_bytes(name):
    jsonable = json.loads(json.dumps(records.to_jsonable({"v": VALUES[name]}), allow_nan=False))
    assert records.packb(records.packable_from_jsonable(jsonable)) == records.packb(
        records.from_jsonable(jsonable))


@pytest.mark.parametrize("tagged", [
    {"$uuid": "12345678-1234-5678-1234-56781234567A"},  # upper case
    {"$uuid": "{12345678-1234-5678-1234-567812345678}"},
    {"$uuid": "urn:uuid:12345678-1234-5678-1234-567812345678"},
    {"$uuid": "12345678123456781234567812345678"},
    {"$uuid": "1234567-81234-5678-1234-567812345678"},  # hyphens elsewhere
    {"$datetime": "2024-05-01T12:00:00"},  # no fraction
    {"$datetime": "2024-05-01T12:00:00.5Z"},
    {"$datetime": "2024-05-01T12:00:00.000000-00:00"},
    {"$datetime": "2024-05-01T12:00:00.000000+05:45:00"},
    {"$date": "20240501"},
    {"$time": "08:30"},
    {"$time": "08:30:00.000000-00:00"},
    {"$decimal": "1.5e3"},
    {"$decimal": 7},
    {"$duration": {"days": 1.5, "seconds": 0, "microseconds": 0}},
    {"$map": [[{"$decimal": "1.0"}, 1], [{"$decimal": "1.00"}, 2]]},
])
def test_packable_json_takes_every_spelling_from_jsonable_takes(tagged):
    record = {"v": tagged, "in": [tagged], "deep": {"x": tagged}}
    assert records.packb(records.packable_from_jsonable(record)) == records.packb(
        records.from_jsonable(record))


@pytest.mark.parametrize("tagged", [
    {"$uuid": 5}, {"$uuid": "not-a-uuid"}, {"$datetime": "2024-13-01T00:00:00.000000"},
    {"$date": None}, {"$time": "25:00"}, {"$decimal": "one"}, {"$duration": {"days": 1}},
    {"$bytes": "!"}, {"$nope": 1},
])
def test_packable_json_refuses_what_from_jsonable_refuses(tagged):
    with pytest.raises(ValueError) as expected:
        records.from_jsonable({"v": tagged})
    with pytest.raises(ValueError) as got:
        records.packable_from_jsonable({"v": tagged})
    assert str(got.value) == str(expected.value)


@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_generated_json_packs_to_the_same_bytes(record):
    jsonable = json.loads(json.dumps(records.to_jsonable(record)))
    assert records.packb(records.packable_from_jsonable(jsonable)) == records.packb(
        records.from_jsonable(jsonable))


@given(st.binary(min_size=16, max_size=16))
def test_a_decoded_uuid_is_the_uuid_of_its_bytes(data):
    """The reader builds UUIDs without ``UUID.__init__`` (it is a quarter of the
    cost): the object must be the one ``UUID(bytes=...)`` makes, in every respect."""
    import pickle

    (back,) = records.iter_records(io.BytesIO(msgpack.packb(
        {"u": msgpack.ExtType(records.EXT_UUID, data)})))
    made, expected = back["u"], uuid.UUID(bytes=data)
    assert type(made) is uuid.UUID
    assert made == expected and hash(made) == hash(expected) and made.int == expected.int
    assert str(made) == str(expected) and made.bytes == data and made.version == expected.version
    assert made.is_safe is expected.is_safe
    assert pickle.loads(pickle.dumps(made)) == expected
    assert {made: 1}[expected] == 1
