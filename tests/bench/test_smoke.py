"""A smoke run of ``make bench`` (bench/run.py) on a tiny data set.

The harness must run end to end and write a well-formed report (to a temporary
file, never docs/BENCHMARKS.md).  The ratios checked are far looser than the
targets and than what the harness measures, so a noisy machine passes; they are
there to catch a tenfold regression, not to measure anything.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out, raw = tmp / "BENCHMARKS.md", tmp / "results.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "run.py"),
        "--entry-n", "600", "--grouped-n", "1000", "--big-n", "0", "--reps", "1",
        "--no-postgres", "--no-mysql", "--only", "raw,capture,entry,grouped",
        "--capture-n", "500", "--raw-n", "2000", "--out", str(out), "--json", str(raw),
    ]
    env = dict(os.environ, BK_BENCH_TMP=str(tmp))
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out.read_text(), json.loads(raw.read_text()), tmp


@pytest.mark.slow
def test_report_is_well_formed(run):
    text, r, tmp = run
    assert text.startswith("# Benchmarks\n")
    for heading in ("## Targets", "## 1. Import of entry-order data", "## 2. Import of model-grouped",
                    "## 3. Export and bundle size", "## 4. Capture overhead", "## 6. Raw format",
                    "## How this was measured"):
        assert heading in text
    assert "| 4 | capture overhead (SQLite) |" in text
    assert "| 1 | import vs loaddata, entry order (SQLite, 600 tx) |" in text
    assert str(tmp) not in text  # no path of this machine
    # Whether other work shared the machine is measured, not assumed.
    share = r["cpu_share"]
    assert share is None or (share["busy_s"] > 0 and share["run_s"] > 0
                             and f"this run's own processes used {share['run_s']:.0f}" in text)


@pytest.mark.slow
def test_no_tenfold_regression(run):
    _, r, _ = run
    s = r["grouped"]["1000"]
    export, dumpdata = s["export"][0]["seconds"], s["dumpdata"][0]["seconds"]
    imported, loaddata = s["import_sqlite"][0]["seconds"], s["loaddata_sqlite"][0]["seconds"]
    assert export < dumpdata, (export, dumpdata)  # it is ~20x faster
    assert imported < 5 * loaddata, (imported, loaddata)  # whole processes: start-up dominates
    assert r["capture"]["sqlite"]["ratio"] < 10
    raw = r["raw"]
    for op in ("seal", "open"):
        assert min(raw[op]) < 10 * min(raw["limit_" + op]), op
    assert min(raw["seal_json"]) < 10 * min(raw["limit_seal_json"])


@pytest.mark.slow
def test_entry_order_data_is_captured_and_imported_whole(run):
    """The entry-order set: captured one step at a time (saves, corrections, M2M sets,
    deletes), exported, imported by `manage.py bundle import` into rows identical to
    the site's, and loaded by loaddata into the same objects."""
    _, r, _ = run
    s = r["entry"]["600"]
    gen = s["generate"]
    assert gen["captured"] == 600
    assert gen["save"] and gen["set"] and gen["update"] and gen["delete"]
    assert s["import_sqlite"][0]["applied"] == 600
    assert s["import_sqlite"][0]["digest_matches_site"]
    assert s["loaddata_sqlite"][0]["ms_digest_matches_site"]
    assert s["site_digest"]["counts"]["subjectrequisition"] > 0


@pytest.mark.slow
def test_what_an_import_cannot_skip_is_measured_on_the_rows_it_left(run):
    """The floor the import is judged against: its bundles read again, and exactly
    the rows it left (a ledger row per transaction, every clinic object and link)
    written again into an empty database, and reported beside the import."""
    text, r, _ = run
    s = r["entry"]["600"]
    floor = s["import_sqlite"][0]["floor"]
    assert floor["records"] == 600
    assert floor["rows"]["django_adapter_incomingtransaction"] == 600
    for model, count in s["site_digest"]["counts"].items():
        assert floor["rows"][f"clinic_{model}"] == count, model
    assert floor["rows"]["clinic_subjectrequisition_panels"] > 0
    assert 0 < floor["read_seconds"] and 0 < floor["write_seconds"]
    assert "What an import cannot skip" in text
    assert "| SQLite |" in text.split("What an import cannot skip", 1)[1]


@pytest.mark.slow
def test_batched_apply_decides_as_row_by_row(tmp_path):
    """The import's batched path (bench/equivalence.py: inserts, updates, stale ones,
    deletes, missing references, out-of-order bundles, duplicates, a conflict) ends
    in the same rows, reports and ledger as applying row by row."""
    outputs = []
    for mode in ([], ["--row-by-row"]):
        db = tmp_path / f"eq{len(outputs)}.sqlite3"
        env = dict(os.environ, BK_BENCH_DB=f"sqlite:{db}", DJANGO_SETTINGS_MODULE="bench.settings",
                   PYTHONPATH=str(ROOT))
        p = subprocess.run([sys.executable, "-m", "bench.equivalence", str(tmp_path / "b"), *mode],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        outputs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    batched, row_by_row = outputs
    statuses = {status for _, status, _ in batched["ledger"]}
    assert {"applied", "stale", "deleted-missing", "failed"} <= statuses
    assert batched["rows"] == row_by_row["rows"]
    assert batched["reports"] == row_by_row["reports"]
    assert batched["ledger"] == row_by_row["ledger"]
