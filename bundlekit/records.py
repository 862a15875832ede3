"""The record codec: msgpack maps with exactly round-tripping typed values (FORMAT.md §5).

A record is a msgpack map with str keys.  Values msgpack cannot express
natively travel as ext types with the codes below, chosen so any msgpack
library can decode them from the spec alone.  The JSON form (:func:`to_jsonable`,
:func:`from_jsonable`) is the same data for people and the CLI, with ``$``-tags.

Packing speed matters (a benchmark compares us with raw msgpack): a cached
``msgpack.Packer`` with a ``default`` hook dispatching on the exact type keeps
the per-value cost to one dict lookup for the extended types and zero for the
native ones.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import struct
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, BinaryIO

import msgpack

from bundlekit import limits
from bundlekit.errors import CorruptBundle

# FORMAT.md §5.2: ext type codes.  Never reuse or renumber a code.
EXT_DECIMAL = 1  # ASCII text of str(Decimal): sign, digits, exponent, NaN, Infinity
EXT_UUID = 2  # the 16 bytes of the UUID
EXT_DATETIME = 3  # ASCII ISO 8601, always 6 fraction digits, offset iff aware
EXT_DATE = 4  # ASCII ISO 8601 YYYY-MM-DD
EXT_TIME = 5  # ASCII ISO 8601, always 6 fraction digits, offset iff aware
EXT_TIMEDELTA = 6  # >iII: days, seconds (0..86399), microseconds (0..999999)
EXT_BIGINT = 7  # big-endian two's complement, minimal length; ints outside int64/uint64

#: FORMAT.md §5.3: a packed record larger than this is refused by writers and readers;
#: the bounds on values and depth are in :mod:`bundlekit.limits`.
MAX_RECORD_SIZE = limits.MAX_RECORD_SIZE

_TIMEDELTA = struct.Struct(">iII")
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


_ExtType = msgpack.ExtType
# ExtType's own __new__ re-validates arguments we know are right; skip it (hot path).
_ext = tuple.__new__


def _enc_decimal(v: Decimal) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_DECIMAL, str(v).encode("ascii")))


def _enc_uuid(v: uuid.UUID) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_UUID, v.bytes))


def _enc_datetime(v: dt.datetime) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_DATETIME, v.isoformat(timespec="microseconds").encode("ascii")))


def _enc_date(v: dt.date) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_DATE, v.isoformat().encode("ascii")))


def _enc_time(v: dt.time) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_TIME, v.isoformat(timespec="microseconds").encode("ascii")))


def _enc_timedelta(v: dt.timedelta) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_TIMEDELTA, _TIMEDELTA.pack(v.days, v.seconds, v.microseconds)))


def _bigint_length(v: int) -> int:
    """Bytes of the shortest big-endian two's complement form of ``v`` (FORMAT.md §5.2)."""
    return ((v if v >= 0 else ~v).bit_length() + 8) // 8


def _enc_int(v: int) -> msgpack.ExtType:
    # msgpack hands us ints only when they do not fit 64 bits.
    return _ext(_ExtType, (EXT_BIGINT, v.to_bytes(_bigint_length(v), "big", signed=True)))


# Order matters for the isinstance fallback: datetime is a subclass of date.
_ENCODERS: dict[type, Any] = {
    Decimal: _enc_decimal,
    uuid.UUID: _enc_uuid,
    dt.datetime: _enc_datetime,
    dt.date: _enc_date,
    dt.time: _enc_time,
    dt.timedelta: _enc_timedelta,
    int: _enc_int,
}


def _default(obj: Any) -> Any:
    enc = _ENCODERS.get(type(obj))
    if enc is None:
        for base, candidate in _ENCODERS.items():
            if isinstance(obj, base):
                enc = candidate
                break
        else:
            raise TypeError(f"a record cannot hold a value of type {type(obj).__name__}")
    return enc(obj)


# FORMAT.md §5.2: readers refuse malformed ext data, so each decoder accepts
# exactly the form the encoder above writes (and nothing fromisoformat or
# Decimal would also take: basic ISO forms, missing fraction digits, "1.5e3").
# These run only for typed values, never for native msgpack ones.
_OFFSET = r"(?:[+-][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{6})?)?)?"
_TIME_TEXT = r"[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}"
_match_datetime = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T" + _TIME_TEXT + _OFFSET).fullmatch
_match_time = re.compile(_TIME_TEXT + _OFFSET).fullmatch
_DATETIME_LEN = len("YYYY-MM-DDTHH:MM:SS.ffffff")
_TIME_LEN = len("HH:MM:SS.ffffff")
_HHMM_OFFSET_LEN = len("+HH:MM")
_fromisoformat_datetime = dt.datetime.fromisoformat
_fromisoformat_time = dt.time.fromisoformat
_fromisoformat_date = dt.date.fromisoformat


def _dec_decimal(data: bytes) -> Decimal:
    text = data.decode("ascii")
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ValueError("not a decimal") from None
    if str(value) != text:  # "1.5e3", " 1", "1_0", "nan": not as str(Decimal) writes them
        raise ValueError("not a canonical decimal")
    return value


def _dec_uuid(data: bytes, _new=object.__new__, _set=object.__setattr__,
              _from_bytes=int.from_bytes, _unknown=uuid.SafeUUID.unknown) -> uuid.UUID:
    """``uuid.UUID(bytes=data)`` at a quarter of its cost (the same object: the same
    two slots, set as its ``__init__`` sets them, without its argument checks).
    A record carries several ids, and a server decodes millions of records."""
    if len(data) != 16:
        raise ValueError("a UUID is 16 bytes")
    value = _new(uuid.UUID)
    _set(value, "int", _from_bytes(data, "big"))
    _set(value, "is_safe", _unknown)
    return value


def _offset_is_canonical(value: dt.datetime | dt.time, text: str, base_len: int) -> bool:
    """The regex admits ``±HH:MM[:SS[.ffffff]]``; only ``±HH:MM`` is common, and only
    "-00:00" of those is not as isoformat() writes it.  Longer offsets (seconds
    only "if needed") are checked by writing the value again."""
    extra = len(text) - base_len
    if extra == _HHMM_OFFSET_LEN:
        return text[base_len:] != "-00:00"
    return value.isoformat(timespec="microseconds") == text


def _dec_datetime(data: bytes) -> dt.datetime:
    return _datetime_text(data.decode("ascii"))


def _datetime_text(text: str) -> dt.datetime:
    """The datetime of ``text`` if it is exactly as the encoder writes it, else ValueError."""
    if _match_datetime(text) is None:
        raise ValueError("not a datetime as FORMAT.md §5.2 writes it")
    value = _fromisoformat_datetime(text)
    if len(text) != _DATETIME_LEN and not _offset_is_canonical(value, text, _DATETIME_LEN):
        raise ValueError("the datetime's UTC offset is not in its shortest form")
    return value


def _dec_date(data: bytes) -> dt.date:
    return _date_text(data.decode("ascii"))


def _date_text(text: str) -> dt.date:
    value = _fromisoformat_date(text)
    if value.isoformat() != text:  # "20240501", "2024-W18-3"
        raise ValueError("not a date as FORMAT.md §5.2 writes it")
    return value


def _dec_time(data: bytes) -> dt.time:
    return _time_text(data.decode("ascii"))


def _time_text(text: str) -> dt.time:
    if _match_time(text) is None:
        raise ValueError("not a time as FORMAT.md §5.2 writes it")
    value = _fromisoformat_time(text)
    if len(text) != _TIME_LEN and not _offset_is_canonical(value, text, _TIME_LEN):
        raise ValueError("the time's UTC offset is not in its shortest form")
    return value


def _dec_timedelta(data: bytes) -> dt.timedelta:
    days, seconds, micros = _TIMEDELTA.unpack(data)
    if seconds >= 86400 or micros >= 1_000_000:
        raise ValueError("timedelta fields out of range")
    return dt.timedelta(days, seconds, micros)


def _dec_bigint(data: bytes) -> int:
    value = int.from_bytes(data, "big", signed=True)
    if _INT64_MIN <= value <= _UINT64_MAX:
        raise ValueError("a big int ext holds a value msgpack stores as a plain int")
    if len(data) != _bigint_length(value):
        raise ValueError("a big int ext is not in its shortest form")
    return value


_DECODERS = {
    EXT_DECIMAL: _dec_decimal,
    EXT_UUID: _dec_uuid,
    EXT_DATETIME: _dec_datetime,
    EXT_DATE: _dec_date,
    EXT_TIME: _dec_time,
    EXT_TIMEDELTA: _dec_timedelta,
    EXT_BIGINT: _dec_bigint,
}


def ext_hook(code: int, data: bytes) -> Any:
    """Decode one of our ext types; ValueError for anything else."""
    dec = _DECODERS.get(code)
    if dec is None:
        raise ValueError(f"unknown ext type {code}")
    return dec(data)


def new_packer() -> msgpack.Packer:
    """A Packer for records; not thread-safe, so each writer makes its own."""
    return msgpack.Packer(default=_default, use_bin_type=True, datetime=False)


_local = threading.local()


def packb(record: dict[str, Any]) -> bytes:
    """Pack one record.  TypeError for a non-dict, non-str keys, or unsupported values."""
    if type(record) is not dict:
        raise TypeError(f"a record must be a dict, not {type(record).__name__}")
    for k in record:
        if type(k) is not str:
            raise TypeError(f"record keys must be str, not {type(k).__name__}")
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = new_packer()
    return packer.pack(record)


def unpackb(data: bytes) -> Any:
    """Unpack one record packed by this codec, within the bounds of FORMAT.md §5.3
    (CorruptBundle beyond them)."""
    limits.check_record(data)
    return msgpack.unpackb(data, **_UNPACK)


#: msgpack's own caps, on top of :func:`bundlekit.limits.check_record` (which runs first).
_UNPACK = dict(
    ext_hook=ext_hook,
    raw=False,
    strict_map_key=False,
    max_str_len=limits.MAX_RECORD_SIZE,
    max_bin_len=limits.MAX_RECORD_SIZE,
    max_ext_len=limits.MAX_RECORD_SIZE,
    max_array_len=limits.MAX_RECORD_VALUES,
    max_map_len=limits.MAX_RECORD_VALUES,
)
_READ_SIZE = 64 * 1024


class _Tee:
    """The stream the boundary finder reads.  What it reads is fed to ``decoder``
    too, and kept until the record it belongs to has been checked."""

    def __init__(self, fileobj: BinaryIO, decoder: msgpack.Unpacker):
        self._f, self._decoder = fileobj, decoder
        self.kept = bytearray()
        self.base = 0  # stream offset of kept[0]

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.kept += data
        self._decoder.feed(data)
        return data

    def check(self, start: int, end: int, keep: bool = False) -> bytes | None:
        """Check the record at stream offsets start..end, then forget what precedes
        end; with ``keep``, return the record's bytes."""
        a, b = start - self.base, end - self.base
        raw = None
        with memoryview(self.kept) as whole, whole[a:b] as view:
            if b - a <= limits.MAX_RECORD_VALUES:
                raw = bytes(view)  # a small copy, what the quick check reads
                limits.check_record(raw)
            else:
                limits.check_record(view)  # checked in place: a bomb is never copied
                if keep:
                    raw = bytes(view)
        del self.kept[:b]
        self.base = end
        return raw if keep else None


def iter_records(
    fileobj: BinaryIO, *, expected_size: int | None = None, max_record_size: int = MAX_RECORD_SIZE,
    with_bytes: bool = False,
) -> Iterator[dict]:
    """Yield records from a stream of concatenated packed records (with
    ``with_bytes``, pairs of a record and its packed bytes as they were read).

    Two passes over each record, both bounded before anything is built: msgpack's
    ``skip`` finds where it ends without building objects (so a record is
    complete, at most ``max_record_size`` bytes, before it is decoded), then
    :func:`bundlekit.limits.check_record` bounds its values and depth, and only
    then is it unpacked.  Memory: about twice ``max_record_size`` of buffers plus
    one record's objects (docs/SECURITY.md, "Memory bombs").  Anything malformed
    raises :class:`CorruptBundle` (without a path; the caller adds it).  With
    ``expected_size``, the records must use exactly that many bytes, so a
    partial record at the end is an error rather than silently dropped.
    """
    # The decoder is fed what the boundary finder reads, and asked for a record
    # only once that record is known to be complete and within bounds.
    decoder = msgpack.Unpacker(max_buffer_size=max_record_size + 2 * _READ_SIZE, **_UNPACK)
    tee = _Tee(fileobj, decoder)
    bounds = msgpack.Unpacker(
        tee,
        read_size=_READ_SIZE,
        max_buffer_size=max_record_size + _READ_SIZE,
    )
    start = 0
    while True:
        try:
            bounds.skip()
        except msgpack.OutOfData:
            if expected_size is not None and start != expected_size:
                raise CorruptBundle("its records end in the middle of a record") from None
            return
        except msgpack.BufferFull:
            raise CorruptBundle(
                f"a record inside is larger than the {max_record_size:,} bytes the format allows"
            ) from None
        except CorruptBundle:
            raise
        except Exception as e:  # msgpack and the stream below raise a zoo of types
            raise CorruptBundle(f"a record inside is malformed ({type(e).__name__})") from e
        end = bounds.tell()
        if end - start > max_record_size:
            raise CorruptBundle(
                f"a record inside is larger than the {max_record_size:,} bytes the format allows"
            )
        try:
            raw = tee.check(start, end, keep=with_bytes)
            record = next(decoder)
        except CorruptBundle:
            raise
        except Exception as e:  # ext decoders and codecs raise a zoo of types
            raise CorruptBundle(f"a record inside is malformed ({type(e).__name__})") from e
        start = end
        if type(record) is not dict or not all(type(k) is str for k in record):
            raise CorruptBundle("a record inside is not a map with text keys")
        yield (record, raw) if with_bytes else record


# ---------------------------------------------------------------------------
# JSON form (FORMAT.md §5.4)

TAG_DECIMAL = "$decimal"
TAG_UUID = "$uuid"
TAG_DATETIME = "$datetime"
TAG_DATE = "$date"
TAG_TIME = "$time"
TAG_DURATION = "$duration"
TAG_BYTES = "$bytes"
TAG_FLOAT = "$float"
TAG_MAP = "$map"


def to_jsonable(obj: Any) -> Any:
    """The JSON form of a record or value: only dict/list/str/int/float/bool/None.

    Maps that could be mistaken for a tag (one key starting with ``$``) or that
    have non-str keys are escaped as ``{"$map": [[key, value], ...]}``.
    """
    t = type(obj)
    if obj is None or t is bool or t is int or t is str:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else {TAG_FLOAT: repr(obj)}
    if t is dict:
        if all(type(k) is str for k in obj) and not (len(obj) == 1 and next(iter(obj)).startswith("$")):
            return {k: to_jsonable(v) for k, v in obj.items()}
        return {TAG_MAP: [[to_jsonable(k), to_jsonable(v)] for k, v in obj.items()]}
    if t is list or t is tuple:
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool):  # subclasses (IntEnum, SafeString) lose their class, not their value
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return {TAG_BYTES: base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, Decimal):
        return {TAG_DECIMAL: str(obj)}
    if isinstance(obj, uuid.UUID):
        return {TAG_UUID: str(obj)}
    if isinstance(obj, dt.datetime):
        return {TAG_DATETIME: obj.isoformat(timespec="microseconds")}
    if isinstance(obj, dt.date):
        return {TAG_DATE: obj.isoformat()}
    if isinstance(obj, dt.time):
        return {TAG_TIME: obj.isoformat(timespec="microseconds")}
    if isinstance(obj, dt.timedelta):
        return {TAG_DURATION: {"days": obj.days, "seconds": obj.seconds, "microseconds": obj.microseconds}}
    if isinstance(obj, dict):
        return to_jsonable(dict(obj))
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return to_jsonable(float(obj))
    raise TypeError(f"no JSON form for a value of type {t.__name__}")


def _duration(v: Any) -> dt.timedelta:
    return dt.timedelta(days=v["days"], seconds=v["seconds"], microseconds=v["microseconds"])


def _bytes(v: Any) -> bytes:
    return base64.b64decode(v, validate=True)


def _map(v: Any) -> dict:
    return {_hashable(from_jsonable(k)): from_jsonable(x) for k, x in v}


_FROM_TAG = {
    TAG_DECIMAL: Decimal,
    TAG_UUID: uuid.UUID,
    TAG_DATETIME: dt.datetime.fromisoformat,
    TAG_DATE: dt.date.fromisoformat,
    TAG_TIME: dt.time.fromisoformat,
    TAG_DURATION: _duration,
    TAG_BYTES: _bytes,
    TAG_FLOAT: float,
    TAG_MAP: _map,
}
# What a malformed tag value raises in the constructors above ({"$uuid": 5}: AttributeError).
_MALFORMED = (TypeError, KeyError, ValueError, ArithmeticError, AttributeError)


def _from_tag(tag: str, v: Any) -> Any:
    convert = _FROM_TAG.get(tag)
    if convert is None:
        raise ValueError(f"unknown JSON tag {tag!r}")
    return convert(v)


def _hashable(k: Any) -> Any:
    return tuple(_hashable(x) for x in k) if isinstance(k, list) else k


def from_jsonable(obj: Any) -> Any:
    """Inverse of :func:`to_jsonable`; ValueError for an unknown or malformed tag."""
    return _from_jsonable(obj, _from_tag)


def _from_jsonable(obj: Any, from_tag: Any) -> Any:
    # Leaves are kept without a call each (most values of a record are leaves).
    t = type(obj)
    if t is dict:
        if len(obj) == 1:
            (k, v), = obj.items()
            if isinstance(k, str) and k.startswith("$"):
                try:
                    return from_tag(k, v)
                except _MALFORMED as e:
                    raise ValueError(f"malformed {k} value: {v!r}") from e
        return {k: _from_jsonable(v, from_tag) if type(v) is dict or type(v) is list else v
                for k, v in obj.items()}
    if t is list:
        return [_from_jsonable(v, from_tag) if type(v) is dict or type(v) is list else v
                for v in obj]
    return obj


# ---------------------------------------------------------------------------
# JSON form straight to packable values: ``bundle seal`` from JSON lines

def packable_from_jsonable(obj: Any) -> Any:
    """:func:`from_jsonable` for a record about to be packed, and nothing else.

    The same walk, but a typed value comes out as its ext data (a msgpack
    ``ExtType``, FORMAT.md §5.2) instead of a Python value: packing it gives the
    same bytes as packing ``from_jsonable(obj)`` (tests/bundlekit/test_records.py
    checks it), without building a UUID or a datetime only to write it out
    again.  Text already in the form the ext data holds (a UUID with hyphens,
    the encoder's datetimes) is checked as a reader checks it and taken as it
    is; anything else goes through the Python value.  The errors are
    from_jsonable's.
    """
    return _from_jsonable(obj, _packable_tag)


def _packable_tag(tag: str, v: Any) -> Any:
    convert = _PACKABLE_TAG.get(tag)
    return convert(v) if convert is not None else _from_tag(tag, v)



def _uuid_ext(v: Any) -> msgpack.ExtType:
    if type(v) is str:
        digits = v.replace("-", "")  # uuid.UUID drops every hyphen too
        if len(digits) == 32:
            try:
                data = bytes.fromhex(digits)
            except ValueError:
                pass
            else:
                if len(data) == 16:  # 32 hex digits (no spaces): uuid.UUID(v).bytes
                    return _ext(_ExtType, (EXT_UUID, data))
    return _enc_uuid(uuid.UUID(v))


# Every ASCII digit as 0: the shape of a text, to tell the encoder's forms at a glance.
_SHAPE = str.maketrans("123456789", "000000000")
_OFFSET_SHAPES = ("", "+00:00", "-00:00")
_DATETIME_SHAPES = frozenset("0000-00-00T00:00:00.000000" + o for o in _OFFSET_SHAPES)
_TIME_SHAPES = frozenset("00:00:00.000000" + o for o in _OFFSET_SHAPES)
_DATE_SHAPES = frozenset({"0000-00-00"})
_NEGATIVE_ZERO = "-00:00"  # isoformat writes a zero offset as +00:00


def _text_ext(code: int, shapes: frozenset[str], parse: Any, encode: Any) -> Any:
    """Text of one of ``shapes`` that parses is what ``encode(parse(text))`` would
    write (fixed-width digits, an offset of hours and minutes): it is the ext data.
    Any other spelling goes through the value."""
    def convert(v: Any) -> msgpack.ExtType:
        if type(v) is str and v.translate(_SHAPE) in shapes and not v.endswith(_NEGATIVE_ZERO):
            parse(v)  # the ranges: ValueError for a 13th month
            return _ext(_ExtType, (code, v.encode("ascii")))
        return encode(parse(v))
    return convert


def _decimal_ext(v: Any) -> msgpack.ExtType:
    return _ext(_ExtType, (EXT_DECIMAL, str(Decimal(v)).encode("ascii")))


def _duration_ext(v: Any) -> msgpack.ExtType:
    return _enc_timedelta(_duration(v))


_PACKABLE_TAG = {
    TAG_DECIMAL: _decimal_ext,
    TAG_UUID: _uuid_ext,
    TAG_DATETIME: _text_ext(EXT_DATETIME, _DATETIME_SHAPES, dt.datetime.fromisoformat,
                            _enc_datetime),
    TAG_DATE: _text_ext(EXT_DATE, _DATE_SHAPES, dt.date.fromisoformat, _enc_date),
    TAG_TIME: _text_ext(EXT_TIME, _TIME_SHAPES, dt.time.fromisoformat, _enc_time),
    TAG_DURATION: _duration_ext,
}
