"""The canonical forms the signed formats share: one msgpack encoding and one
time format, so a manifest, a receipt and a rotation statement are signed over
bytes that two implementations produce alike.

- :func:`packb`: msgpack with map keys sorted at every level, binary as bin,
  no timestamp extension (FORMAT.md §4, RECEIPTS.md §2).
- :func:`format_utc` / :func:`parse_utc`: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, always
  UTC, always six fractional digits (:data:`UTC_TIME` is its exact pattern).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import msgpack

#: The one time format of manifests, receipts and key statements.
UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def sorted_maps(obj: Any) -> Any:
    """``obj`` with every dict's keys in sorted order (lists keep their order)."""
    if type(obj) is dict:
        return {k: sorted_maps(obj[k]) for k in sorted(obj)}
    if type(obj) is list:
        return [sorted_maps(v) for v in obj]
    return obj


def packb(obj: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """Canonical msgpack of ``obj``; ``default`` encodes types msgpack does not know
    (the manifest's typed keys), otherwise they are a ``TypeError``."""
    return msgpack.packb(sorted_maps(obj), default=default, use_bin_type=True, datetime=False)


def format_utc(when: dt.datetime) -> str:
    """An aware datetime in the canonical form (``ValueError`` for a naive one)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("the time must be an aware datetime (with a time zone)")
    return when.astimezone(dt.UTC).strftime(_UTC_FORMAT)


def parse_utc(text: str) -> dt.datetime:
    """The aware UTC datetime of a canonical time string (``ValueError`` otherwise)."""
    if not isinstance(text, str) or not UTC_TIME.fullmatch(text):
        raise ValueError(f"bad time {text!r}: not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return dt.datetime.strptime(text, _UTC_FORMAT).replace(tzinfo=dt.UTC)


__all__ = ["UTC_TIME", "format_utc", "packb", "parse_utc", "sorted_maps"]
