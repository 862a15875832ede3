"""`make demo` as a test: the field story runs end to end and the server ends up
with exactly the rows the two laptops entered.

The demo runs every hop through the real ``bundle`` CLI in subprocesses; here it
runs in a subprocess itself, in a temporary folder, and its ``--json`` summary is
checked.  It uses SQLite only, so it runs in the SQLite pass of ``make test``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("BUNDLEKIT_TEST_DB", "sqlite") != "sqlite",
        reason="the demo is SQLite only; it runs in the SQLite pass",
    ),
]

# What enter_field_data puts on each laptop (after its update and its delete); the
# middleman gets both over the sticks.  Then laptop-a enters one more requisition
# (--late-specimen) and pushes it to the server over HTTP.
SHIFT_A = {"participants": 3, "visits": 3, "requisitions": 5}
SHIFT_B = {"participants": 2, "visits": 2, "requisitions": 3}
BY_STICK = {k: SHIFT_A[k] + SHIFT_B[k] for k in SHIFT_A}
# ... and laptop-b one more specimen, entered after its disk was restored from backup.
LAPTOP_B = {**SHIFT_B, "requisitions": SHIFT_B["requisitions"] + 1}
LAPTOP_A = {**SHIFT_A, "requisitions": SHIFT_A["requisitions"] + 1}
BOTH = {k: LAPTOP_A[k] + LAPTOP_B[k] for k in LAPTOP_A}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo") / "home"
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, home


def test_demo_exits_0(demo):
    proc, _ = demo
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_every_check_passed(demo):
    proc, _ = demo
    summary = json.loads(proc.stdout)
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert summary["ok"] and not failed, failed


def test_server_holds_exactly_the_laptops_rows(demo):
    proc, _ = demo
    summary = json.loads(proc.stdout)
    counts = summary["counts"]
    assert counts["laptop-a"] == LAPTOP_A
    assert counts["laptop-b"] == LAPTOP_B
    assert counts["server"] == BOTH
    assert counts["middleman"] == BY_STICK
    assert summary["server_matches_laptops"] is True


def test_rest_hop(demo):
    """laptop-a's one more change went over HTTP: pushed, imported as seq 2, and the
    receipt pulled back acknowledged exactly that bundle."""
    proc, home = demo
    summary = json.loads(proc.stdout)
    assert summary["rest"] == {"seq": 2, "applied": 1, "acknowledged": 1, "transactions": 1}
    assert "bundle push http://127.0.0.1:" in proc.stderr
    assert "(server stopped)" in proc.stderr


def test_guarantees(demo):
    """The same stick again is all duplicates; a tampered copy is refused."""
    proc, _ = demo
    summary = json.loads(proc.stdout)
    assert summary["reimport"] == {"applied": 0, "duplicate": 14}
    assert summary["tampered_rejected"] is True


def test_story_is_told_without_tracebacks(demo):
    proc, _ = demo
    assert "Traceback" not in proc.stderr
    assert "== Summary" in proc.stderr


def test_the_server_ran_on_127_0_0_1_and_was_stopped(demo):
    proc, home = demo
    assert json.loads(proc.stdout)["server_stopped"] is True
    log = (home / "server" / "runserver.log").read_text()
    assert "Starting development server at http://127.0.0.1:" in log
    assert "Quit the server" in log


def test_demo_names_no_path_of_this_checkout(demo):
    """Commands are shown relative to the demo folder, as a user types them."""
    proc, _ = demo
    assert str(DEMO.parents[1]) not in proc.stderr
