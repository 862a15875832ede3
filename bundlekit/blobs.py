"""Blob records: file contents carried inside a bundle (FORMAT.md §5.5).

A file travels as a run of *chunk records* in the same record stream as the
records that refer to it, each chunk a map::

    {"$blob": <SHA-256 of the whole file, bin 32>, "offset": int,
     "size": <the file's total size>, "data": <bin, at most BLOB_CHUNK_SIZE>}

so the reader's record bounds (FORMAT.md §5.3) bound a chunk too, memory stays
flat whatever the file's size (one chunk at a time), and a bundle stays a
bundle: signed, encrypted, checksummed, readable with standard tools.  A file
is named by its digest only; what it is for (a model's field, a name) is the
business of the records that refer to it.

Writing: :func:`chunks` reads a file once, in chunks, and checks at the end
that it still hashes to the digest it is sent under (a copy that rotted on disk
is refused, not sent).  Reading: :class:`BlobStore` puts chunks together in a
folder, across bundles and in any order, and keeps a file only when its digest
checks.  Nothing here knows Django.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from bundlekit.errors import CorruptBundle

#: FORMAT.md §5.5: the key that makes a record a chunk record.
BLOB_KEY = "$blob"
#: FORMAT.md §5.5: the largest ``data`` of one chunk.  Small against
#: MAX_RECORD_SIZE so a reader's three copies of a record stay a few MiB.
BLOB_CHUNK_SIZE = 1024 * 1024
#: FORMAT.md §5.5: the largest file the format carries (2^40 bytes, 1 TiB).
MAX_BLOB_SIZE = 1 << 40
_KEYS = frozenset((BLOB_KEY, "offset", "size", "data"))
_HEX = re.compile(r"[0-9a-f]{64}")


def is_blob(record: dict) -> bool:
    """True when ``record`` is a chunk record (it has the ``$blob`` key)."""
    return BLOB_KEY in record


@dataclass(frozen=True, slots=True)
class Chunk:
    """One checked chunk record."""

    digest: bytes
    offset: int
    size: int
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


def check_chunk(record: dict) -> Chunk:
    """The chunk a record holds; :class:`CorruptBundle` when it breaks FORMAT.md §5.5."""
    if record.keys() != _KEYS:
        raise CorruptBundle("a file chunk inside has other fields than $blob, offset, size, data")
    digest, offset, size, data = record[BLOB_KEY], record["offset"], record["size"], record["data"]
    if type(digest) is not bytes or len(digest) != 32:
        raise CorruptBundle("a file chunk inside names its file by something else than a SHA-256")
    if type(size) is not int or not 0 < size <= MAX_BLOB_SIZE:
        raise CorruptBundle("a file chunk inside gives an impossible file size")
    if type(data) is not bytes or not 0 < len(data) <= BLOB_CHUNK_SIZE:
        raise CorruptBundle(f"a file chunk inside holds no bytes or more than {BLOB_CHUNK_SIZE:,}")
    if type(offset) is not int or offset < 0 or offset % BLOB_CHUNK_SIZE or offset + len(data) > size:
        raise CorruptBundle("a file chunk inside lies outside its file")
    if offset + len(data) != size and len(data) != BLOB_CHUNK_SIZE:
        raise CorruptBundle("a file chunk inside is short but not the file's last")
    return Chunk(digest, offset, size, data)


def chunk_record(digest: bytes, offset: int, size: int, data: bytes) -> dict:
    return {BLOB_KEY: digest, "offset": offset, "size": size, "data": data}


def chunks(fileobj: BinaryIO, digest: bytes, size: int, *, start: int = 0,
           name: str = "") -> Iterator[dict]:
    """Chunk records of a file, read from ``fileobj`` one chunk at a time.

    ``start`` (a multiple of BLOB_CHUNK_SIZE) skips the chunks before it, for a
    file whose first part was sent already; they are still read and hashed.
    The file must be ``size`` bytes hashing to ``digest``; otherwise the last
    chunk is never yielded and :class:`CorruptBundle` names ``name``: a reader
    would refuse the file, so it is not sent.
    """
    if not 0 < size <= MAX_BLOB_SIZE:
        raise ValueError(f"a file to send must have 1 to {MAX_BLOB_SIZE} bytes, not {size}")
    if start % BLOB_CHUNK_SIZE or not 0 <= start < size:
        raise ValueError("start must be a multiple of BLOB_CHUNK_SIZE inside the file")
    h = hashlib.sha256()
    offset = 0
    while offset < size:
        data = fileobj.read(min(BLOB_CHUNK_SIZE, size - offset))
        if not data:
            break
        if len(data) < BLOB_CHUNK_SIZE and offset + len(data) < size:
            # A short read in the middle: read on until the chunk is whole.
            rest = bytearray(data)
            while len(rest) < BLOB_CHUNK_SIZE and offset + len(rest) < size:
                more = fileobj.read(min(BLOB_CHUNK_SIZE, size - offset) - len(rest))
                if not more:
                    break
                rest += more
            data = bytes(rest)
        h.update(data)
        last = offset + len(data) >= size
        if last and (fileobj.read(1) or h.digest() != digest):
            raise CorruptBundle(f"the file {name or digest.hex()} no longer has the content it was "
                                "saved with (changed or damaged); it is not sent")
        if offset >= start:
            yield chunk_record(digest, offset, size, data)
        offset += len(data)
    if offset < size:
        raise CorruptBundle(f"the file {name or digest.hex()} is shorter than when it was saved "
                            f"({offset:,} of {size:,} bytes); it is not sent")


def hash_file(fileobj: BinaryIO) -> tuple[bytes, int]:
    """(SHA-256, size) of what is left in ``fileobj``, read in chunks."""
    h = hashlib.sha256()
    size = 0
    while True:
        data = fileobj.read(BLOB_CHUNK_SIZE)
        if not data:
            return h.digest(), size
        h.update(data)
        size += len(data)


class BlobStore:
    """A folder of complete files named by their SHA-256 hex, filled from chunks.

    Chunks may come in any order and more than once (a bundle sent twice, a file
    spanning bundles that arrive out of order): each run of contiguous chunks is
    kept in a part file ``<hex>.<start>.part`` and runs are joined as they meet.
    A file is complete once its run from 0 reaches its size; its digest is then
    checked and only a file that matches becomes ``<hex>`` (atomically, by
    rename).  One that does not match is deleted and :meth:`add` raises
    :class:`CorruptBundle`: the bundle lied about its file.

    One writer per store at a time (the importer holds a per-sender lock; give
    each sender its own ``parts`` folder when senders import in parallel).
    """

    def __init__(self, folder: str | os.PathLike[str], *, parts: str | os.PathLike[str] | None = None,
                 max_size: int = MAX_BLOB_SIZE):
        self.folder = os.fspath(folder)
        self.parts = os.fspath(parts) if parts is not None else os.path.join(self.folder, "parts")
        self.max_size = max_size
        os.makedirs(self.folder, exist_ok=True)
        os.makedirs(self.parts, exist_ok=True)

    def path(self, digest: bytes | str) -> str:
        hexd = digest.hex() if isinstance(digest, bytes) else digest
        if not _HEX.fullmatch(hexd):
            raise ValueError("a blob is named by a lower-case SHA-256 hex digest")
        return os.path.join(self.folder, hexd)

    def has(self, digest: bytes | str) -> bool:
        return os.path.isfile(self.path(digest))

    def _runs(self, hexd: str, size: int | None = None) -> dict[int, int]:
        """start -> end of the part files of one blob."""
        runs = {}
        prefix = hexd + "."
        for name in os.listdir(self.parts):
            if name.startswith(prefix) and name.endswith(".part"):
                try:
                    start = int(name[len(prefix):-5])
                except ValueError:
                    continue
                path = os.path.join(self.parts, name)
                length = os.path.getsize(path)
                if size is not None and length % BLOB_CHUNK_SIZE and start + length != size:
                    # Whole chunks only: a part that ends mid-chunk was cut by a
                    # crash (a complete one is renamed at once); the chunk comes again.
                    length -= length % BLOB_CHUNK_SIZE
                    os.truncate(path, length)
                runs[start] = start + length
        return runs

    def _part(self, hexd: str, start: int) -> str:
        return os.path.join(self.parts, f"{hexd}.{start}.part")

    def add(self, record: dict) -> bool:
        """Take one chunk record; True when it completed its file."""
        chunk = record if isinstance(record, Chunk) else check_chunk(record)
        if chunk.size > self.max_size:
            raise CorruptBundle(f"a file inside has {chunk.size:,} bytes, more than the "
                                f"{self.max_size:,} this server accepts per file")
        hexd = chunk.digest.hex()
        if self.has(hexd):
            return False
        runs = self._runs(hexd, chunk.size)
        for start, end in runs.items():
            if start <= chunk.offset < end:
                return False  # already here (a bundle sent twice)
        before = next((s for s, e in runs.items() if e == chunk.offset), None)
        if before is None:
            before = chunk.offset
            with open(self._part(hexd, before), "xb") as f:
                f.write(chunk.data)
        else:
            with open(self._part(hexd, before), "ab") as f:
                f.write(chunk.data)
        end = chunk.end
        # Join the run that starts where this one now ends.
        while end in runs and end != before:
            nxt = self._part(hexd, end)
            with open(self._part(hexd, before), "ab") as out, open(nxt, "rb") as src:
                while data := src.read(BLOB_CHUNK_SIZE):
                    out.write(data)
            new_end = runs.pop(end)
            os.unlink(nxt)
            end = new_end
        if before == 0 and end == chunk.size:
            return self._complete(hexd, chunk)
        return False

    def _complete(self, hexd: str, chunk: Chunk) -> bool:
        part = self._part(hexd, 0)
        with open(part, "rb") as f:
            digest, size = hash_file(f)
            os.fsync(f.fileno())
        if digest != chunk.digest or size != chunk.size:
            os.unlink(part)
            raise CorruptBundle(f"a file inside does not have the SHA-256 it is sent under ({hexd})")
        os.replace(part, self.path(hexd))
        return True

    def open(self, digest: bytes | str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def remove(self, digest: bytes | str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def received(self, digest: bytes | str) -> int:
        """Bytes held of a blob, complete or not (for a reason a person reads)."""
        hexd = digest.hex() if isinstance(digest, bytes) else digest
        if self.has(hexd):
            return os.path.getsize(self.path(hexd))
        return sum(e - s for s, e in self._runs(hexd).items())


def describe(record: dict) -> dict[str, Any]:
    """A chunk record without its bytes, for listings."""
    return {BLOB_KEY: record[BLOB_KEY].hex() if isinstance(record.get(BLOB_KEY), bytes) else None,
            "offset": record.get("offset"), "size": record.get("size"),
            "data": len(record["data"]) if isinstance(record.get("data"), bytes) else None}
