"""Kill -9 the exporter or the importer at random points, rerun, check nothing is
lost or applied twice.  Run by tests/reliability/test_crash.py in a subprocess:

    python -m tests.reliability.crash_driver WORK {export|import} TRIALS SEED

WORK holds ``rel_settings.py`` (two SQLite files: ``default`` is the field
laptop, ``server`` the central server).  Each trial forks a worker process that
runs the real library code (``export_pending`` / ``import_bundle``) and SIGKILLs
it after a random delay drawn from [0, 1.1 x the time an uninterrupted run
takes]; then the same work is done again without interruption (as a person
would rerun the command) and the invariants are checked.  Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

WORK = Path(sys.argv[1])
sys.path.insert(0, str(WORK))
os.environ["DJANGO_SETTINGS_MODULE"] = "rel_settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from bundlekit.errors import BundleError  # noqa: E402
from bundlekit.inbox import is_candidate_name  # noqa: E402
from bundlekit.keys import Identity  # noqa: E402
from bundlekit.naming import is_bundle_name  # noqa: E402
from bundlekit.reader import open_bundle, verify  # noqa: E402
from django_adapter.exporter import export_pending  # noqa: E402
from django_adapter.importer import import_bundle  # noqa: E402
from django_adapter.models import (  # noqa: E402
    BundleStatus,
    ImportedBundle,
    IncomingTransaction,
    OutgoingTransaction,
)
from tests.test_app.models import Household  # noqa: E402

DB = WORK / "db"
TEMPLATE = WORK / "template"
OUTBOX = WORK / "outbox"
BUNDLES = WORK / "bundles"  # the import trials' stick (a complete export)
MAX_BYTES = 4096  # small, so an export rolls over into several bundles


def close_all() -> None:
    for conn in connections.all():
        conn.close()


def restore(*names: str) -> None:
    close_all()
    for name in names:
        for suffix in ("", "-journal", "-wal", "-shm"):
            target = DB / (name + suffix)
            if target.exists():
                target.unlink()
        shutil.copyfile(TEMPLATE / name, DB / name)


def site_data(rng: random.Random) -> None:
    """Inserts, updates and deletes, so double application or loss would show."""
    rows = [Household.objects.create(code=f"HH-{i:04d}", village="v0") for i in range(160)]
    for step in range(1, 4):
        for h in rng.sample(rows, 40):
            h.village = f"v{step}-{h.code}"
            h.save()
    for h in rng.sample(rows, 15):
        h.delete()


def setup(rng: random.Random) -> dict:
    DB.mkdir(exist_ok=True)
    TEMPLATE.mkdir(exist_ok=True)
    for alias in ("default", "server"):
        call_command("migrate", database=alias, verbosity=0, interactive=False)
    site, central = Identity.generate("site-a"), Identity.generate("central")
    site_data(rng)
    close_all()
    for name in ("site.sqlite3", "server.sqlite3"):
        shutil.copyfile(DB / name, TEMPLATE / name)
    # The import trials' stick: one complete export of the same data.
    export_pending(BUNDLES, identity=site, recipients=[central.public], max_bytes=MAX_BYTES)
    close_all()
    shutil.copyfile(DB / "site.sqlite3", TEMPLATE / "site-exported.sqlite3")
    expected = {h.code: h.village for h in Household.objects.using("default")}
    tx_count = OutgoingTransaction.objects.using("default").count()
    return {"site": site, "central": central, "expected": expected, "tx": tx_count}


def in_child(work) -> int:
    """Fork; the child runs ``work`` and exits without cleanup (as a killed process would)."""
    close_all()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()
        except BaseException:  # noqa: BLE001 - report by exit code only
            code = 1
        finally:
            os._exit(code)
    return pid


def run_killed(work, delay: float) -> tuple[bool, int]:
    """(killed while running, exit status) of ``work`` killed after ``delay`` seconds."""
    pid = in_child(work)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return False, status
        time.sleep(min(0.002, max(0.0, deadline - time.monotonic())))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return True, status


def timed(work) -> float:
    start = time.monotonic()
    pid = in_child(work)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "an uninterrupted run failed"
    return time.monotonic() - start


def stick_files(folder: Path) -> dict:
    """Every file is a complete, valid bundle or a temporary file no reader takes."""
    valid, incomplete, bad = [], [], []
    for p in sorted(folder.iterdir()) if folder.exists() else []:
        if is_bundle_name(p.name):
            try:
                verify(p)
                valid.append(p)
            except BundleError as exc:
                bad.append(f"{p.name}: {exc.reason}")
        elif not is_candidate_name(p.name) and p.name.startswith("."):
            incomplete.append(p.name)
        else:
            bad.append(f"{p.name}: unexpected file")
    return {"valid": valid, "incomplete": incomplete, "bad": bad}


def import_all(paths, central, rng) -> list[str]:
    statuses = []
    for p in rng.sample(paths, len(paths)):
        statuses.append(import_bundle(p, identities=[central], using="server").status)
    return statuses


def check_server(ctx: dict, bundle_paths, rng) -> dict:
    """Import everything on the stick (in a random order, twice) and count."""
    statuses = import_all(bundle_paths, ctx["central"], rng)
    statuses += import_all(bundle_paths, ctx["central"], rng)
    server = {h.code: h.village for h in Household.objects.using("server")}
    applied_ids = list(
        IncomingTransaction.objects.using("server").filter(status="applied").values_list("tx_id", flat=True)
    )
    applied_total = sum(ImportedBundle.objects.using("server").values_list("applied_count", flat=True))
    site_ids = set(OutgoingTransaction.objects.using("default").values_list("tx_id", flat=True))
    lost = len(site_ids - set(applied_ids))
    return {
        "lost": lost,
        "applied_twice": max(0, applied_total - len(set(applied_ids))),
        "data_equal": server == ctx["expected"],
        "forks": statuses.count(BundleStatus.FORK),
        "not_applied_bundles": ImportedBundle.objects.using("server").exclude(status="applied").count(),
    }


def bundle_tx_ids(paths, central) -> list:
    ids = []
    for p in paths:
        with open_bundle(p, identities=[central]) as b:
            ids.extend(r["id"] for r in b)
    return ids


def export_trial(ctx, rng, delay) -> dict:
    restore("site.sqlite3", "server.sqlite3")
    shutil.rmtree(OUTBOX, ignore_errors=True)

    def work():
        export_pending(OUTBOX, identity=ctx["site"], recipients=[ctx["central"].public],
                       max_bytes=MAX_BYTES)

    killed, _ = run_killed(work, delay)
    after_kill = stick_files(OUTBOX)
    committed = OutgoingTransaction.objects.using("default").filter(exported=True).exists()
    # Rerun, as a person would: the same command, to the end.
    export_pending(OUTBOX, identity=ctx["site"], recipients=[ctx["central"].public],
                   max_bytes=MAX_BYTES)
    final = stick_files(OUTBOX)
    pending = OutgoingTransaction.objects.using("default").filter(exported=False).count()
    ids = bundle_tx_ids(final["valid"], ctx["central"])
    result = check_server(ctx, final["valid"], rng)
    result.update(
        killed=killed,
        bundles_after_kill=len(after_kill["valid"]),
        partial_after_kill=len(after_kill["incomplete"]),
        committed_before_kill=committed,
        bad_files=after_kill["bad"] + final["bad"],
        left_pending=pending,
        exported_twice=len(ids) - len(set(ids)),
        bundles=len(final["valid"]),
    )
    return result


def import_trial(ctx, rng, delay) -> dict:
    restore("site-exported.sqlite3", "server.sqlite3")
    shutil.copyfile(DB / "site-exported.sqlite3", DB / "site.sqlite3")
    paths = sorted(BUNDLES.glob("*.bundle"))
    # Out of order and with duplicates, as sticks arrive.
    order = paths + rng.sample(paths, max(1, len(paths) // 2))
    rng.shuffle(order)

    def work():
        for p in order:
            import_bundle(p, identities=[ctx["central"]], using="server")

    killed, _ = run_killed(work, delay)
    committed = ImportedBundle.objects.using("server").count()
    result = check_server(ctx, paths, rng)
    result.update(killed=killed, bundles_committed_before_kill=committed, bad_files=[],
                  left_pending=0, exported_twice=0, bundles=len(paths))
    return result


def main() -> None:
    mode, trials, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    ctx = setup(rng)
    trial = export_trial if mode == "export" else import_trial
    # Calibrate: how long an uninterrupted run takes.
    if mode == "export":
        restore("site.sqlite3", "server.sqlite3")
        shutil.rmtree(OUTBOX, ignore_errors=True)
        duration = timed(lambda: export_pending(
            OUTBOX, identity=ctx["site"], recipients=[ctx["central"].public], max_bytes=MAX_BYTES))
    else:
        restore("server.sqlite3")
        paths = sorted(BUNDLES.glob("*.bundle"))
        duration = timed(lambda: [import_bundle(p, identities=[ctx["central"]], using="server")
                                  for p in paths])
    results = []
    attempts = 0
    # Count only kills that landed while the worker was running; give up after 3x.
    while sum(r["killed"] for r in results) < trials and attempts < 3 * trials:
        attempts += 1
        delay = rng.uniform(0.0, duration * 1.1)
        r = trial(ctx, rng, delay)
        r["delay"] = round(delay, 4)
        results.append(r)
    close_all()
    print(json.dumps({"mode": mode, "seed": seed, "duration": duration, "tx": ctx["tx"],
                      "results": results}))


if __name__ == "__main__":
    main()
