"""How much a reader decodes, at most: the bounds of FORMAT.md §9.2 in one place.

A file from a stick is parsed twice over: once before its signature is checked
(the manifest of a bundle, the body of a receipt), where anybody could have
written it, and once after (the records), where a trusted but hostile or buggy
sender could have.  Size caps alone do not bound memory: msgpack spends one
byte on an empty array and Python about 70 on the list it becomes, so 64 MiB of
empty arrays took 9.5 GB.  So every msgpack reader here also bounds the number
of values, the nesting depth and the length of every container, and checks
those bounds with :func:`scan` *before* msgpack builds a single object.

:func:`scan` walks the msgpack structure without building anything (its memory
is a list of one int per open container), so a refusal costs nothing but time,
and that time is bounded by the value budget.  It is pure Python, so records
take it only when they could break a bound (:func:`check_record`): a record of
at most ``MAX_RECORD_VALUES`` bytes cannot hold more values than that, and one
with fewer container headers than ``MAX_RECORD_DEPTH`` cannot nest that deep.

The figures in docs/SECURITY.md (peak memory of each bomb) are measured by
``tests/reliability/test_bombs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bundlekit.errors import CorruptBundle

# --------------------------------------------------------------------------- before the signature

#: FORMAT.md §3.3: the manifest is read whole before its signature is checked.
MAX_MANIFEST_SIZE = 1024 * 1024
#: FORMAT.md §4.1: most recipients one bundle may be sealed for.
MAX_RECIPIENTS = 256
#: FORMAT.md §4.1: most entries in a manifest's ``kinds`` (distinct models in one bundle).
MAX_KINDS = 4096
#: FORMAT.md §4.5: most components (apps) in a manifest's ``schema``.
MAX_SCHEMA_COMPONENTS = 256
#: FORMAT.md §4.5: most steps (migrations) in a manifest's ``schema``, all components together.
MAX_SCHEMA_STEPS = 4096
#: FORMAT.md §4.1: most msgpack values (every key, value and container) in a manifest.
MAX_MANIFEST_VALUES = (2 * MAX_KINDS + MAX_RECIPIENTS + 2 * MAX_SCHEMA_COMPONENTS
                       + MAX_SCHEMA_STEPS + 64)
#: FORMAT.md §4.1: the manifest is a map of maps, arrays and scalars; only the
#: schema's map holds arrays (§4.5), one level deeper.
MAX_MANIFEST_DEPTH = 3

#: RECEIPTS.md §4: a receipt file is read whole before its signature is checked.
MAX_RECEIPT_SIZE = 8 * 1024 * 1024
#: RECEIPTS.md §3.3: most entries in one receipt.
MAX_RECEIPT_ENTRIES = 50_000
#: RECEIPTS.md §4: the body, an array of entry maps, their arrays of outcome runs,
#: each run an array.
MAX_RECEIPT_DEPTH = 5
#: RECEIPTS.md §3.5: most outcome runs, and distinct reasons, in one receipt (all
#: entries together; a writer with more writes several receipts).
MAX_RECEIPT_RUNS = 100_000
MAX_RECEIPT_REASONS = 10_000
#: RECEIPTS.md §3.7: most file digests (held and needed together) in one receipt.
MAX_RECEIPT_FILES = 20_000
#: RECEIPTS.md §4: 17 values per entry (a map of eight keys and values), at most 5
#: per run and one per reason, one per file digest, and a few more for the body.
MAX_RECEIPT_VALUES = (
    17 * MAX_RECEIPT_ENTRIES + 5 * MAX_RECEIPT_RUNS + MAX_RECEIPT_REASONS
    + MAX_RECEIPT_FILES + 64
)
#: RECEIPTS.md §4: longest text or bytes in a receipt body.
MAX_RECEIPT_TEXT = 4096

# --------------------------------------------------------------------------- after the signature

#: FORMAT.md §5.3: largest packed record.
MAX_RECORD_SIZE = 64 * 1024 * 1024
#: FORMAT.md §5.3: most msgpack values (keys, values and containers) in one record.
MAX_RECORD_VALUES = 100_000
#: FORMAT.md §5.3: deepest nesting in one record (the record map itself is level 1).
MAX_RECORD_DEPTH = 32


class LimitExceeded(ValueError):
    """msgpack data breaks one of the bounds above (or is not msgpack at all)."""


@dataclass(frozen=True)
class Limits:
    """The bounds :func:`scan` enforces on one msgpack value."""

    values: int
    depth: int
    length: int  # items of one array, or pairs of one map
    size: int  # bytes of one str, bin or ext


MANIFEST = Limits(MAX_MANIFEST_VALUES, MAX_MANIFEST_DEPTH, MAX_KINDS, MAX_MANIFEST_SIZE)
RECEIPT = Limits(MAX_RECEIPT_VALUES, MAX_RECEIPT_DEPTH, MAX_RECEIPT_ENTRIES, MAX_RECEIPT_TEXT)
RECORD = Limits(MAX_RECORD_VALUES, MAX_RECORD_DEPTH, MAX_RECORD_VALUES, MAX_RECORD_SIZE)

# What follows each type byte (the msgpack spec): a scalar of fixed size, a
# container whose length is in the type byte or in the next 2/4 bytes, or a
# str/bin/ext whose byte length is in the next 1/2/4 bytes.
_SCALAR, _FIXMAP, _FIXARRAY, _SIZED, _ARRAY, _MAP, _INVALID = range(7)
_KIND = [_INVALID] * 256
_EXTRA = [0] * 256  # bytes after the type byte: payload of a scalar, or width of a length
for _b in range(0x00, 0x80):
    _KIND[_b] = _SCALAR
for _b in range(0xE0, 0x100):
    _KIND[_b] = _SCALAR
for _b in range(0x80, 0x90):
    _KIND[_b] = _FIXMAP
for _b in range(0x90, 0xA0):
    _KIND[_b] = _FIXARRAY
for _b in range(0xA0, 0xC0):
    _KIND[_b], _EXTRA[_b] = _SCALAR, _b & 0x1F
for _b, _n in {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4,
               0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5,
               0xD7: 9, 0xD8: 17}.items():
    _KIND[_b], _EXTRA[_b] = _SCALAR, _n
for _b, _n in {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xC7: 1, 0xC8: 2, 0xC9: 4,
               0xD9: 1, 0xDA: 2, 0xDB: 4}.items():
    _KIND[_b], _EXTRA[_b] = _SIZED, _n
for _b, _n in {0xDC: 2, 0xDD: 4}.items():
    _KIND[_b], _EXTRA[_b] = _ARRAY, _n
for _b, _n in {0xDE: 2, 0xDF: 4}.items():
    _KIND[_b], _EXTRA[_b] = _MAP, _n
_EXT_TYPE_BYTE = frozenset({0xC7, 0xC8, 0xC9})
#: The type bytes that open a container: fewer of them than the depth limit in a
#: value means it cannot nest that deep.
_CONTAINER_BYTES = bytes(range(0x80, 0xA0)) + bytes((0xDC, 0xDD, 0xDE, 0xDF))
_NOT_CONTAINER_BYTES = bytes(b for b in range(256) if b not in _CONTAINER_BYTES)


def scan(data, limits: Limits, start: int = 0) -> int:
    """Walk one msgpack value in ``data`` from ``start``; return where it ends.

    Builds nothing, so it is safe on any input: raises :class:`LimitExceeded`
    as soon as the value breaks ``limits``, is malformed, or is cut short.
    """
    kind_of, extra_of = _KIND, _EXTRA
    end = len(data)
    pos = start
    values = 0
    max_values, max_depth, max_length, max_size = (
        limits.values, limits.depth, limits.length, limits.size)
    open_left: list[int] = []  # items still to read in each open container
    left = 1
    while True:
        while not left:
            if not open_left:
                if pos > end:
                    raise LimitExceeded("it ends in the middle of a value")
                return pos
            left = open_left.pop()
        left -= 1
        values += 1
        if values > max_values:
            raise LimitExceeded(f"it holds more than {max_values:,} values")
        if pos >= end:
            raise LimitExceeded("it ends in the middle of a value")
        b = data[pos]
        pos += 1
        kind = kind_of[b]
        if kind == _SCALAR:
            pos += extra_of[b]
            continue
        if kind == _FIXARRAY:
            n, items = b & 0x0F, b & 0x0F
        elif kind == _FIXMAP:
            n = b & 0x0F
            items = 2 * n
        elif kind == _INVALID:
            raise LimitExceeded("it is not msgpack (type byte 0xc1)")
        else:
            width = extra_of[b]
            n = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if kind == _SIZED:
                if n > max_size:
                    raise LimitExceeded(f"it holds a text or binary value of {n:,} bytes, "
                                        f"more than {max_size:,}")
                pos += n + (b in _EXT_TYPE_BYTE)
                continue
            items = n if kind == _ARRAY else 2 * n
        if len(open_left) >= max_depth:
            raise LimitExceeded(f"it nests deeper than {max_depth} levels")
        if n > max_length:
            raise LimitExceeded(f"it holds a list or map of {n:,} items, more than {max_length:,}")
        if items:
            open_left.append(left)
            left = items


def check_record(data) -> None:
    """Refuse (CorruptBundle) a packed record that breaks the RECORD bounds.

    The fast path costs one pass of ``bytes.translate``: a record no longer than
    the value budget with fewer container headers than the depth limit is within
    every bound, so only large or container-heavy records are walked.  Writers
    and readers run it on every record, so it tests exact types, not isinstance.
    """
    n = len(data)
    if n <= MAX_RECORD_VALUES:
        if type(data) is not bytes and type(data) is not bytearray:
            data = bytes(data)  # a memoryview: translate is a method of bytes
        if len(data.translate(None, _NOT_CONTAINER_BYTES)) < MAX_RECORD_DEPTH:
            return
    elif n > MAX_RECORD_SIZE:
        raise CorruptBundle(
            f"a record inside is {n:,} bytes, more than the {MAX_RECORD_SIZE:,} the "
            "format allows"
        )
    try:
        scan(data, RECORD)
    except LimitExceeded as e:
        raise CorruptBundle(f"a record inside is refused: {e} (FORMAT.md §5.3)") from None
