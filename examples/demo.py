#!/usr/bin/env python
"""The field story, end to end, with the real ``bundle`` command.

Two research assistants enter data on offline laptops; their bundles go out on
USB sticks; a driver's middleman laptop checks them on the spot, reads them to
reconcile the specimens in the cool box, and carries the original files to the
community server; the server takes them from its watched inbox folder and writes
receipts; the receipts go back on the sticks and the laptops prune what the server
now holds.  Then: the same stick again changes nothing, and a tampered copy is
refused.

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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "fieldproject"
MANAGE = PROJECT / "manage.py"
LAPTOPS = ("laptop-a", "laptop-b")
ROLES = (*LAPTOPS, "middleman", "server")
STICK = {"laptop-a": "usb-a", "laptop-b": "usb-b"}
DRIVER_STICK = "middleman/forward"  # FORWARD in the middleman's settings


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
            COLUMNS="110",
        )
        return env

    def run(
        self,
        role: str,
        args: list[str],
        *,
        manage: bool = False,
        show: bool = True,
        expect: int | None = 0,
    ) -> subprocess.CompletedProcess:
        """Run ``bundle ARGS`` (or ``python manage.py ARGS``) as ROLE, from the demo folder."""
        if manage:
            argv = [sys.executable, str(MANAGE), *args]
            shown = "python manage.py " + " ".join(args)
        else:
            argv = [sys.executable, "-m", "bundlekit", *args]
            shown = "bundle " + " ".join(args)
        if show:
            self.say(f"  {role}$ {shown}")
        proc = subprocess.run(
            argv, cwd=self.home, env=self.env(role), capture_output=True, text=True, timeout=120
        )
        if show:
            for line in (proc.stdout + proc.stderr).splitlines():
                self.say(f"      {line}" if line.strip() else "")
        if expect is not None and proc.returncode != expect:
            if not show:
                self.say(f"  {role}$ {shown}")
                for line in (proc.stdout + proc.stderr).splitlines():
                    self.say(f"      {line}")
            self.check(f"`{shown}` on {role} exits {expect}", False, f"exit {proc.returncode}")
        return proc

    def bundle_json(self, role: str, args: list[str], *, expect: int | None = 0):
        proc = self.run(role, [*args, "--json"], show=False, expect=expect)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            self.check(f"`bundle {' '.join(args)} --json` on {role} prints JSON", False)
            return None

    def clinic(self, role: str) -> dict:
        """Every clinic row ROLE's database holds, by natural key."""
        proc = self.run(role, ["specimens", "--json"], manage=True, show=False)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return {"participants": [], "visits": [], "requisitions": []}

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
            self.guarantees,
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
        for role in ROLES:
            self.run(role, ["keygen", role, "--dir", f"{role}/keys"])
        pubs = [self.home / role / "keys" / f"{role}.pub" for role in ROLES]
        for role in ROLES:
            self.copy_files([p for p in pubs if p.parent.parent.name != role], f"{role}/keys")
        self.say("  (copied laptop-a.pub, laptop-b.pub, middleman.pub, server.pub to every keys/)")
        ok = all((self.home / r / "keys" / f"{r}.key").is_file() for r in ROLES)
        self.check("four key pairs, public keys on every machine", ok)

    def databases(self) -> None:
        self.hop("2. Databases", "Each machine has its own SQLite database, migrated once.")
        for role in ROLES:
            self.run(role, ["migrate", "--verbosity", "0"], manage=True)

    def shift(self) -> None:
        self.hop(
            "3. A shift in the field",
            """Two research assistants enter participants, visits and specimen requisitions,
            offline. One record is corrected and one deleted: inserts, updates and deletes all
            travel.""",
        )
        for laptop in LAPTOPS:
            self.run(laptop, ["enter_field_data"], manage=True)
            self.facts[laptop] = self.clinic(laptop)

    def export(self) -> None:
        self.hop(
            "4. Export to the USB sticks",
            """Each laptop seals its pending changes into a signed, encrypted bundle (for the
            server and the middleman only) and writes it to its stick.""",
        )
        for laptop in LAPTOPS:
            (self.home / STICK[laptop]).mkdir(exist_ok=True)
            self.run(laptop, ["export", "--out", STICK[laptop]])
            found = self.bundles(STICK[laptop])
            self.check(f"{STICK[laptop]} holds {laptop}'s bundle", len(found) >= 1)
        self.say("")
        self.say("  Exporting again with nothing new writes nothing:")
        self.run("laptop-a", ["export", "--out", STICK["laptop-a"]])
        self.check("a second export wrote no new bundle", len(self.bundles("usb-a")) == 1)

    def middleman(self) -> None:
        self.hop(
            "5. The driver's middleman laptop",
            """The driver copies the bundles off both sticks and checks them on the spot: the
            signature, the chain and the digests need no decryption key.""",
        )
        self.run("middleman", ["verify", "usb-a", "usb-b"])
        self.say("")
        self.say("  The middleman is a recipient, so it can read them into its own database")
        self.say("  and reconcile the requisitions against the tubes in the cool box:")
        self.run("middleman", ["import", "usb-a", "usb-b"])
        self.run("middleman", ["specimens"], manage=True)
        expected = sorted(
            self.facts["laptop-a"]["requisitions"] + self.facts["laptop-b"]["requisitions"]
        )
        self.facts["middleman"] = self.clinic("middleman")
        self.check(
            "the middleman sees every requisition from both laptops",
            self.facts["middleman"]["requisitions"] == expected,
        )
        self.say("")
        self.say(
            "  It then passes the original files on, untouched, to its own stick for the server:"
        )
        self.run("middleman", ["forward", "usb-a", "usb-b"])
        forwarded = sorted(p.name for p in self.bundles(DRIVER_STICK))
        originals = sorted(p.name for p in self.bundles("usb-a") + self.bundles("usb-b"))
        self.check(
            "the original files are on the driver's stick",
            bool(originals) and forwarded == originals,
        )
        same = bool(originals) and all(
            (self.home / DRIVER_STICK / p.name).read_bytes() == p.read_bytes()
            for p in self.bundles("usb-a") + self.bundles("usb-b")
        )
        self.check("byte for byte", same)

    def server(self) -> None:
        self.hop(
            "6. The community server",
            """At the clinic the driver drops the files into the server's watched inbox folder
            (here one pass; in production `bundle watch` runs as a service, see
            examples/systemd/). Each file is imported once, moved to done/, and a signed
            receipt per site is written.""",
        )
        self.copy_files(self.bundles(DRIVER_STICK), "server/inbox")
        self.run("server", ["watch", "server/inbox", "--once"])
        done = sorted(p.name for p in self.bundles("server/inbox/done"))
        self.check("every bundle moved to inbox/done/", len(done) == 2, f"{done}")
        self.run("server", ["specimens"], manage=True)
        receipts = sorted((self.home / "server" / "receipts-out").glob("*.receipt"))
        self.check("a receipt for each laptop", len(receipts) == 2, f"{[p.name for p in receipts]}")

    def receipts_back(self) -> None:
        self.hop(
            "7. Receipts carried back",
            """The next trip takes each laptop's receipt back on its stick. The laptop checks
            the server's signature, marks what the server holds as delivered, and only then
            may prune it.""",
        )
        receipts = sorted((self.home / "server" / "receipts-out").glob("*.receipt"))
        for laptop in LAPTOPS:
            mine = [p for p in receipts if f"-{laptop}-" in p.name]
            self.copy_files(mine, STICK[laptop])
            self.run(laptop, ["receipt", *(f"{STICK[laptop]}/{p.name}" for p in mine)])
            self.run(laptop, ["prune"])
            status = self.bundle_json(laptop, ["status"])
            self.facts[f"{laptop}-status"] = status
        self.say("")
        for role in (*LAPTOPS, "server"):
            self.run(role, ["status"])

    def guarantees(self) -> None:
        self.hop(
            "8. The guarantees",
            """The research assistant of laptop-a brings her own stick to the clinic too:
            the same bundles again are all duplicates, nothing is applied twice.""",
        )
        report = self.bundle_json("server", ["import", "usb-a"])
        self.facts["reimport"] = report
        self.say("")
        self.say("  Someone changes one byte of a copy of the bundle:")
        original = self.bundles("usb-a")[0]
        tampered_dir = self.home / "tampered"
        tampered_dir.mkdir(exist_ok=True)
        tampered = tampered_dir / original.name
        data = bytearray(original.read_bytes())
        data[len(data) // 2] ^= 0x01
        tampered.write_bytes(bytes(data))
        before = self.clinic("server")
        proc = self.run("server", ["import", f"tampered/{tampered.name}"], expect=1)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        self.check(
            "the tampered copy is rejected with one line", proc.returncode == 1 and len(lines) == 1
        )
        self.check("and the server database is unchanged", self.clinic("server") == before)

    def final_counts(self) -> None:
        self.hop("9. What each database holds")
        want = {
            k: sorted(self.facts["laptop-a"][k] + self.facts["laptop-b"][k])
            for k in self.facts["laptop-a"]
        }
        server = self.clinic("server")
        self.facts["server"] = server
        for role, rows in (
            ("laptop-a", self.facts["laptop-a"]),
            ("laptop-b", self.facts["laptop-b"]),
            ("middleman", self.facts["middleman"]),
            ("server", server),
        ):
            counts = ", ".join(f"{len(v)} {k}" for k, v in rows.items())
            self.say(f"  {role:<10} {counts}")
        self.check("the server holds exactly the laptops' rows", server == want)

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
    say("(each command below runs in its own process, as a person would type it)")
    try:
        demo.play()
    except Exception as exc:  # a hop that broke: report it as a failed check, not a traceback
        demo.check("the story ran to the end", False, f"{type(exc).__name__}: {exc}")
    result = demo.summary(time.monotonic() - started)
    failed = [c for c in demo.checks if not c["ok"]]
    say("")
    say("== Summary")
    if result["ok"]:
        say(
            f"  All {len(demo.checks)} checks passed in {result['seconds']} s: every change entered on"
        )
        say("  the two laptops reached the server exactly once, receipts closed the loop, the")
        say("  same stick again changed nothing and a tampered copy was refused.")
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
