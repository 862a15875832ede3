"""Check that the batched apply path decides exactly as the row-by-row one.

    python -m bench.equivalence OUT_DIR     (BK_BENCH_DB names an empty database)

Seals a mixed stream (inserts, full updates, another producer's updates older
than what is applied, the same producer's with its clock set back,
deletes, deletes of missing objects, a reference that never resolves, visits
after their requisitions, a duplicate and a conflicting transaction) into a
chain of bundles, imports them out of order and one twice, and prints the
resulting rows, reports and ledger as JSON.  ``--row-by-row`` turns the batched
path off; both outputs must be identical (tests/bench/test_smoke.py compares them).
The bundles are sealed once into OUT_DIR and reused by the second run.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import sys
import uuid


def _stream(rng):
    from bench import data

    recs = list(data.records(1000, seed=9, prefix="E", producer="eq-site/host"))
    ts = max(r["ts"] for r in recs)
    extra = []
    for i, r in enumerate(rng.sample(recs, 200)):
        u = copy.deepcopy(r)
        u["id"], u["action"] = uuid.uuid4(), "U"
        ts += dt.timedelta(seconds=1)
        u["ts"] = ts
        if "comments" in u["fields"]:
            u["fields"]["comments"] = f"edited {i}"
        extra.append(u)
    for r in rng.sample(recs, 10):  # the same producer's clock set back: not stale
        u = copy.deepcopy(r)
        u["id"], u["action"], u["ts"] = uuid.uuid4(), "U", r["ts"] - dt.timedelta(days=2)
        if "comments" in u["fields"]:
            u["fields"]["comments"] = "clock set back"
        extra.append(u)
    others = []  # another site's change, older than what is applied: sealed by its own key
    for r in rng.sample(recs, 20):
        u = copy.deepcopy(r)
        u["id"], u["action"], u["ts"] = uuid.uuid4(), "U", r["ts"] - dt.timedelta(days=1)
        u["producer"] = "eq-other/host"
        if "comments" in u["fields"]:
            u["fields"]["comments"] = "stale"
        others.append(u)
    reqs = [r for r in recs if r["model"] == "benchapp.requisition"]
    for r in rng.sample(reqs, 40):
        d = copy.deepcopy(r)
        d["id"], d["action"], d["fields"], d["m2m"] = uuid.uuid4(), "D", {}, {}
        ts += dt.timedelta(seconds=1)
        d["ts"] = ts
        extra.append(d)
    for r in rng.sample(reqs, 5):  # delete of an object that is not there
        d = copy.deepcopy(r)
        d["id"], d["action"], d["pk"], d["fields"] = uuid.uuid4(), "D", uuid.uuid4(), {}
        d["natural_key"] = [f"missing-{d['pk']}"]
        ts += dt.timedelta(seconds=1)
        d["ts"] = ts
        extra.append(d)
    bad = copy.deepcopy(reqs[0])  # a reference that never resolves
    bad["id"], bad["pk"], bad["natural_key"] = uuid.uuid4(), uuid.uuid4(), ["BAD-1"]
    bad["fields"]["requisition_identifier"] = "BAD-1"
    bad["fields"]["visit"] = ["9999", ["NOBODY"]]
    extra.append(bad)
    stream = recs + extra
    for _ in range(30):  # some visits after their requisitions
        i = rng.randrange(len(recs))
        if stream[i]["model"] == "benchapp.visit":
            stream.insert(min(i + 2, len(stream) - 1), stream.pop(i))
    stream.insert(300, copy.deepcopy(stream[10]))  # the same transaction twice
    other = copy.deepcopy(stream[20])
    other["producer"] = "eq-site/elsewhere"
    stream.insert(400, other)  # same id, other content: a conflict
    return stream, others


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from django.core.management import call_command

    from bench.worker import task_digest
    from bundlekit import Identity, load_identity, read_manifest, write_keypair
    from bundlekit.writer import ChainLink, seal
    from django_adapter import apply
    from django_adapter.importer import import_bundle
    from django_adapter.models import IncomingTransaction

    out = argv[0]
    if "--row-by-row" in argv:
        apply.Applier._batchable = lambda self, row: (None, None)
    call_command("migrate", run_syncdb=True, verbosity=0)
    if not os.path.exists(os.path.join(out, "server.key")):
        os.makedirs(out, exist_ok=True)
        sender, server = Identity.generate("eq-site"), Identity.generate("eq-server")
        stream, others = _stream(random.Random(5))
        link = ChainLink(0, None)
        for k in range(0, len(stream), 300):
            (sb,) = seal(stream[k : k + 300], identity=sender, recipients=[server.public],
                         out_dir=out, after=link)
            link = sb.link
        os.makedirs(os.path.join(out, "other"), exist_ok=True)
        seal(others, identity=Identity.generate("eq-other"), recipients=[server.public],
             out_dir=os.path.join(out, "other"), after=ChainLink(0, None))
        write_keypair(server, out, "server")
    server = load_identity(os.path.join(out, "server.key"))
    paths = sorted((p for p in os.listdir(out) if p.endswith(".bundle")),
                   key=lambda p: read_manifest(os.path.join(out, p)).seq)
    order = [paths[2], paths[0], paths[3], paths[1], *paths[4:], paths[0]]
    order += [os.path.join("other", p) for p in os.listdir(os.path.join(out, "other"))]
    reports = []
    for name in order:
        r = import_bundle(os.path.join(out, name), identities=[server]).to_dict()
        r.pop("bundle_id")
        reports.append(r)
    ledger = sorted((str(a), b, c) for a, b, c in
                    IncomingTransaction.objects.values_list("tx_id", "status", "reason"))
    print(json.dumps({"rows": task_digest({}), "reports": reports, "ledger": ledger},
                     default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
