"""docs/ADOPTING.md is run as written: every ``sh`` block, top to bottom, in a fresh
folder (a new project made by ``django-admin startproject``, not the example one),
with this interpreter's environment first on PATH (``pip``, ``django-admin``,
``python`` and ``bundle`` are its own).  Then its sample output is checked against
what the commands really printed, and the server's database against the story.

Make runs it on the oldest and the newest supported Django (tests/examples is
part of those passes).  SQLite only: the guide uses SQLite.
"""

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "ADOPTING.md"

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("BUNDLEKIT_TEST_DB", "sqlite") != "sqlite",
        reason="the guide uses SQLite; it runs in the SQLite pass",
    ),
]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", GUIDE.read_text(), re.S | re.M)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("adopter")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "BUNDLEKIT_", "VIRTUAL_ENV"))}
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        BUNDLEKIT_NO_PROGRESS="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INDEX="1",  # the guide's `pip install` finds this environment complete
    )
    script = "".join(blocks("sh"))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=home, env=env,
                          capture_output=True, text=True, timeout=600)
    return proc, home / "survey-project"


def test_the_guide_runs_as_written(run):
    proc, _ = run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_the_server_has_the_old_and_the_new_rows(run):
    proc, project = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(project / "central.sqlite3") as db:
        households = db.execute("SELECT code, village FROM households_household ORDER BY code")
        assert households.fetchall() == [("HH-001", "Kanye"), ("HH-002", "Molepolole")]
        members = db.execute("SELECT name FROM households_member ORDER BY name").fetchall()
        assert members == [("Mpho",), ("Naledi K.",)]
    with sqlite3.connect(project / "laptop.sqlite3") as db:
        # The receipt came back, so prune left nothing that the server holds.
        assert db.execute("SELECT COUNT(*) FROM django_adapter_outgoingtransaction").fetchone() == (0,)


def test_sample_output_is_what_the_commands_print(run):
    proc, _ = run
    (sample,) = [b for b in blocks("text") if b.startswith("$ ")]
    script = "".join(blocks("sh"))

    def generic(line: str) -> str:
        line = re.sub(r"-[0-9a-f]{8}\.(bundle|receipt)", r"-X.\1", line)
        line = re.sub(r"\d{8}t\d{6}z", "T", line)
        return re.sub(r"/\S*/survey-project/", ".../", line)

    real = {generic(line) for line in proc.stdout.splitlines()}
    for line in sample.splitlines():
        if line.startswith("$ "):
            assert line[2:] in script, line
        elif line:
            assert generic(line) in real, line
