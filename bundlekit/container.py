"""The bundle file layout: magic, payload, manifest, signature, footer (FORMAT.md §3).

    MAGIC | payload (a complete age v1 file, P bytes) | manifest (M bytes)
          | signature (64 bytes) | footer: P (u64 BE) | M (u32 BE) | END_MAGIC

Writing is one forward pass (the manifest, which records the payload's size
and SHA-256, comes after it).  Reading starts from the fixed-size footer, so a
reader finds every part with two seeks.  This module only checks that the
parts are where the footer says and that the lengths add up to the file size;
what the parts mean is the business of :mod:`bundlekit.manifest` and the reader.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

from bundlekit.errors import CorruptBundle, NotABundle, TruncatedBundle, UnsupportedVersion
from bundlekit.limits import MAX_MANIFEST_SIZE  # noqa: F401 (FORMAT.md §3.3; re-exported)

#: FORMAT.md §3.1: the first bytes of every version-1 bundle.
MAGIC = b"bundlekit.org/v1\n"
#: FORMAT.md §3.1: any version's magic starts with this; the rest is "v<N>\n".
MAGIC_PREFIX = b"bundlekit.org/"
#: FORMAT.md §3.5: the last bytes of every version-1 bundle.
END_MAGIC = b"bundlekit.org/v1/end\n"
#: FORMAT.md §3.4: Ed25519 signature size.
SIGNATURE_SIZE = 64
_FOOTER_LENGTHS = struct.Struct(">QI")
#: FORMAT.md §3.5: payload length (u64 BE), manifest length (u32 BE), END_MAGIC.
FOOTER_SIZE = _FOOTER_LENGTHS.size + len(END_MAGIC)
#: Offset of the payload: ``tail -c +$((PAYLOAD_OFFSET + 1))`` starts there.
PAYLOAD_OFFSET = len(MAGIC)
#: Everything but payload and manifest.
FIXED_OVERHEAD = len(MAGIC) + SIGNATURE_SIZE + FOOTER_SIZE

_OTHER_VERSION = re.compile(rb"v[0-9]{1,3}\n")
#: How much of the file start :func:`check_magic` needs: enough for another
#: version's magic ("bundlekit.org/v999\n"), not just this version's 17 bytes.
MAGIC_READ_SIZE = len(MAGIC_PREFIX) + len(b"v999\n")


@dataclass(frozen=True)
class Layout:
    """Where the parts of one bundle file are."""

    file_size: int
    payload_offset: int
    payload_size: int
    manifest: bytes
    signature: bytes


def trailer(payload_size: int, manifest: bytes, signature: bytes) -> bytes:
    """Manifest, signature and footer, written after the payload."""
    if len(manifest) > MAX_MANIFEST_SIZE:
        raise ValueError("manifest exceeds MAX_MANIFEST_SIZE")
    if len(signature) != SIGNATURE_SIZE:
        raise ValueError("signature must be 64 bytes")
    return manifest + signature + _FOOTER_LENGTHS.pack(payload_size, len(manifest)) + END_MAGIC


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:  # the file shrank under us
        raise TruncatedBundle("the file ends early: it looks half-copied")
    return data


def check_magic(head: bytes, file_size: int) -> None:
    """FORMAT.md §3.1: NotABundle, UnsupportedVersion, or Truncated for a short prefix.

    ``head`` is the first :data:`MAGIC_READ_SIZE` bytes of the file (fewer if it is
    shorter), so a multi-digit version such as ``v10`` is recognised too.
    """
    if file_size == 0:
        raise NotABundle("is empty (0 bytes), not a bundle")
    if head.startswith(MAGIC):
        return
    if head.startswith(MAGIC_PREFIX):
        rest = head[len(MAGIC_PREFIX) :]
        if _OTHER_VERSION.match(rest):
            version = rest[1:].split(b"\n", 1)[0].decode("ascii")
            raise UnsupportedVersion(
                f"is a version {version} bundle; this bundlekit reads version 1 only (upgrade it)"
            )
    if len(head) < len(MAGIC) and MAGIC.startswith(head):
        raise TruncatedBundle("the file ends early: it looks half-copied")
    raise NotABundle("is not a bundle (it does not start like one)")


def read_layout(f: BinaryIO) -> Layout:
    """Locate the parts and check that the lengths add up (FORMAT.md §3.6).

    Raises without a path; the caller attaches it.
    """
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    check_magic(f.read(MAGIC_READ_SIZE), size)
    if size < FIXED_OVERHEAD:
        raise TruncatedBundle("the file ends early: it looks half-copied")
    f.seek(size - FOOTER_SIZE)
    footer = _read_exact(f, FOOTER_SIZE)
    if footer[_FOOTER_LENGTHS.size :] != END_MAGIC:
        raise TruncatedBundle(
            "the file ends early or its last bytes are damaged: it looks half-copied"
        )
    payload_size, manifest_size = _FOOTER_LENGTHS.unpack_from(footer)
    if manifest_size > MAX_MANIFEST_SIZE:
        raise CorruptBundle("its manifest length is impossible: the file is damaged")
    if FIXED_OVERHEAD + payload_size + manifest_size != size:
        raise CorruptBundle("its length fields do not match the file size: the file is damaged")
    f.seek(PAYLOAD_OFFSET + payload_size)
    manifest = _read_exact(f, manifest_size)
    signature = _read_exact(f, SIGNATURE_SIZE)
    return Layout(size, PAYLOAD_OFFSET, payload_size, manifest, signature)
