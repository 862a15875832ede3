"""Full disk, read-only target, stick removed mid-write: one clear error
(``WriteFailed``), nothing marked exported that is not on the stick, no file that
looks like a complete bundle unless it is one, and a rerun onto a working medium
delivers everything exactly once.

A real small tmpfs is used where the test runs as root (mount works); the
injected failing file object (bundlekit.fsutil's opener seam) runs everywhere.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from bundlekit.errors import BundleError, WriteFailed
from bundlekit.keys import Identity
from bundlekit.naming import is_bundle_name
from bundlekit.reader import verify
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from django_adapter.models import ExportedBundle, IncomingTransaction, OutgoingTransaction
from tests.reliability.conftest import seed_for, trials
from tests.test_app import models as m

SITE = Identity.generate("site-a")
CENTRAL = Identity.generate("central")
MAX_BYTES = 4096


def make_rows(n=80):
    for i in range(n):
        # Random text: it does not compress, so the bundles have a real size.
        m.Household.objects.create(code=f"HH-{i:04d}", village=os.urandom(40).hex())


def export(folder):
    return export_pending(folder, identity=SITE, recipients=[CENTRAL.public], max_bytes=MAX_BYTES)


def check_nothing_false(folder):
    """Every OutgoingTransaction marked exported is in a valid bundle file in ``folder``,
    and every file with a bundle name is complete and valid. Returns the valid files."""
    valid = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if is_bundle_name(name):
            vb = verify(os.path.join(folder, name))  # raises if it is not complete
            valid[vb.manifest.bundle_id] = vb
    for eb in ExportedBundle.objects.all():
        assert os.path.exists(os.path.join(folder, eb.file_name)), eb.file_name
    marked = OutgoingTransaction.objects.filter(exported=True)
    assert all(t.exported_bundle_id is not None for t in marked)
    return valid


def deliver_all(folder):
    for name in sorted(os.listdir(folder)):
        if is_bundle_name(name):
            import_bundle(os.path.join(folder, name), identities=[CENTRAL], using="server")
    sent = set(OutgoingTransaction.objects.values_list("tx_id", flat=True))
    got = set(IncomingTransaction.objects.using("server").filter(status="applied")
              .values_list("tx_id", flat=True))
    return len(sent - got), IncomingTransaction.objects.using("server").count() - len(got)


class FailingFile:
    """A real file that fails with ``err`` once ``budget`` bytes were written to it
    (and keeps failing, as a removed stick does)."""

    def __init__(self, f, budget, err, state):
        self._f, self._budget, self._err, self._state = f, budget, err, state

    def write(self, data):
        if self._state["written"] + len(data) > self._budget:
            raise OSError(self._err, os.strerror(self._err))
        self._state["written"] += len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


def failing_opener(budget, err):
    from bundlekit import fsutil

    real = fsutil.exclusive_opener
    state = {"written": 0}

    def opener(path):
        return FailingFile(real(path), budget, err, state)

    return opener


@pytest.mark.django_db(databases=["default", "server"], transaction=True)
@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC, errno.EROFS], ids=["EIO", "ENOSPC", "EROFS"])
def test_injected_write_failure_at_every_point(tmp_path, monkeypatch, err, record):
    """The medium fails after a random number of bytes, across the whole export."""
    import random

    from bundlekit import fsutil

    make_rows()
    probe = tmp_path / "probe"
    export(probe)  # how many bytes a full export writes, then undo it
    total = sum(os.path.getsize(probe / n) for n in os.listdir(probe))
    OutgoingTransaction.objects.update(exported=False, exported_bundle=None)
    ExportedBundle.objects.all().delete()
    from django_adapter.models import ExportChainState

    ExportChainState.objects.all().delete()

    seed = seed_for("full-disk")
    rng = random.Random(seed)
    n = trials(8, 120)
    errors = set()
    lost = twice = 0
    for i in range(n):
        stick = tmp_path / f"stick-{i}"
        stick.mkdir()
        budget = rng.randrange(0, total)
        monkeypatch.setattr(fsutil, "exclusive_opener", failing_opener(budget, err))
        with pytest.raises(WriteFailed) as info:
            export(stick)
        errors.add(info.value.reason)
        assert str(info.value).count("\n") == 0
        monkeypatch.undo()
        check_nothing_false(stick)
        assert not OutgoingTransaction.objects.filter(exported=True).exists()
        assert not [p for p in os.listdir(stick) if p.endswith(".partial")]
        # A working medium again: the rerun adopts what is complete and seals the rest.
        export(stick)
        check_nothing_false(stick)
        assert not OutgoingTransaction.objects.filter(exported=False).exists()
        lo, tw = deliver_all(stick)
        lost += lo
        twice += tw
        # Next trial starts from a clean site and server.
        OutgoingTransaction.objects.update(exported=False, exported_bundle=None)
        ExportedBundle.objects.all().delete()
        ExportChainState.objects.all().delete()
        for model in (IncomingTransaction, m.Household):
            model.objects.using("server").all().delete()
        from django_adapter.models import ImportedBundle, SenderState

        ImportedBundle.objects.using("server").all().delete()
        SenderState.objects.using("server").all().delete()
    record(f"write-fail-{errno.errorcode[err]}", trials=n, seed=seed, lost=lost, applied_twice=twice,
           rejected=0, messages=sorted(errors))
    assert lost == 0 and twice == 0
    assert len(errors) == 1, errors  # one clear message per kind of failure
    (message,) = errors
    assert {"EIO": "removed", "ENOSPC": "full", "EROFS": "read-only"}[errno.errorcode[err]] in message


def _mount_tmpfs(path, size):
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else f"mount failed: {r.stderr.strip()}"


@pytest.fixture
def small_stick(tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()
    why = _mount_tmpfs(stick, "24k")
    if why:
        pytest.skip(f"real full-disk test needs a tmpfs ({why}); the injected test covers it")
    yield stick
    subprocess.run(["umount", str(stick)], check=False)


@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_a_really_full_stick_then_a_read_only_one(small_stick, record):
    make_rows(500)  # random text: well over the 24k stick in bundles of 4k
    with pytest.raises(WriteFailed, match="full") as info:
        export(small_stick)
    assert "\n" not in str(info.value)
    before = check_nothing_false(small_stick)
    assert not OutgoingTransaction.objects.filter(exported=True).exists()
    assert before, "some bundles should have fitted before the stick was full"
    # Read-only now (a locked SD card, a stick mounted read-only).
    subprocess.run(["mount", "-o", "remount,ro", str(small_stick)], check=True)
    with pytest.raises(WriteFailed, match="read-only"):
        export(small_stick)
    assert not OutgoingTransaction.objects.filter(exported=True).exists()
    # More room: the complete bundles already there are adopted, the rest sealed.
    subprocess.run(["mount", "-o", "remount,rw,size=4m", str(small_stick)], check=True)
    made = export(small_stick)
    assert {b.bundle_id for b in made} >= {str(k) for k in before}
    check_nothing_false(small_stick)
    assert not OutgoingTransaction.objects.filter(exported=False).exists()
    lost, twice = deliver_all(small_stick)
    record("full-disk-tmpfs", trials=1, lost=lost, applied_twice=twice, rejected=0,
           bundles_before_full=len(before))
    assert (lost, twice) == (0, 0)


def test_write_failed_is_a_bundle_error():
    assert issubclass(WriteFailed, BundleError)
