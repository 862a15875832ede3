"""Transaction ids: UUIDv7 (RFC 9562 §5.7), time-ordered, so a bundle's ids compress.

A random (version 4) id is 16 bytes no compressor can shrink, and a record's id
was a fifth of a sealed bundle.  Here an id is::

    48 bits  Unix time in milliseconds
     4 bits  version 7
    12 bits  a counter within the millisecond (RFC 9562 §6.2, method 1)
     2 bits  variant 0b10
    62 bits  random, drawn once per process (again in a forked child)

Ids of one process are strictly increasing: the counter orders ids within a
millisecond, and when it runs out, or the clock steps back, the time field moves
on from the last id instead of repeating one (§6.2 allows this).  Two processes
differ in their 62 random bits, so ids of different processes collide only if
those bits do (one chance in 2**62 per pair of processes, on top of the same
millisecond and counter).  Consecutive ids of one process then share all but a
few bytes, which zstd stores in about three.  The ids are no secret and need not
be unguessable: a sender is trusted for what it signs, whatever ids it picks.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_node = 0


def _reseed() -> None:
    global _node, _last_ms, _counter
    _node = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    _last_ms, _counter = 0, 0


_reseed()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_tx_id() -> uuid.UUID:
    """A new transaction id: a UUIDv7, unique and increasing within this process."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, 0
        elif _counter < 0xFFF:
            _counter += 1
        else:  # 4096 ids in one millisecond, or the clock stepped back: move on
            _last_ms, _counter = _last_ms + 1, 0
        value = ((_last_ms & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | (_counter << 64) \
            | (0b10 << 62) | _node
    return uuid.UUID(int=value)
