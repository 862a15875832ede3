"""seal(): records in, bundle files out; streaming, rolling over, atomic (FORMAT.md §8).

Nothing is held in memory but one batch of packed records and the fixed
buffers of zstd and age, whatever the number of records.  Before each record
goes in, we bound the size the file would have if it were closed right after
it; when that bound passes ``max_bytes`` the current bundle is sealed and the
record starts the next one.  The bound is conservative (it assumes pending
input does not compress at all) and is made exact by a zstd block flush only
when it comes close, so roll-over costs almost nothing in ratio.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard

from bundlekit import age, container, limits, records
from bundlekit.errors import CorruptBundle
from bundlekit.fsutil import AtomicFile, Opener, write_failed
from bundlekit.keys import Identity, PublicKey
from bundlekit.manifest import Manifest, bundle_digest, format_created, packb_canonical, sign
from bundlekit.naming import bundle_name, safe_site

#: FORMAT.md §8.2: default size limit, far under FAT32's 4 GiB file limit.
DEFAULT_MAX_BYTES = 1024**3
#: Smallest limit accepted: a header, a manifest and a small record must fit.
MIN_MAX_BYTES = 2048
#: FORMAT.md §5.1: zstd levels allowed (window stays within MAX_WINDOW_SIZE).
MIN_LEVEL, MAX_LEVEL = 1, 19
# Packed records are handed to zstd in batches of about this size.
_BATCH = 128 * 1024
# age (age.md "Payload"): 64 KiB plaintext chunks, each with a 16-byte tag.
_AGE_CHUNK, _AGE_TAG = 64 * 1024, 16
# zstd frame header (<= 18), last block header (3), content checksum (4), and margin.
_ZSTD_SLACK = 64
_SCALAR_KEYS = (type(None), bool, int, float, str, bytes)


@dataclass(frozen=True)
class ChainLink:
    """The sender's last sealed bundle: ``ChainLink(0, None)`` before the first."""

    seq: int
    digest: bytes | None

    def __post_init__(self) -> None:
        if not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError("ChainLink.seq must be an int >= 0")
        if (self.seq == 0) != (self.digest is None):
            raise ValueError("ChainLink.digest must be None exactly when seq is 0")
        if self.digest is not None and (not isinstance(self.digest, bytes) or len(self.digest) != 32):
            raise ValueError("ChainLink.digest must be a 32-byte bundle digest")


@dataclass(frozen=True, slots=True, init=False)
class PackedRecord:
    """A record already packed by :func:`bundlekit.records.packb` (exactly the bytes a
    bundle carries), with the values of its key and kind fields: seal() takes it
    as it is instead of packing a dict, so a store of packed records (the Django
    adapter's outbox) is sealed without unpacking and repacking every record.
    The caller vouches that ``key`` and ``kind`` are the record's own."""

    data: bytes
    key: Any = None
    kind: Any = None

    def __init__(self, data: bytes, key: Any = None, kind: Any = None) -> None:
        # One is made per record of a bundle: the slots are set directly, not through
        # the frozen dataclass's object.__setattr__ (a third of the time).
        _set_data(self, data)
        _set_key(self, key)
        _set_kind(self, kind)


_set_data, _set_key, _set_kind = (PackedRecord.__dict__[f].__set__ for f in ("data", "key", "kind"))


@dataclass(frozen=True)
class SealedBundle:
    """A bundle file now durable on disk."""

    path: str
    manifest: Manifest
    digest: bytes

    @property
    def link(self) -> ChainLink:
        """Pass as ``after=`` to continue the chain."""
        return ChainLink(self.manifest.seq, self.digest)


class _Sink(io.RawIOBase):
    """Counts (and optionally hashes) what passes through to ``dst``."""

    def __init__(self, dst: Any, hasher: Any = None):
        super().__init__()
        self._dst, self._hasher, self.count = dst, hasher, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        if self._hasher is not None:
            self._hasher.update(data)
        self._dst.write(data)
        self.count += n
        return n


def _key_value(value: Any) -> Any:
    """A record's key as the manifest states it (FORMAT.md §4.1): a scalar, or None."""
    if type(value) is msgpack.ExtType:  # records.packable_from_jsonable's typed values
        try:
            value = records.ext_hook(value.code, value.data)
        except (ValueError, TypeError, ArithmeticError):
            return None
    return value if isinstance(value, _SCALAR_KEYS) or type(value) in records._ENCODERS else None


class _Bundle:
    """One bundle being written: temp file, age writer, zstd writer, tallies."""

    def __init__(self, job: _Job, seq: int, prev: bytes | None):
        self.job, self.seq, self.prev = job, seq, prev
        self.out = AtomicFile(job.out_dir, f"{job.stem}-{seq:08d}", opener=job.opener)
        try:
            self.out.file.write(container.MAGIC)
            self.hash = hashlib.sha256()
            self.payload = _Sink(self.out.file, self.hash)
            self.age = age.encrypt(job.recipient_keys, self.payload)
            self.compressed = _Sink(self.age)
            self.zstd = job.cctx.stream_writer(self.compressed, closefd=False)
        except BaseException:
            self.out.abort()
            raise
        self.batch = bytearray()
        self.flushed = 0  # zstd output when the last block flush ended: all input before it
        self.pending = 0  # bytes given to zstd (or batched) since then
        self.count = 0
        self.size = 0
        self.kinds: dict[str, int] = {}
        self.kinds_reserve = 0
        self.first_key: Any = None
        self.first_key_size = 0
        self.last_key: Any = None
        # The quick test of seal(): a record of n bytes with pending + n = P fits if
        # P + (P >> 6) + 3n <= room.  -1 until the first record (it sets the first key).
        self.room = -1

    def bound(self, extra: int, manifest_extra: int) -> int:
        """Largest size the file could have if closed after ``extra`` more record bytes
        that grow the manifest by ``manifest_extra``.

        Everything given to zstd before the last block flush is in ``flushed``; what
        came after compresses to at most its own size plus 1/128 and a few bytes
        (zstd stores a block raw when it does not compress)."""
        pending = self.pending + extra
        c = self.flushed + pending + (pending >> 7) + _ZSTD_SLACK
        p = self.job.age_header_size + c + (c // _AGE_CHUNK + 1) * _AGE_TAG
        m = self.job.manifest_base + self.kinds_reserve + self.first_key_size + manifest_extra
        return container.FIXED_OVERHEAD + p + m

    def _refresh(self) -> None:
        """Recompute ``room``, the quick test's budget, after what it depends on changed.

        With X = P + (P >> 7) (P: pending bytes with the record), ``bound(n, 3n + 9)``
        is at most ``fixed + X + X / 4096 + 3n``, where ``fixed`` (below) rounds the
        age tags of X up by one, and X (1 + 1/4096) < P + (P >> 6) + 1.  So
        ``P + (P >> 6) + 3n <= max_bytes - fixed - 1`` implies ``bound(n, 3n + 9) <=
        max_bytes``: a few integer operations per record instead of the bound."""
        job = self.job
        c = self.flushed + _ZSTD_SLACK
        fixed = (container.FIXED_OVERHEAD + job.age_header_size + c
                 + (c // _AGE_CHUNK + 2) * _AGE_TAG
                 + job.manifest_base + self.kinds_reserve + self.first_key_size + 9)
        self.room = job.max_bytes - fixed - 1

    def fits(self, n: int, key: Any, kind: Any) -> bool:
        """The exact test, for a record of ``n`` bytes the quick test did not let in."""
        # Key and kind are inside the record, so each packs to at most n bytes
        # (first key, last key, a new kinds entry).
        if self.bound(n, 3 * n + 9) <= self.job.max_bytes:
            return True
        self.flush_block()  # makes the compressed size exact
        key_size = len(packb_canonical(self.job.key_value(key)))
        extra = key_size
        if self.count == 0:
            extra += key_size  # it will be the first key too
        if type(kind) is str and kind not in self.kinds:
            extra += len(packb_canonical(kind)) + 9
        return self.bound(n, extra) <= self.job.max_bytes

    def flush_block(self) -> None:
        self._feed()
        self.zstd.flush(zstandard.FLUSH_BLOCK)
        self.flushed = self.compressed.count
        self.pending = 0
        if self.count:
            self._refresh()

    def _feed(self) -> None:
        if self.batch:
            self.zstd.write(self.batch)
            self.batch.clear()

    def add(self, packed: bytes, n: int, key: Any, kind: Any) -> None:
        batch = self.batch
        batch += packed
        self.pending += n
        self.size += n
        self.count += 1
        self.last_key = key
        if type(kind) is str:
            kinds = self.kinds
            if kind in kinds:
                kinds[kind] += 1
            else:
                kinds[kind] = 1
                self.kinds_reserve += len(packb_canonical(kind)) + 9
                self._refresh()
        if self.count == 1:
            self.first_key = self.job.key_value(key)
            self.first_key_size = len(packb_canonical(self.first_key))
            self._refresh()
        if len(batch) >= _BATCH:
            self.zstd.write(batch)
            batch.clear()

    def finish(self) -> SealedBundle:
        job = self.job
        self._feed()
        self.zstd.close()  # ends the frame, with its content checksum (FORMAT.md §5.1)
        self.age.close()  # the final age chunk
        manifest = Manifest(
            bundle_id=uuid.uuid4(),
            sender=job.identity.public,
            recipients=job.recipient_fingerprints,
            seq=self.seq,
            prev=self.prev,
            created=job.created or dt.datetime.now(dt.UTC),
            record_count=self.count,
            kinds=self.kinds,
            key_field=job.key_field,
            kind_field=job.kind_field,
            first_key=self.first_key,
            last_key=job.key_value(self.last_key),
            uncompressed_size=self.size,
            compressed_size=self.compressed.count,
            payload_size=self.payload.count,
            payload_sha256=self.hash.digest(),
            schema=job.schema,
        )
        manifest_bytes = manifest.to_bytes()
        signature = sign(job.identity, manifest_bytes)
        digest = bundle_digest(manifest_bytes, signature)
        self.out.file.write(container.trailer(self.payload.count, manifest_bytes, signature))
        path = self.out.commit(bundle_name(job.identity.site, self.seq, digest))
        return SealedBundle(path, manifest, digest)


class _Job:
    """What stays the same across the bundles of one seal() call."""

    def __init__(self, identity, recipients, out_dir, max_bytes, key_field, kind_field,
                 created, level, opener, schema=None, key_of=None):
        if not isinstance(identity, Identity):
            raise TypeError("identity must be a bundlekit Identity")
        recipients = list(recipients)
        if not recipients or not all(isinstance(r, PublicKey) for r in recipients):
            raise ValueError("recipients must be a non-empty list of PublicKey")
        if not isinstance(max_bytes, int) or max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be an int >= {MIN_MAX_BYTES}")
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(f"level must be between {MIN_LEVEL} and {MAX_LEVEL}")
        if created is not None:
            format_created(created)  # ValueError for a naive datetime
            created = created.astimezone(dt.UTC)
        unique: dict[str, PublicKey] = {}
        for r in recipients:
            unique.setdefault(r.fingerprint, r)
        self.identity = identity
        self.recipient_keys = [r.x25519 for r in unique.values()]
        self.recipient_fingerprints = tuple(unique)
        self.out_dir = os.fspath(out_dir)
        self.stem = safe_site(identity.site)
        self.max_bytes = max_bytes
        self.key_field, self.kind_field = key_field, kind_field
        self.key_of = key_of
        self.created = created
        self.opener = opener
        self.schema = None if schema is None else {
            str(k): tuple(sorted(set(v))) for k, v in schema.items()}
        self.cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
        # The age header's size depends only on the number of recipients.
        probe = io.BytesIO()
        age.encrypt(self.recipient_keys, probe).close()
        self.age_header_size = len(probe.getvalue()) - _AGE_TAG
        # Manifest without kinds or keys, every number at its widest.
        widest = Manifest(
            bundle_id=uuid.uuid4(), sender=identity.public,
            recipients=self.recipient_fingerprints, seq=2**63 - 1, prev=b"\xff" * 32,
            created=dt.datetime.now(dt.UTC), record_count=2**63 - 1, kinds={},
            key_field=key_field, kind_field=kind_field, first_key=None, last_key=None,
            uncompressed_size=2**63 - 1, compressed_size=2**63 - 1,
            payload_size=2**63 - 1, payload_sha256=b"\xff" * 32, schema=self.schema,
        )
        self.manifest_base = len(widest.to_bytes()) + 8  # + map header growth

    def key_value(self, key: Any) -> Any:
        """What the manifest states for a record's key (first or last key, FORMAT.md
        §4.1): a PackedRecord's key through ``key_of`` when seal() was given one."""
        if self.key_of is not None:
            key = key.value if type(key) is _Given else self.key_of(key)
        return _key_value(key)


class _Given:
    """The key of a dict record when seal() has a ``key_of``: already the key's value."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def seal(
    records_in: Iterable[dict | PackedRecord],
    *,
    identity: Identity,
    recipients: Sequence[PublicKey],
    out_dir: str | os.PathLike[str],
    after: ChainLink,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_sealed: Callable[[SealedBundle], None] | None = None,
    key_field: str = "id",
    kind_field: str = "model",
    created: dt.datetime | None = None,
    level: int = 3,
    opener: Opener | None = None,
    schema: Mapping[str, Iterable[str]] | None = None,
    key_of: Callable[[Any], Any] | None = None,
) -> list[SealedBundle]:
    """Seal ``records_in`` into one or more bundles in ``out_dir``, continuing ``after``.

    Each bundle stands alone (own manifest, signature, age header) and links
    to the previous one by digest.  ``on_sealed`` runs once each file is
    durable, so the caller can persist its chain state before the next.
    Empty input seals nothing.  ``created`` and ``opener`` are test seams.
    ``schema`` (FORMAT.md §4.5): the sender's schema state, stated in every
    manifest (format 2); None writes format-1 manifests.
    ``key_of``: what turns a PackedRecord's ``key`` into the key's value, for a
    store whose keys come out in another form (a UUID as its hex text, say); it
    runs only for the keys a manifest states (each bundle's first and last) and
    when a record is close to not fitting, not once per record.
    An OSError while writing becomes :class:`WriteFailed`; the bundle being
    written is removed, bundles already sealed stay (on_sealed saw them).
    """
    if not isinstance(after, ChainLink):
        raise TypeError("after must be a ChainLink")
    job = _Job(identity, recipients, out_dir, max_bytes, key_field, kind_field,
               created, level, opener, schema, key_of)
    pack = records.new_packer().pack
    key_field, kind_field = job.key_field, job.kind_field
    key_sets: set[tuple] = set()  # the key sets already checked (records of a model share one)
    sealed: list[SealedBundle] = []
    current: _Bundle | None = None

    def close_current() -> None:
        nonlocal current
        assert current is not None
        with _writing(job):
            done = current.finish()
        current = None
        sealed.append(done)
        if on_sealed is not None:
            on_sealed(done)

    def start_next() -> _Bundle:
        link = sealed[-1].link if sealed else after
        with _writing(job):
            return _Bundle(job, link.seq + 1, link.digest)

    # One pass per record, so everything here is paid 100,000 times a bundle: the
    # checks FORMAT.md asks of writers stay, each in its cheapest form (the key set
    # once per distinct set, the bounds by check_record's one C pass, the size by
    # the quick test of _Bundle.room), and the exact work runs only when they fail.
    try:
        # The caller's iterator runs outside the OSError translation below:
        # its errors (a database hiccup, say) are not ours to rename.
        for record in records_in:
            if type(record) is PackedRecord:  # first: a store's records are all packed
                packed, key, kind = _check_packed(record), record.key, record.kind
            elif type(record) is dict:
                keys = tuple(record)
                if keys not in key_sets:
                    _check_keys(keys, key_sets)
                packed = pack(record)
                key, kind = record.get(key_field), record.get(kind_field)
                if job.key_of is not None:
                    key = _Given(key)
            else:
                raise TypeError(f"a record must be a dict, not {type(record).__name__}")
            try:
                limits.check_record(packed)
            except CorruptBundle as e:
                # Writers MUST NOT write what readers refuse (FORMAT.md §5.3).
                raise ValueError(e.reason.replace("a record inside", "the record", 1)) from None
            n = len(packed)
            if current is None:
                current = start_next()
            try:
                p = current.pending + n
                if p + (p >> 6) + 3 * n <= current.room or current.fits(n, key, kind):
                    current.add(packed, n, key, kind)
                    continue
            except OSError as e:
                raise write_failed(e, job.out_dir) from e
            if current.count:
                close_current()
                current = start_next()
                with _writing(job):
                    if current.fits(n, key, kind):
                        current.add(packed, n, key, kind)
                        continue
            raise ValueError(
                f"a record of {n} bytes cannot fit in a bundle of at most "
                f"{job.max_bytes} bytes; raise max_bytes"
            )
        if current is not None:
            close_current()
    finally:
        if current is not None:
            current.out.abort()
    return sealed


#: Distinct key sets remembered as checked; beyond, records are checked one by one.
_KEY_SETS = 256


def _check_keys(keys: tuple, checked: set[tuple]) -> None:
    for k in keys:
        if type(k) is not str:
            raise TypeError(f"record keys must be str, not {type(k).__name__}")
    if len(checked) < _KEY_SETS:
        checked.add(keys)


@contextmanager
def _writing(job: _Job) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise write_failed(e, job.out_dir) from e


def _check_packed(record: PackedRecord) -> bytes:
    data = record.data
    if type(data) is not bytes or not data:
        raise TypeError("PackedRecord.data must be non-empty bytes")
    # A msgpack map (fixmap, map16, map32): what records.packb produces.
    if not (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)):
        raise ValueError("PackedRecord.data is not a packed record (a msgpack map)")
    return data
