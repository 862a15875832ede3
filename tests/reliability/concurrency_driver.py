"""Helper processes of test_concurrency.py (PostgreSQL).

    python -m tests.reliability.concurrency_driver WORK prepare SEED
    python -m tests.reliability.concurrency_driver WORK worker SEED      # one importer
    python -m tests.reliability.concurrency_driver WORK reference SEED   # one process, no races
    python -m tests.reliability.concurrency_driver WORK snapshot 0

WORK holds ``rel_settings.py``: ``default`` is a SQLite field laptop that
produces the bundles, ``server`` the PostgreSQL database named in
``BUNDLEKIT_REL_SERVER_DB``.  Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

WORK = Path(sys.argv[1])
sys.path.insert(0, str(WORK))
os.environ["DJANGO_SETTINGS_MODULE"] = "rel_settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bundlekit.errors import BundleError  # noqa: E402
from bundlekit.inbox import Inbox  # noqa: E402
from bundlekit.keys import Identity, load_identity, write_keypair  # noqa: E402
from django_adapter.exporter import export_pending  # noqa: E402
from django_adapter.importer import import_bundle  # noqa: E402
from django_adapter.models import ImportedBundle, IncomingTransaction, SenderState  # noqa: E402
from tests.test_app.models import Household  # noqa: E402

INBOX = WORK / "inbox"
STICK = WORK / "stick"
KEYS = WORK / "keys"
SITES = ("site-a", "site-b", "site-c")


def prepare(rng: random.Random) -> dict:
    for alias in ("default", "server"):
        call_command("migrate", database=alias, verbosity=0, interactive=False)
    KEYS.mkdir(exist_ok=True)
    central = Identity.generate("central")
    write_keypair(central, KEYS, "central")
    sites = {s: Identity.generate(s) for s in SITES}
    rows: dict[str, list] = {s: [] for s in SITES}
    files = []
    for rnd in range(5):
        for s, ident in sites.items():
            for i in range(12):
                rows[s].append(Household.objects.create(code=f"{s}-{rnd}-{i}", village="new"))
            for h in rng.sample(rows[s], 8):
                h.village = f"round {rnd}"
                h.save()
            if rnd >= 2:
                victim = rows[s].pop(rng.randrange(len(rows[s])))
                victim.delete()
            made = export_pending(STICK, identity=ident, recipients=[central.public], max_bytes=3000)
            files += [STICK / b.file_name for b in made]
    INBOX.mkdir()
    # Every bundle, some twice under another name (two sticks, a resend), in no order.
    for p in files:
        shutil.copyfile(p, INBOX / p.name)
    for p in rng.sample(files, len(files) // 3):
        shutil.copyfile(p, INBOX / ("again-" + p.name))
    expected = {h.code: h.village for h in Household.objects.using("default")}
    (WORK / "expected.json").write_text(json.dumps(expected))
    return {"bundles": len(files), "inbox_files": len(list(INBOX.iterdir()))}


def central() -> Identity:
    return load_identity(KEYS / "central.key")


def worker(rng: random.Random) -> dict:
    """Take files from the shared inbox until none is left, then replay every
    handled bundle again in a random order (racing the other workers)."""
    ident = central()
    statuses: list[str] = []
    errors: list[str] = []

    def handler(path):
        r = import_bundle(path, identities=[ident], using="server")
        statuses.append(str(r.status))
        return r.status

    inbox = Inbox(INBOX, handler, settle_seconds=0, watch=False, retry_seconds=0.05,
                  max_retry_seconds=0.2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for o in inbox.scan_once():
            if o.status != "done":
                errors.append(f"{o.name}: {o.status} {getattr(o, 'reason', '')}")
        left = [p for p in INBOX.iterdir() if p.is_file() and p.name.endswith(".bundle")]
        busy = list((INBOX / "processing").glob("*/*.bundle")) if (INBOX / "processing").exists() else []
        if not left and not busy:
            break
        time.sleep(0.02)
    else:
        errors.append("inbox not empty after 120 s")
    done = sorted((INBOX / "done").glob("*.bundle")) if (INBOX / "done").exists() else []
    for p in rng.sample(done, len(done)):
        try:
            statuses.append(str(import_bundle(p, identities=[ident], using="server").status))
        except BundleError as exc:
            errors.append(str(exc))
    return {"statuses": statuses, "errors": errors}


def reference(rng: random.Random) -> dict:
    ident = central()
    paths = sorted(INBOX.glob("*.bundle"))
    for p in rng.sample(paths, len(paths)):
        import_bundle(p, identities=[ident], using="server")
    return {}


def snapshot() -> dict:
    return {
        "households": sorted(Household.objects.using("server").values_list("code", "village")),
        "transactions": sorted(
            (str(t), s) for t, s in IncomingTransaction.objects.using("server").values_list("tx_id", "status")
        ),
        "bundles": sorted(
            ImportedBundle.objects.using("server").values_list(
                "bundle_id", "status", "seq", "applied_count", "stale_count", "conflict_count",
                "failed_count")
        ),
        "senders": sorted(SenderState.objects.using("server").values_list("fingerprint", "last_seq",
                                                                            "last_digest")),
        "expected": sorted(json.loads((WORK / "expected.json").read_text()).items()),
    }


def main() -> None:
    cmd, seed = sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    out = {"prepare": prepare, "worker": worker, "reference": reference}.get(cmd)
    result = out(rng) if out else snapshot()
    print(json.dumps(result, default=list))


if __name__ == "__main__":
    main()
