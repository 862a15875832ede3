"""One measurement per process: ``python -m bench.worker TASK '{"json": "args"}'``.

The database comes from ``BK_BENCH_DB`` (see bench/settings.py).  The last line
printed is a JSON object with what was measured: ``seconds`` (the operation
alone, after Django is set up), ``maxrss_mb`` (this process's peak resident
set, which is what a fresh process per measurement makes meaningful),
``setup_rss_mb`` (resident set once Django is set up, before the operation).
"""

from __future__ import annotations

import gc
import glob
import hashlib
import io
import json
import os
import resource
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()


# --------------------------------------------------------------------- tasks


def task_migrate(args):
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    return {}


def task_generate(args):
    """Fill a site database with ``n`` objects and one pending insert transaction
    each, as capture writes them (same ``to_record``, transaction ids and packing),
    in bulk: plain multi-row INSERTs with each value through its field's own
    conversion (this is setup, not a measurement; capture itself is measured by
    task_entry)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from bench import data
    from bench.benchapp.models import SYNCED
    from django_adapter import capture
    from django_adapter.codec import RECORD_FORMAT, packb
    from django_adapter.models import OutgoingTransaction
    from django_adapter.serialization import to_record
    from django_adapter.txid import new_tx_id

    n, chunk = args["n"], 200  # families per batch
    producer = capture.producer()
    gen = data.families(n // data.OBJECTS_PER_FAMILY, seed=args["seed"], prefix=args["prefix"],
                        models=SYNCED, visit_ids=True)
    done = 0
    while True:
        fams = [f for _, f in zip(range(chunk), gen, strict=False)]
        if not fams:
            break
        with transaction.atomic():
            _insert_rows(connection, SYNCED[0], [f[0] for f in fams])
            _insert_rows(connection, SYNCED[1], [v for f in fams for v in f[1]])
            _insert_rows(connection, SYNCED[2], [r for f in fams for r in f[2]])
            rows = []
            for fam in fams:
                for obj in data.in_capture_order(fam):
                    tx_id, ts = new_tx_id(), timezone.now()
                    record = to_record(obj, "I", tx_id=tx_id, ts=ts, producer=producer,
                                       using="default")
                    rows.append(OutgoingTransaction(
                        tx_id=tx_id, tx_name=record["model"], tx_pk=str(record["pk"]),
                        producer=producer, action="I", timestamp=ts, tx=packb(record),
                        format=RECORD_FORMAT, created=ts))
            _insert_rows(connection, OutgoingTransaction, rows, skip_pk=True)
        done += len(rows)
    return {"objects": done}


def _insert_rows(connection, model, objs, skip_pk=False) -> None:
    fields = [f for f in model._meta.concrete_fields if not (skip_pk and f.primary_key)]
    qn = connection.ops.quote_name
    sql = (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[f.get_db_prep_save(getattr(o, f.attname), connection)
                                  for f in fields] for o in objs])


def task_entry(args):
    """The entry-order workload (bench/entry.py): ``n`` steps, each one ``save()``,
    M2M ``set()`` or ``delete()``, ``batch`` steps per transaction, on the synced
    clinic models (captured) or their plain twins."""
    from bench.clinic.models import PLAIN, SYNCED
    from bench.entry import enter
    from django_adapter.models import OutgoingTransaction

    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    counts = enter(args["n"], models=SYNCED if args["synced"] else PLAIN, seed=args["seed"],
                   prefix=args["prefix"], batch=args.get("batch", 1000))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu,
            "captured": OutgoingTransaction.objects.count(), **counts}


def task_clinic_digest(args):
    """Counts and digests of the clinic rows (bench/clinic), independent of
    autoincrement ids: each object by its natural key, its columns, references to
    autoincrement-keyed objects by their natural keys, M2M sets as sorted natural
    keys.  ``ms_digest`` cuts datetimes to milliseconds (what JSON keeps)."""
    from bench.clinic.models import SYNCED
    from django_adapter.serialization import natural_key_of, travels_by_natural_key

    h, h_ms = hashlib.sha256(), hashlib.sha256()
    counts = {}
    for model in SYNCED:
        opts = model._meta
        fks = [f for f in opts.concrete_fields if f.is_relation]
        cols = [f for f in opts.concrete_fields
                if not (f.primary_key and travels_by_natural_key(f))]
        qs = model._default_manager.select_related(
            *[f.name for f in fks if travels_by_natural_key(f.target_field)])
        m2m = [f.name for f in opts.many_to_many]
        if m2m:
            qs = qs.prefetch_related(*m2m)
        rows = []
        for obj in qs.iterator(chunk_size=2000):
            values = []
            for f in cols:
                if f.is_relation and travels_by_natural_key(f.target_field):
                    target = getattr(obj, f.name)
                    values.append(None if target is None else natural_key_of(target))
                else:
                    values.append(getattr(obj, f.attname))
            for name in m2m:
                values.append(sorted(natural_key_of(t) for t in getattr(obj, name).all()))
            rows.append((repr(natural_key_of(obj)), tuple(values)))
        rows.sort()
        counts[opts.model_name] = _feed(h, h_ms, (r[1] for r in rows))
    return {"counts": counts, "digest": h.hexdigest(), "ms_digest": h_ms.hexdigest()}


def task_export(args):
    from bundlekit import load_identity, load_public_key
    from django_adapter.exporter import export_pending

    identity = load_identity(args["key"])
    recipients = [load_public_key(p) for p in args["recipients"]]
    gc.collect()
    t0 = time.perf_counter()
    made = export_pending(args["out"], identity=identity, recipients=recipients)
    seconds = time.perf_counter() - t0
    paths = sorted(glob.glob(os.path.join(args["out"], "*.bundle")))
    return {
        "seconds": seconds,
        "bundles": len(made),
        "records": sum(b.record_count for b in made),
        "bytes": sum(os.path.getsize(p) for p in paths),
    }


def task_dumpdata(args):
    from django.core.management import call_command

    gc.collect()
    t0 = time.perf_counter()
    call_command("dumpdata", *args["labels"], natural_foreign=True, output=args["out"],
                 verbosity=0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "bytes": os.path.getsize(args["out"])}


def _ordered_bundles(paths):
    from bundlekit import read_manifest

    keyed = []
    for p in paths:
        m = read_manifest(p)
        keyed.append((m.sender.fingerprint, m.seq, p))
    return [p for _, _, p in sorted(keyed)]


def task_import(args):
    from bundlekit import load_identity, load_public_key
    from django_adapter.importer import import_bundle

    identity = load_identity(args["key"])
    trusted = [load_public_key(p) for p in args["trusted"]] if args.get("trusted") else None
    paths = _ordered_bundles(args["paths"])
    gc.collect()
    t0 = time.perf_counter()
    totals = {"applied": 0, "failed": 0, "stale": 0, "conflict": 0, "duplicate": 0}
    for p in paths:
        report = import_bundle(p, identities=[identity], trusted=trusted)
        for k in totals:
            totals[k] += getattr(report, k)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "bundles": len(paths), **totals}


def task_floor(args):
    """What a ``bundle import`` cannot skip, measured apart from everything it
    decides: reading its bundles (verify, decrypt, decompress and unpack every
    record), and writing only the rows it left behind -- the ledger and the data
    set's tables, M2M links included -- into this empty migrated database in one
    transaction, in dependency order, by the fastest plain way each database has:
    COPY on PostgreSQL, the driver's ``executemany`` elsewhere (multi-row INSERTs
    with PyMySQL).

    The rows are read (untimed) from the imported database, ``source`` in
    bench/settings.py.  The bundles' own ledger rows (``ImportedBundle``, one per
    bundle file) are copied first, untimed: the ledger rows refer to them."""
    from django.apps import apps
    from django.db import connections, transaction

    from bundlekit import load_identity, open_bundle
    from django_adapter.models import ImportedBundle, IncomingTransaction

    identity = load_identity(args["key"])
    gc.collect()
    t0 = time.perf_counter()
    records = 0
    for path in _ordered_bundles(args["paths"]):
        with open_bundle(path, identities=[identity]) as bundle:
            for _ in bundle:
                records += 1
    read_seconds = time.perf_counter() - t0

    models = [IncomingTransaction] + [apps.get_model(label) for label in args["labels"]]
    tables = [m._meta.db_table for m in models]
    tables += [f.remote_field.through._meta.db_table for m in models
               for f in m._meta.local_many_to_many if f.remote_field.through._meta.auto_created]
    source, target = connections["source"], connections["default"]
    qn = target.ops.quote_name
    data = {}
    for table in tables:
        with source.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {qn(table)}")
            data[table] = ([d[0] for d in cursor.description], cursor.fetchall())
    for b in ImportedBundle.objects.using("source").order_by("pk"):
        b.save(using="default", force_insert=True)
    gc.collect()
    t0 = time.perf_counter()
    with transaction.atomic(using="default"), target.cursor() as cursor:
        for table in tables:
            columns, rows = data[table]
            names = ", ".join(map(qn, columns))
            if target.vendor == "postgresql":  # its fastest way in: COPY
                with cursor.cursor.copy(f"COPY {qn(table)} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                continue
            sql = f"INSERT INTO {qn(table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
            for i in range(0, len(rows), 10_000):
                cursor.executemany(sql, rows[i:i + 10_000])
    write_seconds = time.perf_counter() - t0
    written = {}  # counted where they were written, not where they were read
    with target.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {qn(table)}")
            written[table] = cursor.fetchone()[0]
    return {"records": records, "read_seconds": read_seconds, "write_seconds": write_seconds,
            "rows": written}


def task_import_many(args):
    """Scale-out: import these bundles once the ``go`` file appears; report wall-clock
    start and end so the parent can compute the throughput of all workers together."""
    from django.db import connection

    from bundlekit import load_identity
    from django_adapter.importer import import_bundle

    identity = load_identity(args["key"])
    paths = _ordered_bundles(args["paths"])
    connection.ensure_connection()
    print("ready", flush=True)
    while not os.path.exists(args["go"]):
        time.sleep(0.002)
    start = time.time()
    applied = failed = 0
    for p in paths:
        report = import_bundle(p, identities=[identity])
        applied += report.applied
        failed += report.failed
    return {"start": start, "end": time.time(), "applied": applied, "failed": failed}


def task_loaddata(args):
    from django.core.management import call_command

    gc.collect()
    t0 = time.perf_counter()
    call_command("loaddata", args["fixture"], verbosity=0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds}


def task_digest(args):
    """Counts and digests of the benchmark rows, independent of autoincrement ids,
    so the bundle import, loaddata and the site's own rows can be compared.
    ``ms_digest`` is the same with datetimes cut to milliseconds (what Django's
    JSON serializer keeps)."""
    from bench.benchapp.models import Participant, Requisition, Visit

    h, h_ms = hashlib.sha256(), hashlib.sha256()
    counts = {}
    p_fields = [f.attname for f in Participant._meta.concrete_fields]
    qs = Participant.objects.order_by("subject_identifier").values_list(*p_fields)
    counts["participant"] = _feed(h, h_ms, qs.iterator(chunk_size=5000))
    v_fields = [f.attname for f in Visit._meta.concrete_fields if f.attname != "id"]
    qs = (Visit.objects.order_by("participant__subject_identifier", "visit_code")
          .values_list(*v_fields))
    counts["visit"] = _feed(h, h_ms, qs.iterator(chunk_size=5000))
    r_fields = [f.attname for f in Requisition._meta.concrete_fields if f.attname != "visit_id"]
    qs = (Requisition.objects.order_by("requisition_identifier")
          .values_list(*r_fields, "visit__visit_code", "visit__participant__subject_identifier"))
    counts["requisition"] = _feed(h, h_ms, qs.iterator(chunk_size=5000))
    return {"counts": counts, "digest": h.hexdigest(), "ms_digest": h_ms.hexdigest()}


def _feed(h, h_ms, rows) -> int:
    import datetime as dt

    n = 0
    for row in rows:
        h.update(repr(row).encode())
        h_ms.update(repr(tuple(
            v.replace(microsecond=v.microsecond // 1000 * 1000) if isinstance(v, dt.datetime)
            else v for v in row)).encode())
        n += 1
    return n


# ------------------------------------------------------------- raw format


def _now() -> tuple[float, float]:
    """Wall time and CPU time (this process and its finished children) now."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + children.ru_utime + children.ru_stime


def _took(out: dict, key: str, t0: tuple[float, float], loops: int = 1) -> None:
    """Append the wall time since ``t0`` to ``out[key]`` and the CPU time to
    ``out["cpu_" + key]``: on a loaded machine the CPU time shows the work alone."""
    wall, cpu = _now()
    out.setdefault(key, []).append((wall - t0[0]) / loops)
    out.setdefault("cpu_" + key, []).append((cpu - t0[1]) / loops)


def task_raw(args):
    """Seal, open and verify against this machine's limit for the same work.

    Limits, on the same records: msgpack packing with the record codec's typed
    values, zstd at the same level, ChaCha20-Poly1305 over 64 KiB chunks, and
    nothing else (no container, age header, manifest, signature, hashing, bounds
    checks); SHA-256 of the file's bytes for verify.
    """
    import tempfile

    import msgpack
    import zstandard
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from bench import data
    from bundlekit import Identity, open_bundle, verify
    from bundlekit import records as rec
    from bundlekit.writer import ChainLink, seal

    n, reps = args["n"], args["reps"]
    recs = list(data.records(n, seed=7, prefix="RAW", producer="raw/bench"))
    sender, server = Identity.generate("raw-sender"), Identity.generate("raw-server")
    out = {"records": n, "seal": [], "open": [], "verify": [], "limit_seal": [],
           "limit_open": [], "limit_verify": []}
    chunk = 64 * 1024
    key = ChaCha20Poly1305.generate_key()

    def nonce(i, last):
        return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")

    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            d = os.path.join(tmp, str(rep))
            os.mkdir(d)
            gc.collect()
            t0 = _now()
            sealed = seal(recs, identity=sender, recipients=[server.public], out_dir=d,
                          after=ChainLink(0, None))
            _took(out, "seal", t0)
            (sb,) = sealed
            out["uncompressed_bytes"] = sb.manifest.uncompressed_size
            out["file_bytes"] = os.path.getsize(sb.path)

            gc.collect()
            t0 = _now()
            count = 0
            with open_bundle(sb.path, identities=[server]) as b:
                for _ in b:
                    count += 1
            _took(out, "open", t0)
            assert count == n

            # verify is fast: repeat it so the timing is not all noise
            loops = args.get("verify_loops", 5)
            t0 = _now()
            for _ in range(loops):
                verify(sb.path)
            _took(out, "verify", t0, loops)

            # --- limits
            gc.collect()
            t0 = _now()
            packer = rec.new_packer()
            plain = b"".join([packer.pack(r) for r in recs])
            comp = zstandard.ZstdCompressor(level=3).compress(plain)
            aead = ChaCha20Poly1305(key)
            mv = memoryview(comp)
            cipher = []
            last_i = (len(comp) - 1) // chunk
            for i in range(last_i + 1):
                cipher.append(aead.encrypt(nonce(i, i == last_i), mv[i * chunk : (i + 1) * chunk],
                                           None))
            _took(out, "limit_seal", t0)
            del plain, comp, mv

            gc.collect()
            t0 = _now()
            parts = [aead.decrypt(nonce(i, i == last_i), c, None) for i, c in enumerate(cipher)]
            plain = zstandard.ZstdDecompressor().decompress(b"".join(parts),
                                                            max_output_size=2**31)
            count = sum(1 for _ in msgpack.Unpacker(io.BytesIO(plain), ext_hook=rec.ext_hook,
                                                    raw=False, strict_map_key=False))
            _took(out, "limit_open", t0)
            assert count == n
            del parts, plain, cipher

            t0 = _now()
            for _ in range(loops):
                h = hashlib.sha256()
                with open(sb.path, "rb") as f:
                    while block := f.read(1024 * 1024):
                        h.update(block)
            _took(out, "limit_verify", t0, loops)

            _seal_json_lines(recs, sender, server, d, key, nonce, chunk, out)
    return out


def _seal_json_lines(recs, sender, server, d, key, nonce, chunk, out):
    """Sealing from JSON lines (what ``bundle seal`` reads on stdin), three ways:
    ``bundle seal`` as a user runs it (a whole process), the library's ``seal()``
    over the same parsing in this process, and the limit: parse the lines
    (``json.loads`` and the typed values, by the same fastest path the command takes,
    records.packable_from_jsonable), pack, compress, encrypt, nothing else."""
    import subprocess

    import zstandard
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from bundlekit import records as rec
    from bundlekit import write_keypair
    from bundlekit.cli import read_json_lines
    from bundlekit.writer import ChainLink, seal

    lines = os.path.join(d, "records.jsonl")
    with open(lines, "w") as f:
        for r in recs:
            f.write(json.dumps(rec.to_jsonable(r), separators=(",", ":")) + "\n")
    out["json_bytes"] = os.path.getsize(lines)
    keys = os.path.join(d, "keys")
    os.mkdir(keys)
    sender_key, _ = write_keypair(sender, keys)
    _, server_pub = write_keypair(server, keys)
    cli_out = os.path.join(d, "cli")
    os.mkdir(cli_out)
    with open(lines, "rb") as stdin:
        t0 = _now()
        subprocess.run([sys.executable, "-m", "bundlekit", "seal",
                        "-i", sender_key, "--to", server_pub,
                        "--out", cli_out, "--json"], stdin=stdin, check=True,
                       stdout=subprocess.DEVNULL)
        _took(out, "seal_cli", t0)
    lib_out = os.path.join(d, "lib")
    os.mkdir(lib_out)
    gc.collect()
    t0 = _now()
    with open(lines) as f:
        seal(read_json_lines(f), identity=sender, recipients=[server.public], out_dir=lib_out,
             after=ChainLink(0, None))
    _took(out, "seal_json", t0)

    gc.collect()
    t0 = _now()
    packer = rec.new_packer()
    parts = []
    with open(lines) as f:
        for line in f:
            parts.append(packer.pack(rec.packable_from_jsonable(json.loads(line))))
    comp = zstandard.ZstdCompressor(level=3).compress(b"".join(parts))
    aead = ChaCha20Poly1305(key)
    mv = memoryview(comp)
    last_i = (len(comp) - 1) // chunk
    for i in range(last_i + 1):
        aead.encrypt(nonce(i, i == last_i), mv[i * chunk : (i + 1) * chunk], None)
    _took(out, "limit_seal_json", t0)


#: The record envelope: what a record says besides the object's own fields.
ENVELOPE = ("id", "ts", "producer", "natural_key", "action", "m2m")
#: What a record holds that dumpdata's JSON has not (it has model, pk, fields, M2M).
NOT_IN_DUMPDATA = ("id", "ts", "producer", "natural_key", "action")


def task_size_breakdown(args):
    """What the bytes of a bundle are: its records compressed again here (zstd,
    streaming, in the writer's 128 KiB batches), whole at three levels, without
    parts of the envelope, and only the last record of each object (what dumpdata
    holds: its final fields, no deleted object), with the CPU time each
    compression took.  Nothing here changes what a bundle holds; it says where
    its bytes come from and what each lever would buy and cost."""
    from bundlekit import load_identity, open_bundle
    from bundlekit import records as rec

    identity = load_identity(args["key"])
    # name: (records: "all" or "last", keys left out, zstd level)
    variants = {
        "records, zstd -3 (as sealed)": ("all", (), 3),
        "records, zstd -7": ("all", (), 7),
        "records, zstd -19": ("all", (), 19),
        "without the transaction id": ("all", ("id",), 3),
        "without id, ts, producer, natural_key, action, m2m": ("all", ENVELOPE, 3),
        "recoded (ids, times as deltas; fields by position; producer once), zstd -3": (
            "all", "recoded", 3),
        "recoded, zstd -7": ("all", "recoded", 7),
        "each object's last record only": ("last", (), 3),
        "each object's last record: model, pk, fields, m2m (what dumpdata holds)": (
            "last", NOT_IN_DUMPDATA, 3),
    }
    packer = rec.new_packer()
    sinks = {name: _Sink(level) for name, (_, _, level) in variants.items()}
    drops = {d for _, d, _ in variants.values() if d and d != "recoded"}
    recode = _Recoder()
    kept = {d for which, d, _ in variants.values() if which == "last"}
    packed = 0
    last: dict = {}  # (model, pk) -> (model, {keys left out: packed record})
    for path in _ordered_bundles(args["paths"]):
        with open_bundle(path, identities=[identity]) as b:
            for record, data in b.packed():
                packed += len(data)
                versions = {(): data}
                for drop in drops:
                    versions[drop] = packer.pack(
                        {k: v for k, v in record.items() if k not in drop})
                versions["recoded"] = packer.pack(recode(record))
                for name, (which, drop, _) in variants.items():
                    if which == "all":
                        sinks[name].add(versions[drop])
                if "$blob" in record:
                    continue  # a chunk of a file: no object of its own
                obj = (record.get("model"), repr(record.get("pk")))
                if record.get("action") == "D":
                    last.pop(obj, None)
                else:
                    last[obj] = (str(record.get("model")), {d: versions[d] for d in kept})
    # dumpdata writes objects model by model: so do these, each model in the order
    # its objects first appeared.
    for _, versions in sorted(last.values(), key=lambda mv: mv[0]):
        for name, (which, drop, _) in variants.items():
            if which == "last":
                sinks[name].add(versions[drop])
    out = {"records": args["n"], "packed": packed, "objects": len(last), "variants": {},
           "cpu_seconds": {}}
    for name, sink in sinks.items():
        out["variants"][name], out["cpu_seconds"][name] = sink.close()
    return out


class _Recoder:
    """A record as a denser format could carry it, to measure what that would save:
    an array instead of a map; the transaction id and the capture time as the
    difference from the previous record's (UUIDv7 ids and capture times grow); the
    fields' values by position (their names would come once, from a schema); the
    producer only when it changes.  Not a format: nothing reads it back."""

    def __init__(self) -> None:
        import datetime as dt

        self.epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        self.id_hi = self.id_lo = self.ts = 0
        self.producer = None

    def __call__(self, record: dict) -> list:
        import datetime as dt
        import uuid

        out = [record.get("model"), record.get("action"), record.get("pk"),
               record.get("natural_key")]
        tx = record.get("id")
        if isinstance(tx, uuid.UUID):
            hi, lo = tx.int >> 64, tx.int & (2**64 - 1)
            out += [hi - self.id_hi, None if lo == self.id_lo else lo]
            self.id_hi, self.id_lo = hi, lo
        else:
            out += [tx, None]
        ts = record.get("ts")
        if isinstance(ts, dt.datetime) and ts.tzinfo is not None:
            us = (ts - self.epoch) // dt.timedelta(microseconds=1)
            out.append(us - self.ts)
            self.ts = us
        else:
            out.append(ts)
        producer = record.get("producer")
        out.append(None if producer == self.producer else producer)
        self.producer = producer
        fields = record.get("fields")
        out.append(list(fields.values()) if isinstance(fields, dict) else fields)
        out.append(record.get("m2m"))
        out.extend(v for k, v in record.items() if k not in _RECODED)
        return out


_RECODED = frozenset(("model", "action", "pk", "natural_key", "id", "ts", "producer", "fields",
                      "m2m"))


class _Sink:
    """A zstd stream fed as the writer feeds it, counting its output and its CPU time."""

    def __init__(self, level: int):
        import zstandard

        self.count = _Count()
        self.writer = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(
            self.count, closefd=False)
        self.batch = bytearray()
        self.cpu = 0.0

    def add(self, data: bytes) -> None:
        self.batch += data
        if len(self.batch) >= 128 * 1024:
            self._write()

    def _write(self) -> None:
        t = time.process_time()
        self.writer.write(self.batch)
        self.cpu += time.process_time() - t
        self.batch.clear()

    def close(self) -> tuple[int, float]:
        self._write()
        t = time.process_time()
        self.writer.close()
        self.cpu += time.process_time() - t
        return self.count.n, round(self.cpu, 3)


class _Count(io.RawIOBase):
    def __init__(self):
        super().__init__()
        self.n = 0

    def writable(self):
        return True

    def write(self, b):
        self.n += len(b)
        return len(b)


# ------------------------------------------------------------- scale-out


def task_scale_bundles(args):
    """Seal ``bundles`` bundles of ``per_bundle`` records for each of ``senders``
    senders (one chain each) into ``out``; keys go to ``keys``."""
    from bench import data
    from bundlekit import Identity, load_public_key, write_keypair
    from bundlekit.writer import ChainLink, seal

    server = load_public_key(args["recipient"])
    total = 0
    for s in range(args["senders"]):
        ident = Identity.generate(f"scale-{s}")
        write_keypair(ident, args["keys"])
        recs = data.records(args["bundles"] * args["per_bundle"], seed=100 + s,
                            prefix=f"S{s:02d}", producer=f"scale-{s}/bench")
        link = ChainLink(0, None)
        for _ in range(args["bundles"]):
            batch = [r for _, r in zip(range(args["per_bundle"]), recs, strict=False)]
            (sb,) = seal(batch, identity=ident, recipients=[server], out_dir=args["out"],
                         after=link)
            link = sb.link
            total += len(batch)
    return {"records": total}


def task_keys(args):
    from bundlekit import Identity, write_keypair

    for site in args["sites"]:
        write_keypair(Identity.generate(site), args["dir"])
    return {}


TASKS = {name[5:]: fn for name, fn in globals().items() if name.startswith("task_")}


def main() -> None:
    task = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    _setup()
    setup_rss = _rss_mb()
    result = TASKS[task](args)
    result["maxrss_mb"] = round(_maxrss_mb(), 1)
    result["setup_rss_mb"] = round(setup_rss, 1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
