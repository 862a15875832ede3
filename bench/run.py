"""`make bench`: measure bundlekit against dumpdata/loaddata and this machine's limit.

    python bench/run.py                  # the full run; writes docs/BENCHMARKS.md
    python bench/run.py --quick          # small N, one repetition (a smoke run)
    python bench/run.py --sizes 100000 --reps 1 --only export,import

Every figure in the report comes from this run: each operation runs in a fresh
worker process (bench/worker.py) on databases the harness creates and drops
itself, on data it generates itself (bench/data.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTIONS = ("raw", "capture", "export", "import", "scale")
LABELS = ["benchapp.participant", "benchapp.visit", "benchapp.requisition"]
FULL = dict(sizes=[100_000, 1_000_000], reps=3, baseline_max=100_000, big_reps=1, baseline_reps=2,
            capture_n=10_000, raw_n=200_000, scale=(8, 4, 1000))
QUICK = dict(sizes=[2_000, 10_000], reps=1, baseline_max=10_000, big_reps=1, baseline_reps=1,
             capture_n=2_000, raw_n=10_000, scale=(4, 2, 500))
PG = dict(host=os.environ.get("BK_BENCH_PG_HOST", "127.0.0.1"),
          port=os.environ.get("BK_BENCH_PG_PORT", "5432"),
          user=os.environ.get("BK_BENCH_PG_USER", "postgres"))

_T0 = time.monotonic()


def say(msg: str) -> None:
    t = time.monotonic() - _T0
    print(f"[{int(t // 60):3d}:{int(t % 60):02d}] {msg}", flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------ workers


def worker(task: str, args: dict, db: str, **env) -> dict:
    e = dict(os.environ, BK_BENCH_DB=db, DJANGO_SETTINGS_MODULE="bench.settings",
             PYTHONPATH=str(ROOT), **env)
    p = subprocess.run([sys.executable, "-m", "bench.worker", task, json.dumps(args)],
                       cwd=ROOT, env=e, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit(f"bench worker {task!r} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


class Postgres:
    """Creates and drops this run's databases (bk_bench_<pid>_...)."""

    def __init__(self):
        import psycopg

        self.conn = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=3, **PG)
        self.prefix = f"bk_bench_{os.getpid()}"
        self.made: list[str] = []
        self.version = self.conn.execute("SHOW server_version").fetchone()[0]

    def create(self, suffix: str, template: str | None = None) -> str:
        name = f"{self.prefix}_{suffix}"
        self.drop(name)
        tmpl = f" TEMPLATE {template}" if template else ""
        self.conn.execute(f"CREATE DATABASE {name}{tmpl}")
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        self.conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.made:
            self.made.remove(name)

    def close(self) -> None:
        for name in list(self.made):
            self.drop(name)
        self.conn.close()


# ------------------------------------------------------------------ machine


def machine(pg_version: str | None) -> dict:
    import sqlite3

    import cryptography
    import django
    import msgpack
    import zstandard

    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo")
                      if line.startswith("MemTotal"))
    except OSError:
        mem_kb = 0
    return {
        "cores": os.cpu_count(),
        "cpu": cpu or platform.processor() or "unknown",
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.__version__,
        "sqlite": sqlite3.sqlite_version,
        "postgres": pg_version or "not available",
        "msgpack": ".".join(map(str, msgpack.version)),
        "zstandard": zstandard.__version__,
        "cryptography": cryptography.__version__,
    }


# ------------------------------------------------------------------ sections


class Bench:
    def __init__(self, opts, tmp: Path, pg: Postgres | None):
        self.o, self.tmp, self.pg = opts, tmp, pg
        self.results: dict = {"sizes": {}}
        self.empty_sqlite = tmp / "empty.sqlite3"
        worker("migrate", {}, f"sqlite:{self.empty_sqlite}")
        self.pg_template = None
        if pg:
            self.pg_template = pg.create("template")
            worker("migrate", {}, f"postgres:{self.pg_template}")
        self.keys = tmp / "keys"
        self.keys.mkdir()
        worker("keys", {"sites": ["bench-site", "server"], "dir": str(self.keys)},
               f"sqlite:{self.empty_sqlite}")

    def fresh_sqlite(self, name: str) -> str:
        path = self.tmp / f"{name}.sqlite3"
        shutil.copyfile(self.empty_sqlite, path)
        return f"sqlite:{path}"

    def fresh_pg(self, suffix: str) -> str:
        return f"postgres:{self.pg.create(suffix, template=self.pg_template)}"

    def drop(self, db: str) -> None:
        kind, _, name = db.partition(":")
        if kind == "sqlite":
            Path(name).unlink(missing_ok=True)
        else:
            self.pg.drop(name)

    # ---------------------------------------------------------------- raw

    def raw(self):
        n = self.o.raw_n
        say(f"raw format: seal/open/verify {n:,} records vs msgpack+zstd+ChaCha20-Poly1305, "
            f"{self.o.reps} rep(s)")
        r = worker("raw", {"n": n, "reps": self.o.reps}, f"sqlite:{self.empty_sqlite}")
        self.results["raw"] = r
        for op in ("seal", "open", "verify"):
            say(f"  {op}: {median(r[op]):.3f} s, limit {median(r['limit_' + op]):.3f} s "
                f"-> {median(r['limit_' + op]) / median(r[op]):.0%} of the limit")

    # ---------------------------------------------------------------- capture

    def capture(self):
        n = self.o.capture_n
        out = {}
        backends = ["sqlite"] + (["postgres"] if self.pg else [])
        for backend in backends:
            times = {"plain": [], "synced": []}
            for rep in range(self.o.reps):
                order = ("plain", "synced") if rep % 2 == 0 else ("synced", "plain")
                for mode in order:
                    db = (self.fresh_sqlite(f"capture-{mode}") if backend == "sqlite"
                          else self.fresh_pg(f"capture_{mode}"))
                    r = worker("capture", {"n": n, "batch": 1000, "seed": 11, "prefix": "C",
                                           "synced": mode == "synced"}, db)
                    self.drop(db)
                    want = n if mode == "synced" else 0
                    if r["captured"] != want:
                        raise SystemExit(f"capture: {r['captured']} transactions, expected {want}")
                    times[mode].append(r["seconds"])
            ratio = median(times["synced"]) / median(times["plain"])
            say(f"capture on {backend}: {n:,} saves, plain {median(times['plain']):.2f} s, "
                f"synced {median(times['synced']):.2f} s -> {ratio:.2f}x")
            out[backend] = {"n": n, **times, "ratio": ratio}
        self.results["capture"] = out

    # ---------------------------------------------------------------- per size

    def size(self, n: int):
        o = self.o
        res = self.results["sizes"].setdefault(n, {})
        baseline = n <= o.baseline_max
        reps = o.reps if n <= o.baseline_max else o.big_reps
        res["reps"] = reps
        say(f"size {n:,}: generating the site database")
        site = self.tmp / f"site-{n}.sqlite3"
        shutil.copyfile(self.empty_sqlite, site)
        t = time.monotonic()
        worker("generate", {"n": n, "seed": 1, "prefix": "P"}, f"sqlite:{site}")
        say(f"  generated {n:,} objects and transactions in {time.monotonic() - t:.0f} s")
        res["site_digest"] = worker("digest", {}, f"sqlite:{site}")
        key, pub = str(self.keys / "bench-site.key"), str(self.keys / "server.pub")
        server_key = str(self.keys / "server.key")

        # export and dumpdata
        if "export" in o.only or "import" in o.only:
            res["export"] = []
            bundles = None
            for rep in range(reps if "export" in o.only else 1):
                copy = self.tmp / f"site-{n}-copy.sqlite3"
                shutil.copyfile(site, copy)
                out = self.tmp / f"out-{n}-{rep}"
                out.mkdir()
                r = worker("export", {"key": key, "recipients": [pub], "out": str(out)},
                           f"sqlite:{copy}")
                copy.unlink()
                if r["records"] != n:
                    raise SystemExit(f"export sealed {r['records']} records, expected {n}")
                res["export"].append(r)
                say(f"  export rep {rep + 1}: {r['seconds']:.2f} s, {r['bundles']} bundle(s), "
                    f"{r['bytes'] / 1e6:.1f} MB, peak RSS {r['maxrss_mb']:.0f} MB")
                if bundles is None:
                    bundles = out
                else:
                    shutil.rmtree(out)
            paths = [str(p) for p in sorted(bundles.glob("*.bundle"))]
        dump = self.tmp / f"dump-{n}.json"
        if baseline and ("export" in o.only or "import" in o.only):
            res["dumpdata"] = []
            for rep in range(min(reps, o.baseline_reps) if "export" in o.only else 1):
                r = worker("dumpdata", {"labels": LABELS, "out": str(dump)}, f"sqlite:{site}")
                res["dumpdata"].append(r)
                say(f"  dumpdata --natural-foreign rep {rep + 1}: {r['seconds']:.2f} s, "
                    f"{r['bytes'] / 1e6:.1f} MB JSON, peak RSS {r['maxrss_mb']:.0f} MB")
            res["gzip_bytes"] = gzip_size(dump)
            say(f"  gzip -6 of the dumpdata JSON: {res['gzip_bytes'] / 1e6:.1f} MB")
            if "sizes_breakdown" not in self.results:
                self.results["sizes_breakdown"] = worker(
                    "size_breakdown", {"key": server_key, "paths": paths, "n": n},
                    f"sqlite:{self.empty_sqlite}")

        # import and loaddata
        if "import" in o.only:
            backends = ["sqlite"]
            if self.pg and (baseline or o.pg_big):
                backends.append("postgres")
            for backend in backends:
                runs = res.setdefault(f"import_{backend}", [])
                for rep in range(reps):
                    db = (self.fresh_sqlite("server") if backend == "sqlite"
                          else self.fresh_pg("server"))
                    r = worker("import", {"key": server_key, "paths": paths,
                                          "trusted": [str(self.keys / "bench-site.pub")]}, db)
                    if r["applied"] != n or r["failed"]:
                        raise SystemExit(f"import applied {r['applied']} of {n}: {r}")
                    if rep == 0:
                        r["digest_matches_site"] = (
                            worker("digest", {}, db)["digest"] == res["site_digest"]["digest"])
                    self.drop(db)
                    runs.append(r)
                    say(f"  import on {backend} rep {rep + 1}: {r['seconds']:.2f} s, "
                        f"peak RSS {r['maxrss_mb']:.0f} MB")
                if not baseline:
                    continue
                runs = res.setdefault(f"loaddata_{backend}", [])
                for rep in range(min(reps, o.baseline_reps)):
                    db = (self.fresh_sqlite("server") if backend == "sqlite"
                          else self.fresh_pg("server"))
                    r = worker("loaddata", {"fixture": str(dump)}, db)
                    if rep == 0:
                        d = worker("digest", {}, db)
                        r["counts_match_site"] = d["counts"] == res["site_digest"]["counts"]
                        r["digest_matches_site"] = d["digest"] == res["site_digest"]["digest"]
                        r["ms_digest_matches_site"] = (
                            d["ms_digest"] == res["site_digest"]["ms_digest"])
                    self.drop(db)
                    runs.append(r)
                    say(f"  loaddata on {backend} rep {rep + 1}: {r['seconds']:.2f} s, "
                        f"peak RSS {r['maxrss_mb']:.0f} MB")
        site.unlink()
        dump.unlink(missing_ok=True)
        if "export" in o.only or "import" in o.only:
            shutil.rmtree(bundles)

    # ---------------------------------------------------------------- scale-out

    def scale(self):
        if not self.pg:
            say("scale-out: skipped (no PostgreSQL)")
            return
        senders, per_sender, per_bundle = self.o.scale
        out, keys = self.tmp / "scale", self.tmp / "scale-keys"
        out.mkdir()
        keys.mkdir()
        say(f"scale-out: sealing {senders} senders x {per_sender} bundles x {per_bundle:,} records")
        r = worker("scale_bundles", {"senders": senders, "bundles": per_sender,
                                     "per_bundle": per_bundle, "out": str(out),
                                     "keys": str(keys), "recipient": str(self.keys / "server.pub")},
                   f"sqlite:{self.empty_sqlite}")
        total = r["records"]
        from bundlekit import read_manifest

        by_sender: dict[str, list[str]] = {}
        for p in sorted(out.glob("*.bundle")):
            by_sender.setdefault(read_manifest(p).sender.fingerprint, []).append(str(p))
        chains = [by_sender[k] for k in sorted(by_sender)]
        res = {"senders": senders, "bundles_per_sender": per_sender, "per_bundle": per_bundle,
               "records": total, "runs": {}}
        for workers_n in (1, 2, 4):
            walls = []
            for _rep in range(self.o.reps):
                db = self.fresh_pg("scale")
                walls.append(self._scale_once(db, chains, workers_n, total))
                self.drop(db)
            res["runs"][workers_n] = walls
            say(f"  {workers_n} importer(s): {median(walls):.2f} s, "
                f"{total / median(walls):,.0f} records/s")
        self.results["scale"] = res
        shutil.rmtree(out)

    def _scale_once(self, db: str, chains, k: int, total: int) -> float:
        go = self.tmp / "go"
        go.unlink(missing_ok=True)
        env = dict(os.environ, BK_BENCH_DB=db, DJANGO_SETTINGS_MODULE="bench.settings",
                   PYTHONPATH=str(ROOT))
        procs = []
        for i in range(k):
            mine = [p for chain in chains[i::k] for p in chain]
            args = {"key": str(self.keys / "server.key"), "paths": mine, "go": str(go)}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.worker", "import_many", json.dumps(args)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True))
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("scale-out worker did not start")
        go.touch()
        results = []
        for p in procs:
            stdout, _ = p.communicate()
            if p.returncode != 0:
                raise SystemExit("scale-out worker failed")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        applied = sum(r["applied"] for r in results)
        if applied != total or any(r["failed"] for r in results):
            raise SystemExit(f"scale-out applied {applied} of {total}")
        return max(r["end"] for r in results) - min(r["start"] for r in results)


def gzip_size(path: Path) -> int:
    """Size of ``gzip -6`` of the file (the gzip tool if present, else zlib level 6)."""
    if shutil.which("gzip"):
        p = subprocess.run(["gzip", "-6", "-c", str(path)], stdout=subprocess.PIPE, check=True)
        return len(p.stdout)
    import gzip

    return len(gzip.compress(path.read_bytes(), compresslevel=6))


# ------------------------------------------------------------------ main


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, one repetition")
    ap.add_argument("--sizes", help="comma-separated transaction counts (multiples of 10)")
    ap.add_argument("--reps", type=int, help="repetitions per measurement")
    ap.add_argument("--baseline-reps", type=int,
                    help="repetitions of dumpdata/loaddata (at most --reps; they are slow)")
    ap.add_argument("--baseline-max", type=int,
                    help="largest size at which dumpdata/loaddata run (they are slow)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"sections to run, from {','.join(SECTIONS)}")
    ap.add_argument("--capture-n", type=int, help="saves per capture measurement")
    ap.add_argument("--raw-n", type=int, help="records in the raw-format bundle")
    ap.add_argument("--scale", help="senders,bundles per sender,records per bundle")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    ap.add_argument("--pg-big", action="store_true",
                    help="also import on PostgreSQL above --baseline-max (slow)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"),
                    help="report to write (default docs/BENCHMARKS.md)")
    ap.add_argument("--json", help="also write the raw results as JSON here")
    a = ap.parse_args(argv)
    o = argparse.Namespace(**(QUICK if a.quick else FULL))
    if a.sizes:
        o.sizes = [int(s) for s in a.sizes.split(",")]
    if any(s % 10 for s in o.sizes):
        ap.error("--sizes must be multiples of 10 (families of 10 objects)")
    if a.reps:
        o.reps = a.reps
    if a.baseline_reps:
        o.baseline_reps = a.baseline_reps
    if a.capture_n:
        o.capture_n = a.capture_n
    if a.raw_n:
        o.raw_n = a.raw_n
    if a.scale:
        o.scale = tuple(int(x) for x in a.scale.split(","))
    o.baseline_max = a.baseline_max if a.baseline_max is not None else o.baseline_max
    o.only = {s.strip() for s in a.only.split(",") if s.strip()}
    if o.only - set(SECTIONS):
        ap.error(f"--only: unknown section(s) {', '.join(sorted(o.only - set(SECTIONS)))}")
    o.quick, o.no_postgres, o.out, o.json = a.quick, a.no_postgres, a.out, a.json
    o.pg_big = a.pg_big
    return o


def command_line(argv) -> str:
    shown, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--out", "--json") and i + 1 < len(argv):
            shown += [a, Path(argv[i + 1]).name]  # never a path of this machine
            skip = True
        elif a.startswith(("--out=", "--json=")):
            k, v = a.split("=", 1)
            shown.append(f"{k}={Path(v).name}")
        else:
            shown.append(a)
    return " ".join(["python bench/run.py", *shown]) if shown else "make bench"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    o = parse(argv)
    from bench.report import write_report

    pg = None
    if not o.no_postgres:
        try:
            pg = Postgres()
        except Exception as e:  # noqa: BLE001 - any failure to connect means "no PostgreSQL"
            say(f"PostgreSQL not available ({type(e).__name__}); SQLite only")
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    say(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="bk-bench-", dir=os.environ.get("BK_BENCH_TMP")))
    try:
        b = Bench(o, tmp, pg)
        info = machine(pg.version if pg else None)
        if "raw" in o.only:
            b.raw()
        if "capture" in o.only:
            b.capture()
        if o.only & {"export", "import"}:
            for n in o.sizes:
                b.size(n)
        if "scale" in o.only:
            b.scale()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if pg:
            pg.close()
    results = b.results
    results["machine"] = info
    results["started"] = started.isoformat(timespec="seconds")
    results["minutes"] = (time.monotonic() - _T0) / 60
    results["load_before"] = load_before
    results["load_after"] = os.getloadavg()
    results["command"] = command_line(argv)
    results["options"] = {"sizes": o.sizes, "reps": o.reps, "baseline_max": o.baseline_max,
                          "big_reps": o.big_reps, "baseline_reps": min(o.reps, o.baseline_reps),
                          "quick": o.quick, "only": sorted(o.only),
                          "pg_big": o.pg_big}
    if o.json:
        Path(o.json).write_text(json.dumps(results, indent=1, default=str))
    write_report(results, o.out)
    say(f"wrote {Path(o.out).name} ({results['minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
