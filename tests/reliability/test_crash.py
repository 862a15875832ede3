"""Kill -9 the exporter and the importer at random points, rerun: zero transactions
lost, zero applied twice, every file on the stick a complete valid bundle or a
temporary file that no reader takes.  See crash_driver.py for one trial."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.reliability.conftest import ROOT, seed_for, trials
from tests.reliability.helpers import SETTINGS_HEAD

SETTINGS = SETTINGS_HEAD + """
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(HERE, "db", "site.sqlite3")},
    "server": {"ENGINE": "django.db.backends.sqlite3",
               "NAME": os.path.join(HERE, "db", "server.sqlite3")},
}
"""


def write_settings(work):
    work.mkdir(parents=True, exist_ok=True)
    (work / "rel_settings.py").write_text(textwrap.dedent(SETTINGS))


def run_driver(work, mode, n, seed):
    write_settings(work)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.crash_driver", str(work), mode, str(n), str(seed)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["export", "import"])
def test_kill_9_then_rerun_loses_nothing_and_applies_nothing_twice(tmp_path, mode, record):
    n = trials(20, 200)
    seed = seed_for(f"crash-{mode}")
    out = run_driver(tmp_path / "work", mode, n, seed)
    results = out["results"]
    killed = [r for r in results if r["killed"]]
    lost = sum(r["lost"] for r in results)
    twice = sum(r["applied_twice"] for r in results)
    bad = [f for r in results for f in r["bad_files"]]
    record(
        f"crash-{mode}",
        trials=len(killed),
        runs=len(results),
        seed=seed,
        transactions_per_trial=out["tx"],
        uninterrupted_seconds=round(out["duration"], 3),
        lost=lost,
        applied_twice=twice,
        exported_twice=sum(r["exported_twice"] for r in results),
        bad_files=len(bad),
        data_mismatches=sum(not r["data_equal"] for r in results),
        forks=sum(r["forks"] for r in results),
        partial_files_left_by_kills=sum(r.get("partial_after_kill", 0) for r in results),
        kills_after_some_bundles=sum(
            1 for r in killed
            if r.get("bundles_after_kill", r.get("bundles_committed_before_kill", 0)) > 0),
    )
    assert len(killed) >= n, f"only {len(killed)} of {len(results)} kills landed mid-run"
    assert lost == 0
    assert twice == 0
    assert not bad, bad[:5]
    for r in results:
        assert r["data_equal"] and r["forks"] == 0 and r["not_applied_bundles"] == 0, r
        assert r["left_pending"] == 0 and r["exported_twice"] == 0, r
