"""Write docs/BENCHMARKS.md from one run's results (bench/run.py).

Every number printed here was measured in that run; the prose around the
tables only explains how, and says which targets do not hold.  Nothing in this
file is edited by hand.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import attachments

MB = 1e6
SERVER_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB"}
#: A peak resident set counts as flat when it grows by at most this much.
FLAT_MB = 20


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


def f_mb(x):
    return f"{x / MB:.2f} MB" if x < 10 * MB else f"{x / MB:.1f} MB"


def ok(flag):
    return "—" if flag is None else ("**yes**" if flag else "**no**")


def by_size(d: dict):
    return sorted(((int(n), s) for n, s in d.items()), key=lambda kv: kv[0])


class Report:
    def __init__(self, r: dict):
        self.r = r
        self.lines: list[str] = []
        self.summary: list[tuple] = []
        self.misses: list[str] = []

    def w(self, *lines):
        self.lines.extend(lines)

    @staticmethod
    def sharing(cpu: dict | None) -> str:
        """What the run's CPU accounting says about other work on the machine."""
        if not cpu:
            return ("Whether other work ran on the machine during the run was not measured "
                    "(no /proc here).")
        seen = (f"Of the {cpu['busy_s']:.0f} CPU-seconds the machine was busy during the run, "
                f"this run's own processes used {cpu['run_s']:.0f}, the database servers "
                f"{cpu['servers_s']:.0f} and everything else {cpu['other_s']:.0f} "
                f"({cpu['other_share']:.0%}).")
        if cpu["other_share"] < 0.05:
            return seen + " The machine was otherwise idle."
        return (seen + " Other work shared the cores, so absolute times are slower than on an "
                "idle machine; both sides of every ratio ran in the same run, one after the "
                "other.")

    def table(self, head, rows):
        self.w("| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|")
        for row in rows:
            self.w("| " + " | ".join(str(c) for c in row) + " |")
        self.w("")

    def target(self, num, what, target, measured, holds, why=None):
        self.summary.append((num, what, target, measured, ok(holds)))
        if holds is False:
            self.misses.append(f"- **{what}**: {measured} against {target}. {why or ''}".rstrip())

    # ------------------------------------------------------------------

    def build(self) -> str:
        r = self.r
        self.import_entry()
        self.import_grouped()
        self.export()
        self.capture()
        self.memory()
        self.raw()
        self.lines.extend(attachments.report_lines(r.get("attachments")))
        self.scale()
        body, self.lines = self.lines, []
        self.method()
        method, self.lines = self.lines, []
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
            f"PostgreSQL {m['postgres']}, MariaDB {m.get('mysql', 'not available')} (through "
            f"PyMySQL), msgpack {m['msgpack']}, zstandard {m['zstandard']}, "
            f"cryptography {m['cryptography']}",
            f"- Load average (1/5/15 min) before the run: {lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f}; "
            f"after: {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}; highest 1-minute load seen between "
            f"sections: {r.get('load_max_1min', la[0]):.2f}. {self.sharing(r.get('cpu_share'))}",
            "- Figures are medians of the repetitions listed beside them; ratios are ratios of "
            "medians.",
            "",
            "## Targets",
            "",
        )
        self.table(["#", "Comparison", "Target", "Measured", "Holds"],
                   sorted(self.summary, key=lambda row: int(row[0])))
        if self.misses:
            self.w("### Targets that do not hold, and why", "", *self.misses, "")
        else:
            self.w("Every target above holds in this run.", "")
        self.lines.extend(body)
        self.lines.extend(method)
        return "\n".join(self.lines).rstrip() + "\n"

    # ------------------------------------------------------------------ import

    def _import_rows(self, res: dict, n: int):
        rows, ratios = [], {}
        for backend in ("sqlite", "postgres", "mysql"):
            runs = res.get(f"import_{backend}")
            if not runs:
                continue
            i = med(secs(runs))
            ld_runs = res.get(f"loaddata_{backend}")
            ld = med(secs(ld_runs)) if ld_runs else None
            ratio = ld / i if ld else None
            ratios[backend] = ratio
            rows.append((SERVER_NAMES[backend], f_n(n), f_s(i), f_n(n / i), f_s(ld), f_x(ratio),
                         f"{med(secs(runs, 'maxrss_mb')):.0f} MB",
                         f"{med(secs(ld_runs, 'maxrss_mb')):.0f} MB" if ld_runs else "—",
                         f_reps(secs(runs)), f_reps(secs(ld_runs)) if ld_runs else "not run"))
        return rows, ratios

    def _startup(self) -> str:
        s = self.r.get("startup")
        return f"{med(s):.2f} s here" if s else "about a second"

    def _floor(self, res: dict, n: int, backend: str) -> dict | None:
        """What the import cannot skip on ``backend`` (worker.py's ``floor``, after
        the first repetition), and what that leaves for deciding at 10x loaddata."""
        runs, ld_runs = res.get(f"import_{backend}"), res.get(f"loaddata_{backend}")
        f = runs[0].get("floor") if runs else None
        if not f:
            return None
        start = med(self.r["startup"]) if self.r.get("startup") else 0.0
        fixed = start + f["read_seconds"] + f["write_seconds"]
        allowed = med(secs(ld_runs)) / 10 if ld_runs else None
        return {"read": f["read_seconds"], "write": f["write_seconds"], "start": start,
                "fixed": fixed, "rows": sum(f["rows"].values()), "allowed": allowed,
                "left_us": (allowed - fixed) / n * 1e6 if allowed else None,
                "now_us": (med(secs(runs)) - fixed) / n * 1e6}

    def _floor_why(self, res: dict, n: int, backend: str) -> str:
        x = self._floor(res, n, backend)
        if not x or x["allowed"] is None:
            return ""
        what = (f" Measured apart (section 1), start-up, reading the bundles and writing only "
                f"the {x['rows']:,} rows the import leaves take {x['fixed']:.1f} s")
        decides = ("everything the import decides (deduplication, natural keys and references, "
                   "the stale rule, each outcome)")
        if x["left_us"] <= 0:
            return (f"{what}, more than the {x['allowed']:.1f} s that 10× allows: nothing is "
                    f"left for {decides}, where it spends {x['now_us']:.0f} µs per transaction.")
        return (f"{what} of the {x['allowed']:.1f} s that 10× allows: that leaves "
                f"{x['left_us']:.0f} µs per transaction for {decides}, where it spends "
                f"{x['now_us']:.0f} µs now.")

    def _floor_table(self, res: dict, n: int) -> None:
        rows, written = [], 0
        for backend in ("sqlite", "postgres", "mysql"):
            x = self._floor(res, n, backend)
            if not x:
                continue
            written = x["rows"]
            how = "COPY" if backend == "postgres" else "executemany"
            rows.append((SERVER_NAMES[backend], f_s(x["start"]), f_s(x["read"]),
                         f"{f_s(x['write'])} ({how})", f_s(x["fixed"]),
                         f_s(x["allowed"]) if x["allowed"] else "—",
                         "—" if x["left_us"] is None else "none" if x["left_us"] <= 0
                         else f"{x['left_us']:.0f} µs",
                         f"{x['now_us']:.0f} µs"))
        if not rows:
            return
        self.w("What an import cannot skip, measured apart after the first repetition "
               "(worker.py's `floor`): start-up (`manage.py check`), reading the bundles "
               "(verify, decrypt, decompress and unpack every record, in one process), and "
               f"writing only the rows the import left ({written:,}: the ledger's row for "
               "each transaction, the clinic tables and their M2M links) into an empty "
               "database in one transaction, by the fastest plain way each database has, "
               "with nothing decided: every row known in advance, no lookup, no check. What "
               "is left of 10× loaddata, per transaction, is what the import may spend on "
               "deciding; the last column is what it spends now.", "")
        self.table(["server", "start-up", "reading the bundles", "writing the rows it left",
                    "together", "10× loaddata allows", "left per transaction",
                    "the import spends now"], rows)

    def _checks(self, res: dict):
        checks = []
        for backend in ("sqlite", "postgres", "mysql"):
            runs = res.get(f"import_{backend}")
            if runs:
                checks.append((SERVER_NAMES[backend], "bundle import",
                               "identical" if runs[0].get("digest_matches_site") else "DIFFERENT"))
            ld = res.get(f"loaddata_{backend}")
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
                checks.append((SERVER_NAMES[backend], "loaddata", verdict))
        return checks

    HEAD = ["server", "transactions", "`bundle import`", "tx/s", "`loaddata`",
            "import vs loaddata", "peak RSS import", "peak RSS loaddata", "import reps (s)",
            "loaddata reps (s)"]

    def import_entry(self):
        for n, res in by_size(self.r.get("entry", {})):
            gen = res["generate"]
            counts = res["site_digest"]["counts"]
            objects = sum(counts.values())
            self.w(
                "## 1. Import of entry-order data (the speed target)", "",
                f"{n:,} transactions captured for real on a SQLite site, one `save()`, M2M "
                f"`set()` or `delete()` at a time in the order a clinic enters forms "
                f"(bench/entry.py on the edc-style schema bench/clinic; {gen['participants']:,} "
                f"participants: {gen['save']:,} first saves, {gen['update']:,} corrections, "
                f"{gen['set']:,} panel sets, {gen['delete']:,} deletes; capturing them took "
                f"{gen['seconds']:.0f} s). The server ends with {objects:,} objects "
                f"({', '.join(f'{v:,} {k}' for k, v in counts.items())}).", "",
                "Both sides run as a user runs them, as whole processes (interpreter and Django "
                "start-up included), into an empty migrated database: `manage.py bundle import "
                "FOLDER` (verify signatures and digests, deduplicate, keep the ledger and the "
                "chain, apply) against `manage.py loaddata` of `dumpdata --natural-foreign` of "
                "the same site.", "")
            rows, ratios = self._import_rows(res, n)
            self.table(self.HEAD, rows)
            self._floor_table(res, n)
            for backend, ratio in ratios.items():
                if ratio is None:
                    continue
                i = med(secs(res[f"import_{backend}"]))
                self.target("1", f"import vs loaddata, entry order ({SERVER_NAMES[backend]}, "
                                 f"{f_n(n)} tx)", "≥ 10× faster", f_x(ratio), ratio >= 10,
                            f"`bundle import` applied {n / i:,.0f} transactions/s; loaddata "
                            f"needs {med(secs(res[f'loaddata_{backend}'])):.1f} s for the "
                            f"{objects:,} final objects, so 10× would take the import below "
                            f"{med(secs(res[f'loaddata_{backend}'])) / 10:.1f} s for the "
                            f"whole process (a process that only starts Django and runs "
                            f"`manage.py check` takes {self._startup()}). The import "
                            "applies every transaction (corrections, panel sets and deletes "
                            "included: "
                            f"{n / objects:.2f} transactions per final object), each checked, "
                            "deduplicated and written to the ledger; loaddata writes each final "
                            "object once." + self._floor_why(res, n, backend))
            self.w("After the first repetition, every row of the clinic models is compared "
                   "with the site's (all columns, references and M2M sets by natural key):", "")
            self.table(["server", "loaded by", "rows compared with the site"],
                       self._checks(res))

    def import_grouped(self):
        for n, res in by_size(self.r.get("grouped", {})):
            self.w("## 2. Import of model-grouped data (for comparison)", "",
                   f"The earlier data set, kept to compare with: {n:,} insert transactions "
                   "filled in bulk model by model (bench/data.py on bench/benchapp: a "
                   "participant, 3 visits, 6 requisitions per family; no updates, no M2M), "
                   "so the apply sees long runs of one model. Same commands as above, whole "
                   "processes.", "")
            rows, ratios = self._import_rows(res, n)
            self.table(self.HEAD, rows)
            for backend, ratio in ratios.items():
                if ratio is not None:
                    self.target("2", f"import vs loaddata, model grouped "
                                     f"({SERVER_NAMES[backend]}, {f_n(n)} tx)", "(reported)",
                                f_x(ratio), None)
            self.table(["server", "loaded by", "rows compared with the site"],
                       self._checks(res))

    # ------------------------------------------------------------------ export

    def export(self):
        rows = []
        sets = [("entry order", n, s) for n, s in by_size(self.r.get("entry", {}))]
        sets += [("model grouped", n, s) for n, s in by_size(self.r.get("grouped", {}))]
        if not sets:
            return
        for name, n, s in sets:
            e = med(secs(s["export"]))
            nbytes = s["export"][0]["bytes"]
            d = med(secs(s["dumpdata"]))
            g = s["gzip_bytes"]
            rows.append((name, f_n(n), f_s(e), f_n(n / e), f_s(d), f_x(d / e), f_mb(nbytes),
                         f_mb(s["dumpdata"][0]["bytes"]), f_mb(g), f"{nbytes / g:.2f}",
                         f_reps(secs(s["export"])), f_reps(secs(s["dumpdata"]))))
            self.target("7", f"export vs dumpdata, {name} ({f_n(n)} tx)", "≥ 20× faster",
                        f_x(d / e), d / e >= 20,
                        f"Export took {e:.2f} s ({n / e:,.0f} transactions/s) and dumpdata "
                        f"{d:.2f} s; a bundle's fixed costs (the chain lock, the age header, "
                        "the signature, writing the file durably) weigh more the fewer the "
                        "transactions.")
            why = (f"The bundle carries {n:,} transactions, each record with an envelope the "
                   "JSON has not (a transaction id, capture time, producer, natural key, "
                   "action), compressed by zstd -3, against the JSON's fields compressed by "
                   "gzip -6.")
            b = s.get("sizes_breakdown")
            if b:
                why = self._size_why(n, s, b, e, d)
            self.target("5", f"bundle size vs gzip -6 of dumpdata JSON, {name} ({f_n(n)} tx)",
                        "≤ 1.0×", f"{nbytes / g:.2f}×", nbytes / g <= 1.0, why)
        self.w("## 3. Export and bundle size", "",
               "`export_pending()` (what `bundle export` runs before it copies the files to the "
               "stick) of the site's pending transactions into bundles, against `dumpdata "
               "--natural-foreign` of the same objects to a file (both in a fresh process, timed "
               "after Django is set up). Size: all bundle files against `gzip -6` of the "
               "dumpdata JSON.", "")
        self.table(["data set", "transactions", "bundle export", "tx/s", "dumpdata",
                    "dumpdata / export", "bundles", "JSON", "JSON gzip -6", "bundles / gzip",
                    "export reps (s)", "dumpdata reps (s)"], rows)
        for name, n, s in sets:
            b = s.get("sizes_breakdown")
            if not b:
                continue
            g = s["gzip_bytes"]
            objects = b.get("objects") or sum(s["site_digest"]["counts"].values())
            self.w(f"Where a bundle's bytes go ({name}, {n:,} transactions for {objects:,} "
                   f"objects): its records ({b['packed'] / MB:.1f} MB packed) compressed again "
                   "here, as the writer streams them, in variants: at other zstd levels, "
                   "without parts of the record envelope (what a record says besides the "
                   "object's fields), and only the last record of each object, which is what "
                   "dumpdata writes (each object once, its final fields and M2M, no deleted "
                   "object). CPU is the compression's own time in this run.", "")
            cpu = b.get("cpu_seconds", {})
            rows = [(k, f_mb(v), f"{v / g:.2f}", f"{cpu[k]:.2f} s" if k in cpu else "—")
                    for k, v in b["variants"].items()]
            self.table(["compressed", "size", "/ gzip -6 JSON", "CPU"], rows)

    def _size_why(self, n: int, s: dict, b: dict, e: float, d: float) -> str:
        """Why the bundle is larger than the gzip of dumpdata's JSON, from the breakdown."""
        v, cpu, g = b["variants"], b.get("cpu_seconds", {}), s["gzip_bytes"]
        objects = b.get("objects") or sum(s["site_digest"]["counts"].values())
        if _DUMPDATA_CONTENT not in v:  # a run from before the breakdown said more
            return (f"The bundle carries {n:,} transactions for {objects:,} objects, each "
                    "record with an envelope the JSON has not. Without the envelope the "
                    f"records compress to {v[_NO_ENVELOPE] / g:.2f}× the gzip of the JSON, and "
                    f"at zstd -19 to {v[_Z19] / g:.2f}×.")
        same = v[_DUMPDATA_CONTENT] / g
        text = (f"What dumpdata holds (each object's last record: model, pk, fields, M2M) "
                f"compresses to {same:.2f}× the gzip of its JSON at the bundle's zstd -3"
                + (", so neither the format nor its codec is what makes a bundle larger; "
                   if same <= 1.0 else "; ")
                + f"the bundle is a transaction log: {n:,} records for {objects:,} "
                "objects (each correction, panel set and delete is a record of its own, with "
                "the whole object, applied in order on the server), each with an envelope the "
                "JSON has not (transaction id, capture time, producer, natural key, action). "
                f"Each object's last record with its envelope takes {v[_LAST] / g:.2f}×, all "
                f"{n:,} records {v[_Z3] / g:.2f}× (section 3's breakdown).")
        if _Z7 in v and _Z3 in cpu and _Z7 in cpu:
            text += (f" A slower zstd does not close the gap within the export target: -7 "
                     f"gives {v[_Z7] / g:.2f}× for {cpu[_Z7]:.2f} s of compression instead of "
                     f"{cpu[_Z3]:.2f} s, -19 {v[_Z19] / g:.2f}× for {cpu[_Z19]:.1f} s, while "
                     f"export took {e:.2f} s and 20× dumpdata allows {d / 20:.2f} s.")
        if _RECODED3 in v:
            text += (f" Nor does a denser record encoding a new format version could carry "
                     "(ids and times as differences, fields by position, the producer once): "
                     f"{v[_RECODED3] / g:.2f}× at zstd -3"
                     + (f", {v[_RECODED7] / g:.2f}× at -7" if _RECODED7 in v else "") + ".")
        text += (" Reaching 1.0× needs fewer or smaller records (the adapter's record design: "
                 "the envelope says who changed what when, which the server's ledger, its "
                 "stale-change rule and its receipts need), not a different file format.")
        return text

    # ------------------------------------------------------------------ capture

    def capture(self):
        c = self.r.get("capture")
        if not c:
            return
        st = c.get("steps", {})
        self.w("## 4. Capture overhead", "",
               "The entry-order workload (bench/entry.py) on the clinic models, in transactions "
               "of 1000 steps: the synced models (every step also writes an "
               "`OutgoingTransaction`) against their plain twins (same columns, no "
               "`SyncModelMixin`), each in a fresh process and database. "
               f"The steps: {st.get('save', 0):,} first saves, {st.get('update', 0):,} "
               f"corrections, {st.get('set', 0):,} M2M sets, {st.get('delete', 0):,} deletes.",
               "")
        rows = []
        limits = {"sqlite": 1.5, "postgres": 2.0}
        for backend in ("sqlite", "postgres"):
            x = c.get(backend)
            if not x:
                continue
            p, s = med(x["plain"]), med(x["synced"])
            cpu = (med(x["cpu_synced"]) / med(x["cpu_plain"])) if x.get("cpu_plain") else None
            rows.append((SERVER_NAMES[backend], f_n(x["n"]), f_s(p), f_s(s), f_x(x["ratio"]),
                         f_x(cpu), f_n(x["n"] / s), f_reps(x["plain"]), f_reps(x["synced"])))
            lim = limits[backend]
            self.target("4", f"capture overhead ({SERVER_NAMES[backend]})", f"≤ {lim}×",
                        f_x(x["ratio"]), x["ratio"] <= lim,
                        f"Each captured step costs {(s - p) / x['n'] * 1e3:.2f} ms more than "
                        f"the plain one ({p / x['n'] * 1e3:.2f} ms). Capture builds the record "
                        "(every field and the natural key; after an M2M change it reads the "
                        "set back), packs it and inserts it as a second row, with its indexes, "
                        "in the same database transaction; and once an `m2m_changed` receiver "
                        "exists, Django reads the existing links before each M2M add instead "
                        "of one insert that ignores conflicts. The insert cannot move to "
                        "`on_commit` (a change would be lost if the process died right after "
                        "its commit) and Django has no hook just before the commit to batch "
                        "it, so each change pays for its own insert.")
        self.table(["server", "steps", "plain", "synced", "synced / plain",
                    "on CPU time (this process)", "synced steps/s", "plain reps (s)",
                    "synced reps (s)"], rows)
        self.w("Times are wall-clock, and the target is judged on them. The CPU-time ratio "
               "counts the Python process only: on SQLite that is nearly all the work, on "
               "PostgreSQL the server's own work is left out.", "")

    # ------------------------------------------------------------------ memory

    def memory(self):
        mem = by_size(self.r.get("memory", {}))
        if len(mem) < 2:
            return
        (n0, small), (n1, big) = mem[0], mem[-1]
        rows = []
        for key, label in (("export", "bundle export (in-process, SQLite)"),
                           ("import_sqlite", "`bundle import` (whole process, SQLite)")):
            a, b = med(secs(small[key], "maxrss_mb")), med(secs(big[key], "maxrss_mb"))
            growth = b - a
            rows.append((label, f"{a:.0f} MB", f"{b:.0f} MB", f"{round(growth) + 0:+d} MB",
                         f_s(med(secs(small[key]))), f_s(med(secs(big[key])))))
            self.target("3", f"peak RSS {f_n(n0)} → {f_n(n1)} tx: {label}",
                        f"flat (≤ +{FLAT_MB} MB)", f"{round(growth) + 0:+d} MB",
                        growth <= FLAT_MB, "")
        self.w("## 5. Memory", "",
               "Peak resident set size of the process that ran the operation (`ru_maxrss`; for "
               "`bundle import` the whole command's process), one fresh process per run, at "
               f"{n0:,} and at {n1:,} transactions of the model-grouped data set on SQLite, one "
               f"run each (filled in bulk: capturing {n1:,} saves one by one would not fit the "
               "time budget of `make bench`; the speed comparisons are at the smaller sizes "
               "above).", "")
        self.table(["operation", f"{f_n(n0)} tx", f"{f_n(n1)} tx", "growth",
                    f"time at {f_n(n0)}", f"time at {f_n(n1)}"], rows)
        sets = [("entry order", s) for _, s in by_size(self.r.get("entry", {}))] + \
               [("model grouped", s) for _, s in by_size(self.r.get("grouped", {}))]
        rows = []
        for name, s in sets:
            for backend in ("sqlite", "postgres", "mysql"):
                if s.get(f"loaddata_{backend}"):
                    rows.append((name, SERVER_NAMES[backend],
                                 f"{med(secs(s[f'import_{backend}'], 'maxrss_mb')):.0f} MB",
                                 f"{med(secs(s[f'loaddata_{backend}'], 'maxrss_mb')):.0f} MB"))
        if rows:
            self.w("Peak RSS of the whole processes in sections 1 and 2 (loaddata reads the "
                   "whole fixture, so its memory grows with the fixture):", "")
            self.table(["data set", "server", "`bundle import`", "`loaddata`"], rows)

    # ------------------------------------------------------------------ raw

    def raw(self):
        x = self.r.get("raw")
        if not x:
            return
        n = x["records"]
        ub, fb, jb = x["uncompressed_bytes"], x["file_bytes"], x.get("json_bytes")
        self.w("## 6. Raw format", "",
               f"{n:,} records ({ub / MB:.1f} MB packed, {fb / MB:.1f} MB sealed) in one "
               "bundle, against this machine's limit for the same work measured in the same "
               "process: packing the same records with the same msgpack codec (its typed "
               "values included), one zstd compression at the same level, ChaCha20-Poly1305 "
               "over 64 KiB chunks, and nothing else (no framing: no container, age header, "
               "manifest, signature, SHA-256, bounds checks or file I/O). Opening is the "
               "reverse (decrypt, decompress, unpack every record). For verify the limit is "
               "SHA-256 of the file's bytes; verify also checks the layout and the Ed25519 "
               "signature. "
               + (f"*From JSON lines* starts from the same records as JSON lines "
                  f"({jb / MB:.1f} MB, the documented JSON form): `bundle seal` is the command "
                  "as a user runs it (a whole process reading the file on stdin, start-up "
                  "included), the library row is `seal()` over the same line parser in one "
                  "process, and their limit adds parsing each line to the limit above "
                  "(`json.loads` and the typed values, straight to their ext data as `bundle "
                  "seal` does: records.packable_from_jsonable). " if jb else "")
               + "MB/s are of packed records, of the file for verify. Times are wall-clock; "
               "the last column compares CPU time (of the process and, for the command, its "
               "child), which the machine's load disturbs less.", "")
        rows = []
        ops = [("seal", "seal", "seal (records)"), ("open", "open", "open"),
               ("verify", "verify", "verify")]
        if "seal_cli" in x:
            ops += [("seal_cli", "seal_json", "`bundle seal` from JSON lines (command)"),
                    ("seal_json", "seal_json", "`seal()` from JSON lines (library)")]
        for op, lim_key, label in ops:
            ours, lim = med(x[op]), med(x["limit_" + lim_key])
            nbytes = fb if op == "verify" else ub
            share = lim / ours
            cpu = x.get("cpu_" + op) and med(x["cpu_limit_" + lim_key]) / med(x["cpu_" + op])
            rows.append((label, f"{ours:.3f} s", f_n(n / ours) if op != "verify" else "—",
                         f"{nbytes / MB / ours:.0f}", f"{lim:.3f} s", f"{nbytes / MB / lim:.0f}",
                         f"{share:.0%}", f"{cpu:.0%}" if cpu else "—"))
            if op == "seal_json":
                continue  # reported; the target is the command's
            if op in ("open", "verify"):
                why = ("The gap to the limit is what FORMAT.md asks of a reader and the limit "
                       "leaves out: reading the file, its layout, the manifest's Ed25519 "
                       "signature, the payload's SHA-256 twice (§9.1: before anything is "
                       "decrypted, and again over the bytes decrypted, since the file may "
                       "have changed in between), and every record found by msgpack's skip "
                       "and bounds-checked (one more pass over its bytes) before it is "
                       "decoded (§5.3).")
            else:
                why = ("The gap to the limit is what FORMAT.md asks of a writer and the limit "
                       "leaves out: every record's bounds (§5.3: a pass over its bytes) and "
                       "its share of the size limit, the payload's SHA-256, zstd fed as a "
                       "stream in 128 KiB batches, the manifest and its Ed25519 signature, "
                       "the age header, writing the file, fsync and rename"
                       + (", and for the command the interpreter's start-up and reading stdin."
                          if op == "seal_cli" else "."))
            if cpu and cpu >= 0.6:
                why += (f" On CPU time the share is {cpu:.0%}: the rest of the wall-clock gap "
                        "is waiting for a core on this loaded machine.")
            self.target("6", f"{label} vs the machine's limit", "≥ 60%", f"{share:.0%}",
                        share >= 0.6, why)
        self.table(["operation", "bundlekit", "records/s", "MB/s", "limit", "limit MB/s",
                    "share of limit", "share on CPU time"], rows)

    # ------------------------------------------------------------------ scale

    def scale(self):
        x = self.r.get("scale")
        if not x:
            return
        total = x["records"]
        self.w("## 7. Scale-out", "",
               f"{x['senders']} senders, each a chain of {x['bundles_per_sender']} bundles of "
               f"{x['per_bundle']:,} records ({total:,} in all), imported into one PostgreSQL "
               "database by 1, 2 and 4 importer processes started together; each process takes "
               "whole senders (their chains apply in order). Wall time from the first start to "
               f"the last finish. PostgreSQL runs on the same {self.r['machine']['cores']} "
               "cores and shares them with the importers (the header says how much other "
               "work the machine did during the run).", "")
        rows = []
        base = med(x["runs"].get(1) or x["runs"].get("1"))
        for k, walls in sorted(x["runs"].items(), key=lambda kv: int(kv[0])):
            m = med(walls)
            rows.append((k, f_s(m), f_n(total / m), f_x(base / m), f_reps(walls)))
        self.table(["importers", "wall time", "records/s", "speed-up", "reps (s)"], rows)
        for k in (2, 4):
            walls = x["runs"].get(k) or x["runs"].get(str(k))
            if walls:
                self.target("8", f"scale-out, {k} importers vs 1 (PostgreSQL)", "(reported)",
                            f_x(base / med(walls)), None)

    # ------------------------------------------------------------------ method

    def method(self):
        o = self.r["options"]
        self.w(
            "## How this was measured", "",
            "- **Entry-order data** (bench/entry.py, bench/clinic): a panel list, then per "
            "participant a consent, and at each of 3 visits (enrolment, about 28 and 56 days "
            "later) the visit, its vital signs and 2 requisitions, each saved and then its "
            "panels set; 30% of vital signs corrected later, 10% of consents edited, 5% of "
            "requisitions deleted. Participants enrol at an even pace over a year and steps "
            "run in time order, so participants' visits interleave. Keys: UUID (consent, "
            "requisition) and autoincrement (panel, visit, vital signs: these travel by "
            "natural key); the vital signs' manager finds them across the foreign key to the "
            "visit (`get(subject_visit__subject_identifier=..., subject_visit__visit_code=..."
            ")`, as edc's CRF manager does); each requisition's panels are one M2M set.",
            "- **Model-grouped data** (bench/data.py, bench/benchapp): families of a "
            "participant (UUID key), 3 visits (autoincrement key, natural key through the "
            "participant) and 6 requisitions (UUID key), 10 insert transactions per family, "
            "written in bulk model by model with the adapter's own `to_record` and packing.",
            "- **Processes**: `bundle import` and `loaddata` run as whole processes "
            "(`python -m django ...` with the benchmark settings, which is what `manage.py` "
            "runs), timed from start to exit. Export, dumpdata, capture and the raw format run "
            "in a fresh worker process each (bench/worker.py), timed after Django is set up. "
            "The site is SQLite (a field laptop); servers are SQLite, PostgreSQL and MariaDB "
            "on this machine, every setting at its default.",
            f"- **Repetitions**: capture, export and the raw format {o['reps']}; each "
            f"entry-order import {o['import_reps']}; each model-grouped import 1; dumpdata and "
            f"each loaddata {o['baseline_reps']} (they are the slow side; more would not fit "
            f"the time budget); scale-out {o['scale_reps']} per importer count.",
            "- **Largest size**: the memory check (section 5) runs the model-grouped set, export "
            "and import on SQLite, one run each, without dumpdata/loaddata: no speed ratio is "
            "claimed at that size.",
            *self._budget(),
            "- **Checks**: each run checks its own result (all transactions exported, all "
            "applied and none failed; the imported rows compared with the site's), so a fast "
            "wrong answer cannot pass.",
            "- **What an import cannot skip** (section 1, worker.py's `floor`): after the "
            "first entry-order import on each server, its bundles are read again in one "
            "process, and the rows it left are read out (untimed) and written again into a "
            "fresh database, every row known in advance: COPY on PostgreSQL (what the import "
            "uses for its ledger there), the driver's `executemany` on SQLite and MariaDB "
            "(multi-row INSERTs with PyMySQL, as the import writes). Its few `ImportedBundle` "
            "rows are copied first, untimed.",
            "- **Ratios** are what to compare across machines: both sides ran on the same "
            "machine, in the same run, under the same load.",
        )


    def _budget(self) -> list[str]:
        b = self.r.get("budget") or {}
        if not b.get("minutes"):
            return []
        notes = b.get("notes") or []
        line = (f"- **Time budget**: {b['minutes']:g} minutes for the whole run on this "
                "machine. The entry-order comparison runs first, sized by a small probe of the "
                "same comparison (its figures are reported only when nothing larger fits) to leave time for capture, the "
                "raw format and scale-out; the memory check and the model-grouped comparison "
                "run last, sized from the rates measured earlier in the run to what is left.")
        if notes:
            line += " In this run: " + "; ".join(notes) + "."
        else:
            line += " In this run everything ran at its full size."
        return [line]


_NO_ENVELOPE = "without id, ts, producer, natural_key, action, m2m"
_Z3 = "records, zstd -3 (as sealed)"
_Z7 = "records, zstd -7"
_Z19 = "records, zstd -19"
_LAST = "each object's last record only"
_RECODED3 = "recoded (ids, times as deltas; fields by position; producer once), zstd -3"
_RECODED7 = "recoded, zstd -7"
_DUMPDATA_CONTENT = "each object's last record: model, pk, fields, m2m (what dumpdata holds)"


def write_report(results: dict, path) -> None:
    text = Report(results).build()
    Path(path).write_text(text)
