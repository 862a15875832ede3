"""The server's watched inbox folder.

Bundles arrive in a folder by every route a field office can think of: a copy
from a USB stick, rsync, a network share, a person dragging files in Explorer.
None of them tells us when a file is complete, several server processes may watch
the same folder, and the folder itself may vanish while a stick is unplugged or a
share reconnects.  This module turns that into a simple contract for the caller:
``handler(path)`` is called once per complete file, and the file ends up in
``done/`` or ``rejected/`` (with a reason beside it) -- or stays for a later retry.

Layout under the inbox folder ``DIR``::

    DIR/NAME.bundle                       arriving files
    DIR/processing/<claim>/NAME.bundle    claimed by one process (see ``_claim``)
    DIR/done/NAME.bundle                  handled
    DIR/rejected/NAME.bundle              refused, with NAME.bundle.reason.txt/.json

A file is taken only when all of these hold:

* its name ends in ``.bundle`` (any case: FAT32 sticks upper-case names) and is
  not hidden or temporary (``.x.partial``, rsync's ``.NAME.XXXXXX``, macOS ``._``
  files, ``~`` files);
* its size and mtime did not change for ``settle_seconds`` (a file seen for the
  first time counts as unchanged since its mtime, so a one-shot ``scan_once`` over
  an old folder takes everything at once);
* the cheap container check passes (``read_manifest``: the footer is present and
  the lengths agree).  A truncated file is retried until it has not grown for
  ``truncated_grace_seconds``, then rejected as truncated.

The folder operations other routes need (a bundle that arrived over HTTP or
through a browser upload) are :class:`InboxFolder`'s: :meth:`~InboxFolder.place`
a file into the inbox for a watcher, :meth:`~InboxFolder.hold` a handled file in
``done/``, :meth:`~InboxFolder.reject` one into ``rejected/`` with its reason
files, and :meth:`~InboxFolder.holds` to ask whether a name is already here.
Callers never build paths under the inbox themselves.

Django-free: the Django importer is just one ``handler``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bundlekit.errors import BundleError, TruncatedBundle

log = logging.getLogger(__name__)

BUNDLE_SUFFIX = ".bundle"
PROCESSING = "processing"
DONE = "done"
REJECTED = "rejected"
REASON_TXT = ".reason.txt"
REASON_JSON = ".reason.json"

#: Suffixes some copy tools put on a file while it is being written (after ``.bundle``
#: they never match anyway; listed for names like ``x.partial.bundle``).
_TEMP_MARKERS = (".partial", ".part", ".tmp", ".crdownload", ".download", ".filepart")

Status = Literal["done", "rejected", "retry"]
Handler = Callable[[Path], Any]
Check = Callable[[Path], Any]


@dataclass(frozen=True)
class Waiting:
    """A file a scan saw but left where it is, and why.

    ``why`` is ``"settling"`` (it changed less than ``settle_seconds`` ago),
    ``"incomplete"`` (the container check says it is half-copied; it gets
    ``truncated_grace_seconds`` to grow) or ``"retry"`` (its handler failed for a
    reason that may pass, such as a database that is down).  ``seconds`` is how long
    until the inbox looks at it again.
    """

    name: str
    why: Literal["settling", "incomplete", "retry"]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "why": self.why, "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class Outcome:
    """What happened to one inbox file in one scan.

    ``path`` is where the file is now (``done/``, ``rejected/`` or back in the
    inbox for ``retry``).  ``code`` is :attr:`BundleError.code` for rejections
    (``"handler-crashed"`` or ``"check-crashed"`` for a retry) so scripts never
    parse ``reason``.
    """

    name: str
    path: Path
    status: Status
    reason: str | None = None
    code: str | None = None
    result: Any = None


def is_candidate_name(name: str) -> bool:
    """Whether a directory entry may be a bundle someone finished copying.

    Hidden and temporary names are never candidates: copy tools write under such
    names and rename into place when done, so taking them would read a half file.
    """
    if not name.lower().endswith(BUNDLE_SUFFIX):
        return False
    if name.startswith((".", "~")) or name.endswith("~") or "~$" in name:
        return False
    stem = name[: -len(BUNDLE_SUFFIX)].lower()
    if any(marker in stem for marker in _TEMP_MARKERS):
        return False
    return len(stem) > 0


def _default_check(path: Path) -> Any:
    """The container check: footer present, lengths consistent (no decryption)."""
    try:
        from bundlekit.reader import read_manifest
    except ImportError:  # pragma: no cover - the reader ships with bundlekit
        return None
    return read_manifest(path)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    changed_at: float  # time.monotonic() when the size/mtime was last seen to change


@dataclass
class _Retry:
    attempts: int
    not_before: float  # time.monotonic()


_DEFAULT = object()


class InboxFolder:
    """The inbox folder's layout and the moves every route into it shares.

    Every move is atomic and never replaces a file: a name already taken gets a
    ``NAME.2.bundle`` sibling in ``done/`` and ``rejected/``.  Moves work across
    file systems (an upload folder on another disk): the bytes are copied to a
    hidden temporary name first, which a watcher never takes.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @property
    def processing_dir(self) -> Path:
        return self.path / PROCESSING

    @property
    def done_dir(self) -> Path:
        return self.path / DONE

    @property
    def rejected_dir(self) -> Path:
        return self.path / REJECTED

    def place(self, src: str | os.PathLike[str], name: str | None = None) -> Path:
        """Move ``src`` into the inbox (as ``name``) for a watcher to take.

        Raises :class:`FileExistsError` when a file of that name is already
        waiting there: it arrived by another route a moment ago.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        return _move_no_replace(Path(src), self.path / (name or Path(src).name))

    def hold(self, src: str | os.PathLike[str], name: str | None = None) -> Path:
        """Keep a handled file in ``done/``; return where it is now."""
        return self._finish(Path(src), self.done_dir, name or Path(src).name)

    def reject(
        self, src: str | os.PathLike[str], error: BundleError, name: str | None = None
    ) -> Path:
        """Put a refused file in ``rejected/`` with ``NAME.reason.txt`` (for a person)
        and ``NAME.reason.json`` (for scripts), each written atomically."""
        name = name or Path(src).name
        final = self._finish(Path(src), self.rejected_dir, name)
        try:
            _write_reason(final, name, error)
        except OSError:
            log.exception("cannot write the reason file for %s", final)
        return final

    def holds(self, name: str) -> bool:
        """Whether a file called ``name`` is waiting, being handled, or done here."""
        if (self.path / name).exists() or (self.done_dir / name).exists():
            return True
        try:
            claims = list(os.scandir(self.processing_dir))
        except OSError:
            return False
        return any((Path(c.path) / name).exists() for c in claims)

    def _finish(self, claimed: Path, dest_dir: Path, name: str) -> Path:
        dest_dir.mkdir(parents=True, exist_ok=True)
        for candidate in _unique_names(name):
            if (dest_dir / (candidate + REASON_TXT)).exists():
                continue
            try:
                final = _move_no_replace(claimed, dest_dir / candidate)
            except FileExistsError:
                continue
            if claimed.parent.parent == self.processing_dir:
                _rmdir_quietly(claimed.parent)
            return final
        raise AssertionError("unreachable")  # pragma: no cover


class Inbox(InboxFolder):
    """Take complete bundle files from a folder, once, and hand them to ``handler``.

    ``handler(path)`` gets the claimed file (under ``processing/``, original file
    name kept) and returns any result, reported in the :class:`Outcome`.  Raising
    a :class:`BundleError` rejects the file with that error as the reason; any
    other exception is logged and the file is put back and retried with
    exponential backoff (``retry_seconds`` doubling up to ``max_retry_seconds``):
    a database that is down must not cost a field office its data.

    ``fatal`` lists exception classes that mean "this server is set up wrong",
    not "this file is wrong" (the Django watcher passes its ``ConfigError``): the
    file is put back untouched and the exception ends :meth:`scan_once` and
    :meth:`run`, so the caller stops with one clear line instead of filing good
    bundles under ``rejected/``.

    ``check`` is run on each settled file before it is claimed; ``None`` disables
    it.  The default is :func:`bundlekit.reader.read_manifest`.

    After each :meth:`scan_once`, :attr:`waiting` lists the files it saw and left
    for later (still settling, half-copied, or due for a retry).

    One ``Inbox`` object is used from one thread; several processes (or hosts on a
    share) may watch the same folder, each with its own ``Inbox``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handler: Handler,
        *,
        settle_seconds: float = 5.0,
        poll_seconds: float = 10.0,
        truncated_grace_seconds: float = 600.0,
        claim_timeout_seconds: float = 6 * 3600.0,
        retry_seconds: float = 10.0,
        max_retry_seconds: float = 900.0,
        check: Check | None | object = _DEFAULT,
        watch: bool = True,
        fatal: tuple[type[BaseException], ...] = (),
    ):
        if settle_seconds < 0 or poll_seconds <= 0 or truncated_grace_seconds < 0:
            raise ValueError("settle/grace must be >= 0 and poll_seconds > 0")
        super().__init__(path)
        self.handler = handler
        self.settle_seconds = float(settle_seconds)
        self.poll_seconds = float(poll_seconds)
        self.truncated_grace_seconds = float(truncated_grace_seconds)
        self.claim_timeout_seconds = float(claim_timeout_seconds)
        self.retry_seconds = float(retry_seconds)
        self.max_retry_seconds = float(max_retry_seconds)
        self.check: Check | None = _default_check if check is _DEFAULT else check  # type: ignore[assignment]
        self.watch = watch
        self.fatal = tuple(fatal)
        self.waiting: list[Waiting] = []
        self._seen: dict[str, _Seen] = {}
        self._retry: dict[str, _Retry] = {}
        self._recovered = False
        self._missing_logged = False
        self._next_due: float | None = None
        self._host = _safe_host()

    # -- one pass ---------------------------------------------------------------

    def scan_once(self) -> list[Outcome]:
        """Look at the folder once and handle every file that is ready.

        Deterministic apart from the clock: files that are not settled yet are
        left alone and picked up by a later call.  Never raises for a folder
        that is missing or unreadable (a stick being re-plugged); it logs and
        returns nothing.
        """
        if not self._recovered:
            self.recover_stale_claims()
        now = time.monotonic()
        self._next_due = None
        self.waiting = []
        outcomes: list[Outcome] = []
        try:
            entries = self._list_candidates()
        except OSError as exc:
            if not self._missing_logged:
                log.warning("inbox %s is not available (%s); will keep trying", self.path, exc)
                self._missing_logged = True
            return outcomes
        if self._missing_logged:
            log.info("inbox %s is available again", self.path)
            self._missing_logged = False

        present = set()
        for name, st in entries:
            present.add(name)
            if not self._settled(name, st, now):
                ready_at = self._seen[name].changed_at + self.settle_seconds
                self.waiting.append(Waiting(name, "settling", ready_at - now))
                continue
            retry = self._retry.get(name)
            if retry is not None and now < retry.not_before:
                self._due(retry.not_before)
                self.waiting.append(Waiting(name, "retry", retry.not_before - now))
                continue
            outcome = self._take(name, now)
            if outcome is not None:
                outcomes.append(outcome)
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]
        for name in list(self._retry):
            if name not in present:
                del self._retry[name]
        return outcomes

    def _list_candidates(self) -> list[tuple[str, os.stat_result]]:
        found = []
        with os.scandir(self.path) as it:
            for entry in it:
                if not is_candidate_name(entry.name):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # vanished between listing and stat
                    continue
                found.append((entry.name, st))
        found.sort()
        return found

    def _settled(self, name: str, st: os.stat_result, now: float) -> bool:
        seen = self._seen.get(name)
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            if seen is None:
                # First sight: the file has been unchanged at least since its mtime
                # (a future mtime from a skewed share clock counts as "just now").
                age = max(0.0, time.time() - st.st_mtime)
            else:
                age = 0.0
            seen = _Seen(st.st_size, st.st_mtime_ns, now - age)
            self._seen[name] = seen
        ready_at = seen.changed_at + self.settle_seconds
        if now >= ready_at:
            return True
        self._due(ready_at)
        return False

    def _due(self, when: float) -> None:
        if self._next_due is None or when < self._next_due:
            self._next_due = when

    def _take(self, name: str, now: float) -> Outcome | None:
        source = self.path / name
        rejection: BundleError | None = None
        if self.check is not None:
            try:
                if self._seen[name].size == 0:
                    # Explorer and SMB clients create the file before the first write.
                    raise TruncatedBundle("is empty (0 bytes): the copy never started or failed")
                self.check(source)
            except TruncatedBundle as exc:
                seen = self._seen[name]
                give_up_at = seen.changed_at + self.truncated_grace_seconds
                if now < give_up_at:
                    log.debug("%s looks half-copied; waiting for the rest", source)
                    again = min(give_up_at, now + self.poll_seconds)
                    self._due(again)
                    self.waiting.append(Waiting(name, "incomplete", again - now))
                    return None
                rejection = exc
            except BundleError as exc:
                rejection = exc
            except FileNotFoundError:
                return None  # taken by another process or moved away
            except Exception:
                log.exception("checking %s failed; will retry", source)
                return self._note_retry(
                    name, now, source, "the container check crashed", code="check-crashed"
                )

        claimed = self._claim(name)
        if claimed is None:
            return None
        self._seen.pop(name, None)
        if rejection is not None:
            return self._reject(name, claimed, rejection)
        try:
            result = self.handler(claimed)
        except self.fatal:
            # The server is set up wrong, not the file: put it back and stop.
            self._unclaim(claimed, name)
            raise
        except BundleError as exc:
            return self._reject(name, claimed, exc)
        except Exception as exc:
            log.exception("handling %s failed; it will be retried", name)
            back = self._unclaim(claimed, name)
            reason = f"handler crashed: {exc!r}"[:500]
            return self._note_retry(name, now, back, reason, code="handler-crashed")
        except BaseException:
            self._unclaim(claimed, name)  # Ctrl-C mid-import: leave it for next time
            raise
        self._retry.pop(name, None)
        try:
            final = self.hold(claimed, name)
        except OSError:
            # Handled all the same; the claim is recovered (and deduplicated by
            # the caller's ledger) after a restart.
            log.exception("handled %s but cannot move it to %s", name, self.done_dir)
            final = claimed
        log.info("imported %s", name)
        return Outcome(name, final, "done", result=result)

    def _note_retry(self, name: str, now: float, path: Path, reason: str, *, code: str) -> Outcome:
        previous = self._retry.get(name)
        attempts = previous.attempts + 1 if previous else 1
        delay = min(self.max_retry_seconds, self.retry_seconds * 2 ** (attempts - 1))
        self._retry[name] = _Retry(attempts, now + delay)
        self._due(now + delay)
        return Outcome(name, path, "retry", reason=reason, code=code)

    # -- claiming ---------------------------------------------------------------

    def _claim_token(self) -> str:
        # claim time first (for stale detection), then who claimed it; the random
        # part makes it unique across processes and hosts sharing the folder.
        return f"{int(time.time() * 1000):013d}_{os.getpid()}_{secrets.token_hex(4)}_{self._host}"

    def _claim(self, name: str) -> Path | None:
        """Move the file into a fresh ``processing/<claim>/`` folder.

        ``os.rename`` of one source succeeds for exactly one process; the others
        get ``FileNotFoundError`` and move on.  A folder per claim (instead of a
        name prefix) keeps the file's own name for the handler's messages.
        """
        claim_dir = self.processing_dir / self._claim_token()
        try:
            claim_dir.mkdir(parents=True)
        except OSError as exc:
            log.warning("cannot create %s (%s); will retry", claim_dir, exc)
            return None
        target = claim_dir / name
        try:
            os.rename(self.path / name, target)
        except OSError as exc:
            _rmdir_quietly(claim_dir)
            if exc.errno not in (errno.ENOENT,):
                log.warning("cannot claim %s (%s); will retry", self.path / name, exc)
            return None
        return target

    def _unclaim(self, claimed: Path, name: str) -> Path:
        try:
            back = _move_no_replace(claimed, self.path / name)
        except FileExistsError:
            log.warning(
                "%s arrived again while the first copy was being handled; "
                "leaving the first copy in %s for stale-claim recovery",
                name,
                claimed.parent,
            )
            return claimed
        except OSError:
            log.exception("cannot return %s to the inbox", claimed)
            return claimed
        _rmdir_quietly(claimed.parent)
        return back

    def _reject(self, name: str, claimed: Path, error: BundleError) -> Outcome:
        try:
            final = self.reject(claimed, error, name)
        except OSError:
            log.exception("cannot move %s to %s", claimed, self.rejected_dir)
            final = claimed
        reason = f"{name}: {error.reason}"
        self._retry.pop(name, None)
        log.warning("rejected %s", reason)
        return Outcome(name, final, "rejected", reason=reason, code=error.code)

    def recover_stale_claims(self) -> list[Path]:
        """Return files left in ``processing/`` by a crashed process to the inbox.

        A claim is stale when it is older than ``claim_timeout_seconds``, or when it
        was made on this host by a process that no longer exists (so a restart by
        systemd after a crash picks the file up again at once).  Runs
        automatically before the first scan.
        """
        self._recovered = True
        returned: list[Path] = []
        try:
            claims = [p for p in self.processing_dir.iterdir() if p.is_dir()]
        except OSError:
            return returned
        for claim_dir in sorted(claims):
            if not self._is_stale(claim_dir):
                continue
            try:
                files = list(claim_dir.iterdir())
            except OSError:
                continue
            for file in files:
                try:
                    back = _move_no_replace(file, self.path / file.name)
                except FileExistsError:
                    log.warning("not recovering %s: %s is in the inbox again", file, file.name)
                    continue
                except OSError:
                    log.warning("cannot recover %s", file, exc_info=True)
                    continue
                log.warning("recovered %s from a stale claim", file.name)
                returned.append(back)
            _rmdir_quietly(claim_dir)
        return returned

    def _is_stale(self, claim_dir: Path) -> bool:
        parts = claim_dir.name.split("_", 3)
        try:
            claimed_at = int(parts[0]) / 1000.0
            pid = int(parts[1])
            host = parts[3]
        except (IndexError, ValueError):
            try:
                claimed_at, pid, host = claim_dir.stat().st_mtime, -1, ""
            except OSError:
                return False
        if time.time() - claimed_at >= self.claim_timeout_seconds:
            return True
        return host == self._host and pid != os.getpid() and not _pid_alive(pid)

    # -- the loop ---------------------------------------------------------------

    def run(
        self,
        stop_event: threading.Event | None = None,
        on_outcome: Callable[[Outcome], Any] | None = None,
    ) -> None:
        """Scan until ``stop_event`` is set: on file-system events and on a timer.

        Polling always runs (every ``poll_seconds``, or sooner when a file is
        due to settle or to be retried): events are only a hint that wakes the
        loop early.  Nothing a file or a handler does ends the loop; only one of
        the ``fatal`` errors (the server's set-up is wrong) does.
        """
        stop = stop_event or threading.Event()
        wake = threading.Event()
        watcher = None
        if self.watch:
            from bundlekit.watching import Wakeup

            watcher = Wakeup(self.path, wake)
        try:
            while not stop.is_set():
                if watcher is not None:
                    watcher.ensure()
                wake.clear()
                try:
                    outcomes = self.scan_once()
                except self.fatal:
                    raise
                except Exception:  # a bug or an odd file system; never end the loop
                    log.exception("scanning %s failed", self.path)
                    outcomes = []
                for outcome in outcomes:
                    if on_outcome is not None:
                        try:
                            on_outcome(outcome)
                        except Exception:
                            log.exception("on_outcome failed for %s", outcome.name)
                timeout = self.poll_seconds
                if self._next_due is not None:
                    timeout = max(0.0, min(timeout, self._next_due - time.monotonic()))
                timeout = max(timeout, 0.01)  # never spin
                self._wait(stop, wake, timeout)
        finally:
            if watcher is not None:
                watcher.stop()

    @staticmethod
    def _wait(stop: threading.Event, wake: threading.Event, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if wake.wait(min(left, 0.1)):
                # Events come in bursts while a file is written; a short pause
                # lets one scan see the burst instead of one scan per event.
                stop.wait(0.02)
                return


# -- helpers --------------------------------------------------------------------


def _safe_host() -> str:
    host = socket.gethostname() or "host"
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in host)[:64]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # e.g. not supported on this platform: assume alive, rely on age
        return True
    return True


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _unique_names(name: str) -> Iterator[str]:
    yield name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    n = 2
    while True:
        yield f"{stem}.{n}.{suffix}" if dot else f"{stem}.{n}"
        n += 1


def _move_no_replace(src: Path, dst: Path) -> Path:
    """Rename that never overwrites ``dst`` (plain ``os.rename`` does on POSIX).

    A hard link fails atomically if ``dst`` exists.  FAT32 and some network
    file systems cannot link; there we fall back to check-then-rename, whose
    window only matters if two processes finish the same name at once.  Across
    file systems the bytes are copied to a hidden temporary name beside ``dst``
    (fsynced), linked into place, and only then is ``src`` removed.
    """
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", os.fspath(dst)) from None
        if exc.errno == errno.EXDEV:
            return _copy_no_replace(src, dst)
        try:
            os.rename(src, dst)
        except OSError as again:
            if again.errno != errno.EXDEV:
                raise
            return _copy_no_replace(src, dst)
        _fsync_dir(dst.parent)
        return dst
    os.unlink(src)
    _fsync_dir(dst.parent)
    return dst


def _copy_no_replace(src: Path, dst: Path) -> Path:
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
            fout.flush()
            os.fsync(fout.fileno())
        try:
            os.link(tmp, dst)
        except FileExistsError:
            raise
        except OSError:
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "exists", os.fspath(dst)) from None
            os.rename(tmp, dst)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    _fsync_dir(dst.parent)
    os.unlink(src)
    return dst


def _write_reason(final: Path, name: str, error: BundleError) -> None:
    """Write ``NAME.reason.txt`` (for a person) and ``NAME.reason.json`` (for scripts)."""
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    text = (
        f"{name}: {error.reason}\n"
        f"\n"
        f"code: {error.code}\n"
        f"error: {type(error).__name__}\n"
        f"rejected at: {when}\n"
        f"rejected by: {_safe_host()} pid {os.getpid()}\n"
        f"detail: {detail}\n"
    )
    data = {
        "file": name,
        "code": error.code,
        "reason": error.reason,
        "error": type(error).__name__,
        "rejected_at": when,
        "host": _safe_host(),
    }
    _atomic_write(final.with_name(final.name + REASON_TXT), text.encode("utf-8"))
    _atomic_write(
        final.with_name(final.name + REASON_JSON),
        (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    )


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder.

    Private because the reason files are small and best effort; bundles and
    receipts use the shared helpers.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; nothing to do there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
