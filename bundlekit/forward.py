"""Copying bundle files, untouched, to a stick, a share or an inbox.

The same bundle may travel by several routes (the laptop's own stick, the
middleman's laptop, the hub); the server recognises it by its id whatever the
route, so every hop copies the *original bytes*: re-sealing would make a new
bundle the server could not deduplicate against the other copies.

Django-free on purpose: a middleman laptop may have only bundlekit installed and
no decryption key at all, and still check and forward what it carries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bundlekit.errors import BundleError, WriteFailed
from bundlekit.fsutil import AtomicFile, write_failed
from bundlekit.keys import PublicKey
from bundlekit.naming import bundle_files
from bundlekit.reader import verify

_CHUNK = 1024 * 1024


def need_folder(out_dir: str | os.PathLike[str]) -> Path:
    """The target must already exist: creating it would write onto the laptop's own
    disk under the mount point of a stick that is not plugged in."""
    path = Path(out_dir)
    if not path.is_dir():
        raise WriteFailed("no such folder (is the stick mounted?)", path=path)
    return path


def same_file(a: Path, b: Path) -> bool:
    """Byte comparison: a same-named file of another size or content is a broken copy."""
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(_CHUNK), fb.read(_CHUNK)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def copy_atomic(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    replace: bool = False,
    name: str | None = None,
) -> Path:
    """Copy ``src`` into ``out_dir`` under its own name; the name appears only once
    the copy is complete and fsynced (FORMAT.md §8), so a stick pulled mid-copy
    never carries a file that looks whole.

    ``replace`` swaps out an existing, different file of that name (a damaged
    earlier copy).  Raises :class:`WriteFailed` when the medium refuses.
    """
    src = Path(src)
    name = name or src.name
    final = Path(out_dir) / name
    with AtomicFile(out_dir, name.rsplit(".", 1)[0]) as f:
        try:
            with open(src, "rb") as source:
                while chunk := source.read(_CHUNK):
                    f.file.write(chunk)
        except OSError as exc:
            if exc.filename and Path(exc.filename) == src:
                raise BundleError(f"cannot be read ({exc.strerror or exc})", path=src) from None
            raise write_failed(exc, final) from None
        if replace and os.path.lexists(final):
            try:
                os.unlink(final)
            except OSError as exc:
                raise write_failed(exc, final) from None
        return Path(f.commit(name))


@dataclass
class ForwardResult:
    """One file: ``forwarded``, ``present`` (an identical copy was already there),
    or ``refused`` (``code``/``reason`` say why; nothing was written)."""

    file: str
    status: str
    site: str = ""
    seq: int = 0
    bundle_id: str = ""
    target: str = ""
    code: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "refused"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def forward_bundles(
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    trusted: Iterable[PublicKey | str] | None = None,
    revoked: Iterable[PublicKey | str] = (),
    on_file: Callable[[ForwardResult], None] | None = None,
) -> list[ForwardResult]:
    """Verify each bundle (no decryption key needed) and copy the valid ones, byte
    for byte, into ``out_dir``.  An invalid file is refused and never copied: a
    damaged copy travelling on would only be rejected further along, after the
    intact original had maybe been deleted.

    A full or removed target raises :class:`WriteFailed` (later files would fail
    the same way); the results so far are on the exception as ``results``.
    """
    target = need_folder(out_dir)
    trusted = list(trusted) if trusted is not None else None
    revoked = list(revoked)
    results: list[ForwardResult] = []
    for path in bundle_files(paths):
        try:
            vb = verify(path, trusted=trusted, revoked=revoked)
        except BundleError as exc:
            exc.with_path(path)
            result = ForwardResult(str(path), "refused", code=exc.code, reason=exc.reason)
        else:
            m = vb.manifest
            result = ForwardResult(
                str(path), "", site=m.sender.site, seq=m.seq, bundle_id=str(m.bundle_id)
            )
            dst = target / path.name
            try:
                if dst.exists() and same_file(path, dst):
                    result.status = "present"
                else:
                    copy_atomic(path, target, replace=True)
                    result.status = "forwarded"
            except WriteFailed as exc:
                exc.results = results  # type: ignore[attr-defined]
                raise
            result.target = str(dst)
        results.append(result)
        if on_file is not None:
            on_file(result)
    return results


__all__ = ["ForwardResult", "bundle_files", "copy_atomic", "forward_bundles", "need_folder"]
