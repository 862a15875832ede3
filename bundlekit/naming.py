"""Safe generated file names for bundles and key files (FORMAT.md §7).

A bundle's name is built by us from sanitised values, never taken from bundle
content: a name must be harmless on FAT32/exFAT/NTFS sticks, on
case-insensitive systems, and in a shell.  The reader never uses anything it
read inside a bundle as a path.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

#: FORMAT.md §7: the file-name extension of a sealed bundle.
BUNDLE_SUFFIX = ".bundle"
#: FORMAT.md §7: the site part of a name is at most this many characters.
MAX_SITE_LENGTH = 32
#: FORMAT.md §7: how many hex digits of the bundle digest a name carries.
NAME_DIGEST_HEX = 8

# Windows refuses these as a file name's stem, whatever the extension.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
)

_BUNDLE_NAME = re.compile(
    r"(?P<site>[a-z0-9]+(?:-[a-z0-9]+)*)-(?P<seq>[0-9]{8,20})-(?P<digest>[0-9a-f]{8})\.bundle"
)


def safe_site(site: str) -> str:
    """Lower-case ASCII letters, digits and single hyphens; never empty or reserved.

    Accents are folded ("São Tomé" -> "sao-tome") so names stay recognisable.
    """
    folded = unicodedata.normalize("NFKD", site).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    slug = slug[:MAX_SITE_LENGTH].rstrip("-")
    if not slug:
        return "site"
    if slug in _RESERVED:
        return f"site-{slug}"
    return slug


def bundle_name(site: str, seq: int, digest: bytes) -> str:
    """``{site}-{seq:08d}-{digest8hex}.bundle`` (FORMAT.md §7)."""
    if not isinstance(seq, int) or seq < 1:
        raise ValueError(f"sequence number must be a positive int, got {seq!r}")
    if not isinstance(digest, bytes) or len(digest) < NAME_DIGEST_HEX // 2:
        raise ValueError("digest must be the bundle digest bytes")
    return f"{safe_site(site)}-{seq:08d}-{digest.hex()[:NAME_DIGEST_HEX]}{BUNDLE_SUFFIX}"


def is_bundle_name(name: str) -> bool:
    """True for names :func:`bundle_name` can produce (not temp files, not keys)."""
    return _BUNDLE_NAME.fullmatch(name) is not None


def parse_bundle_name(name: str) -> tuple[str, int, str] | None:
    """(site, seq, digest hex prefix) of a bundle name, or None if it is not one."""
    m = _BUNDLE_NAME.fullmatch(name)
    if m is None:
        return None
    return m["site"], int(m["seq"]), m["digest"]


def bundle_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; a folder stands for the bundle files in it, in name order
    (which is sequence order for one sender, and keeps output stable)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(c for c in p.iterdir() if c.is_file() and is_bundle_name(c.name)))
        else:
            out.append(p)
    return out
