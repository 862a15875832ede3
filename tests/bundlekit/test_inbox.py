"""The watched inbox: complete files once, half-copied files later, bad files aside."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from bundlekit.errors import BundleError, NotABundle, TruncatedBundle
from bundlekit.inbox import Inbox, Outcome, is_candidate_name
from bundlekit.keys import Identity

MAGIC = b"TESTBUNDLE\n"
END = b"\nEND"
FAST = dict(settle_seconds=0.05, poll_seconds=0.05, retry_seconds=0.05, watch=False)


def fake_check(path: Path) -> None:
    """A stand-in for read_manifest: magic first, end marker last."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC[: len(data)]) or not data:
        raise NotABundle("not a bundle", path)
    if not data.endswith(END):
        raise TruncatedBundle("the file ends early", path)


def make(folder: Path, name: str, body: bytes = b"payload", *, complete: bool = True) -> Path:
    path = folder / name
    path.write_bytes(MAGIC + body + (END if complete else b""))
    return path


def age(path: Path, seconds: float = 3600) -> None:
    """Pretend the file was written long ago (as after a restart)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


class Recorder:
    def __init__(self, fail_times: int = 0, error: BaseException | None = None):
        self.calls: list[Path] = []
        self.fail_times = fail_times
        self.error = error

    def __call__(self, path: Path):
        self.calls.append(path)
        assert path.exists(), "the handler gets the claimed file"
        if self.error is not None:
            raise self.error
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("database is down")
        return {"imported": path.name}


def scan_until(inbox: Inbox, predicate, timeout: float = 5.0) -> list[Outcome]:
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes += inbox.scan_once()
        if predicate(outcomes):
            return outcomes
        time.sleep(0.02)
    raise AssertionError(f"condition not reached; outcomes so far: {outcomes}")


def test_complete_file_is_processed_once_and_moved_to_done(tmp_path):
    make(tmp_path, "site-a-00000001.bundle")
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, check=fake_check, **FAST)

    outcomes = scan_until(inbox, lambda o: o)
    assert [(o.name, o.status) for o in outcomes] == [("site-a-00000001.bundle", "done")]
    assert outcomes[0].result == {"imported": "site-a-00000001.bundle"}
    assert outcomes[0].path == tmp_path / "done" / "site-a-00000001.bundle"
    assert outcomes[0].path.read_bytes().startswith(MAGIC)
    assert handler.calls[0].name == "site-a-00000001.bundle"
    assert handler.calls[0].parent.parent == tmp_path / "processing"

    time.sleep(0.1)
    assert inbox.scan_once() == []
    assert len(handler.calls) == 1
    assert list((tmp_path / "processing").iterdir()) == []


def test_old_file_is_taken_on_the_first_scan(tmp_path):
    """A restart or a one-shot ``bundle import DIR`` must not wait for a second look."""
    age(make(tmp_path, "a.bundle"))
    inbox = Inbox(tmp_path, Recorder(), check=fake_check, settle_seconds=30, watch=False)
    assert [o.status for o in inbox.scan_once()] == ["done"]


def test_new_file_waits_for_the_settle_interval(tmp_path):
    make(tmp_path, "a.bundle")
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, check=fake_check, settle_seconds=0.3, watch=False)
    assert inbox.scan_once() == []
    assert handler.calls == []
    time.sleep(0.35)
    assert [o.status for o in inbox.scan_once()] == ["done"]


def test_growing_file_is_skipped_and_processed_when_complete(tmp_path):
    path = make(tmp_path, "a.bundle", b"x" * 100, complete=False)
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, check=fake_check, truncated_grace_seconds=30, **FAST)

    for _ in range(3):  # still growing: never settled
        with path.open("ab") as f:
            f.write(b"y" * 100)
        assert inbox.scan_once() == []
        time.sleep(0.01)
    # Stalled mid-copy (settled but truncated): within the grace period, so wait.
    time.sleep(0.1)
    assert inbox.scan_once() == []
    assert handler.calls == []
    assert path.exists()

    with path.open("ab") as f:
        f.write(END)
    outcomes = scan_until(inbox, lambda o: o)
    assert [o.status for o in outcomes] == ["done"]
    assert len(handler.calls) == 1


def test_truncated_file_is_rejected_after_the_grace_period(tmp_path):
    make(tmp_path, "a.bundle", complete=False)
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, check=fake_check, truncated_grace_seconds=0.2, **FAST)
    outcomes = scan_until(inbox, lambda o: o)
    assert [(o.status, o.code) for o in outcomes] == [("rejected", "truncated")]
    assert handler.calls == []
    assert (tmp_path / "rejected" / "a.bundle").exists()


def test_garbage_file_is_rejected_with_a_reason_file(tmp_path):
    (tmp_path / "holiday.bundle").write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, check=fake_check, **FAST)
    outcomes = scan_until(inbox, lambda o: o)

    assert [(o.status, o.code) for o in outcomes] == [("rejected", "not-a-bundle")]
    assert handler.calls == []
    rejected = tmp_path / "rejected"
    assert outcomes[0].path == rejected / "holiday.bundle"
    text = (rejected / "holiday.bundle.reason.txt").read_text()
    assert text.splitlines()[0] == "holiday.bundle: not a bundle"
    data = json.loads((rejected / "holiday.bundle.reason.json").read_text())
    assert data["code"] == "not-a-bundle" and data["file"] == "holiday.bundle"
    assert not (tmp_path / "holiday.bundle").exists()


def test_handler_bundle_error_rejects(tmp_path):
    make(tmp_path, "a.bundle")
    handler = Recorder(error=BundleError("signed by a key we do not trust"))
    inbox = Inbox(tmp_path, handler, check=fake_check, **FAST)
    outcomes = scan_until(inbox, lambda o: o)
    assert [(o.status, o.reason) for o in outcomes] == [
        ("rejected", "a.bundle: signed by a key we do not trust")
    ]
    assert (tmp_path / "rejected" / "a.bundle.reason.txt").exists()


def test_handler_crash_is_retried_with_backoff(tmp_path):
    make(tmp_path, "a.bundle")
    handler = Recorder(fail_times=2)
    inbox = Inbox(tmp_path, handler, check=fake_check, **FAST)

    outcomes = scan_until(inbox, lambda o: any(x.status == "done" for x in o))
    assert [o.status for o in outcomes] == ["retry", "retry", "done"]
    assert outcomes[0].path == tmp_path / "a.bundle"
    assert len(handler.calls) == 3
    assert (tmp_path / "done" / "a.bundle").exists()


def test_retry_waits_for_the_backoff(tmp_path):
    make(tmp_path, "a.bundle")
    handler = Recorder(fail_times=1)
    inbox = Inbox(
        tmp_path, handler, check=fake_check, settle_seconds=0, retry_seconds=60, watch=False
    )
    assert [o.status for o in inbox.scan_once()] == ["retry"]
    assert inbox.scan_once() == []
    assert len(handler.calls) == 1


def test_hidden_and_temporary_names_are_ignored(tmp_path):
    names = [
        ".a.bundle.partial",
        ".a.bundle.Xy12Ab",
        "._a.bundle",
        ".a.bundle",
        "~a.bundle",
        "a.bundle~",
        "a.bundle.part",
        "a.partial.bundle",
        "a.txt",
        ".bundle",
        "~$a.bundle",
    ]
    for name in names:
        make(tmp_path, name)
        age(tmp_path / name)
    (tmp_path / "dir.bundle").mkdir()
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, check=fake_check, settle_seconds=0, watch=False)
    assert inbox.scan_once() == []
    assert handler.calls == []
    assert all((tmp_path / n).exists() for n in names)


@pytest.mark.parametrize(
    "name,ok",
    [
        ("site-a-00000001.bundle", True),
        ("SITE-A.BUNDLE", True),
        (".x.bundle", False),
        ("x.bundle.tmp", False),
        ("x.tmp.bundle", False),
    ],
)
def test_candidate_names(name, ok):
    assert is_candidate_name(name) is ok


def test_stale_claim_from_a_dead_process_is_recovered(tmp_path):
    inbox = Inbox(tmp_path, Recorder(), check=fake_check, settle_seconds=0, watch=False)
    # A claim by a process that is gone (pid 2**22+ is beyond pid_max on Linux).
    dead = (
        tmp_path / "processing" / f"{int(time.time() * 1000):013d}_4194999_abcd1234_{inbox._host}"
    )
    dead.mkdir(parents=True)
    make(dead, "a.bundle")
    # An old claim by someone else, elsewhere.
    old = tmp_path / "processing" / "0000000000001_1_deadbeef_other-host"
    old.mkdir()
    make(old, "b.bundle")
    # A fresh claim by a live process on another host is left alone.
    live = tmp_path / "processing" / f"{int(time.time() * 1000):013d}_1_cafe0000_other-host"
    live.mkdir()
    make(live, "c.bundle")

    outcomes = inbox.scan_once()
    assert sorted((o.name, o.status) for o in outcomes) == [
        ("a.bundle", "done"),
        ("b.bundle", "done"),
    ]
    assert not dead.exists() and not old.exists()
    assert (live / "c.bundle").exists()


def test_name_clash_in_done_keeps_both(tmp_path):
    inbox = Inbox(tmp_path, Recorder(), check=fake_check, settle_seconds=0, watch=False)
    make(tmp_path, "a.bundle", b"first")
    assert [o.status for o in inbox.scan_once()] == ["done"]
    make(tmp_path, "a.bundle", b"second")
    outcomes = inbox.scan_once()
    assert outcomes[0].path == tmp_path / "done" / "a.2.bundle"
    assert (tmp_path / "done" / "a.bundle").read_bytes() == MAGIC + b"first" + END


def test_missing_folder_is_not_an_error(tmp_path):
    folder = tmp_path / "stick"
    inbox = Inbox(folder, Recorder(), check=fake_check, settle_seconds=0, watch=False)
    assert inbox.scan_once() == []
    assert not folder.exists(), "never create the inbox (it may be an empty mount point)"
    folder.mkdir()
    make(folder, "a.bundle")
    assert [o.status for o in inbox.scan_once()] == ["done"]


def test_default_check_rejects_garbage(tmp_path):
    pytest.importorskip("bundlekit.reader")
    (tmp_path / "x.bundle").write_bytes(b"not a bundle at all, just text" * 10)
    age(tmp_path / "x.bundle")
    handler = Recorder()
    inbox = Inbox(tmp_path, handler, settle_seconds=0, truncated_grace_seconds=0, watch=False)
    outcomes = inbox.scan_once()
    assert [o.status for o in outcomes] == ["rejected"]
    assert handler.calls == []


# -- two processes on one folder ------------------------------------------------------


def _append_handler(log_path: str):
    def handle(path: Path):
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (path.name + "\n").encode())
        finally:
            os.close(fd)
        time.sleep(0.001)  # give the other process a chance to race

    return handle


def _worker(folder: str, log_path: str, start, total: int) -> None:
    inbox = Inbox(
        folder, _append_handler(log_path), check=fake_check, settle_seconds=0, watch=False
    )
    start.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        inbox.scan_once()
        handled = (
            len(os.listdir(os.path.join(folder, "done")))
            if os.path.isdir(os.path.join(folder, "done"))
            else 0
        )
        if handled >= total:
            return
        time.sleep(0.005)


def test_two_processes_process_each_file_exactly_once(tmp_path):
    total = 50
    for i in range(total):
        make(tmp_path, f"site-a-{i:08d}.bundle")
    log_path = tmp_path.parent / f"{tmp_path.name}-handled.log"
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path), str(log_path), start, total))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    lines = log_path.read_text().splitlines()
    assert len(lines) == total
    assert sorted(lines) == [f"site-a-{i:08d}.bundle" for i in range(total)]
    assert len(os.listdir(tmp_path / "done")) == total
    assert not any(p.suffix == ".bundle" for p in tmp_path.iterdir())


# -- the loop --------------------------------------------------------------------------


def _run_in_thread(inbox: Inbox):
    stop = threading.Event()
    seen: list[Outcome] = []
    thread = threading.Thread(target=inbox.run, args=(stop, seen.append), daemon=True)
    thread.start()
    return stop, seen, thread


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_watchdog_events_trigger_processing(tmp_path):
    pytest.importorskip("watchdog")
    # Polling every minute: only an event can make this fast.
    inbox = Inbox(
        tmp_path, Recorder(), check=fake_check, settle_seconds=0, poll_seconds=60, watch=True
    )
    stop, seen, thread = _run_in_thread(inbox)
    try:
        time.sleep(0.2)  # let the observer arm
        tmp = tmp_path / ".a.bundle.tmp"
        make(tmp_path, tmp.name)
        os.rename(tmp, tmp_path / "a.bundle")  # how rsync finishes a file
        assert _wait_for(lambda: seen, 5), "no event reached the loop"
        assert seen[0].status == "done"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_polling_only_mode_processes_files(tmp_path):
    inbox = Inbox(
        tmp_path, Recorder(), check=fake_check, settle_seconds=0.05, poll_seconds=0.05, watch=False
    )
    stop, seen, thread = _run_in_thread(inbox)
    try:
        make(tmp_path, "a.bundle")
        make(tmp_path, "junk.bundle", complete=False)
        (tmp_path / "junk.bundle").write_bytes(b"junk")
        assert _wait_for(lambda: len(seen) == 2, 5)
        assert sorted((o.name, o.status) for o in seen) == [
            ("a.bundle", "done"),
            ("junk.bundle", "rejected"),
        ]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_loop_survives_a_vanishing_folder(tmp_path):
    folder = tmp_path / "mount"
    folder.mkdir()
    inbox = Inbox(
        folder, Recorder(), check=fake_check, settle_seconds=0, poll_seconds=0.05, watch=True
    )
    stop, seen, thread = _run_in_thread(inbox)
    try:
        time.sleep(0.1)
        folder.rmdir()
        time.sleep(0.2)
        assert thread.is_alive()
        folder.mkdir()
        make(folder, "a.bundle")
        assert _wait_for(lambda: seen, 5)
        assert seen[0].status == "done"
    finally:
        stop.set()
        thread.join(5)


def test_empty_file_waits_like_a_truncated_one(tmp_path):
    (tmp_path / "a.bundle").write_bytes(b"")
    inbox = Inbox(tmp_path, Recorder(), check=fake_check, truncated_grace_seconds=30, **FAST)
    time.sleep(0.1)
    assert inbox.scan_once() == []
    (tmp_path / "a.bundle").write_bytes(MAGIC + END)
    assert [o.status for o in scan_until(inbox, lambda o: o)] == ["done"]


def test_real_bundle_half_copied_then_completed(tmp_path):
    """The default check on a real sealed bundle: half a copy waits, the whole is taken."""
    from bundlekit.writer import ChainLink, seal

    site, server = Identity.generate("site-a"), Identity.generate("central")
    out = tmp_path / "stick"
    out.mkdir()
    (sealed,) = seal(
        [{"id": i, "model": "app.thing", "n": i} for i in range(50)],
        identity=site,
        recipients=[server.public],
        out_dir=out,
        after=ChainLink(seq=0, digest=None),
    )
    data = Path(sealed.path).read_bytes()
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    target = inbox_dir / Path(sealed.path).name
    target.write_bytes(data[: len(data) // 2])

    handler = Recorder()
    inbox = Inbox(inbox_dir, handler, settle_seconds=0, truncated_grace_seconds=30, watch=False)
    assert inbox.scan_once() == []
    assert handler.calls == []
    with target.open("ab") as f:
        f.write(data[len(data) // 2 :])
    outcomes = inbox.scan_once()
    assert [o.status for o in outcomes] == ["done"]
    assert outcomes[0].path.read_bytes() == data


# -- the folder operations other routes use (REST, an upload page) ----------------


def test_place_hold_and_reject_move_atomically_and_never_replace(tmp_path):
    from bundlekit.inbox import REASON_JSON, REASON_TXT, InboxFolder

    inbox = InboxFolder(tmp_path / "inbox")
    staging = tmp_path / "uploads"
    staging.mkdir()
    first = make(staging, "a.bundle")
    placed = inbox.place(first)
    assert placed == tmp_path / "inbox" / "a.bundle" and not first.exists()
    assert inbox.holds("a.bundle") and not inbox.holds("b.bundle")
    with pytest.raises(FileExistsError):  # the same name by another route: never replaced
        inbox.place(make(staging, "a.bundle", b"other"))
    assert placed.read_bytes() == MAGIC + b"payload" + END

    held = inbox.hold(staging / "a.bundle")
    assert held == tmp_path / "inbox" / "done" / "a.bundle"
    again = inbox.hold(make(staging, "a.bundle", b"third"))
    assert again.name == "a.2.bundle" and held.read_bytes() != again.read_bytes()

    rejected = inbox.reject(make(staging, "c.bundle"), NotABundle("is not a bundle (wrong magic)"))
    assert rejected == tmp_path / "inbox" / "rejected" / "c.bundle"
    assert "is not a bundle" in (rejected.parent / ("c.bundle" + REASON_TXT)).read_text()
    data = json.loads((rejected.parent / ("c.bundle" + REASON_JSON)).read_text())
    assert (data["file"], data["code"]) == ("c.bundle", "not-a-bundle")
    assert not [p for p in rejected.parent.iterdir() if p.name.startswith(".")], "no temp files left"


def test_moves_work_across_file_systems(tmp_path, monkeypatch):
    """An upload folder on another disk: link and rename fail with EXDEV; the file
    is copied under a hidden name, fsynced, and linked into place."""
    import errno as errno_

    from bundlekit.inbox import InboxFolder

    real_link, real_rename = os.link, os.rename

    def no_cross_link(src, dst, *a, **kw):
        if "staging" in str(src) and "inbox" in str(dst):
            raise OSError(errno_.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *a, **kw)

    def no_cross_rename(src, dst, *a, **kw):
        if "staging" in str(src) and "inbox" in str(dst):
            raise OSError(errno_.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "link", no_cross_link)
    monkeypatch.setattr(os, "rename", no_cross_rename)
    (tmp_path / "staging").mkdir()
    src = make(tmp_path / "staging", "x.bundle")
    inbox = InboxFolder(tmp_path / "inbox")
    assert inbox.hold(src).read_bytes() == MAGIC + b"payload" + END
    assert not src.exists()
    assert sorted(p.name for p in (tmp_path / "inbox" / "done").iterdir()) == ["x.bundle"]


class Misconfigured(Exception):
    """Stands for the Django watcher's ConfigError."""


def test_a_fatal_error_puts_the_file_back_and_ends_the_scan(tmp_path):
    make(tmp_path, "good.bundle")
    inbox = Inbox(tmp_path, Recorder(error=Misconfigured("REVOKED names a missing file")),
                  check=fake_check, fatal=(Misconfigured,), **FAST)
    time.sleep(0.06)
    with pytest.raises(Misconfigured):
        inbox.scan_once()
    assert (tmp_path / "good.bundle").exists()
    assert not (tmp_path / "rejected").exists()
    assert not any((tmp_path / "processing").iterdir())
    stop = threading.Event()
    with pytest.raises(Misconfigured):  # the loop ends too, instead of retrying forever
        inbox.run(stop)
    assert (tmp_path / "good.bundle").exists()


def test_a_scan_says_which_files_it_left_and_why(tmp_path):
    fresh = make(tmp_path, "fresh.bundle")
    half = make(tmp_path, "half.bundle", complete=False)
    age(half, 60)  # settled, but within the grace a half copy gets to grow
    inbox = Inbox(tmp_path, Recorder(), check=fake_check, settle_seconds=30, poll_seconds=1,
                  watch=False)
    assert inbox.scan_once() == []
    waiting = {w.name: w for w in inbox.waiting}
    assert waiting["fresh.bundle"].why == "settling" and 0 < waiting["fresh.bundle"].seconds <= 30
    assert waiting["half.bundle"].why == "incomplete"
    assert waiting["fresh.bundle"].to_dict()["name"] == "fresh.bundle"
    assert fresh.exists() and half.exists()
