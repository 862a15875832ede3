"""Write docs/BENCHMARKS.md from one run's results (bench/run.py).

Every number printed here was measured in that run; the prose around the
tables only explains how.  Nothing in this file is edited by hand.
"""

from __future__ import annotations

import statistics
from pathlib import Path

MB = 1e6


def med(xs):
    return statistics.median(xs) if xs else None


def secs(rs, key="seconds"):
    return [r[key] for r in rs]


def f_s(x):
    return "—" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def f_x(x):
    return "—" if x is None else (f"{x:.2f}×" if x < 10 else f"{x:.1f}×")


def f_n(x):
    return "—" if x is None else f"{x:,.0f}"


def f_reps(xs):
    return ", ".join(f"{x:.2f}" for x in xs)


def ok(flag):
    return "—" if flag is None else ("**yes**" if flag else "**no**")


class Report:
    def __init__(self, r: dict):
        self.r = r
        self.lines: list[str] = []
        self.summary: list[tuple] = []

    def w(self, *lines):
        self.lines.extend(lines)

    def table(self, head, rows):
        self.w("| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|")
        for row in rows:
            self.w("| " + " | ".join(str(c) for c in row) + " |")
        self.w("")

    # ------------------------------------------------------------------

    def build(self) -> str:
        r = self.r
        body_start = len(self.lines)
        self.capture()
        self.export()
        self.import_()
        self.memory()
        self.raw()
        self.scale()
        self.method()
        body = self.lines[body_start:]
        self.lines = self.lines[:body_start]
        m = r["machine"]
        lb, la = r["load_before"], r["load_after"]
        self.w(
            "# Benchmarks",
            "",
            "Written by `make bench` (bench/run.py); do not edit by hand: rerun it.",
            "",
            f"- Command: `{r['command']}`",
            f"- Date: {r['started']} (UTC), {r['minutes']:.1f} minutes",
            f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['os']}",
            f"- Software: Python {m['python']}, Django {m['django']}, SQLite {m['sqlite']}, "
            f"PostgreSQL {m['postgres']}, msgpack {m['msgpack']}, zstandard {m['zstandard']}, "
            f"cryptography {m['cryptography']}",
            f"- Load average (1/5/15 min) before the run: {lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f}; "
            f"after: {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}",
            f"- Repetitions: {r['options']['reps']} per bundlekit measurement up to "
            f"{r['options']['baseline_max']:,} transactions, {r['options']['big_reps']} above; "
            f"{r['options'].get('baseline_reps', r['options']['reps'])} per dumpdata/loaddata "
            "measurement (they are slow); figures are medians, ratios are ratios of medians.",
            "",
            "## Targets",
            "",
        )
        self.table(["#", "Comparison", "Target", "Measured", "Holds"], self.summary)
        self.lines.extend(body)
        return "\n".join(self.lines).rstrip() + "\n"

    def target(self, num, what, target, measured, holds):
        self.summary.append((num, what, target, measured, ok(holds)))

    # ------------------------------------------------------------------

    def capture(self):
        c = self.r.get("capture")
        if not c:
            return
        self.w("## 1. Capture overhead", "",
               "Saving objects one by one (`save()`) in transactions of 1000 saves: the synced "
               "models (every save also writes an `OutgoingTransaction`) against plain twins "
               "with the same columns.", "")
        rows = []
        for backend, x in c.items():
            p, s = med(x["plain"]), med(x["synced"])
            rows.append((backend, f_n(x["n"]), f_s(p), f_s(s), f_x(x["ratio"]),
                         f_n(x["n"] / s), f_reps(x["plain"]), f_reps(x["synced"])))
            self.target("1", f"capture overhead ({backend})", "≤ 1.5×", f_x(x["ratio"]),
                        x["ratio"] <= 1.5)
        self.table(["backend", "saves", "plain", "synced", "synced / plain", "synced saves/s",
                    "plain reps (s)", "synced reps (s)"], rows)

    def export(self):
        sizes = self.r["sizes"]
        if not any("export" in s for s in sizes.values()):
            return
        self.w("## 2. Export", "",
               "`export_pending()` (what `bundle export` runs before it copies the files to the "
               "stick) of N pending insert transactions of a SQLite site database into bundles, against `manage.py dumpdata "
               "--natural-foreign` of the same objects (to a file, as `-o` does). Size: all "
               "bundle files against `gzip -6` of the dumpdata JSON.", "")
        rows = []
        for n, s in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            if "export" not in s:
                continue
            e = med(secs(s["export"]))
            nbytes = s["export"][0]["bytes"]
            d = med(secs(s["dumpdata"])) if s.get("dumpdata") else None
            speed = d / e if d else None
            g = s.get("gzip_bytes")
            size_ratio = nbytes / g if g else None
            rows.append((f_n(int(n)), f_s(e), f_n(int(n) / e), f_s(d), f_x(speed),
                         f"{nbytes / MB:.1f} MB",
                         f"{s['dumpdata'][0]['bytes'] / MB:.1f} MB" if d else "—",
                         f"{g / MB:.1f} MB" if g else "—",
                         f"{size_ratio:.2f}" if size_ratio else "—",
                         f_reps(secs(s["export"])),
                         f_reps(secs(s["dumpdata"])) if d else "not run"))
            if d:
                self.target("2", f"export speed vs dumpdata ({f_n(int(n))} tx)", "≥ 20× faster",
                            f_x(speed), speed >= 20)
                self.target("2", f"bundle size vs gzip -6 JSON ({f_n(int(n))} tx)", "≤ 0.7×",
                            f"{size_ratio:.2f}×", size_ratio <= 0.7)
        self.table(["transactions", "bundle export", "tx/s", "dumpdata", "dumpdata / export",
                    "bundles", "JSON", "JSON gzip -6", "bundles / gzip", "export reps (s)",
                    "dumpdata reps (s)"], rows)
        self.not_run_note("dumpdata")
        b = self.r.get("sizes_breakdown")
        if b:
            n = b["records"]
            s = sizes.get(n) or sizes.get(str(n)) or {}
            g = s.get("gzip_bytes")
            self.w(f"Where a bundle's bytes go ({n:,} transactions): its records packed "
                   f"({b['packed'] / MB:.1f} MB), then compressed again here in variants; the "
                   "dumpdata JSON holds the objects' fields without a transaction id, a capture "
                   "time, a producer or a natural key of each object.", "")
            rows = [(name, f"{v / MB:.2f} MB", f"{v / g:.2f}" if g else "—")
                    for name, v in b["variants"].items()]
            self.table(["compressed", "size", "/ gzip -6 JSON"], rows)

    def not_run_note(self, what):
        sizes = self.r["sizes"]
        big = [int(n) for n, s in sizes.items() if int(n) > self.r["options"]["baseline_max"]]
        if not big:
            return
        base = [int(n) for n, s in sizes.items() if s.get("dumpdata")]
        if not base:
            return
        n0 = max(base)
        self.w(f"{what} was not run above {n0:,} transactions: see *How the baselines above "
               f"{n0:,} were handled* below.", "")

    def import_(self):
        sizes = self.r["sizes"]
        rows = []
        for n, s in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            for backend in ("sqlite", "postgres"):
                runs = s.get(f"import_{backend}")
                if not runs:
                    continue
                i = med(secs(runs))
                ld_runs = s.get(f"loaddata_{backend}")
                ld = med(secs(ld_runs)) if ld_runs else None
                ratio = ld / i if ld else None
                rows.append((f_n(int(n)), backend, f_s(i), f_n(int(n) / i), f_s(ld), f_x(ratio),
                             f_reps(secs(runs)), f_reps(secs(ld_runs)) if ld else "not run"))
                if ld:
                    self.target("3", f"import speed vs loaddata ({backend}, {f_n(int(n))} tx)",
                                "≥ 10× faster", f_x(ratio), ratio >= 10)
        if not rows:
            return
        self.w("## 3. Import", "",
               "`import_bundle()` with the sender trusted (what `bundle import` runs for each "
               "file) of the exported bundles into an empty server database (schema only), against `manage.py loaddata` of the "
               "dumpdata JSON into another empty one. Both include every check each tool makes; "
               "the bundle import also verifies signatures and digests, keeps the ledger "
               "(`IncomingTransaction`, one row per transaction) and the bundle chain.", "")
        self.table(["transactions", "backend", "bundle import", "tx/s", "loaddata",
                    "loaddata / import", "import reps (s)", "loaddata reps (s)"], rows)
        self.not_run_note("loaddata")
        checks = []
        for n, s in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            for backend in ("sqlite", "postgres"):
                runs = s.get(f"import_{backend}")
                if runs:
                    checks.append((f_n(int(n)), backend, "bundle import",
                                   "identical" if runs[0].get("digest_matches_site") else "DIFFERENT"))
                ld = s.get(f"loaddata_{backend}")
                if ld:
                    x = ld[0]
                    if x.get("digest_matches_site"):
                        verdict = "identical"
                    elif x.get("ms_digest_matches_site"):
                        verdict = "same objects, datetimes cut to milliseconds"
                    elif x.get("counts_match_site"):
                        verdict = "same counts, different values"
                    else:
                        verdict = "DIFFERENT counts"
                    checks.append((f_n(int(n)), backend, "loaddata", verdict))
        if checks:
            self.w("After the first repetition, every row of the three models is compared with "
                   "the site's (all columns, references by natural key):", "")
            self.table(["transactions", "backend", "loaded by", "rows compared with the site"],
                       checks)

    def memory(self):
        sizes = sorted(self.r["sizes"].items(), key=lambda kv: int(kv[0]))
        ops = [("export", "bundle export (SQLite)"), ("import_sqlite", "bundle import (SQLite)"),
               ("import_postgres", "bundle import (PostgreSQL)"), ("dumpdata", "dumpdata"),
               ("loaddata_sqlite", "loaddata (SQLite)"), ("loaddata_postgres", "loaddata (PostgreSQL)")]
        rows = []
        ns = [int(n) for n, _ in sizes]
        if not ns:
            return
        for key, label in ops:
            vals = [med(secs(s[key], "maxrss_mb")) if s.get(key) else None for _, s in sizes]
            if all(v is None for v in vals):
                continue
            setup = [s[key][0]["setup_rss_mb"] for _, s in sizes if s.get(key)]
            growth = None
            if len(ns) > 1 and vals[0] is not None and vals[-1] is not None:
                growth = vals[-1] - vals[0]
                if key in ("export", "import_sqlite", "import_postgres"):
                    self.target("4", f"peak RSS growth {f_n(ns[0])} → {f_n(ns[-1])}: {label}",
                                "≤ +50 MB", f"{round(growth) + 0:+d} MB", growth <= 50)
            rows.append((label, *[("—" if v is None else f"{v:.0f} MB") for v in vals],
                         "—" if growth is None else f"{round(growth) + 0:+d} MB", f"{setup[0]:.0f} MB"))
        self.w("## 4. Memory", "",
               "Peak resident set size (`ru_maxrss`) of the worker process that ran the "
               "operation, one fresh process per run (median of the runs). *Setup* is the "
               "process's resident set once Python and Django are loaded, before the "
               "operation starts.", "")
        self.table(["operation", *[f"{f_n(n)} tx" for n in ns],
                    f"growth {f_n(ns[0])} → {f_n(ns[-1])}" if len(ns) > 1 else "growth",
                    "setup"], rows)

    def raw(self):
        x = self.r.get("raw")
        if not x:
            return
        n = x["records"]
        ub, fb = x["uncompressed_bytes"], x["file_bytes"]
        self.w("## 5. Raw format", "",
               f"{n:,} records ({ub / MB:.1f} MB packed, {fb / MB:.1f} MB sealed) in one "
               "bundle, against this machine's limit for the same work measured in the same "
               "process: packing the same records with the same msgpack codec (its typed "
               "values included), one zstd compression at the same level, ChaCha20-Poly1305 "
               "over 64 KiB chunks, and nothing else (no container, age header, manifest, "
               "signature, SHA-256, bounds checks or file I/O). Opening is the reverse (decrypt, "
               "decompress, unpack every record). For verify the limit is SHA-256 of the file's "
               "bytes; verify also checks the layout and the Ed25519 signature. MB/s are of "
               "packed records for seal and open and of the file for verify.", "")
        rows = []
        for op in ("seal", "open", "verify"):
            ours, lim = med(x[op]), med(x["limit_" + op])
            nbytes = fb if op == "verify" else ub
            share = lim / ours
            rows.append((op, f"{ours:.3f} s", f_n(n / ours) if op != "verify" else "—",
                         f"{nbytes / MB / ours:.0f}", f"{lim:.3f} s", f"{nbytes / MB / lim:.0f}",
                         f"{share:.0%}"))
            self.target("5", f"`{op}` throughput vs the machine's limit", "≥ 60%",
                        f"{share:.0%}", share >= 0.6)
        self.table(["operation", "bundlekit", "records/s", "MB/s", "limit", "limit MB/s",
                    "share of limit"], rows)

    def scale(self):
        x = self.r.get("scale")
        if not x:
            return
        total = x["records"]
        self.w("## 6. Scale-out", "",
               f"{x['senders']} senders, each a chain of {x['bundles_per_sender']} bundles of "
               f"{x['per_bundle']:,} records ({total:,} in all), imported into one PostgreSQL "
               "database by 1, 2 and 4 importer processes started together; each process takes "
               "whole senders (their chains apply in order). Wall time from the first start to "
               "the last finish. PostgreSQL runs on the same machine and shares its cores.", "")
        rows = []
        base = med(x["runs"].get(1) or x["runs"].get("1"))
        for k, walls in sorted(x["runs"].items(), key=lambda kv: int(kv[0])):
            m = med(walls)
            rows.append((k, f_s(m), f_n(total / m), f_x(base / m), f_reps(walls)))
        self.table(["importers", "wall time", "records/s", "speed-up", "reps (s)"], rows)
        self.target("6", "scale-out, 4 importers vs 1", "(reported)",
                    f_x(base / med(x["runs"].get(4) or x["runs"].get("4"))), None)

    def method(self):
        o = self.r["options"]
        sizes = [int(n) for n in self.r["sizes"]]
        self.w(
            "## How this was measured", "",
            "- **Data set** (bench/data.py): families of one participant (UUID primary key, "
            "names, an address, a national id), 3 visits (autoincrement key, so references to "
            "a visit travel by natural key: visit code plus the participant's key) and 2 "
            "specimen requisitions per visit (UUID key, two decimals, datetimes, a free-text "
            "comment of 0-30 words); 10 objects and 10 insert transactions per family. The site "
            "database is filled in bulk with the adapter's own `to_record` and packing (as "
            "capture writes them; capture itself is measured in section 1).",
            "- **Processes**: every operation runs in a fresh Python process; the time is of "
            "the operation alone (after Django is set up), the same way for bundlekit and for "
            "Django's commands, which run through `call_command`. The site database is "
            "SQLite (a field laptop); servers are SQLite or PostgreSQL on this machine "
            "(`synchronous` and every other setting at its default).",
        )
        if any(n > o["baseline_max"] for n in sizes):
            measured = {int(n): s for n, s in self.r["sizes"].items() if s.get("dumpdata")}
            base = max(measured, default=None)
            big = ", ".join(f"{n:,}" for n in sorted(sizes) if n > o["baseline_max"])
            if base:
                s = measured[base]
                top = max(sizes)
                per = []
                for key, label in (("dumpdata", "dumpdata"), ("loaddata_sqlite", "loaddata on SQLite"),
                                   ("loaddata_postgres", "loaddata on PostgreSQL")):
                    if s.get(key):
                        t = med(secs(s[key]))
                        per.append(f"{label} {t:.0f} s at {base:,} (linear extrapolation to "
                                   f"{top:,}: {t * top / base / 60:.0f} min, not measured)")
                self.w(
                    f"- **How the baselines above {base:,} were handled**: dumpdata and loaddata "
                    f"were **not run** at {big} transactions, to keep `make bench` within its "
                    f"time budget with {o['reps']} repetitions. Measured here: {'; '.join(per)}. "
                    f"No ratio is claimed at {big}: the speed targets are judged where both sides "
                    "were measured; at the larger size only bundlekit's own time and memory are "
                    "reported (loaddata also reads the whole fixture into memory, so its memory "
                    "grows with it: see section 4).",
                )
        if not o.get("pg_big") and any(n > o["baseline_max"] for n in sizes):
            self.w(f"- Above {o['baseline_max']:,} transactions the import runs on SQLite only "
                   "(time budget; `--pg-big` adds PostgreSQL).")
        if o.get("big_reps", 1) < o["reps"] and any(n > o["baseline_max"] for n in sizes):
            self.w(f"- Above {o['baseline_max']:,} transactions each bundlekit measurement ran "
                   f"{o['big_reps']} time(s) (time budget).")
        self.w(
            "- **Checks**: each run checks its own result (all transactions exported and "
            "applied, none failed; the imported rows compared with the site's, above), so a "
            "fast wrong answer cannot pass.",
            "- **Ratios** are what to compare across machines: both sides ran on the same "
            "machine, in the same run, under the same load.",
        )


def write_report(results: dict, path) -> None:
    text = Report(results).build()
    Path(path).write_text(text)
