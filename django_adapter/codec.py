"""The one place that turns a record dict into bytes and back.

Records are packed by ``bundlekit.records`` so the bytes stored in
``OutgoingTransaction.tx`` are exactly what a bundle carries.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
from typing import Any

import msgpack

from bundlekit import records as _records

#: Version of the record layout stored beside ``tx`` (like reversion's ``format``):
#: bump it when the layout changes and keep a reader for the old one.
RECORD_FORMAT = 1


def packb(record: dict[str, Any]) -> bytes:
    return _records.packb(record)


_local = threading.local()


def pack_captured(record: dict[str, Any]) -> bytes:
    """``packb(record)`` for a record capture built itself (a dict with str keys,
    so packb's checks of them are skipped): the same packer settings, the same bytes."""
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(default=_captured_default, use_bin_type=True,
                                                datetime=False)
    return packer.pack(record)


_DATETIME = datetime.datetime
_ExtType = msgpack.ExtType
_ext = tuple.__new__


def _captured_default(obj: Any) -> Any:
    """``bundlekit.records``' encoding of a typed value.  A datetime with a fraction
    of a second is written by ``isoformat()`` without ``timespec``, which writes
    the same six digits (a third faster: every record has one or two)."""
    if type(obj) is _DATETIME and obj.microsecond:
        return _ext(_ExtType, (_records.EXT_DATETIME, obj.isoformat().encode("ascii")))
    return _records._default(obj)


def unpackb(data: bytes) -> dict[str, Any]:
    return _records.unpackb(bytes(data))


def load(data: bytes, format: int = RECORD_FORMAT) -> dict[str, Any]:
    """A stored record, read according to the format it was written in."""
    if format == 1:
        return unpackb(data)
    from django_adapter.exceptions import SyncError

    raise SyncError(f"record format {format} is unknown to this release of django_adapter")


_NESTED = (dict, list, tuple)


def _canonical(value: Any) -> Any:
    # Leaves are returned as they are without a call each: this runs on every
    # field of every record a server receives.
    if isinstance(value, dict):
        return [[k, _canonical(v) if isinstance(v, _NESTED) else v]
                for k, v in sorted(value.items(), key=_first)]
    if isinstance(value, list | tuple):
        return [_canonical(v) if isinstance(v, _NESTED) else v for v in value]
    return value


def _first(item):
    return item[0]


def content_digest(record: dict[str, Any]) -> str:
    """Digest of a record's content, independent of key order and of the route it
    took, so the same transaction arriving twice is recognised as such."""
    return hashlib.sha256(packb({"c": _canonical(record)})).hexdigest()


def object_key(model_label: str, pk: Any, natural_key: Any) -> str:
    """Stable name of one object across databases, for per-object ordering (stale)."""
    ident = ["nk", _canonical(natural_key)] if natural_key is not None else ["pk", pk]
    return hashlib.sha256(packb({"m": model_label, "o": ident})).hexdigest()
