"""Memory bombs (issue 10): small files that decode into huge structures.

Each bomb is given to the real command in a child process, as a person would
run it, and the child's peak resident memory is *measured* (``ru_maxrss`` of
that child, from ``os.wait4``), not assumed.  A child also runs with an
address-space limit, so a regression fails the test instead of taking the
machine down.  Before these bounds, the record bomb took 9.5 GB and 94 s, a
1 MiB manifest 134 MB and an 8 MiB receipt 656 MB.

Signed bombs are signed by a key the server trusts (a hostile or buggy site);
the manifest and receipt bombs are not signed at all (anybody with a stick).
The bounds are in bundlekit/limits.py and docs/FORMAT.md §3.3, §5.3, §9.2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest
import zstandard

from bundlekit import age, container, limits
from bundlekit.keys import Identity, write_keypair
from bundlekit.manifest import Manifest, sign
from bundlekit.receipt import END_MAGIC as RECEIPT_END
from bundlekit.receipt import MAGIC as RECEIPT_MAGIC
from bundlekit.writer import ChainLink, seal
from tests.reliability.helpers import ROOT, SETTINGS_HEAD

pytestmark = [pytest.mark.attack, pytest.mark.slow]

#: The address-space limit of each child: far above any bound, far below a bomb.
CHILD_ADDRESS_SPACE = 3 * 1024**3
#: What a refusal may cost above the same command on a one-record bundle: the
#: buffers of FORMAT.md §9.2 (three copies of the largest record the format
#: allows, see bundlekit/records.py iter_records) and some slack.
BOUND_ABOVE_BASELINE = 3 * limits.MAX_RECORD_SIZE + 32 * 1024**2

SETTINGS = SETTINGS_HEAD + """
BASE_DIR = HERE
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(BASE_DIR, "server.sqlite3")}}
BUNDLEKIT = {"SITE": "central", "IDENTITY": "keys/central.key", "TRUSTED": ["keys/site-a.pub"],
             "RECEIPTS_OUT": "receipts"}
"""


#: Runs the command and reports its peak RSS.  A small launcher in between
#: matters: Linux carries the RSS a process had at fork into its child's
#: ``ru_maxrss`` (exec keeps the high-water mark), so the command must not be
#: forked from the test process, which holds the bombs it just built.
LAUNCHER = """
import json, os, resource, subprocess, sys, time
limit = int(sys.argv[2])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.monotonic()
child = subprocess.Popen(sys.argv[3:], preexec_fn=cap)
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"code": child.returncode, "peak": usage.ru_maxrss * 1024,
               "seconds": time.monotonic() - start}, f)
"""


def measured(argv: list[str], cwd: Path,
             address_space: int = CHILD_ADDRESS_SPACE) -> tuple[int, str, int, float]:
    """Run ``argv``; return (exit code, stdout+stderr, peak RSS in bytes, seconds).

    The peak is ``ru_maxrss`` of the command's own process (Linux reports KiB).
    """
    env = {**os.environ, "BUNDLEKIT_NO_PROGRESS": "1",
           "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        run = subprocess.run([sys.executable, "-c", LAUNCHER, str(figures),
                              str(address_space), *argv],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                             timeout=600)
        assert run.returncode == 0, run.stdout
        got = json.loads(figures.read_text())
    return got["code"], run.stdout.decode("utf-8", "replace"), got["peak"], got["seconds"]


def bundle_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bundlekit", *args]


def signed_bundle(path: Path, packed_records: bytes, count: int, site: Identity,
                  server: Identity) -> Path:
    """A bundle around any packed records, correctly signed by ``site``."""
    frame = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(packed_records)
    buf = io.BytesIO()
    w = age.encrypt([server.public.x25519], buf)
    w.write(frame)
    w.close()
    payload = buf.getvalue()
    manifest = Manifest(
        bundle_id=uuid.uuid4(), sender=site.public, recipients=(server.fingerprint,), seq=1,
        prev=None, created=dt.datetime.now(dt.UTC),
        record_count=count, kinds={}, key_field="id", kind_field="model", first_key=1,
        last_key=1, uncompressed_size=len(packed_records), compressed_size=len(frame),
        payload_size=len(payload), payload_sha256=hashlib.sha256(payload).digest(),
    ).to_bytes()
    path.write_bytes(container.MAGIC + payload
                     + container.trailer(len(payload), manifest, sign(site, manifest)))
    return path


def record_with(value_bytes: bytes) -> bytes:
    """A packed record {"id": 1, "model": "lab.x", "x": <value_bytes>}."""
    return b"\x83\xa2id\x01\xa5model\xa5lab.x\xa1x" + value_bytes


def empty_arrays_in_one_array(n: int) -> bytes:
    return b"\xdd" + struct.pack(">I", n) + b"\x90" * n


def empty_arrays_in_chunks(n: int, chunk: int = 60_000) -> bytes:
    """n empty arrays as arrays of ``chunk``: every list shorter than any length cap."""
    chunks = [min(chunk, n - i) for i in range(0, n, chunk)]
    return (b"\xdd" + struct.pack(">I", len(chunks))
            + b"".join(b"\xdc" + struct.pack(">H", c) + b"\x90" * c for c in chunks))


def nested(depth: int) -> bytes:
    return b"\x91" * (depth - 1) + b"\x90"


def declared_but_missing(depth: int, length: int = 60_000) -> bytes:
    """Arrays that each announce ``length`` items and hold only the next array: a
    decoder that allocates what a header announces does so ``depth`` times."""
    return (b"\xdc" + struct.pack(">H", length)) * depth


#: name -> (what the record's "x" holds, what a trial is)
RECORD_BOMBS = {
    "66M-empty-arrays": (lambda: empty_arrays_in_one_array(66_000_000),
                         "one record holding one list of 66 million empty lists"),
    "66M-empty-arrays-in-chunks": (lambda: empty_arrays_in_chunks(66_000_000),
                                   "one record holding 1,100 lists of 60,000 empty lists"),
    "nesting-1000-deep": (lambda: nested(1000), "one record nesting lists 1,000 deep"),
    "headers-announcing-60k-items-1000-deep": (
        lambda: declared_but_missing(1000),
        "list headers announcing 60,000 items each, 1,000 deep, with no items"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A server project (central, trusting site-a) and a one-record baseline bundle."""
    d = tmp_path_factory.mktemp("bombs")
    keys = d / "keys"
    keys.mkdir()
    site, server = Identity.generate("site-a"), Identity.generate("central")
    write_keypair(site, keys, "site-a")
    write_keypair(server, keys, "central")
    (d / "bomb_settings.py").write_text(textwrap.dedent(SETTINGS))
    subprocess.run([sys.executable, "-m", "django", "migrate", "--settings", "bomb_settings",
                    "-v", "0"], cwd=d, check=True,
                   env={**os.environ, "PYTHONPATH": f"{d}{os.pathsep}{ROOT}"})
    baseline_dir = d / "baseline"
    baseline_dir.mkdir()
    # Far ahead in the chain: importing it stores its record to wait for the gap
    # (a malformed record is kept as failed, not refused) and leaves seq 1 to the bombs.
    (good,) = seal([{"id": 1, "model": "lab.x", "x": []}], identity=site,
                   recipients=[server.public], out_dir=baseline_dir,
                   after=ChainLink(999, bytes(32)))
    return {"dir": d, "site": site, "server": server, "good": good.path}


def baseline(project, argv_for) -> int:
    """Peak RSS of the same command on a small one-record bundle (cached per command)."""
    cache = project.setdefault("baselines", {})
    key = tuple(argv_for("GOOD"))
    if key not in cache:
        code, out, peak, _ = measured([a if a != "GOOD" else str(project["good"])
                                       for a in argv_for("GOOD")], project["dir"])
        assert "Traceback" not in out, out  # (import may refuse its record: not a Django row)
        cache[key] = peak
    return cache[key]


def assert_refused_in_one_line(code: int, out: str, name: str) -> str:
    assert code not in (0, 3), out  # refused as bad input: not accepted, not an internal error
    assert "Traceback" not in out and "MemoryError" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert name in lines[0], lines[0]
    return lines[0]


COMMANDS = {
    # bundle open: the library reader as a middleman or server person runs it
    "open": lambda f: bundle_cmd("open", f, "-i", "keys/central.key", "--trust", "keys/site-a.pub"),
    # bundle import: the Django server's import of a stick
    "import": lambda f: bundle_cmd("import", f, "--settings", "bomb_settings"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("bomb", list(RECORD_BOMBS))
def test_a_signed_record_bomb_is_refused_in_bounded_memory(project, bomb, command, record,
                                                           tmp_path):
    make, trial = RECORD_BOMBS[bomb]
    packed = record_with(make())
    assert len(packed) <= limits.MAX_RECORD_SIZE  # under the old, size-only limit
    path = signed_bundle(tmp_path / f"site-a-00000001-{bomb[:8]}.bundle", packed, 1,
                         project["site"], project["server"])
    argv = COMMANDS[command]
    code, out, peak, seconds = measured(argv(str(path)), project["dir"])
    line = assert_refused_in_one_line(code, out, path.name)
    base = baseline(project, argv)
    assert peak <= base + BOUND_ABOVE_BASELINE, (peak, base)
    if command == "open":
        assert "refused" in line or "record" in line, line
    record(f"bomb-record-{command}", trials=1, rejected=1, accepted=0, case=bomb, trial=trial,
           file_bytes=path.stat().st_size, record_bytes=len(packed), peak_rss_bytes=peak,
           baseline_rss_bytes=base, seconds=round(seconds, 2), message=line)


def django_record(i: int, value_bytes: bytes) -> bytes:
    """A record shaped like the Django adapter's, plus a field "x" holding ``value_bytes``."""
    head = {"id": uuid.UUID(int=i + 1), "model": "test_app.household", "action": "I",
            "pk": i, "ts": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "producer": "site-a"}
    from bundlekit.records import packb

    packed = packb(head)
    assert packed[0] == 0x80 + len(head)
    return bytes([0x80 + len(head) + 1]) + packed[1:] + b"\xa1x" + value_bytes


#: Records each just under the per-record bounds; a consumer holding many at once
#: holds their values too.
BATCH_RECORDS = 50
JUST_UNDER = limits.MAX_RECORD_VALUES - 20


BATCH_HOLE = ("a consumer that batches records must close a batch by OpenedBundle.bytes_read "
              "as well as by its number of records")


def test_many_records_just_under_the_bounds_do_not_add_up_in_the_importer(project, record,
                                                                        tmp_path):
    lists = b"\xdd" + struct.pack(">I", JUST_UNDER) + b"\x90" * JUST_UNDER
    packed = b"".join(django_record(i, lists) for i in range(BATCH_RECORDS))
    path = signed_bundle(tmp_path / "site-a-00000001-batch.bundle", packed, BATCH_RECORDS,
                         project["site"], project["server"])
    argv = COMMANDS["import"]
    code, out, peak, seconds = measured(argv(str(path)), project["dir"], address_space=1024**3)
    base = baseline(project, argv)
    record("bomb-record-import", trials=1, rejected=int(peak <= base + BOUND_ABOVE_BASELINE),
           accepted=int(peak > base + BOUND_ABOVE_BASELINE), case=f"{BATCH_RECORDS}-records-just-under",
           trial=f"{BATCH_RECORDS} records of {JUST_UNDER:,} empty lists each (under every "
                 "per-record bound)", file_bytes=path.stat().st_size, record_bytes=len(packed),
           peak_rss_bytes=peak, baseline_rss_bytes=base, seconds=round(seconds, 2),
           message=next((ln for ln in out.splitlines() if path.name in ln), ""),
           **({"known": BATCH_HOLE} if peak > base + BOUND_ABOVE_BASELINE else {}))
    assert "Traceback" not in out, out
    assert peak <= base + BOUND_ABOVE_BASELINE, (peak, base)


def test_an_unsigned_manifest_bomb_is_refused_before_the_signature(project, record, tmp_path):
    """A 1 MiB manifest of a million empty arrays, no valid signature."""
    manifest = empty_arrays_in_one_array(container.MAX_MANIFEST_SIZE - 5)
    assert len(manifest) == container.MAX_MANIFEST_SIZE
    payload = b"x" * 100
    path = tmp_path / "site-a-00000001-manifest.bundle"
    path.write_bytes(container.MAGIC + payload + container.trailer(len(payload), manifest,
                                                                   bytes(64)))
    argv = bundle_cmd("verify", str(path), "--trust", "keys/site-a.pub")
    code, out, peak, seconds = measured(argv, project["dir"])
    assert code == 1 and "Traceback" not in out, out
    (line,) = out.splitlines()
    assert line.startswith(f"INVALID {path}: its manifest is refused"), line
    base = baseline(project, lambda f: bundle_cmd("verify", f, "--trust", "keys/site-a.pub"))
    assert peak <= base + 8 * 1024**2, (peak, base)
    record("bomb-manifest", trials=1, rejected=1, accepted=0, case="1MiB-manifest",
           trial="a 1 MiB unsigned manifest of a million empty lists",
           file_bytes=path.stat().st_size, peak_rss_bytes=peak, baseline_rss_bytes=base,
           seconds=round(seconds, 2), message=line)


RECEIPT_READER = """
import sys
from bundlekit.errors import BundleError
from bundlekit.keys import load_identity, load_public_key
from bundlekit.receipt import read_receipt
try:
    read_receipt(sys.argv[1], trusted_issuers=[load_public_key("keys/central.pub")],
                 me=load_identity("keys/site-a.key"))
except BundleError as e:
    print(e)
    sys.exit(1)
print("accepted")
"""


def test_an_unsigned_receipt_bomb_is_refused_before_the_signature(project, record, tmp_path):
    """An 8 MiB receipt whose body is one array of empty arrays, no valid signature."""
    body = empty_arrays_in_one_array(8 * 1024**2 - 200)
    path = tmp_path / "receipt-central-site-a.receipt"
    path.write_bytes(RECEIPT_MAGIC + body + bytes(64) + struct.pack(">I", len(body)) + RECEIPT_END)
    assert path.stat().st_size <= limits.MAX_RECEIPT_SIZE
    code, out, peak, seconds = measured([sys.executable, "-c", RECEIPT_READER, str(path)],
                                        project["dir"])
    assert code == 1 and "Traceback" not in out, out
    (line,) = out.splitlines()
    assert line.startswith(f"{path}: is damaged: its body is refused"), line
    base = measured([sys.executable, "-c", RECEIPT_READER, "/nonexistent.receipt"],
                    project["dir"])[2]
    # The file is read whole (8 MiB, capped); nothing is built from it.
    assert peak <= base + 2 * limits.MAX_RECEIPT_SIZE + 8 * 1024**2, (peak, base)
    record("bomb-receipt", trials=1, rejected=1, accepted=0, case="8MiB-receipt",
           trial="an 8 MiB unsigned receipt body of 8 million empty lists",
           file_bytes=path.stat().st_size, peak_rss_bytes=peak, baseline_rss_bytes=base,
           seconds=round(seconds, 2), message=line)
