"""verify(), open_bundle(), read_manifest(), copy_payload() (FORMAT.md §9).

Order of checks, as in FORMAT.md §9.1: layout, manifest, signature, sender
policy, payload SHA-256 — all without a decryption key — and only then
decryption, decompression under a hard cap, and record decoding.  The payload
is hashed again while it is decrypted and checked at the end, so a file
swapped between the two passes is still caught.

Every failure is a :class:`~bundlekit.errors.BundleError` naming the file.
Nothing read from inside a bundle is used as a path.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from bundlekit import age, container
from bundlekit.errors import (
    BundleError,
    CorruptBundle,
    NotARecipient,
    RevokedKey,
    SiteNameMismatch,
    TruncatedBundle,
    UnknownSender,
)
from bundlekit.keys import Identity, PublicKey
from bundlekit.manifest import Manifest, bundle_digest, check_signature
from bundlekit.records import iter_records

#: FORMAT.md §5.1: readers refuse zstd frames needing a larger window.
MAX_WINDOW_SIZE = 8 * 1024 * 1024
_READ = 1024 * 1024

KeySet = Iterable[PublicKey | str] | None


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose structure, signature, sender and payload digest checked out."""

    path: str
    manifest: Manifest
    digest: bytes
    sender: PublicKey


def _open_file(path: str | os.PathLike[str]) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BundleError("does not exist", path=path) from None
    except IsADirectoryError:
        raise BundleError("is a folder, not a bundle file", path=path) from None
    except OSError as e:
        raise BundleError(f"cannot be read ({e.strerror})", path=path) from None


@contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Every problem while reading becomes a BundleError naming ``path``."""
    try:
        yield
    except BundleError as e:
        e.with_path(path)
        raise
    except OSError as e:
        raise BundleError(f"cannot be read ({e.strerror}; was the stick removed?)", path=path) from None


@contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """For reads that finish inside the block (no caller code runs in it)."""
    f = _open_file(path)
    with f, _reading(path):
        yield f


def _parse(f: BinaryIO) -> tuple[container.Layout, Manifest]:
    layout = container.read_layout(f)
    manifest = Manifest.from_bytes(layout.manifest)
    if manifest.payload_size != layout.payload_size:
        raise CorruptBundle("its footer and manifest disagree on the payload size: it was altered")
    return layout, manifest


def _matches(pub: PublicKey, entry: PublicKey | str, *, signing_key_only: bool) -> bool:
    if isinstance(entry, str):
        return hmac.compare_digest(entry.strip().lower(), pub.fingerprint)
    if signing_key_only:
        return hmac.compare_digest(entry.ed25519, pub.ed25519)
    return pub.same_key(entry)


def _check_trusted(sender: PublicKey, trusted: Iterable[PublicKey | str]) -> None:
    """The signer must be a trusted key, and the site it names must be the site
    that key is trusted as: the name in a manifest is a claim, the key is the
    proof (docs/SECURITY.md, "Identity binding").  A trusted fingerprint (text)
    binds no name; a trusted ``.pub`` binds its ``site:`` line."""
    names = []
    for entry in trusted:
        if not _matches(sender, entry, signing_key_only=False):
            continue
        if isinstance(entry, str) or entry.site == sender.site:
            return
        names.append(entry.site)
    if names:
        raise SiteNameMismatch(
            f"claims to come from site {sender.site!r}, but the key that signed it "
            f"({sender.fingerprint}) is trusted as site {names[0]!r}: refused"
        )
    raise UnknownSender(
        f"was sealed by site {sender.site!r} with key {sender.fingerprint}, "
        "which is not one of the trusted senders"
    )


def _authenticate(f: BinaryIO, trusted: KeySet, revoked: Iterable[PublicKey | str]):
    """FORMAT.md §9.1 steps 1-4: everything but the payload digest."""
    layout, manifest = _parse(f)
    sender = manifest.sender
    check_signature(sender, layout.manifest, layout.signature)
    # A revoked signing key is refused whatever encryption key it is paired with.
    if any(_matches(sender, r, signing_key_only=True) for r in revoked):
        raise RevokedKey(
            f"was sealed by site {sender.site!r} with key {sender.fingerprint}, "
            "which has been revoked"
        )
    if trusted is not None:
        _check_trusted(sender, trusted)
    return layout, manifest, bundle_digest(layout.manifest, layout.signature)


def _digest_mismatch() -> CorruptBundle:
    return CorruptBundle(
        "its encrypted contents do not match the signed checksum: the file was damaged in copying"
    )


def _hash_payload(f: BinaryIO, layout: container.Layout, dst: BinaryIO | None = None) -> bytes:
    f.seek(layout.payload_offset)
    h = hashlib.sha256()
    left = layout.payload_size
    while left:
        chunk = f.read(min(_READ, left))
        if not chunk:
            raise TruncatedBundle("the file ends early: it looks half-copied")
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        left -= len(chunk)
    return h.digest()


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest, structurally checked but NOT authenticated: for display and triage."""
    with _opened(path) as f:
        return _parse(f)[1]


def verify(
    path: str | os.PathLike[str], trusted: KeySet = None, revoked: Iterable[PublicKey | str] = ()
) -> VerifiedBundle:
    """Check everything that can be checked without a decryption key.

    ``trusted`` (public keys or fingerprints) limits who may have signed;
    None accepts any correctly signed bundle.  ``revoked`` always wins.
    """
    with _opened(path) as f:
        layout, manifest, digest = _authenticate(f, trusted, revoked)
        if not hmac.compare_digest(_hash_payload(f, layout), manifest.payload_sha256):
            raise _digest_mismatch()
    return VerifiedBundle(os.fspath(path), manifest, digest, manifest.sender)


def copy_payload(
    path: str | os.PathLike[str],
    dst: BinaryIO,
    trusted: KeySet = None,
    revoked: Iterable[PublicKey | str] = (),
) -> VerifiedBundle:
    """Write the payload (a standard age file) to ``dst``, for ``age -d`` elsewhere.

    Raises after writing if the payload does not match its signed digest, so
    the caller should write to a temporary file and keep it only on success.
    """
    with _opened(path) as f:
        layout, manifest, digest = _authenticate(f, trusted, revoked)
        if not hmac.compare_digest(_hash_payload(f, layout, dst), manifest.payload_sha256):
            raise _digest_mismatch()
    return VerifiedBundle(os.fspath(path), manifest, digest, manifest.sender)


class _Region(io.RawIOBase):
    """Exactly ``size`` bytes of ``f`` from where it stands, hashed as they are read."""

    def __init__(self, f: BinaryIO, size: int):
        super().__init__()
        self._f, self._left, self.hash = f, size, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self._left)
        if n == 0:
            return 0
        data = self._f.read(n)
        if not data:
            raise TruncatedBundle("the file ends early: it looks half-copied")
        self.hash.update(data)
        buf[: len(data)] = data
        self._left -= len(data)
        return len(data)

    @property
    def exhausted(self) -> bool:
        return self._left == 0


class _Capped(io.RawIOBase):
    """Reads from ``src`` and fails as soon as more than ``limit`` bytes come out.

    This is the decompression-bomb guard (FORMAT.md §9.2): the manifest says
    how big the plaintext is, and not one byte more is produced.
    """

    def __init__(self, src: Any, limit: int, what: str):
        super().__init__()
        self._src, self._limit, self._what, self.total = src, limit, what, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        try:
            data = self._src.read(len(buf))
        except zstandard.ZstdError:
            # Raised here, below the record decoder, it would read as a bad record.
            raise CorruptBundle("its compressed data is damaged") from None
        n = len(data)
        self.total += n
        if self.total > self._limit:
            raise CorruptBundle(f"its {self._what} is larger than its manifest says: it was altered")
        buf[:n] = data
        return n


#: RFC 8878 §3.1.1: the magic number of a zstd frame (skippable frames have others).
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Magic number and frame header descriptor: enough to know the frame header's size.
_FRAME_HEADER_PREFIX = 5
_BLOCK_HEADER_SIZE = 3
_CHECKSUM_SIZE = 4
_RLE_BLOCK, _RESERVED_BLOCK = 1, 3
_MID_FRAME = "its compressed data ends in the middle of its zstd frame"


class _OneFrame(_Capped):
    """The age plaintext, which must be exactly one zstd frame (FORMAT.md §5.1).

    Checks the frame header before the decompressor sees it (window at most
    MAX_WINDOW_SIZE, no dictionary) and notes whether it has the content
    checksum flag, then follows the 3-byte block headers as the bytes stream
    past, so it knows where the frame ends without decompressing anything
    itself: a frame that ends before the ``compressed_size`` bytes do (a second
    frame, a skippable frame, garbage) is refused.  It costs a few operations
    per block of up to 128 KiB.  The checksum flag is one of the end checks
    (FORMAT.md §9.1: "the zstd frame ends (its checksum verified)"), so the
    caller refuses a frame without one once it has been read; the bounds of
    §9.2 apply while it is.
    """

    def __init__(self, src: Any, limit: int):
        super().__init__(src, limit, "compressed data")
        self.frame_end: int | None = None  # offset just past the frame, once known
        self.has_checksum = False  # the frame header's content checksum flag
        self._next = 0  # offset of the next header to parse
        self._want = _FRAME_HEADER_PREFIX  # its size
        self._field = bytearray()  # its bytes gathered so far (it may span reads)
        self._parse = self._header_prefix

    def readinto(self, buf: Any) -> int:
        try:
            n = super().readinto(buf)
        except age.TruncatedPayload:
            raise TruncatedBundle("its encrypted contents end early: it looks half-copied") from None
        except age.AgeError:
            raise CorruptBundle("its encrypted contents are damaged") from None
        if n and self.frame_end is None:
            self._scan(memoryview(buf)[:n], self.total - n)
        return n

    def _scan(self, data: memoryview, start: int) -> None:
        """Parse the headers that lie in ``data``, the bytes at offset ``start``."""
        while self.frame_end is None:
            have = len(self._field)
            i = self._next + have - start
            if i >= len(data):
                return
            self._field += data[i : i + self._want - have]
            if len(self._field) < self._want:
                return
            self._parse(bytes(self._field))

    def _header_prefix(self, field: bytes) -> None:
        if field[:4] != _ZSTD_MAGIC:
            raise CorruptBundle("its compressed data does not start with a zstd frame")
        try:
            self._want = zstandard.frame_header_size(field)
        except zstandard.ZstdError:
            raise CorruptBundle("its compressed data has a damaged zstd frame header") from None
        self._parse = self._header  # keep the bytes gathered: they start the header

    def _header(self, field: bytes) -> None:
        try:
            params = zstandard.get_frame_parameters(field)
        except zstandard.ZstdError:
            raise CorruptBundle("its compressed data has a damaged zstd frame header") from None
        self.has_checksum = params.has_checksum
        if params.window_size > MAX_WINDOW_SIZE:
            raise CorruptBundle(
                f"its zstd frame needs a {params.window_size:,}-byte window, more than the "
                f"{MAX_WINDOW_SIZE:,} bytes the format allows"
            )
        if params.dict_id:
            raise CorruptBundle("its zstd frame needs a dictionary, which the format does not allow")
        self._next, self._want, self._parse = len(field), _BLOCK_HEADER_SIZE, self._block
        self._field.clear()

    def _block(self, field: bytes) -> None:
        header = int.from_bytes(field, "little")
        kind, size = (header >> 1) & 3, header >> 3
        if kind == _RESERVED_BLOCK:
            raise CorruptBundle("its compressed data is damaged")
        self._next += _BLOCK_HEADER_SIZE + (1 if kind == _RLE_BLOCK else size)
        self._field.clear()
        if header & 1:  # the last block; the checksum, if any, follows it
            self.frame_end = self._next + (_CHECKSUM_SIZE if self.has_checksum else 0)
            if self.frame_end < self._limit:
                raise CorruptBundle(
                    "its compressed data goes on after the zstd frame ends "
                    "(the format allows exactly one frame)"
                )
            if self.frame_end > self._limit:
                raise CorruptBundle(_MID_FRAME)


class OpenedBundle:
    """An authenticated bundle being read; iterate it once for its records."""

    def __init__(self, path: str, f: BinaryIO, layout: container.Layout, manifest: Manifest,
                 digest: bytes, plaintext: Any, region: _Region):
        self.path, self.manifest, self.digest = path, manifest, digest
        self.sender = manifest.sender
        self._f, self._layout, self._age, self._region = f, layout, plaintext, region
        self._used = False
        self._plain: _Capped | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes of packed records decompressed so far (at most 64 KiB ahead of the
        records yielded).  Every msgpack value takes at least one byte, so a consumer
        that keeps records in batches should close a batch by this count as well as
        by the number of records: that bounds the values it holds (docs/SECURITY.md,
        "Memory bombs")."""
        return self._plain.total if self._plain is not None else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._used:
            raise ValueError("a bundle's records can be iterated only once; open it again")
        self._used = True
        return self._records()

    def packed(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        """Iterate the records as pairs of a record and its packed bytes, as the
        bundle carried them (for a store that keeps them: no packing again)."""
        if self._used:
            raise ValueError("a bundle's records can be iterated only once; open it again")
        self._used = True
        return self._records(with_bytes=True)

    def _records(self, with_bytes: bool = False) -> Iterator[dict[str, Any]]:
        m = self.manifest
        try:
            compressed = _OneFrame(self._age, m.compressed_size)
            dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
            zreader = dctx.stream_reader(compressed, read_across_frames=False)
            plain = self._plain = _Capped(zreader, m.uncompressed_size, "uncompressed data")
            count = 0
            for record in iter_records(plain, expected_size=m.uncompressed_size,
                                       with_bytes=with_bytes):
                count += 1
                if count > m.record_count:
                    raise CorruptBundle("it holds more records than its manifest says: it was altered")
                yield record
            if compressed.frame_end is None:
                raise CorruptBundle(_MID_FRAME)
            if not compressed.has_checksum:
                raise CorruptBundle(
                    "its zstd frame has no content checksum, which the format requires "
                    "(it was not written by bundlekit)"
                )
            if count != m.record_count or plain.total != m.uncompressed_size:
                raise CorruptBundle("it holds fewer records than its manifest says: it was altered")
            if compressed.total != m.compressed_size or self._age.read(1) != b"":
                raise CorruptBundle("its compressed data does not match its manifest: it was altered")
            if not self._region.exhausted or not hmac.compare_digest(
                self._region.hash.digest(), m.payload_sha256
            ):
                raise CorruptBundle("the file changed while it was being read")
        except BundleError as e:
            e.with_path(self.path)
            raise
        except age.TruncatedPayload:
            raise TruncatedBundle("its encrypted contents end early: it looks half-copied",
                                  path=self.path) from None
        except age.AgeError:
            raise CorruptBundle("its encrypted contents are damaged", path=self.path) from None
        except zstandard.ZstdError:
            raise CorruptBundle("its compressed data is damaged", path=self.path) from None
        except OSError as e:
            raise BundleError(f"cannot be read ({e.strerror}; was the stick removed?)",
                              path=self.path) from None
        except Exception as e:  # a decoder below us raising something unforeseen
            raise CorruptBundle(f"its contents cannot be decoded ({type(e).__name__})",
                                path=self.path) from None


@contextmanager
def open_bundle(
    path: str | os.PathLike[str],
    identities: Iterable[Identity],
    trusted: KeySet = None,
    revoked: Iterable[PublicKey | str] = (),
) -> Iterator[OpenedBundle]:
    """Verify, then decrypt with the first of ``identities`` that is a recipient.

    NotARecipient is raised on entry.  Records stream during iteration; the
    last checks (counts, sizes, digest of what was decrypted) run when the
    iteration ends, so treat an import as done only once the loop finished.
    """
    secrets_ = [i.x25519_secret for i in identities]
    if not secrets_:
        raise ValueError("open_bundle needs at least one identity")
    f = _open_file(path)
    try:
        with _reading(path):
            layout, manifest, digest = _authenticate(f, trusted, revoked)
            if not hmac.compare_digest(_hash_payload(f, layout), manifest.payload_sha256):
                raise _digest_mismatch()
            f.seek(layout.payload_offset)
            region = _Region(f, layout.payload_size)
            try:
                plaintext = age.decrypt(secrets_, region)
            except age.NoIdentityMatch:
                raise NotARecipient(
                    "was sealed for other servers (key fingerprints "
                    f"{', '.join(manifest.recipients)}); none of the keys given can read it"
                ) from None
            except age.TruncatedPayload:
                raise TruncatedBundle("its encrypted contents end early: it looks half-copied") from None
            except age.AgeError:
                raise CorruptBundle("its encryption header is damaged") from None
        # Outside _reading: errors raised by the caller's code pass through untouched.
        yield OpenedBundle(os.fspath(path), f, layout, manifest, digest, plaintext, region)
    finally:
        f.close()
