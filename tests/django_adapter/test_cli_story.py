"""The field story, as a user types it: ``bundle`` and ``python -m django bundle`` in
subprocesses, one SQLite file per machine.

keys -> data saved on the laptop -> export to a "usb" folder -> the middleman
verifies and forwards (no Django, no decryption key) -> central imports through
``watch --once`` -> receipt written -> carried back -> the laptop imports the stick
(its own bundles skipped, the receipt applied) -> prune -> status at each end.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]

SETTINGS = """\
from tests.test_project.settings import *  # noqa: F403

BASE_DIR = {base!r}
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
BUNDLEKIT = {bundlekit!r}
"""


class Machine:
    """Runs commands as one machine would: its own settings module and database."""

    def __init__(self, root: Path, name: str, bundlekit: dict | None):
        self.root, self.name = root, name
        self.env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        self.env.update(
            PYTHONPATH=os.pathsep.join([str(root), str(ROOT)]),
            BUNDLEKIT_NO_PROGRESS="1",
            BUNDLEKIT_TEST_DB="sqlite",
            COLUMNS="200",
        )
        self.env.pop("BUNDLEKIT_TEST_DB_NAMES", None)
        if bundlekit is not None:
            (root / f"{name}_settings.py").write_text(
                SETTINGS.format(base=str(root), db=str(root / f"{name}.sqlite3"), bundlekit=bundlekit)
            )

    @property
    def settings(self) -> list[str]:
        return ["--settings", f"{self.name}_settings"]

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=120,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def bundle(self, *args: str, code: int = 0, django: bool = True):
        return self.run("-m", "bundlekit", *args, *(self.settings if django else ()), code=code)

    def manage(self, command: str, *args: str, code: int = 0):
        # Django's own options go before a django-typer subcommand.
        return self.run("-m", "django", command, *self.settings, *args, code=code)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Keys and migrated databases, made once; each test gets copies."""
    root = tmp_path_factory.mktemp("template")
    world = _world(root)
    middleman = world[1]
    for name in ("site-a", "central", "stranger"):
        middleman.bundle("keygen", name, "--dir", "keys", django=False)
    world[0].manage("migrate", "-v", "0")
    world[2].manage("migrate", "-v", "0")
    return root


@pytest.fixture
def world(template, tmp_path):
    shutil.copytree(template / "keys", tmp_path / "keys")
    for db in ("laptop", "central"):
        shutil.copy(template / f"{db}.sqlite3", tmp_path / f"{db}.sqlite3")
    return (*_world(tmp_path), tmp_path)


def _world(tmp_path):
    laptop = Machine(tmp_path, "laptop", {
        "SITE": "site-a",
        "IDENTITY": "keys/site-a.key",
        "RECIPIENTS": ["keys/central.pub"],
        "TRUSTED": ["keys/central.pub"],
        "OUTBOX": "laptop/outbox",
    })
    central = Machine(tmp_path, "central", {
        "SITE": "central",
        "IDENTITY": "keys/central.key",
        "TRUSTED": ["keys/site-a.pub"],
        "INBOX": "central/inbox",
        "RECEIPTS_OUT": "central/receipts",
    })
    middleman = Machine(tmp_path, "middleman", None)
    return laptop, middleman, central


def test_field_story(world):
    laptop, middleman, central, root = world
    usb = root / "usb"
    usb.mkdir()

    out = laptop.bundle("export", "--out", "usb").stdout
    assert out.startswith("nothing to export") and list(usb.iterdir()) == []

    laptop.manage("shell", "-c", (
        "from tests.test_app.models import Household, Tag\n"
        "for i in range(5): Household.objects.create(code=f'HH-{i}')\n"
        "Tag.objects.create(code='hiv')\n"
    ))
    out = laptop.bundle("export", "--out", "usb").stdout
    assert "sealed   seq 1 (6 records)" in out and "copied" in out
    (bundle,) = usb.glob("*.bundle")

    # The middleman: no Django settings, no decryption key.
    assert "OK" in middleman.bundle("verify", "usb", "--trust", "keys/site-a.pub", django=False).stdout
    (root / "central" / "inbox").mkdir(parents=True)
    out = middleman.bundle("forward", "usb", "--out", "central/inbox", django=False).stdout
    assert out.startswith("forwarded") and "site site-a seq 1" in out
    assert (root / "central" / "inbox" / bundle.name).read_bytes() == bundle.read_bytes()

    out = central.bundle("watch", "--once", "--settle", "0").stdout
    assert f"applied  {bundle.name}: site site-a seq 1, 6 records: applied 6" in out
    (receipt,) = (root / "central" / "receipts").glob("*.receipt")
    assert f"receipt  {receipt}" in out
    assert (root / "central" / "inbox" / "done" / bundle.name).exists()

    shutil.copy(receipt, usb)  # carried back on the stick
    data = json.loads(laptop.bundle("status", "--json").stdout)
    assert (data["site"]["pending"], data["site"]["exported"]) == (0, 6)

    out = laptop.bundle("import", "usb").stdout
    assert f"own      usb/{bundle.name}" in out
    assert "from central, 1 bundle(s) acknowledged (6 transactions)" in out

    assert "pruned 6 confirmed transaction(s), 1 outbox file(s)" in laptop.bundle("prune").stdout

    # Status at each end, through manage.py this time.
    data = json.loads(laptop.manage("bundle", "status", "--json").stdout)
    site = data["site"]
    assert (site["pending"], site["exported"], site["acknowledged"], site["last_seq"]) == (0, 0, 0, 1)
    assert site["bundles_unacknowledged"] == [] and site["outbox_files"] == []
    out = central.manage("bundle", "status").stdout
    assert "sender site-a: applied through seq 1, open gaps: none, waiting bundles 0" in out
    assert "failed 0, conflict 0, stale 0, quarantined forks 0" in out


def test_same_stick_twice_and_a_stick_from_another_project(world):
    laptop, middleman, central, root = world
    laptop.manage("shell", "-c", "from tests.test_app.models import Tag; Tag.objects.create(code='x')")
    (root / "usb").mkdir()
    laptop.bundle("export", "--out", "usb")
    first = json.loads(central.bundle("import", "usb", "--json").stdout)
    again = json.loads(central.bundle("import", "usb", "--json").stdout)
    assert [f["status"] for f in first["files"]] == ["applied"]
    assert [(f["status"], f["duplicate"], f["applied"]) for f in again["files"]] == [("duplicate", 1, 0)]

    other = root / "other"
    other.mkdir()
    middleman.run("-c", (
        "import sys; from bundlekit.keys import load_identity, load_public_key;"
        "from bundlekit.writer import seal, ChainLink;"
        "seal([{'id': 1}], identity=load_identity('keys/stranger.key'),"
        " recipients=[load_public_key('keys/stranger.pub')], out_dir='other', after=ChainLink(0, None))"
    ))
    result = central.bundle("import", "other", code=1)
    (line,) = result.stdout.splitlines()
    assert line.startswith("REJECTED other/") and "not one of the trusted senders" in line
    status = json.loads(central.bundle("status", "--json").stdout)
    assert [s["bundles"] for s in status["senders"]] == [1]


def test_errors_are_one_line(world):
    laptop, middleman, central, root = world
    result = middleman.bundle("status", code=1, django=False)
    assert result.stderr.startswith("bundle: this command needs Django settings")
    result = laptop.bundle("export", "--out", "no-stick", code=1)
    assert result.stderr.strip().endswith("no such folder (is the stick mounted?)")
    assert len(result.stderr.strip().splitlines()) == 1
    result = laptop.manage("bundle", "export", "--out", "no-stick", code=1)
    assert "no such folder (is the stick mounted?)" in result.stderr
    (root / "broken_settings.py").write_text(
        "from laptop_settings import *  # noqa: F403\n"
        "BUNDLEKIT = {**BUNDLEKIT, 'IDENTITY': 'keys/missing.key'}\n"
    )
    result = middleman.run("-m", "bundlekit", "export", "--out", ".", "--settings",
                           "broken_settings", code=1)
    assert result.stderr.startswith("bundle: BUNDLEKIT['IDENTITY']: ") and "missing.key" in result.stderr
    result = laptop.bundle("receipt", "keys/central.pub", code=1)
    assert result.stdout.startswith("REJECTED keys/central.pub: is not a receipt")


def test_laptop_restored_from_backup_story(world):
    """docs/WORKFLOW.md "A laptop was restored from backup", as typed: the disk and
    the outbox are copied back, `bundle recover --from usb`, export, import."""
    laptop, middleman, central, root = world
    usb, back = root / "usb", root / "back"  # the stick there, the receipts back
    usb.mkdir()
    back.mkdir()

    def enter(code):
        laptop.manage("shell", "-c", f"from tests.test_app.models import Household as H; "
                                     f"H.objects.create(code={code!r})")

    def to_server_and_back():
        laptop.bundle("export", "--out", "usb")
        central.bundle("import", "usb")
        for r in (root / "central" / "receipts").glob("*.receipt"):
            shutil.copy(r, back)
        laptop.bundle("receipt", "back")

    enter("HH-1")
    to_server_and_back()
    shutil.copy(root / "laptop.sqlite3", root / "backup.sqlite3")
    shutil.copytree(root / "laptop" / "outbox", root / "backup-outbox")
    enter("HH-2")
    laptop.bundle("export", "--out", "usb")
    enter("HH-3")
    to_server_and_back()
    # The disk is restored from the backup; work goes on.
    shutil.copy(root / "backup.sqlite3", root / "laptop.sqlite3")
    shutil.rmtree(root / "laptop" / "outbox")
    shutil.copytree(root / "backup-outbox", root / "laptop" / "outbox")
    enter("HH-4")
    # Exported before recovering: the server quarantines this "seq 2" as a fork.
    laptop.bundle("export", "--out", "usb")
    central.bundle("import", "usb", code=1)
    for r in (root / "central" / "receipts").glob("*.receipt"):
        shutil.copy(r, back)

    out = laptop.bundle("recover", "--from", "back").stdout
    assert "the server holds this site's chain through seq 3" in out
    assert "undone   seq 2 (1 records)" in out
    assert "chain moved from seq 2 to seq 3; 1 change(s) pending" in out
    out = laptop.bundle("export", "--out", "usb").stdout
    assert "sealed   seq 4 (1 records)" in out
    data = json.loads(central.bundle("import", "usb", "--json").stdout)
    assert [(f["seq"], f["status"], f["applied"]) for f in data["files"] if f["seq"] == 4] == [
        (4, "applied", 1)
    ]
    out = central.manage("shell", "-c", "from tests.test_app.models import Household as H; "
                                        "print(sorted(H.objects.values_list('code', flat=True)))").stdout
    assert out.strip().splitlines()[-1] == "['HH-1', 'HH-2', 'HH-3', 'HH-4']"
    again = json.loads(laptop.bundle("recover", "--from", "back", "--json").stdout)
    assert again["changed"] is False and again["chain_after"] == 4
    # The data manager settles the quarantined fork at the server.
    items = json.loads(central.bundle("review", "--outcome", "quarantined", "--json").stdout)
    (fork,) = items["items"]
    out = central.bundle("resolve", fork["bundle_id"], "--discard", "--who", "dm",
                         "--note", "laptop restored from backup; recovered").stdout
    assert "quarantined -> set-aside" in out
    assert central.bundle("review", "--outcome", "quarantined").stdout.startswith(
        "nothing to review")




def test_an_outbox_file_off_the_chain_is_one_line_through_both_faces(world):
    """A bundle in the outbox that does not continue the site's chain (ChainError) is
    bad input a person must look at: one line and exit 1 from ``bundle`` and from
    ``manage.py bundle``, not an internal error (exit 3) or a traceback."""
    laptop, middleman, central, root = world
    laptop.manage("shell", "-c", "from tests.test_app.models import Tag; Tag.objects.create(code='x')")
    (root / "laptop" / "outbox").mkdir(parents=True)
    middleman.run("-c", (
        "from bundlekit.keys import load_identity, load_public_key;"
        "from bundlekit.writer import seal, ChainLink;"
        "seal([{'id': 1}], identity=load_identity('keys/site-a.key'),"
        " recipients=[load_public_key('keys/central.pub')], out_dir='laptop/outbox',"
        " after=ChainLink(6, bytes(32)))"
    ))
    (usb := root / "usb").mkdir()
    (only,) = laptop.bundle("export", "--out", "usb", code=1).stderr.strip().splitlines()
    # manage.py prints Django's system-check warnings first, if any; the error is last.
    last = laptop.manage("bundle", "export", "--out", "usb", code=1).stderr.strip().splitlines()[-1]
    for line in (only, last):
        assert "seq 7 in the outbox does not continue this site's chain" in line, line
        assert "internal error" not in line
    assert list(usb.iterdir()) == []


def test_settings_after_bundle_or_after_the_subcommand(world):
    """``manage.py bundle --settings X status`` and ``manage.py bundle status --settings
    X`` both work (Django itself only reads ``--settings`` after its subcommand)."""
    laptop, middleman, central, root = world
    env = {k: v for k, v in laptop.env.items() if k != "DJANGO_SETTINGS_MODULE"}
    for args in (["bundle", "--settings", "laptop_settings", "status", "--json"],
                 ["bundle", "status", "--json", "--settings", "laptop_settings"]):
        result = subprocess.run([sys.executable, "-m", "django", *args], cwd=root, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
        assert json.loads(result.stdout)["site"]["site"] == "site-a"


def test_an_unsyncable_model_stops_export_import_and_watch(world):
    """``bundle`` runs Django's system checks first, as ``manage.py`` does: a synced
    model without ``natural_key()`` is an error naming it, not "nothing to export"."""
    laptop, middleman, central, root = world
    (root / "badapp").mkdir()
    (root / "badapp" / "__init__.py").write_text("")
    (root / "badapp" / "models.py").write_text(
        "from django.db import models\n"
        "from django_adapter.models import SyncModelMixin\n\n\n"
        "class Visit(SyncModelMixin):\n"
        "    code = models.CharField(max_length=10)\n"
    )
    (root / "bad_settings.py").write_text(
        "from laptop_settings import *  # noqa: F403\n"
        "INSTALLED_APPS = [*INSTALLED_APPS, 'badapp']  # noqa: F405\n"
    )
    (root / "usb").mkdir()
    for args in (["export", "--out", "usb"], ["import", "usb"], ["watch", "usb", "--once"]):
        result = laptop.run("-m", "bundlekit", *args, "--settings", "bad_settings", code=1)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("bundle: badapp.Visit is synced but has no natural_key()")
        assert "(django_adapter.E001)" in line
        assert result.stdout == ""
    result = laptop.run("-m", "django", "bundle", "--settings", "bad_settings", "export",
                        "--out", "usb", code=1)
    assert "django_adapter.E001" in result.stderr
