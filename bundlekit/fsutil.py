"""Atomic file creation for removable media (FORMAT.md §8).

A stick can fill up, be read-only, or be pulled out mid-write.  So a bundle is
written to a temporary name in the target folder that no reader mistakes for a
bundle, flushed and fsynced, renamed to its final name, and the folder fsynced.
A file with a final name is therefore always complete; on failure the temporary
file is removed if the medium still allows it.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from typing import BinaryIO

from bundlekit.errors import WriteFailed

#: FORMAT.md §8: temporary files start with a dot and end with this suffix.
PARTIAL_SUFFIX = ".partial"

Opener = Callable[[str], BinaryIO]


def exclusive_opener(path: str) -> BinaryIO:
    """Create ``path`` for writing; fail if anything already has that name."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    return os.fdopen(fd, "wb")


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be fsynced."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EISDIR, errno.ENOTSUP, errno.EINVAL):
            return  # Windows and some network mounts: nothing more we can do.
        raise
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _describe(e: OSError) -> str:
    hints = {
        errno.ENOSPC: "the disk or stick is full",
        errno.EROFS: "the disk or stick is read-only",
        errno.EIO: "input/output error (was the stick removed?)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: "the folder does not exist (was the stick removed?)",
        errno.EDQUOT: "disk quota exceeded",
    }
    return hints.get(e.errno or 0, e.strerror or str(e))


class AtomicFile:
    """A file that appears under its final name only once complete.

    The final name may be decided after writing (bundle names carry the
    digest), so it is given to :meth:`commit`.  Used as a context manager, an
    exception before ``commit`` removes the temporary file.
    """

    def __init__(self, folder: str | os.PathLike[str], stem: str, *, opener: Opener | None = None):
        self.folder = os.fspath(folder)
        self.temp_path = os.path.join(
            self.folder, f".{stem}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        )
        self.final_path: str | None = None
        self._done = False
        try:
            self.file: BinaryIO = (opener or exclusive_opener)(self.temp_path)
        except OSError as e:
            raise self._failed(e, self.temp_path) from e

    def _failed(self, e: OSError, target: str) -> WriteFailed:
        return WriteFailed(f"could not be written: {_describe(e)}", path=target)

    def commit(self, name: str, *, replace: bool = False) -> str:
        """Flush, fsync, rename to ``name`` in the folder, fsync the folder; return the path.

        An existing file of that name is an error unless ``replace`` (state
        files are replaced; bundles never are).
        """
        final = os.path.join(self.folder, name)
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if not replace and os.path.lexists(final):
                raise WriteFailed("already exists; refusing to replace it", path=final)
            os.replace(self.temp_path, final)
            self._done = True
            fsync_dir(self.folder)
        except OSError as e:
            self.abort()
            raise self._failed(e, final) from e
        except BaseException:
            self.abort()
            raise
        self.final_path = final
        return final

    def abort(self) -> None:
        """Close and remove the temporary file, as far as the medium allows."""
        if self._done:
            return
        self._done = True
        try:
            self.file.close()
        except Exception:
            pass  # the stick may be gone; removing the name is what matters
        try:
            os.unlink(self.temp_path)
        except OSError:
            pass

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            self.abort()


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, opener: Opener | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old or the new content."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    with AtomicFile(folder, name.lstrip("."), opener=opener) as out:
        try:
            out.file.write(data)
        except OSError as e:
            raise out._failed(e, os.fspath(path)) from e
        out.commit(name, replace=True)


def write_failed(e: OSError, target: str | os.PathLike[str]) -> WriteFailed:
    """The WriteFailed for an OSError met while writing ``target``."""
    return WriteFailed(f"could not be written: {_describe(e)}", path=target)
