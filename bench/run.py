"""`make bench`: measure bundlekit against dumpdata/loaddata and this machine's limit.

    python bench/run.py                  # the full run; writes docs/BENCHMARKS.md
    python bench/run.py --quick          # small N, one repetition (a smoke run)
    python bench/run.py --entry-n 20000 --only entry --no-mysql

Every figure in the report comes from this run: each operation runs in a fresh
process on databases the harness creates and drops itself, on data it generates
itself.  Two data sets:

* **entry order** (bench/entry.py on bench/clinic): captured for real, one
  ``save()``, M2M ``set()`` or ``delete()`` at a time, in the order a clinic enters
  forms; imported with ``manage.py bundle import`` and loaded with ``manage.py
  loaddata``, both as whole processes, on SQLite, PostgreSQL and MariaDB;
* **model grouped** (bench/data.py on bench/benchapp): filled in bulk, model by
  model, as earlier runs measured it; kept for comparison, and used for the
  memory check at the largest size (capture of that many saves would not fit
  the time budget).
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

#: Run in this order: the speed target first, then what is cheap; the two big
#: optional parts last, sized to the time budget that is left.
SECTIONS = ("entry", "capture", "raw", "attachments", "scale", "memory", "grouped")
SERVER_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB"}
GROUPED_LABELS = ["benchapp.participant", "benchapp.visit", "benchapp.requisition"]
ENTRY_LABELS = ["clinic.panel", "clinic.subjectconsent", "clinic.subjectvisit",
                "clinic.vitalsigns", "clinic.subjectrequisition"]
SERVERS = ("sqlite", "postgres", "mysql")
#: ``reps``: the quick measurements (capture, export, the raw format) take seconds
#: each, and on a shared 2-core machine two of them differed by up to a fifth:
#: five give a median that one slow run cannot move.
FULL = dict(entry_n=100_000, grouped_n=100_000, big_n=1_000_000, reps=5,
            import_reps=2, baseline_reps=1, capture_n=5_000, raw_n=100_000, scale=(8, 4, 500),
            scale_reps=2, grouped_servers=("sqlite", "postgres"), budget=60)
QUICK = dict(entry_n=2_000, grouped_n=2_000, big_n=10_000, reps=1,
             import_reps=1, baseline_reps=1, capture_n=1_000, raw_n=10_000, scale=(4, 2, 500),
             scale_reps=1, grouped_servers=("sqlite", "postgres"), budget=0)
#: A second repetition of an entry-order import only when the first took less.
SECOND_REP_MAX_S = 90
#: With a budget, the entry-order run is sized by a probe of this many transactions ...
PROBE_N = 3_000
#: ... to leave this many minutes for capture, raw format, scale-out and the memory
#: check after it (the model-grouped comparison gets what is left at the end).
RESERVE_MIN = 10
PG = dict(host=os.environ.get("BK_BENCH_PG_HOST", "127.0.0.1"),
          port=os.environ.get("BK_BENCH_PG_PORT", "5432"),
          user=os.environ.get("BK_BENCH_PG_USER", "postgres"))
MY = dict(host=os.environ.get("BK_BENCH_MYSQL_HOST", "127.0.0.1"),
          port=int(os.environ.get("BK_BENCH_MYSQL_PORT", "3306")),
          user=os.environ.get("BK_BENCH_MYSQL_USER", "root"),
          password=os.environ.get("BK_BENCH_MYSQL_PASSWORD", ""))

_T0 = time.monotonic()


def say(msg: str) -> None:
    t = time.monotonic() - _T0
    print(f"[{int(t // 60):3d}:{int(t % 60):02d}] {msg}", flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def secs(runs) -> list[float]:
    return [r["seconds"] for r in runs]


# ------------------------------------------------------------------ processes


def _env(db: str, **extra) -> dict:
    env = dict(os.environ, BK_BENCH_DB=db, DJANGO_SETTINGS_MODULE="bench.settings",
               PYTHONPATH=str(ROOT), **extra)
    # Every process loads byte code, as an installed package does (see compile_all):
    # a shell that forbids writing it would make each `bundle import` compile the
    # project's modules anew, a cost loaddata (mostly Django's compiled modules)
    # does not pay.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_all() -> None:
    """Byte-compile the project's own modules before anything is timed."""
    import compileall

    for package in ("bundlekit", "django_adapter", "bench"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def worker(task: str, args: dict, db: str, **env) -> dict:
    """One measurement in a fresh process (bench/worker.py); its JSON result."""
    p = subprocess.run([sys.executable, "-m", "bench.worker", task, json.dumps(args)],
                       cwd=ROOT, env=_env(db, **env), capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit(f"bench worker {task!r} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def command(argv: list[str], db: str, tmp: Path, *, stdin: Path | None = None, **env) -> dict:
    """Run ``python -m ARGV...`` as a user runs a command: a whole process, timed from
    its start to its exit, with its own peak resident set (``wait4``)."""
    out, err = tmp / "cmd.out", tmp / "cmd.err"
    with open(out, "wb") as fo, open(err, "wb") as fe, \
            open(stdin or os.devnull, "rb") as fi:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, env=_env(db, **env),
                             stdin=fi, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text(errors="replace")
    if p.returncode != 0:
        sys.stderr.write(text[-3000:] + err.read_text(errors="replace")[-3000:])
        raise SystemExit(f"{' '.join(argv[:2])} failed (exit {p.returncode})")
    return {"seconds": seconds, "maxrss_mb": round(usage.ru_maxrss / 1024, 1), "stdout": text}


# ------------------------------------------------------------------ servers


class Postgres:
    """Creates and drops this run's databases (bk_bench_<pid>_...)."""

    def __init__(self):
        import psycopg

        self.conn = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=3, **PG)
        self.prefix = f"bk_bench_{os.getpid()}"
        self.made: list[str] = []
        self.version = self.conn.execute("SHOW server_version").fetchone()[0]
        self.template = None

    def create(self, suffix: str) -> str:
        name = f"{self.prefix}_{suffix}"
        self.drop(name)
        tmpl = f" TEMPLATE {self.template}" if self.template else ""
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


class MariaDB:
    """Creates and drops this run's databases; a fresh one is a copy of the migrated
    template (``mysqldump | mysql``), or migrated itself without those tools."""

    def __init__(self):
        import pymysql

        self.conn = pymysql.connect(connect_timeout=3, autocommit=True, **MY)
        self.prefix = f"bk_bench_{os.getpid()}"
        self.made: list[str] = []
        with self.conn.cursor() as c:
            c.execute("SELECT VERSION()")
            self.version = c.fetchone()[0]
        self.template = None
        self.tools = shutil.which("mysqldump") and shutil.which("mysql")

    def _args(self) -> list[str]:
        args = [f"--host={MY['host']}", f"--port={MY['port']}", f"--user={MY['user']}"]
        return args + ([f"--password={MY['password']}"] if MY["password"] else [])

    def create(self, suffix: str) -> str:
        name = f"{self.prefix}_{suffix}"
        self.drop(name)
        with self.conn.cursor() as c:
            c.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        self.made.append(name)
        if self.template:
            if self.tools:
                dump = subprocess.run(["mysqldump", *self._args(), "--skip-comments",
                                       self.template], capture_output=True, check=True)
                subprocess.run(["mysql", *self._args(), name], input=dump.stdout, check=True)
            else:
                worker("migrate", {}, f"mysql:{name}")
        return name

    def drop(self, name: str) -> None:
        with self.conn.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
        if name in self.made:
            self.made.remove(name)

    def close(self) -> None:
        for name in list(self.made):
            self.drop(name)
        self.conn.close()


# ------------------------------------------------------------------ machine


def machine(versions: dict) -> dict:
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
        "postgres": versions.get("postgres") or "not available",
        "mysql": versions.get("mysql") or "not available",
        "msgpack": ".".join(map(str, msgpack.version)),
        "zstandard": zstandard.__version__,
        "cryptography": cryptography.__version__,
    }


# ------------------------------------------------------------------ sections


class Bench:
    def __init__(self, opts, tmp: Path, servers: dict):
        self.o, self.tmp, self.servers = opts, tmp, servers
        self.results: dict = {"entry": {}, "grouped": {}, "budget": {"minutes": opts.budget,
                                                                     "notes": []}}
        #: seconds per transaction of each kind of work, as measured in this run
        self.rates: dict[str, float] = {}
        self.empty_sqlite = tmp / "empty.sqlite3"
        worker("migrate", {}, f"sqlite:{self.empty_sqlite}")
        for kind, server in servers.items():
            server.template = server.create("template")
            worker("migrate", {}, f"{kind}:{server.template}")
        self.keys = tmp / "keys"
        self.keys.mkdir()
        worker("keys", {"sites": ["bench-site", "server"], "dir": str(self.keys)},
               f"sqlite:{self.empty_sqlite}")
        # What `manage.py bundle import` reads: the server's key, the site trusted.
        self.server_settings = json.dumps({
            "SITE": "server", "IDENTITY": str(self.keys / "server.key"),
            "TRUSTED": [str(self.keys / "bench-site.pub")], "RECEIPTS_OUT": None})

    # ---------------------------------------------------------------- budget

    def left(self) -> float:
        """Seconds left of the time budget (endless without one)."""
        if not self.o.budget:
            return float("inf")
        return self.o.budget * 60 - (time.monotonic() - _T0) - 30  # 30 s to write the report

    def note(self, text: str) -> None:
        say(f"  budget: {text}")
        self.results["budget"]["notes"].append(text)

    def rate(self, key: str, seconds: float, n: int) -> None:
        self.rates[key] = seconds / n  # the latest measurement

    def guess(self, key: str, fallback: str | None = None, default: float = 1e-3) -> float:
        return self.rates.get(key) or (self.rates.get(fallback) if fallback else None) or default

    def set_cost(self, servers, loaddata: bool, fill: str = "generate_bulk") -> float:
        """Estimated seconds per transaction of a data set's run (x1.3 for safety)."""
        per = (self.guess(fill, default=2e-4) + self.guess("export") * self.o.reps
               + self.guess("digest") * (1 + len(servers)))
        if loaddata:
            per += self.guess("dumpdata")
        for kind in servers:
            per += self.guess(f"import_{kind}", "import_sqlite")
            if loaddata:
                per += self.guess(f"loaddata_{kind}", "loaddata_sqlite")
        return per * 1.3

    def fit(self, want: int, per_tx: float, fixed: float, room: float, step: int) -> int:
        """The largest multiple of ``step`` up to ``want`` whose cost fits ``room``."""
        if per_tx * want + fixed <= room:
            return want
        return max(0, int((room - fixed) / per_tx) // step * step)

    def startup(self):
        """A process that starts Django and does nothing much: ``manage.py check``."""
        self.results["startup"] = [command(["django", "check"], f"sqlite:{self.empty_sqlite}",
                                           self.tmp)["seconds"] for _ in range(3)]

    def available(self, kinds) -> list[str]:
        return [k for k in kinds if k == "sqlite" or k in self.servers]

    def fresh(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            path = self.tmp / f"{name}.sqlite3"
            shutil.copyfile(self.empty_sqlite, path)
            return f"sqlite:{path}"
        return f"{kind}:{self.servers[kind].create(name)}"

    def drop(self, db: str) -> None:
        kind, _, name = db.partition(":")
        if kind == "sqlite":
            Path(name).unlink(missing_ok=True)
        else:
            self.servers[kind].drop(name)

    # ---------------------------------------------------------------- raw

    def raw(self):
        n = self.o.raw_n
        say(f"raw format: seal/open/verify {n:,} records vs msgpack+zstd+ChaCha20-Poly1305, "
            f"`bundle seal` from JSON lines, {self.o.reps} rep(s)")
        r = worker("raw", {"n": n, "reps": self.o.reps, "tmp": str(self.tmp)},
                   f"sqlite:{self.empty_sqlite}")
        self.results["raw"] = r
        for op in ("seal", "open", "verify", "seal_json", "seal_cli"):
            lim = "limit_seal_json" if op.startswith("seal_") else "limit_" + op
            say(f"  {op}: {median(r[op]):.3f} s, limit {median(r[lim]):.3f} s "
                f"-> {median(r[lim]) / median(r[op]):.0%} of the limit")

    # ---------------------------------------------------------------- capture

    def capture(self):
        n = self.o.capture_n
        out = {}
        for backend in self.available(("sqlite", "postgres")):
            times = {"plain": [], "synced": [], "cpu_plain": [], "cpu_synced": []}
            for rep in range(self.o.reps):
                order = ("plain", "synced") if rep % 2 == 0 else ("synced", "plain")
                for mode in order:
                    db = self.fresh(backend, f"capture_{mode}")
                    r = worker("entry", {"n": n, "batch": 1000, "seed": 11, "prefix": "C",
                                         "synced": mode == "synced"}, db)
                    self.drop(db)
                    want = n if mode == "synced" else 0
                    if r["captured"] != want:
                        raise SystemExit(f"capture: {r['captured']} transactions, expected {want}")
                    times[mode].append(r["seconds"])
                    times["cpu_" + mode].append(r["cpu_seconds"])
                    if mode == "synced":
                        out.setdefault("steps", {k: r[k] for k in
                                                 ("save", "update", "set", "delete")})
            ratio = median(times["synced"]) / median(times["plain"])
            say(f"capture on {backend}: {n:,} steps, plain {median(times['plain']):.2f} s, "
                f"synced {median(times['synced']):.2f} s -> {ratio:.2f}x")
            out[backend] = {"n": n, **times, "ratio": ratio}
        self.results["capture"] = out

    # ---------------------------------------------------------------- data sets

    def entry(self):
        want = self.o.entry_n
        n = want
        if self.o.budget and want > PROBE_N:
            # A small run of the same comparison first: its rates size the real one
            # to the budget (leaving RESERVE_MIN for the sections after it).
            say(f"entry order: a {PROBE_N:,}-transaction probe to size the run")
            self.entry_set(PROBE_N, self.results.setdefault("probe", {}), breakdown=False,
                           reps=1)
            room = self.left() - RESERVE_MIN * 60
            servers = self.available(SERVERS)
            start = median(self.results.get("startup") or [0.0])
            fixed = 30 + start * len(servers) * (self.o.import_reps + self.o.baseline_reps)
            n = self.fit(want, self.set_cost(servers, True, "capture"), fixed, room, 10_000)
            if n < want:
                self.note(f"the entry-order comparison runs at {max(n, PROBE_N):,} "
                          f"transactions, not {want:,}: at the rates the probe measured, "
                          f"{want:,} would not fit")
            if n < PROBE_N:
                self.results["entry"] = {PROBE_N: self.results.pop("probe")[PROBE_N]}
                return
        self.entry_set(n, self.results["entry"], breakdown=True, reps=self.o.import_reps)

    def entry_set(self, n: int, into: dict, breakdown: bool, reps: int):
        say(f"entry order, {n:,} transactions: capturing them on a SQLite site, one save at a time")
        site = self.tmp / "site-entry.sqlite3"
        shutil.copyfile(self.empty_sqlite, site)
        gen = worker("entry", {"n": n, "batch": 1000, "seed": 1, "prefix": "E", "synced": True},
                     f"sqlite:{site}")
        if gen["captured"] != n:
            raise SystemExit(f"entry: captured {gen['captured']} transactions, expected {n}")
        self.rate("capture", gen["seconds"] + 2, n)
        say(f"  captured {n:,} transactions ({gen['participants']:,} participants) in "
            f"{gen['seconds']:.0f} s")
        res = into[n] = {"generate": gen}
        self.data_set(res, n, site, "clinic_digest", ENTRY_LABELS,
                      self.available(SERVERS), reps, breakdown=breakdown)
        for key in ("export", "dumpdata"):
            self.rate(key, median(secs(res[key])), n)
        # Whole processes: their start-up is a fixed cost, not a rate.
        start = median(self.results.get("startup") or [0.0])
        for kind in self.available(SERVERS):
            for op in ("import", "loaddata"):
                if res.get(f"{op}_{kind}"):
                    t = median(secs(res[f"{op}_{kind}"]))
                    self.rate(f"{op}_{kind}", max(t - start, t / 10), n)

    def grouped(self):
        want, servers = self.o.grouped_n, self.available(self.o.grouped_servers)
        room = self.left()
        n = self.fit(want, self.set_cost(servers, True), 20 * len(servers), room, 10_000)
        if n < want and len(servers) > 1:
            servers = servers[:1]
            n = self.fit(want, self.set_cost(servers, True), 20, room, 10_000)
            if n > 0:
                self.note(f"the model-grouped comparison runs on {SERVER_NAMES[servers[0]]} "
                          "only")
        if n <= 0:
            self.note(f"the model-grouped comparison was not run ({room / 60:.1f} min left)")
            return
        if n < want:
            self.note(f"the model-grouped comparison runs at {n:,} transactions, not {want:,}")
        res = self.results["grouped"][n] = {}
        site = self.grouped_site(n)
        self.data_set(res, n, site, "digest", GROUPED_LABELS, servers, 1, breakdown=False)

    def grouped_site(self, n: int) -> Path:
        say(f"model grouped, {n:,} transactions: filling a SQLite site in bulk")
        site = self.tmp / f"site-grouped-{n}.sqlite3"
        shutil.copyfile(self.empty_sqlite, site)
        t = time.monotonic()
        worker("generate", {"n": n, "seed": 1, "prefix": "P"}, f"sqlite:{site}")
        self.rate("generate_bulk", time.monotonic() - t, n)
        say(f"  generated {n:,} objects and transactions in {time.monotonic() - t:.0f} s")
        return site

    def export(self, res: dict, n: int, site: Path, reps: int) -> Path:
        key, pub = str(self.keys / "bench-site.key"), str(self.keys / "server.pub")
        res["export"] = []
        bundles = None
        for rep in range(reps):
            copy = self.tmp / "site-copy.sqlite3"
            shutil.copyfile(site, copy)
            out = self.tmp / f"out-{rep}"
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
        return bundles

    def data_set(self, res, n, site, digest_task, labels, servers, import_reps, breakdown):
        o = self.o
        t = time.monotonic()
        res["site_digest"] = worker(digest_task, {}, f"sqlite:{site}")
        t = time.monotonic() - t
        self.rate("digest", max(t - median(self.results.get("startup") or [0.0]), t / 10), n)
        bundles = self.export(res, n, site, o.reps)
        dump = self.tmp / "dump.json"
        res["dumpdata"] = []
        for rep in range(o.baseline_reps):
            r = worker("dumpdata", {"labels": labels, "out": str(dump)}, f"sqlite:{site}")
            res["dumpdata"].append(r)
            say(f"  dumpdata --natural-foreign rep {rep + 1}: {r['seconds']:.2f} s, "
                f"{r['bytes'] / 1e6:.1f} MB JSON, peak RSS {r['maxrss_mb']:.0f} MB")
        res["gzip_bytes"] = gzip_size(dump)
        say(f"  gzip -6 of the dumpdata JSON: {res['gzip_bytes'] / 1e6:.2f} MB; bundles "
            f"{res['export'][0]['bytes'] / 1e6:.2f} MB")
        if breakdown:
            res["sizes_breakdown"] = worker(
                "size_breakdown", {"key": str(self.keys / "server.key"),
                                   "paths": [str(p) for p in sorted(bundles.glob("*.bundle"))],
                                   "n": n}, f"sqlite:{self.empty_sqlite}")
        for backend in servers:
            res[f"import_{backend}"] = self.imports(backend, bundles, n, import_reps,
                                                    digest_task, res["site_digest"],
                                                    floor_labels=labels if breakdown else None)
            runs = res.setdefault(f"loaddata_{backend}", [])
            for rep in range(o.baseline_reps):
                db = self.fresh(backend, "loaddata")
                r = command(["django", "loaddata", str(dump)], db, self.tmp)
                r.pop("stdout")
                if rep == 0:
                    d = worker(digest_task, {}, db)
                    r["counts_match_site"] = d["counts"] == res["site_digest"]["counts"]
                    r["digest_matches_site"] = d["digest"] == res["site_digest"]["digest"]
                    r["ms_digest_matches_site"] = d["ms_digest"] == res["site_digest"]["ms_digest"]
                self.drop(db)
                runs.append(r)
                say(f"  manage.py loaddata on {backend} rep {rep + 1}: {r['seconds']:.2f} s, "
                    f"peak RSS {r['maxrss_mb']:.0f} MB")
        site.unlink()
        dump.unlink(missing_ok=True)
        shutil.rmtree(bundles)

    def imports(self, backend, bundles: Path, n: int, reps: int, digest_task=None,
                site_digest=None, floor_labels=None) -> list:
        """``reps`` whole `bundle import` processes into a fresh database each.  With
        ``floor_labels`` (the data set's models), the first one's rows are then
        written again apart, into another fresh database (worker.py's ``floor``):
        what the import cannot skip, against which its own time is judged."""
        runs = []
        for rep in range(reps):
            if rep and runs[0]["seconds"] > SECOND_REP_MAX_S and self.o.budget:
                self.note(f"one `bundle import` on {SERVER_NAMES[backend]} at {n:,} "
                          f"(it took over {SECOND_REP_MAX_S} s)")
                break
            db = self.fresh(backend, "import")
            r = command(["django", "bundle", "import", str(bundles), "--json"], db, self.tmp,
                        BK_BENCH_BUNDLEKIT=self.server_settings)
            files = json.loads(r.pop("stdout"))["files"]
            for k in ("applied", "failed", "stale", "conflict", "duplicate"):
                r[k] = sum(f[k] for f in files)
            if r["applied"] != n or r["failed"]:
                raise SystemExit(f"import on {backend} applied {r['applied']} of {n}: {r}")
            if rep == 0 and digest_task:
                r["digest_matches_site"] = (
                    worker(digest_task, {}, db)["digest"] == site_digest["digest"])
            if rep == 0 and floor_labels:
                again = self.fresh(backend, "floor")
                r["floor"] = worker("floor", {
                    "key": str(self.keys / "server.key"), "labels": floor_labels,
                    "paths": [str(p) for p in sorted(bundles.glob("*.bundle"))]},
                    again, BK_BENCH_SOURCE=db)
                self.drop(again)
                f = r["floor"]
                say(f"  without deciding anything: reading the bundles {f['read_seconds']:.2f} s, "
                    f"writing the {sum(f['rows'].values()):,} rows the import left "
                    f"{f['write_seconds']:.2f} s")
            self.drop(db)
            runs.append(r)
            say(f"  manage.py bundle import on {backend} rep {rep + 1}: {r['seconds']:.2f} s, "
                f"peak RSS {r['maxrss_mb']:.0f} MB")
        return runs

    # ---------------------------------------------------------------- memory

    def memory(self):
        """Peak RSS of export and import (model-grouped data on SQLite, one run each)
        at a size and at ten times it: the largest pair up to (big_n / 10, big_n) that
        fits the time budget."""
        want = self.o.big_n
        per = self.set_cost(["sqlite"], False)
        room = self.left()
        big = 0
        for candidate in (want, want // 2, want // 5, want // 10):
            candidate -= candidate % 10
            if candidate >= 20 and per * candidate * 1.1 + 60 <= room:
                big = candidate
                break
        if not big:
            self.note(f"the memory check was not run ({room / 60:.1f} min left)")
            return
        small = max(10, big // 10 - big // 10 % 10)
        if big < want:
            self.note(f"the memory check runs at {small:,} and {big:,} transactions, not "
                      f"{want // 10:,} and {want:,}")
        out = self.results["memory"] = {}
        for n in (small, big):
            site = self.grouped_site(n)
            res = out[n] = {}
            bundles = self.export(res, n, site, 1)
            site.unlink()
            res["import_sqlite"] = self.imports("sqlite", bundles, n, 1)
            self.rate("import_sqlite", res["import_sqlite"][0]["seconds"], n)
            shutil.rmtree(bundles)

    # ---------------------------------------------------------------- scale-out

    def attachments(self):
        """Files through bundles against a plain copy (bench/attachments.py)."""
        from bench.attachments import measure

        say("attachments: a 256 MiB file sealed and opened as chunk records vs a plain copy")
        self.results["attachments"] = measure(self.tmp, 64 << 20 if self.o.quick else 256 << 20)

    def scale(self):
        if "postgres" not in self.servers:
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
            for _rep in range(self.o.scale_reps):
                db = self.fresh("postgres", "scale")
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
        procs = []
        for i in range(k):
            mine = [p for chain in chains[i::k] for p in chain]
            args = {"key": str(self.keys / "server.key"), "paths": mine, "go": str(go)}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.worker", "import_many", json.dumps(args)],
                cwd=ROOT, env=_env(db), stdout=subprocess.PIPE, text=True))
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
    ap.add_argument("--entry-n", type=int, help="transactions of the entry-order data set")
    ap.add_argument("--grouped-n", type=int,
                    help="transactions of the model-grouped data set (a multiple of 10)")
    ap.add_argument("--big-n", type=int,
                    help="transactions of the memory check (model grouped, SQLite; 0: none)")
    ap.add_argument("--budget", type=float,
                    help="minutes the whole run may take (0: no limit); the entry-order "
                         "comparison is sized by a small probe, the memory check and the "
                         "model-grouped comparison to what is left")
    ap.add_argument("--reps", type=int, help="repetitions of the quick measurements")
    ap.add_argument("--import-reps", type=int, help="repetitions of each entry-order import")
    ap.add_argument("--baseline-reps", type=int, help="repetitions of dumpdata/loaddata")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"sections to run, from {','.join(SECTIONS)}")
    ap.add_argument("--capture-n", type=int, help="entry steps per capture measurement")
    ap.add_argument("--raw-n", type=int, help="records in the raw-format bundle")
    ap.add_argument("--scale", help="senders,bundles per sender,records per bundle")
    ap.add_argument("--no-postgres", action="store_true", help="without PostgreSQL")
    ap.add_argument("--no-mysql", action="store_true", help="without MariaDB/MySQL")
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"),
                    help="report to write (default docs/BENCHMARKS.md)")
    ap.add_argument("--json", help="also write the raw results as JSON here")
    a = ap.parse_args(argv)
    o = argparse.Namespace(**(QUICK if a.quick else FULL))
    for name in ("entry_n", "grouped_n", "big_n", "budget", "reps", "import_reps", "baseline_reps",
                 "capture_n", "raw_n"):
        if getattr(a, name) is not None:
            setattr(o, name, getattr(a, name))
    if o.grouped_n % 10 or o.big_n % 10:
        ap.error("--grouped-n and --big-n must be multiples of 10 (families of 10 objects)")
    if a.scale:
        o.scale = tuple(int(x) for x in a.scale.split(","))
    o.only = {s.strip() for s in a.only.split(",") if s.strip()}
    if o.only - set(SECTIONS):
        ap.error(f"--only: unknown section(s) {', '.join(sorted(o.only - set(SECTIONS)))}")
    if not o.big_n:
        o.only.discard("memory")
    o.quick, o.no_postgres, o.no_mysql, o.out, o.json = (
        a.quick, a.no_postgres, a.no_mysql, a.out, a.json)
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


def connect(o) -> dict:
    servers = {}
    for kind, cls, off in (("postgres", Postgres, o.no_postgres), ("mysql", MariaDB, o.no_mysql)):
        if off:
            continue
        try:
            servers[kind] = cls()
        except Exception as e:  # noqa: BLE001 - any failure to connect means "not available"
            say(f"{kind} not available ({type(e).__name__}: {e}); running without it")
    return servers


class CpuShare:
    """Whose CPU time a run used: this run's processes (the bench and every command
    it ran, all waited for), the database servers, and everything else on the
    machine, from /proc (Linux; elsewhere nothing is claimed).

    The load average cannot tell a shared machine from a busy run (a command and
    its database server keep both cores of a 2-core machine busy): this can."""

    SERVERS = ("postgres", "mariadbd", "mysqld")

    def __init__(self):
        self.start = self.sample()

    @staticmethod
    def _own() -> float:
        import resource

        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))

    def sample(self):
        try:
            tick = os.sysconf("SC_CLK_TCK")
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:9]]
            busy = (sum(fields[:3]) + sum(fields[5:8])) / tick  # user nice system irq softirq steal
            servers = 0.0
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        text = f.read()
                except OSError:
                    continue
                name = text[text.index("(") + 1:text.rindex(")")]
                if name in self.SERVERS:
                    rest = text[text.rindex(")") + 2:].split()
                    servers += sum(int(x) for x in rest[11:15]) / tick  # utime stime cutime cstime
            return busy, self._own(), servers
        except (OSError, ValueError):
            return None

    def result(self) -> dict | None:
        end = self.sample()
        if self.start is None or end is None:
            return None
        busy, own, servers = (e - s for e, s in zip(end, self.start, strict=True))
        other = max(busy - own - servers, 0.0)
        return {"busy_s": busy, "run_s": own, "servers_s": servers, "other_s": other,
                "other_share": other / busy if busy > 0 else 0.0}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    o = parse(argv)
    from bench.report import write_report

    servers = connect(o)
    compile_all()
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    say(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    cpu = CpuShare()
    tmp = Path(tempfile.mkdtemp(prefix="bk-bench-", dir=os.environ.get("BK_BENCH_TMP")))
    loads = [load_before]
    try:
        b = Bench(o, tmp, servers)
        info = machine({k: s.version for k, s in servers.items()})
        b.startup()
        for section in SECTIONS:
            if section in o.only:
                getattr(b, section)()
                loads.append(os.getloadavg())
                if o.budget:
                    say(f"{b.left() / 60:.1f} min of the budget left")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for s in servers.values():
            s.close()
    results = b.results
    results["machine"] = info
    results["servers"] = sorted(["sqlite", *servers])
    results["started"] = started.isoformat(timespec="seconds")
    results["minutes"] = (time.monotonic() - _T0) / 60
    results["load_before"] = load_before
    results["load_after"] = os.getloadavg()
    results["load_max_1min"] = max(x[0] for x in loads + [results["load_after"]])
    results["cpu_share"] = cpu.result()
    results["command"] = command_line(argv)
    results["options"] = {k: getattr(o, k) for k in (
        "entry_n", "grouped_n", "big_n", "budget", "reps", "import_reps", "baseline_reps",
        "capture_n", "raw_n", "scale_reps", "quick")}
    results["options"]["only"] = sorted(o.only)
    results["options"]["grouped_servers"] = list(o.grouped_servers)
    if o.json:
        Path(o.json).write_text(json.dumps(results, indent=1, default=str))
    write_report(results, o.out)
    say(f"wrote {Path(o.out).name} ({results['minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
