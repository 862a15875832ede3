"""The server's watched inbox with the Django importer behind it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections
from django.test import override_settings

from bundlekit.inbox import REASON_TXT
from django_adapter.exporter import export_pending
from django_adapter.models import ImportedBundle, IncomingTransaction
from django_adapter.workflow import WatchedInbox, export_to
from tests.django_adapter.workflow_support import server_settings
from tests.test_app import models as m

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(server):
    """conftest's server Config, with its inbox folder made."""
    server.inbox.mkdir(parents=True)
    return server


def inbox_of(server, **kw):
    return WatchedInbox(config=server, settle_seconds=0, watch=False, **kw)


@pytest.mark.django_db(databases=["default", "server"])
def test_half_copied_file_waits_then_imports(site, server, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    for i in range(50):
        m.Household.objects.create(code=f"HH-{i}", village="x" * 90)
    (name,) = export_to(usb, config=site).copied
    data = (usb / name).read_bytes()
    arriving = server.inbox / name
    arriving.write_bytes(data[: len(data) // 2])
    inbox = inbox_of(server)
    assert inbox.scan_once() == [] and arriving.exists()
    assert ImportedBundle.objects.using("server").count() == 0
    with open(arriving, "ab") as f:  # the copy finishes
        f.write(data[len(data) // 2 :])
    (outcome,) = inbox.scan_once()
    assert outcome.status == "done" and outcome.result.applied == 50
    assert (server.inbox / "done" / name).exists() and not arriving.exists()
    (receipt,) = inbox.receipts_written
    assert receipt.parent == server.receipts_out


@pytest.mark.django_db(databases=["default", "server"])
def test_two_copies_by_two_routes_import_once_and_forks_are_set_aside(keys, site, server, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    m.Household.objects.create(code="HH-1")
    (name,) = export_to(usb, config=site).copied
    shutil.copy(usb / name, server.inbox / name)
    shutil.copy(usb / name, server.inbox / ("via-middleman-" + name))
    outcomes = inbox_of(server).scan_once()
    assert sorted(o.result.status for o in outcomes) == ["applied", "duplicate"]
    assert ImportedBundle.objects.using("server").count() == 1

    # A laptop restored from an old backup seals another seq 1: a fork.
    restored = tmp_path / "restored"
    m.Tag.objects.using("server").create(code="restored")  # the restored laptop's change
    export_pending(restored, identity=keys.ids["site-a"], recipients=[keys.ids["central"].public],
                   using="server")
    (forked,) = list(restored.iterdir())
    shutil.copy(forked, server.inbox / forked.name)
    inbox = inbox_of(server)
    (outcome,) = inbox.scan_once()
    assert (outcome.status, outcome.code) == ("rejected", "quarantined-fork")
    assert (server.inbox / "rejected" / (forked.name + REASON_TXT)).exists()
    assert len(inbox.receipts_written) == 1


def _export_many(keys, tmp_path):
    """9 bundles from two sites (3 exports x 2 rows for site-a, 3 for site-b)."""
    usb = tmp_path / "usb"
    for i in range(6):
        m.Household.objects.create(code=f"A-{i}")
        if i % 2:
            export_pending(usb, identity=keys.ids["site-a"], recipients=[keys.ids["central"].public])
    for i in range(3):
        with override_settings(BUNDLEKIT_SITE="site-b"):  # entered on site-b's laptop
            m.Tag.objects.create(code=f"B-{i}")
        export_pending(usb / "b", identity=keys.ids["site-b"], recipients=[keys.ids["central"].public])
    return sorted(usb.glob("*.bundle")) + sorted((usb / "b").glob("*.bundle"))


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("BUNDLEKIT_TEST_DB", "sqlite") not in ("postgres", "mysql"),
    reason="SQLite serializes every writer; run with BUNDLEKIT_TEST_DB=postgres or mysql",
)
@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_two_watchers_one_inbox_one_database(keys, server, tmp_path):
    files = _export_many(keys, tmp_path)
    assert len(files) == 6
    for f in files:  # every bundle arrives twice, by two routes
        shutil.copy(f, server.inbox / f.name)
        shutil.copy(f, server.inbox / ("copy-" + f.name))
    settings = tmp_path / "watch_settings.py"
    settings.write_text(
        "from tests.test_project.settings import *  # noqa\n"
        f"BUNDLEKIT = {server_settings(keys, tmp_path)!r}\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
               BUNDLEKIT_NO_PROGRESS="1")
    env["BUNDLEKIT_TEST_DB_NAMES"] = json.dumps(
        {alias: connections[alias].settings_dict["NAME"] for alias in ("default", "server")}
    )
    command = [sys.executable, "-m", "bundlekit", "watch", "--once", "--settle", "0",
               "--settings", "watch_settings"]
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    lines = [line for out, _ in results for line in out.splitlines() if ".bundle" in line]
    statuses = sorted(line.split()[0] for line in lines if not line.startswith("receipt"))
    # Each bundle is new exactly once (applied, or waiting if its predecessor was
    # still being imported by the other process), and a duplicate the other time.
    assert statuses.count("duplicate") == 6, lines
    assert len(statuses) == 12 and set(statuses) <= {"applied", "duplicate", "waiting-for-gap"}
    assert ImportedBundle.objects.using("server").exclude(status="applied").count() == 0
    assert ImportedBundle.objects.using("server").count() == 6
    assert IncomingTransaction.objects.using("server").count() == 9
    assert m.Household.objects.using("server").count() == 6
    assert m.Tag.objects.using("server").count() == 3
    assert len(list((server.inbox / "done").iterdir())) == 12
    assert not list(server.inbox.glob("*.bundle"))
