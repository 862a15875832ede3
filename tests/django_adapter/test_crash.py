"""A server process killed (SIGKILL) in the middle of importing a bundle leaves
nothing half-applied, and importing the same file again applies everything once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connections

from bundlekit.keys import Identity, write_keypair
from django_adapter.exporter import export_pending
from django_adapter.importer import import_bundle
from django_adapter.models import ImportedBundle, IncomingTransaction, SenderState
from tests.test_app import models as m

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.django_db(databases=["default", "server"], transaction=True)
def test_killed_import_leaves_nothing_and_rerun_applies_once(tmp_path):
    site, server = Identity.generate("site-a"), Identity.generate("central")
    key_path, _ = write_keypair(server, tmp_path)
    for i in range(30):
        m.Household.objects.create(code=f"HH-{i:02d}")
    (bundle,) = export_pending(tmp_path / "outbox", identity=site, recipients=[server.public])
    path = tmp_path / "outbox" / bundle.file_name
    marker = tmp_path / "frozen"

    env = dict(os.environ)
    env["BUNDLEKIT_TEST_DB_NAMES"] = json.dumps(
        {alias: connections[alias].settings_dict["NAME"] for alias in ("default", "server")}
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.django_adapter.crash_child", str(path), key_path, str(marker), "15"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if child.poll() is not None:
                pytest.fail(f"child ended early: {child.stderr.read().decode()}")
            assert time.monotonic() < deadline, "child never reached the middle of the bundle"
            time.sleep(0.05)
        assert marker.read_text() == "15"  # 14 households were written in its transaction
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()

    assert m.Household.objects.using("server").count() == 0
    assert IncomingTransaction.objects.using("server").count() == 0
    assert ImportedBundle.objects.using("server").count() == 0

    report = import_bundle(path, identities=[server], using="server")
    assert (report.status, report.applied, report.failed) == ("applied", 30, 0)
    assert m.Household.objects.using("server").count() == 30
    assert IncomingTransaction.objects.using("server").filter(status="applied").count() == 30
    assert SenderState.objects.using("server").get().last_seq == 1
    assert import_bundle(path, identities=[server], using="server").status == "duplicate"
