"""Resumable uploads on disk, and the digests of the files the API serves.

An upload is named by the SHA-256 of the whole bundle file (64 hex digits), so
the client can name it before sending a byte, a resumed upload cannot be mixed
up with another file, and the server checks at the end that it holds exactly
the bytes the client hashed.  Each upload has its own folder under
``REST.UPLOAD_DIR``::

    <id>/upload.part     bytes received so far (appended, fsynced per request)
    <id>/upload.json     {"length", "received", "requests", "name", "token"}
    <id>/<NAME>.bundle   the complete, verified file while it is handled
    <id>/result.json     the final answer, kept so a lost answer can be asked again
    <id>/.lock           flock()ed while a request works on the upload

A request appends only at the current offset (``start == offset``), so no byte
is ever written twice; ``received`` counts the bytes appended over all requests
so the tests (and an operator) can see that a resumed upload sent nothing again.
Nothing here reads a path from the client: the id is checked against a strict
pattern and every file name is ours.  Asking about an upload never creates
anything: only a ``PUT`` does (:meth:`Upload.locked` with ``create=True``), and
then within the token's quota (:func:`unfinished`).  ``token`` is the id (a
hash) of the token that started the upload, never the token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from bundlekit.container import MAGIC_PREFIX
from bundlekit.errors import ApiError, Busy, NoSuchUpload
from bundlekit.fsutil import atomic_write_bytes
from bundlekit.naming import is_bundle_name

try:
    import fcntl
except ImportError:  # Windows: threads of one server process are still kept apart
    fcntl = None

UPLOAD_ID = re.compile(r"[0-9a-f]{64}")
DATA = "upload.part"
META = "upload.json"
RESULT = "result.json"
LOCK = ".lock"
#: Bytes read from the request per write.
READ_SIZE = 1024 * 1024
#: How long a request waits for another one working on the same upload (a
#: dropped connection whose server thread has not noticed yet) before 503.
LOCK_WAIT_SECONDS = 10.0
#: Upload folders untouched for this long are removed (abandoned or answered).
KEEP_SECONDS = 7 * 24 * 3600.0

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


class Upload:
    """One upload folder; use its methods only inside :meth:`locked`."""

    def __init__(self, root: Path, upload_id: str):
        if not UPLOAD_ID.fullmatch(upload_id):
            raise ApiError(
                404, "bad-upload-id", "an upload id is the SHA-256 of the file: 64 lower-case hex digits"
            )
        self.id = upload_id
        self.dir = root / upload_id
        self.data = self.dir / DATA

    # -- locking ------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, wait: float = LOCK_WAIT_SECONDS, *, create: bool = True) -> Iterator[None]:
        """Hold the upload's lock; ``create=False`` (GET, HEAD, DELETE) raises a
        404 ``no-such-upload`` for an upload that does not exist instead of making one."""
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        elif not (self.dir / META).exists():
            raise NoSuchUpload()
        with _thread_locks_guard:
            tlock = _thread_locks.setdefault(str(self.dir), threading.Lock())
        if not tlock.acquire(timeout=wait):
            raise Busy()
        try:
            try:
                fd = os.open(self.dir / LOCK, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
            except FileNotFoundError:
                raise NoSuchUpload() from None
            try:
                _flock(fd, wait, poll=0.05)
                if not create and not (self.dir / META).exists():
                    raise NoSuchUpload()  # removed by a racing request or cleanup
                self.dir.mkdir(parents=True, exist_ok=True)  # removed by a racing cleanup
                os.utime(self.dir)
                yield
            finally:
                os.close(fd)
        finally:
            tlock.release()

    # -- state --------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / META).read_text())
        except FileNotFoundError:
            return {"length": None, "received": 0, "requests": 0, "name": None, "token": None}

    def _save_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_bytes(self.dir / META, json.dumps(meta).encode())

    def offset(self) -> int:
        meta = self.meta()
        if meta.get("name") or self.result() is not None:
            return int(meta["length"])
        try:
            return self.data.stat().st_size
        except FileNotFoundError:
            return 0

    def exists(self) -> bool:
        return (self.dir / META).exists()

    def start(self, length: int, token_id: str = "") -> dict[str, Any]:
        """Create the upload, or check ``length`` against the one it was created with."""
        meta = self.meta()
        if meta["length"] is None:
            meta["length"] = length
            meta["token"] = token_id
            self._save_meta(meta)
        elif meta["length"] != length:
            raise ApiError(
                409,
                "length-mismatch",
                f"this upload was started with a length of {meta['length']} bytes, not {length}",
            )
        return meta

    def append(self, start: int, body: BinaryIO, count: int) -> int:
        """Append ``count`` bytes from ``body`` at ``start`` (which must be the offset).

        Bytes that did arrive before a dropped connection are kept (fsynced) and
        count towards the offset; the client resumes after them.
        """
        meta = self.meta()
        offset = self.offset()
        if start != offset:
            raise ApiError(
                416,
                "offset-mismatch",
                f"the server holds {offset} bytes of this upload; send from there",
                headers={"Upload-Offset": str(offset)},
                offset=offset,
            )
        if start + count > meta["length"]:
            raise ApiError(400, "bad-range", "the chunk goes past the end of the file")
        written, short = 0, False
        with open(self.data, "ab") as f:
            try:
                while written < count:
                    piece = body.read(min(READ_SIZE, count - written))
                    if not piece:
                        short = True
                        break
                    f.write(piece)
                    written += len(piece)
            except OSError:  # the client went away mid-request
                short = True
            finally:
                f.flush()
                os.fsync(f.fileno())
                meta["received"] += written
                meta["requests"] += 1
                self._save_meta(meta)
        if short:
            raise ApiError(
                400,
                "incomplete-body",
                f"the connection ended after {written} of {count} bytes; resume from the offset",
                headers={"Upload-Offset": str(start + written)},
            )
        if start == 0 and written:
            with open(self.data, "rb") as f:
                head = f.read(len(MAGIC_PREFIX))
            if not MAGIC_PREFIX.startswith(head) and not head.startswith(MAGIC_PREFIX):
                self.remove()
                raise ApiError(422, "not-a-bundle", "this is not a bundle file (wrong magic)")
        return start + written

    def check_digest(self) -> None:
        """The complete data must hash to the upload id (the client's SHA-256 of the file)."""
        h = hashlib.sha256()
        with open(self.data, "rb") as f:
            while chunk := f.read(READ_SIZE):
                h.update(chunk)
        if h.hexdigest() != self.id:
            self.remove()
            raise ApiError(
                422,
                "digest-mismatch",
                "the bytes received do not hash to the upload id: damaged in transit; send it again",
            )

    def name_file(self, name: str) -> Path:
        """Give the complete, verified file its bundle name (reports and the DB show it)."""
        if not is_bundle_name(name):
            raise ValueError(f"not a bundle name: {name!r}")
        target = self.dir / name
        os.replace(self.data, target)
        meta = self.meta()
        meta["name"] = name
        self._save_meta(meta)
        return target

    def named_file(self) -> Path | None:
        name = self.meta().get("name")
        return self.dir / name if name else None

    def result(self) -> tuple[int, dict[str, Any]] | None:
        try:
            raw = json.loads((self.dir / RESULT).read_text())
        except FileNotFoundError:
            return None
        return int(raw["status"]), raw["body"]

    def save_result(self, status: int, body: dict[str, Any]) -> None:
        """Remember the final answer; the file itself has gone to its place."""
        atomic_write_bytes(self.dir / RESULT, json.dumps({"status": status, "body": body}).encode())
        for leftover in (self.data, self.named_file()):
            if leftover is not None:
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def remove(self) -> None:
        """Forget the upload entirely (a refused file is not kept).

        ``upload.json`` goes last, so a request that finds it finds a whole upload.
        """
        entries = list(self.dir.iterdir()) if self.dir.exists() else []
        for entry in sorted(entries, key=lambda e: e.name == META):
            if entry.name != LOCK:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    def state(self) -> dict[str, Any]:
        meta = self.meta()
        result = self.result()
        return {
            "upload": self.id,
            "offset": self.offset(),
            "length": meta["length"],
            "received": meta["received"],
            "requests": meta["requests"],
            "complete": result is not None,
        }


def unfinished(root: Path, token_id: str) -> tuple[int, int]:
    """(count, announced bytes) of the uploads ``token_id`` started and not finished.

    Read from the upload records on disk, so the quota holds across server
    processes and restarts; an upload stops counting when it is answered
    (imported, queued, refused), deleted, or swept after ``KEEP_SECONDS``.
    """
    count = total = 0
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0, 0
    for entry in entries:
        if not UPLOAD_ID.fullmatch(entry.name):
            continue
        folder = Path(entry.path)
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError):
            continue  # not started, being removed, or not ours
        if meta.get("token", "") != token_id or (folder / RESULT).exists():
            continue
        count += 1
        total += int(meta.get("length") or 0)
    return count, total


_quota_guard = threading.Lock()


@contextlib.contextmanager
def starting(root: Path, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Serialize the starts of new uploads (quota check, then creation) across the
    threads and processes of a server, so parallel requests of one token cannot
    all pass the check before any of them counts."""
    root.mkdir(parents=True, exist_ok=True)
    if not _quota_guard.acquire(timeout=wait):
        raise Busy()
    try:
        fd = os.open(root / ".starting.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, wait, poll=0.02)
            yield
        finally:
            os.close(fd)
    finally:
        _quota_guard.release()


def sweep(root: Path, keep_seconds: float = KEEP_SECONDS) -> None:
    """Remove upload folders nobody touched for ``keep_seconds`` (best effort)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    cutoff = time.time() - keep_seconds
    for entry in entries:
        if not UPLOAD_ID.fullmatch(entry.name):
            continue
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue
    # Forget the in-process locks of uploads whose folders are gone.
    with _thread_locks_guard:
        for key in [k for k, lock in _thread_locks.items() if not lock.locked()]:
            if not os.path.exists(key):
                del _thread_locks[key]


# -- files served from folders ---------------------------------------------------------

_digests: dict[tuple[str, int, int], str] = {}
_digests_guard = threading.Lock()


def file_sha256(path: Path) -> str:
    """SHA-256 of a served file, cached by (path, size, mtime) so listings stay cheap."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _digests_guard:
        cached = _digests.get(key)
    if cached:
        return cached
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_SIZE):
            h.update(chunk)
    digest = h.hexdigest()
    with _digests_guard:
        if len(_digests) > 10_000:
            _digests.clear()
        _digests[key] = digest
    return digest


def _flock(fd: int, wait: float, *, poll: float) -> None:
    """Take an exclusive lock on ``fd`` across processes, waiting at most ``wait``
    seconds (Busy after that: the client retries later), where flock exists."""
    if fcntl is None:
        return
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise Busy() from None
            time.sleep(poll)
