#!/usr/bin/env python
"""The field story, end to end, with the real ``bundle`` command.

Two research assistants enter data on offline laptops; their bundles go out on
USB sticks; a driver's middleman laptop checks them on the spot, reads them to
reconcile the specimens in the cool box, and carries the original files to the
community server; the server takes them from its watched inbox folder and writes
receipts; the receipts go back on the sticks and the laptops prune what the server
now holds.  Next day there is a network: laptop-a pushes one more change to the
server over HTTP (``bundle push``) and pulls its receipt back (``bundle pull``).
Then: the same stick again changes nothing, and a tampered copy is refused.  Last,
laptop-b corrects a subject identifier (a renamed natural key: the server renames
its row), its disk is restored from a backup, and ``bundle recover`` lets it go on
after the bundles the server already holds.

Every hop runs the command a person would type, in its own process, on its own
machine's folder (four machines side by side in one folder here)::

    python examples/demo.py                # in a fresh temporary folder
    python examples/demo.py --home DIR     # keep everything in DIR to look at
    python examples/demo.py --json         # the story on stderr, a JSON summary on stdout

Exit status 0 only if every hop did what it should.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "fieldproject"
MANAGE = PROJECT / "manage.py"
LAPTOPS = ("laptop-a", "laptop-b")
ROLES = (*LAPTOPS, "middleman", "server")
STICK = {"laptop-a": "usb-a", "laptop-b": "usb-b"}
DRIVER_STICK = "middleman/to-server"  # FORWARD in the middleman's settings
TOKEN = "field-demo-token"  # the server's REST token in fieldproject/settings.py (demo default)


class Demo:
    def __init__(self, home: Path, say):
        self.home = home
        self.say = say
        self.checks: list[dict] = []
        self.facts: dict = {}

    # ------------------------------------------------------------------ running

    def env(self, role: str) -> dict:
        env = dict(os.environ)
        env.update(
            FIELD_ROLE=role,
            FIELD_HOME=str(self.home / role),
            DJANGO_SETTINGS_MODULE="fieldproject.settings",
            PYTHONPATH=os.pathsep.join(
                [str(PROJECT), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            BUNDLEKIT_NO_PROGRESS="1",
            BUNDLEKIT_REST_TOKEN=TOKEN,  # the server's (its settings read it)
            BUNDLEKIT_TOKEN=TOKEN,  # what `bundle push` / `bundle pull` send
            COLUMNS="110",
        )
        return env

    def command(self, args: list[str]) -> tuple[list, str]:
        """The argv to run and the line a person would type: ``bundle ARGS``, or
        ``python manage.py ...`` when ARGS starts with ``manage.py``."""
        if args[0] == "manage.py":
            return [sys.executable, str(MANAGE), *args[1:]], "python " + " ".join(args)
        return [sys.executable, "-m", "bundlekit", *args], "bundle " + " ".join(args)

    def run_all(
        self,
        steps: list[tuple[str, list[str]]],
        *,
        show: bool = True,
        expect: int | None = 0,
    ) -> list[subprocess.CompletedProcess]:
        """Run ``bundle ARGS`` (or ``python manage.py ...``) as each ROLE, from the demo
        folder. The steps run on different machines, so they run at the same time;
        their output is shown in order."""
        started = []
        for role, args in steps:
            argv, shown = self.command(args)
            proc = subprocess.Popen(
                argv,
                cwd=self.home,
                env=self.env(role),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started.append((role, argv, shown, proc))
        done = []
        for role, argv, shown, proc in started:
            try:
                stdout, stderr = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
            done.append(result)
            failed = expect is not None and result.returncode != expect
            if show or failed:
                self.say(f"  {role}$ {shown}")
                # Settings hold absolute paths; show them relative to the demo folder, as typed.
                text = (stdout + stderr).replace(f"{self.home}{os.sep}", "")
                for line in text.splitlines():
                    self.say(f"      {line}" if line.strip() else "")
            if failed:
                self.check(
                    f"`{shown}` on {role} exits {expect}", False, f"exit {result.returncode}"
                )
        return done

    def run(self, role: str, args: list[str], **kw) -> subprocess.CompletedProcess:
        return self.run_all([(role, args)], **kw)[0]

    def bundle_json(self, roles, args: list[str]) -> list:
        """``bundle ARGS --json`` on each of ROLES, parsed."""
        out = []
        for proc in self.run_all([(r, [*args, "--json"]) for r in roles], show=False):
            try:
                out.append(json.loads(proc.stdout))
            except ValueError:
                self.check(
                    f"`bundle {' '.join(args)} --json` prints JSON", False, proc.stdout[:200]
                )
                out.append({})
        return out

    def clinic(self, *roles: str) -> list[dict]:
        """Every clinic row each of ROLES' databases holds, by natural key."""
        out = []
        steps = [(r, ["manage.py", "specimens", "--json"]) for r in roles]
        for proc in self.run_all(steps, show=False):
            try:
                out.append(json.loads(proc.stdout))
            except ValueError:
                out.append({"participants": [], "visits": [], "requisitions": []})
        return out

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"check": what, "ok": bool(ok), "detail": detail})
        mark = "ok  " if ok else "FAIL"
        self.say(f"  [{mark}] {what}" + (f" ({detail})" if detail and not ok else ""))
        return ok

    def hop(self, title: str, words: str = "") -> None:
        self.say("")
        self.say(f"== {title}")
        if words:
            for line in words.strip().splitlines():
                self.say(f"   {line.strip()}")

    def bundles(self, folder: str) -> list[Path]:
        path = self.home / folder
        return sorted(path.glob("*.bundle")) if path.is_dir() else []

    def copy_files(self, files, to: str) -> list[str]:
        target = self.home / to
        target.mkdir(parents=True, exist_ok=True)
        names = []
        for f in files:
            shutil.copy2(f, target / f.name)
            names.append(f.name)
        return names

    # ------------------------------------------------------------------ the story

    def play(self) -> None:
        for hop in (
            self.keys,
            self.databases,
            self.shift,
            self.export,
            self.middleman,
            self.server,
            self.receipts_back,
            self.over_http,
            self.guarantees,
            self.field_realities,
            self.final_counts,
        ):
            hop()
            if not all(c["ok"] for c in self.checks):
                self.say("")
                self.say("  This hop did not do what it should; the story stops here.")
                return

    def keys(self) -> None:
        self.hop(
            "1. Keys",
            """Each machine makes its own key pair once. The .key never leaves the machine;
            the .pub files are copied to every machine (they are not secret).""",
        )
        self.run_all([(role, ["keygen", role, "--dir", f"{role}/keys"]) for role in ROLES])
        pubs = [self.home / role / "keys" / f"{role}.pub" for role in ROLES]
        for role in ROLES:
            self.copy_files([p for p in pubs if p.parent.parent.name != role], f"{role}/keys")
        self.say("  (copied laptop-a.pub, laptop-b.pub, middleman.pub, server.pub to every keys/)")
        ok = all((self.home / r / "keys" / f"{p.name}").is_file() for r in ROLES for p in pubs)
        self.check("four key pairs, every public key on every machine", ok)

    def databases(self) -> None:
        self.hop("2. Databases", "Each machine has its own SQLite database, migrated once.")
        self.run_all([(role, ["manage.py", "migrate", "--verbosity", "0"]) for role in ROLES])

    def shift(self) -> None:
        self.hop(
            "3. A shift in the field",
            """Two research assistants enter participants, visits and specimen requisitions,
            offline, each requisition with a photo of the tube's label (a file field: the
            photo travels inside the bundle). One record is corrected and one deleted:
            inserts, updates and deletes all travel.""",
        )
        self.run_all([(laptop, ["manage.py", "enter_field_data"]) for laptop in LAPTOPS])
        self.facts["laptop-a"], self.facts["laptop-b"] = self.clinic(*LAPTOPS)

    def export(self) -> None:
        self.hop(
            "4. Export to the USB sticks",
            """Each laptop seals its pending changes into a signed, encrypted bundle that only
            the server and the middleman can read, and copies it to its stick.""",
        )
        for laptop in LAPTOPS:
            (self.home / STICK[laptop]).mkdir(exist_ok=True)
        self.run_all([(laptop, ["export", "--out", STICK[laptop]]) for laptop in LAPTOPS])
        self.check(
            "each stick holds its laptop's bundle",
            all(len(self.bundles(STICK[laptop])) == 1 for laptop in LAPTOPS),
        )
        self.say("")
        self.say("  Exporting again with nothing new writes nothing:")
        self.run("laptop-a", ["export", "--out", STICK["laptop-a"]])
        self.check("a second export wrote no new bundle", len(self.bundles("usb-a")) == 1)
        self.say("")
        self.say("  The changes have left, but stay on the laptop until the server confirms them:")
        self.run("laptop-a", ["status"])
        sites = [s.get("site", {}) for s in self.bundle_json(LAPTOPS, ["status"])]
        self.facts["sent"] = {
            laptop: site.get("exported") for laptop, site in zip(LAPTOPS, sites, strict=True)
        }
        self.check(
            "every change exported, none confirmed yet",
            all(s.get("pending") == 0 and s.get("exported", 0) > 0 for s in sites),
            json.dumps(self.facts["sent"]),
        )

    def middleman(self) -> None:
        self.hop(
            "5. The driver's middleman laptop",
            """The driver fetches specimens and data from both research assistants. He checks
            the bundles on their sticks on the spot: signature, chain and digests need no
            decryption key.""",
        )
        self.run("middleman", ["verify", "usb-a", "usb-b"])
        self.say("")
        self.say("  The middleman is a recipient, so it reads them into its own database to")
        self.say("  reconcile the requisitions against the tubes in the cool box. Its FORWARD")
        self.say("  setting (the driver's own stick, middleman/to-server) gets the original files:")
        (self.home / DRIVER_STICK).mkdir(parents=True, exist_ok=True)
        self.run("middleman", ["import", "usb-a", "usb-b"])
        self.run("middleman", ["manage.py", "specimens"])
        (self.facts["middleman"],) = self.clinic("middleman")
        expected = sorted(
            self.facts["laptop-a"]["requisitions"] + self.facts["laptop-b"]["requisitions"]
        )
        self.check(
            "the middleman sees every requisition from both laptops",
            self.facts["middleman"]["requisitions"] == expected,
        )
        originals = self.bundles("usb-a") + self.bundles("usb-b")
        forwarded = sorted(p.name for p in self.bundles(DRIVER_STICK))
        self.check(
            "the original files are on the driver's stick, byte for byte",
            bool(originals)
            and forwarded == sorted(p.name for p in originals)
            and all(
                (self.home / DRIVER_STICK / p.name).read_bytes() == p.read_bytes()
                for p in originals
            ),
        )

    def server(self) -> None:
        self.hop(
            "6. The community server",
            """At the clinic the driver drops the files into the server's watched inbox folder
            (one pass here; in production `bundle watch` runs as a service, see
            examples/systemd/). Each file is imported once and moved to done/, and a signed
            receipt for each laptop is written.""",
        )
        self.copy_files(self.bundles(DRIVER_STICK), "server/inbox")
        self.say("  (--settle 0: these files are known to be complete; the service waits 5 s)")
        self.run("server", ["watch", "server/inbox", "--once", "--settle", "0"])
        done = sorted(p.name for p in self.bundles("server/inbox/done"))
        self.check("both bundles imported and moved to inbox/done/", len(done) == 2, f"{done}")
        self.say("")
        self.say("  The lab assistant reconciles the specimens delivered against the server,")
        self.say("  label photos included (stored in the server's own media folder):")
        self.run("server", ["manage.py", "specimens"])
        (held,) = self.clinic("server")
        sent = self.facts["laptop-a"]["requisitions"] + self.facts["laptop-b"]["requisitions"]
        self.check(
            "every label photo arrived byte for byte (same SHA-256 as on the laptops)",
            held.get("requisitions") == sorted(sent) and all(
                len(r.rsplit(":", 1)[1]) == 64 for r in sent),
            json.dumps(held.get("requisitions")),
        )
        receipts = sorted((self.home / "server" / "receipts-out").glob("*.receipt"))
        self.check("a receipt for each laptop", len(receipts) == 2, f"{[p.name for p in receipts]}")

    def receipts_back(self) -> None:
        self.hop(
            "7. Receipts carried back",
            """The next trip takes each laptop's receipt back on its stick. The laptop checks
            the server's signature, marks what the server holds as delivered, and only then
            can prune it.""",
        )
        receipts = sorted((self.home / "server" / "receipts-out").glob("*.receipt"))
        mine = {laptop: [p for p in receipts if f"-{laptop}-" in p.name] for laptop in LAPTOPS}
        for laptop in LAPTOPS:
            self.copy_files(mine[laptop], STICK[laptop])
        self.run_all([(laptop, ["import", STICK[laptop]]) for laptop in LAPTOPS])
        self.run_all([(laptop, ["prune"]) for laptop in LAPTOPS])
        for laptop, status in zip(LAPTOPS, self.bundle_json(LAPTOPS, ["status"]), strict=True):
            site = status.get("site", {})
            self.check(
                f"{laptop}: everything it sent is confirmed and pruned",
                len(mine[laptop]) == 1
                and site.get("pending") == 0
                and site.get("exported") == 0
                and site.get("bundles_unacknowledged") == []
                and site.get("outbox_files") == [],
                json.dumps(site, default=str),
            )
        self.say("")
        self.say("  Status at each end:")
        self.run_all([(role, ["status"]) for role in (*LAPTOPS, "server")])

    def over_http(self) -> None:
        self.hop(
            "8. Over the network",
            """Next day the clinic's network is up. The server serves the same bundles over
            HTTP (fieldproject/urls.py and the REST dict in its settings; only on 127.0.0.1
            here). Laptop-a enters one more specimen, seals it into its outbox, pushes it:
            the server verifies and imports it as the upload completes, and the receipt
            comes back over the same link.""",
        )
        with socket.socket() as s:  # a free port on this machine only
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}/bundles/"
        argv, shown = self.command(["manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"])
        self.say(f"  server$ {shown} &")
        log = (self.home / "server" / "runserver.log").open("w")
        proc = subprocess.Popen(
            argv, cwd=self.home, env=self.env("server"), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            self.check("the server answers on 127.0.0.1", self.wait_for(url, proc))
            if not self.checks[-1]["ok"]:
                return
            pages = f"http://127.0.0.1:{port}/sync/"
            self.say(f"  The data manager's pages are at {pages} while it runs (sign in with an")
            self.say("  account made by `python manage.py createsuperuser`; docs/WORKFLOW.md).")
            self.check("the data manager's pages answer, behind a sign-in", self.signs_in(pages))
            self.run("laptop-a", ["manage.py", "enter_field_data", "--late-specimen"])
            self.run("laptop-a", ["export", "--out", "laptop-a/outbox"])
            self.say(f"  laptop-a$ export BUNDLEKIT_TOKEN={TOKEN}")
            pushed = self.run("laptop-a", ["push", url, "laptop-a/outbox"])
            (self.home / "laptop-a" / "from-server").mkdir(exist_ok=True)
            self.run("laptop-a", ["pull", url, "--receipts", "--site", "laptop-a",
                                  "--out", "laptop-a/from-server"])
            got = self.run("laptop-a", ["import", "laptop-a/from-server"])
            self.run("laptop-a", ["prune"])
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            self.facts["server_stopped"] = proc.poll() is not None
        self.say("  (server stopped)")
        seen = re.search(r"^IMPORTED .*seq (\d+), (\d+) applied", pushed.stdout, re.M)
        # The server's receipts folder also holds the receipt of the USB trip: pulled too,
        # it acknowledges nothing new.
        acked = re.findall(r"(\d+) bundle\(s\) acknowledged \((\d+) transactions\)", got.stdout)
        self.facts["rest"] = {
            "seq": int(seen[1]) if seen else None,
            "applied": int(seen[2]) if seen else None,
            "acknowledged": sum(int(a) for a, _ in acked),
            "transactions": sum(int(t) for _, t in acked),
        }
        self.check(
            "the pushed bundle is imported by the server: seq 2, 1 change applied",
            self.facts["rest"]["seq"] == 2 and self.facts["rest"]["applied"] == 1,
            json.dumps(self.facts["rest"]),
        )
        (site,) = (s.get("site", {}) for s in self.bundle_json(["laptop-a"], ["status"]))
        self.check(
            "its receipt came back over HTTP: confirmed and pruned on laptop-a",
            self.facts["rest"]["acknowledged"] == 1
            and self.facts["rest"]["transactions"] == 1
            and site.get("pending") == 0
            and site.get("exported") == 0
            and site.get("outbox_files") == [],
            json.dumps(site, default=str),
        )
        (self.facts["laptop-a"],) = self.clinic("laptop-a")

    def wait_for(self, url: str, proc: subprocess.Popen, seconds: float = 30) -> bool:
        """Whether the server answers ``url`` (with the token) before it exits or time runs out."""
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    return answer.status == 200
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        return False

    def signs_in(self, pages: str) -> bool:
        """Whether ``pages`` sends someone not signed in to its sign-in form."""
        try:
            with urllib.request.urlopen(pages, timeout=5) as answer:
                body = answer.read().decode("utf-8", "replace")
                return "/sync/login/" in answer.url and 'name="password"' in body
        except (urllib.error.URLError, OSError):
            return False

    def server_state(self) -> tuple[dict, list]:
        """The server's clinic rows and its per-sender ledger summary (without the clock)."""
        (rows,) = self.clinic("server")
        (status,) = self.bundle_json(["server"], ["status"])
        senders = [
            {k: v for k, v in row.items() if k != "last_seen"} for row in status.get("senders", [])
        ]
        return rows, senders

    def guarantees(self) -> None:
        self.hop(
            "9. The guarantees",
            """The research assistant of laptop-a brings her own stick to the clinic as well, and
            its bundle goes into the inbox a second time: it is recognised, nothing is applied
            twice.""",
        )
        before = self.server_state()
        self.copy_files(self.bundles("usb-a"), "server/inbox")
        proc = self.run("server", ["watch", "server/inbox", "--once", "--settle", "0"])
        seen = re.search(r"^duplicate .*applied (\d+), duplicate (\d+)", proc.stdout, re.M)
        applied, duplicate = (int(seen[1]), int(seen[2])) if seen else (None, None)
        self.facts["reimport"] = {"applied": applied, "duplicate": duplicate}
        self.check(
            "the same stick again: every record a duplicate, none applied",
            applied == 0 and duplicate == self.facts["sent"]["laptop-a"],
            f"applied {applied}, duplicate {duplicate}",
        )
        self.say("")
        self.say("  Someone changes one byte of a copy of that bundle:")
        original = self.bundles("usb-a")[0]
        tampered = self.home / "tampered" / original.name
        tampered.parent.mkdir(exist_ok=True)
        data = bytearray(original.read_bytes())
        data[len(data) // 2] ^= 0x01
        tampered.write_bytes(bytes(data))
        proc = self.run("server", ["import", f"tampered/{tampered.name}"], expect=1)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        self.facts["tampered_rejected"] = proc.returncode == 1 and len(lines) == 1
        self.check("the tampered copy is refused with one line", self.facts["tampered_rejected"])
        after = self.server_state()
        self.facts["server"] = after[0]
        self.check("after both, the server's rows and ledger are unchanged", after == before)

    def field_realities(self) -> None:
        self.hop(
            "10. A corrected identifier, and a laptop restored from backup",
            """IT backs up laptop-b (its database file and its outbox). The research assistant
            then corrects a subject identifier typed wrong (the participant's natural key
            changes; its visit, keyed by it, follows) and the correction reaches the server.""",
        )
        backup = self.home / "backup-laptop-b"
        backup.mkdir()
        shutil.copy2(self.home / "laptop-b" / "db.sqlite3", backup / "db.sqlite3")
        shutil.copytree(self.home / "laptop-b" / "outbox", backup / "outbox")
        self.say("  (backup-laptop-b/ holds a copy of laptop-b's db.sqlite3 and outbox/)")
        wrong, right = "066-22200001-7", "066-22200001-8"
        self.run("laptop-b", ["manage.py", "enter_field_data", "--correct-identifier"])
        self.to_server("laptop-b")
        (rows,) = self.clinic("server")
        ids = [p[0] if isinstance(p, list) else p for p in rows["participants"]]
        self.check(
            "the server renamed the participant; its visit followed (no second participant)",
            right in json.dumps(rows) and wrong not in json.dumps(ids)
            and len(rows["visits"]) == len(self.facts["server"]["visits"]),
            json.dumps(ids),
        )
        self.say("")
        self.say("  Then laptop-b's disk dies. IT restores last week's backup; the research")
        self.say("  assistant enters a specimen drawn today. The laptop now believes it is at")
        self.say("  seq 1 again, while the server holds its seq 2: it must not seal a second")
        self.say("  seq 2. It learns what the server holds from the receipt on its stick:")
        shutil.copy2(backup / "db.sqlite3", self.home / "laptop-b" / "db.sqlite3")
        shutil.rmtree(self.home / "laptop-b" / "outbox")
        shutil.copytree(backup / "outbox", self.home / "laptop-b" / "outbox")
        self.run("laptop-b", ["manage.py", "enter_field_data", "--late-specimen"])
        self.receipt_to_stick("laptop-b")
        recovered = self.run("laptop-b", ["recover", "--from", STICK["laptop-b"]])
        self.check(
            "bundle recover moves laptop-b's chain on after the server's seq 2",
            "chain moved from seq 1 to seq 2" in recovered.stdout,
        )
        self.say("")
        self.say("  The correction was made after the backup, so the restored laptop lost it: the")
        self.say("  research assistant makes it again. Both changes go to the server:")
        self.run("laptop-b", ["manage.py", "enter_field_data", "--correct-identifier"])
        watched = self.to_server("laptop-b")
        applied = re.search(r"^applied .*seq 3, (\d+) records: applied (\d+).*failed (\d+)",
                            watched.stdout, re.M)
        self.check(
            "seq 3 follows on: 2 changes applied, none failed",
            bool(applied) and applied[2] == "2" and applied[3] == "0",
            watched.stdout.strip()[:200],
        )
        self.receipt_to_stick("laptop-b")
        self.run("laptop-b", ["import", STICK["laptop-b"]])
        self.run("laptop-b", ["prune"])
        (site,) = (s.get("site", {}) for s in self.bundle_json(["laptop-b"], ["status"]))
        self.check(
            "laptop-b: everything confirmed and pruned after the recovery",
            site.get("pending") == 0 and site.get("exported") == 0,
            json.dumps(site, default=str),
        )
        self.facts["laptop-b"], self.facts["server"] = self.clinic("laptop-b", "server")

    def to_server(self, laptop: str) -> subprocess.CompletedProcess:
        """Export to the laptop's stick and drop its new bundles into the server's inbox."""
        self.run(laptop, ["export", "--out", STICK[laptop]])
        done = {p.name for p in self.bundles("server/inbox/done")}
        self.copy_files([p for p in self.bundles(STICK[laptop]) if p.name not in done],
                        "server/inbox")
        return self.run("server", ["watch", "server/inbox", "--once", "--settle", "0"])

    def receipt_to_stick(self, laptop: str) -> None:
        """The server's newest receipt for ``laptop`` onto its stick."""
        receipts = sorted((self.home / "server" / "receipts-out").glob(f"*-{laptop}-*.receipt"),
                          key=lambda p: p.stat().st_mtime)
        self.copy_files(receipts[-1:], STICK[laptop])

    def final_counts(self) -> None:
        self.hop(
            "11. What each database holds",
            "(the middleman saw only the bundles on the sticks, not the one sent over HTTP)",
        )
        want = {
            k: sorted(self.facts["laptop-a"][k] + self.facts["laptop-b"][k])
            for k in self.facts["laptop-a"]
        }
        for role in ROLES:
            counts = ", ".join(f"{len(v)} {k}" for k, v in self.facts[role].items())
            self.say(f"  {role:<10} {counts}")
        self.check("the server holds exactly the laptops' rows", self.facts["server"] == want)

    def summary(self, seconds: float) -> dict:
        def counts(rows):
            return {k: len(v) for k, v in rows.items()} if rows else {}

        return {
            "ok": all(c["ok"] for c in self.checks) and bool(self.checks),
            "seconds": round(seconds, 1),
            "counts": {
                role: counts(self.facts.get(role))
                for role in ("laptop-a", "laptop-b", "middleman", "server")
            },
            "server_matches_laptops": any(
                c["ok"]
                for c in self.checks
                if c["check"] == "the server holds exactly the laptops' rows"
            ),
            "rest": self.facts.get("rest"),
            "server_stopped": self.facts.get("server_stopped"),
            "reimport": self.facts.get("reimport"),
            "tampered_rejected": self.facts.get("tampered_rejected"),
            "checks": self.checks,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="play in this (empty or new) folder and keep it")
    parser.add_argument(
        "--json",
        action="store_true",
        help="tell the story on stderr, print a JSON summary on stdout",
    )
    args = parser.parse_args(argv)
    try:
        import django  # noqa: F401 - the Django-side bundle commands need it
    except ImportError:
        parser.error(
            "Django is not installed here: run `make demo` (it installs bundlekit[django])"
        )

    stream = sys.stderr if args.json else sys.stdout

    def say(line: str = "") -> None:
        print(line, file=stream, flush=True)

    if args.home:
        home = args.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        if any(home.iterdir()):
            parser.error(f"{args.home}: not empty; the demo plays on a fresh folder")
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="bundlekit-demo-")
        home = Path(cleanup.name)

    started = time.monotonic()
    demo = Demo(home, say)
    say("bundlekit field demo: two field laptops, a middleman, a server, all in one folder")
    say("(each command below runs in its own process, as a person would type it;")
    say(" paths are shown relative to that folder)")
    try:
        demo.play()
    except Exception as exc:  # a hop that broke: a failed check, with the details to fix it
        for line in traceback.format_exc().splitlines():
            say(f"  {line}")
        demo.check("the story ran to the end", False, f"{type(exc).__name__}: {exc}")
    result = demo.summary(time.monotonic() - started)
    failed = [c for c in demo.checks if not c["ok"]]
    say("")
    say("== Summary")
    if result["ok"]:
        say(f"  All {len(demo.checks)} checks passed in {result['seconds']} s.")
        say("  Every change entered on the two laptops reached the server exactly once, by")
        say("  way of the middleman, and one more over HTTP; receipts closed the loop and let")
        say("  the laptops prune; the same stick again changed nothing, a tampered copy")
        say("  was refused, a corrected identifier renamed the server's row, and a laptop")
        say("  restored from backup went on after `bundle recover`.")
    else:
        say(f"  {len(failed)} of {len(demo.checks)} checks FAILED:")
        for c in failed:
            say(f"    - {c['check']}" + (f" ({c['detail']})" if c["detail"] else ""))
    if args.home:
        say(f"  Everything is kept in {args.home} to look at.")
    if args.json:
        print(json.dumps(result, indent=2))
    if cleanup is not None:
        cleanup.cleanup()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
