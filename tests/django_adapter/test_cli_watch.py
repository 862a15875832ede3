"""``bundle watch`` and ``bundle import`` as an operator runs them: a wrong
configuration stops them with one line and moves nothing; ``--once`` says which
files it left for later."""

import json

import pytest

from tests.django_adapter import test_cli_story
from tests.django_adapter.test_cli_story import Machine

# The story's machines, keys and migrated databases (its fixtures, reused).
template = test_cli_story.template
world = test_cli_story.world

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def a_bundle_in_the_inbox(laptop, root):
    laptop.manage("shell", "-c", "from tests.test_app.models import Tag; Tag.objects.create(code='t')")
    (root / "usb").mkdir()
    laptop.bundle("export", "--out", "usb")
    (bundle,) = (root / "usb").glob("*.bundle")
    inbox = root / "central" / "inbox"
    inbox.mkdir(parents=True)
    target = inbox / bundle.name
    target.write_bytes(bundle.read_bytes())
    return target


def broken_central(root, **change) -> Machine:
    """central with one setting changed, as an operator's typo would."""
    (root / "broken_settings.py").write_text(
        "from central_settings import *  # noqa: F403\n"
        f"BUNDLEKIT = {{**BUNDLEKIT, **{change!r}}}\n"
    )
    machine = Machine(root, "broken", None)
    return machine


@pytest.mark.attack
@pytest.mark.parametrize("change", [
    {"REVOKED": ["keys/revoked-list-that-is-gone.txt"]},
    {"IDENTITY": "keys/central.pub"},  # a .pub where the secret key belongs
])
def test_a_configuration_error_stops_watch_and_import_and_moves_nothing(world, change):
    laptop, middleman, central, root = world
    bundle = a_bundle_in_the_inbox(laptop, root)
    broken = broken_central(root, **change)
    for args in (["watch", "--once", "--settle", "0"], ["watch", "--settle", "0"],
                 ["import", str(bundle)]):
        result = broken.bundle(*args, code=1)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("bundle: BUNDLEKIT['"), line
        assert ("REVOKED" in line) if "REVOKED" in change else ("IDENTITY" in line)
        assert result.stdout == ""
    # manage.py bundle: Django's system check (E102) already names the setting.
    result = broken.manage("bundle", "watch", "--once", "--settle", "0", code=1)
    assert "django_adapter.E102" in result.stderr and "BUNDLEKIT['" in result.stderr
    # The valid bundle is where it was: not in rejected/, not claimed.
    assert bundle.exists()
    assert not (bundle.parent / "rejected").exists()
    assert not any((bundle.parent / "processing").glob("*/*"))
    # Fixed: the same file is taken in.
    out = central.bundle("watch", "--once", "--settle", "0").stdout
    assert f"applied  {bundle.name}" in out


def test_watch_once_says_which_files_it_left_still_settling(world):
    laptop, middleman, central, root = world
    bundle = a_bundle_in_the_inbox(laptop, root)
    result = central.bundle("watch", "--once", "--settle", "600")
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"waiting  {bundle.name}: still being written or copied")
    assert "--settle 600 s" in line
    data = json.loads(central.bundle("watch", "--once", "--settle", "600", "--json").stdout)
    assert data["files"] == [] and data["ok"] is True
    (waiting,) = data["waiting"]
    assert (waiting["name"], waiting["why"]) == (bundle.name, "settling")
    assert 0 < waiting["seconds"] <= 600
    assert bundle.exists()
    data = json.loads(central.bundle("watch", "--once", "--settle", "0", "--json").stdout)
    (done,) = data["files"]
    assert (done["status"], done["report"]["status"], done["report"]["route"]) == (
        "done", "applied", "inbox")
    assert data["waiting"] == [] and len(data["receipts_written"]) == 1
    assert central.bundle("watch", "--once").stdout.startswith("nothing to import in ")


def test_a_running_watcher_logs_json_lines(world):
    """`bundle watch --json` (no --once): one JSON object per line as things happen."""
    import subprocess
    import sys
    import threading

    laptop, middleman, central, root = world
    (root / "central" / "inbox").mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bundlekit", "watch", "--json", "--settle", "0", "--poll", "0.2",
         *central.settings],
        cwd=root, env=central.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    guard = threading.Timer(90, proc.kill)  # never hang the suite on a silent watcher
    guard.start()
    try:
        laptop.manage("shell", "-c", "from tests.test_app.models import Tag; Tag.objects.create(code='j')")
        (root / "usb").mkdir()
        laptop.bundle("export", "--out", "usb")
        (bundle,) = (root / "usb").glob("*.bundle")
        (root / "central" / "inbox" / bundle.name).write_bytes(bundle.read_bytes())
        first = json.loads(proc.stdout.readline())
        assert (first["name"], first["status"], first["report"]["applied"]) == (bundle.name, "done", 1)
        receipt = json.loads(proc.stdout.readline())
        assert receipt["receipt"].endswith(".receipt")
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert "Traceback" not in stderr
