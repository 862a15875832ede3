"""Early wake-ups for the inbox loop from file-system events.

Events are only a hint: USB sticks, SMB/NFS shares and some container mounts
deliver none, so the inbox polls on a timer no matter what.  This module exists so
a copy onto a local disk is noticed within a fraction of a second instead of at
the next poll, and so ``watchdog`` (an optional dependency) stays out of the import
path of the core.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class Wakeup:
    """Sets ``event`` whenever something changes in ``path`` (non-recursive).

    :meth:`ensure` is cheap and is called on every poll: it (re)arms the observer
    when the folder appeared, was replaced (a remount gives it a new inode) or the
    observer thread died, and does nothing otherwise.
    """

    def __init__(self, path: str | os.PathLike[str], event: threading.Event):
        self.path = Path(path)
        self.event = event
        self._observer = None
        self._identity: tuple[int, int] | None = None
        self._unavailable = False

    @property
    def active(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def ensure(self) -> bool:
        """Arm or re-arm the observer if needed; return whether events are flowing."""
        if self._unavailable:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            self.stop()
            return False
        identity = (st.st_dev, st.st_ino)
        if self.active and identity == self._identity:
            return True
        self.stop()
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            log.info("watchdog is not installed; the inbox relies on polling only")
            self._unavailable = True
            return False

        event = self.event

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, _event) -> None:
                event.set()

        observer = Observer()
        try:
            observer.schedule(_Handler(), os.fspath(self.path), recursive=False)
            observer.daemon = True
            observer.start()
        except Exception as exc:  # inotify limits, a mount that refuses watches, ...
            log.warning("cannot watch %s for events (%s); polling only", self.path, exc)
            try:
                observer.stop()
            except Exception:  # pragma: no cover - best effort cleanup
                pass
            return False
        self._observer = observer
        self._identity = identity
        log.debug("watching %s for file-system events", self.path)
        return True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        self._identity = None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=2)
        except Exception:  # pragma: no cover - the folder may be gone already
            log.debug("stopping the observer of %s failed", self.path, exc_info=True)
