"""Files inside bundles (FORMAT.md §5.5): chunk records, written and put together."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bundlekit import blobs
from bundlekit.blobs import BLOB_CHUNK_SIZE, BlobStore, check_chunk, chunks
from bundlekit.errors import CorruptBundle
from bundlekit.keys import write_keypair
from bundlekit.reader import open_bundle
from bundlekit.writer import ChainLink, seal
from tests.bundlekit.test_reader import require_tool

CHUNK = BLOB_CHUNK_SIZE


def content(n: int, seed: int = 1) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n]


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_a_file_becomes_whole_chunks_and_a_short_last_one():
    data = content(2 * CHUNK + 10)
    recs = list(chunks(io.BytesIO(data), digest(data), len(data)))
    assert [r["offset"] for r in recs] == [0, CHUNK, 2 * CHUNK]
    assert [len(r["data"]) for r in recs] == [CHUNK, CHUNK, 10]
    assert b"".join(r["data"] for r in recs) == data
    assert all(check_chunk(r).digest == digest(data) for r in recs)


def test_a_file_that_changed_since_capture_is_not_sent():
    data = content(CHUNK + 5)
    changed = data[:-1] + b"!"
    got = []
    with pytest.raises(CorruptBundle, match="no longer has the content"):
        for r in chunks(io.BytesIO(changed), digest(data), len(data), name="scan.pdf"):
            got.append(r)
    assert [r["offset"] for r in got] == [0]  # the last chunk is never handed out
    with pytest.raises(CorruptBundle, match="shorter"):
        list(chunks(io.BytesIO(data[:100]), digest(data), len(data)))
    with pytest.raises(CorruptBundle, match="no longer"):
        list(chunks(io.BytesIO(data + b"more"), digest(data), len(data)))


@pytest.mark.parametrize("change, why", [
    (lambda r: r.update(extra=1), "other fields"),
    (lambda r: r.update({"$blob": b"short"}), "SHA-256"),
    (lambda r: r.update(size=0), "impossible file size"),
    (lambda r: r.update(data=b""), "no bytes"),
    (lambda r: r.update(data=b"x" * (CHUNK + 1)), "no bytes or more"),
    (lambda r: r.update(offset=3), "outside"),
    (lambda r: r.update(offset=-CHUNK), "outside"),
    (lambda r: r.update(size=5), "outside"),
    (lambda r: r.update(data=b"x" * 10), "short but not"),
])
def test_malformed_chunk_records_are_refused(change, why):
    data = content(2 * CHUNK)
    record = next(chunks(io.BytesIO(data), digest(data), len(data)))
    change(record)
    with pytest.raises(CorruptBundle, match=why):
        check_chunk(record)


def test_the_store_puts_chunks_together_in_any_order_and_more_than_once(tmp_path):
    data = content(3 * CHUNK + 7)
    recs = list(chunks(io.BytesIO(data), digest(data), len(data)))
    store = BlobStore(tmp_path / "files")
    done = [store.add(r) for r in [recs[2], recs[0], recs[2], recs[3], recs[0]]]
    assert done == [False] * 5 and not store.has(digest(data))
    assert store.received(digest(data)) == 2 * CHUNK + 7
    assert store.add(recs[1]) is True  # joins 0..1 with 2..3
    assert Path(store.path(digest(data))).read_bytes() == data
    assert os.listdir(store.parts) == []
    assert store.add(recs[1]) is False  # a bundle sent twice changes nothing


def test_a_file_whose_bytes_do_not_hash_to_its_name_is_refused_and_forgotten(tmp_path):
    data = content(CHUNK + 1)
    lie = digest(b"something else")
    recs = [blobs.chunk_record(lie, 0, len(data), data[:CHUNK]),
            blobs.chunk_record(lie, CHUNK, len(data), data[CHUNK:])]
    store = BlobStore(tmp_path / "files")
    store.add(recs[0])
    with pytest.raises(CorruptBundle, match="does not have the SHA-256"):
        store.add(recs[1])
    assert not store.has(lie) and store.received(lie) == 0


def test_a_part_cut_by_a_crash_is_trimmed_to_whole_chunks(tmp_path):
    data = content(2 * CHUNK + 3)
    recs = list(chunks(io.BytesIO(data), digest(data), len(data)))
    store = BlobStore(tmp_path / "files")
    store.add(recs[0])
    part = Path(store.parts) / f"{digest(data).hex()}.0.part"
    with open(part, "ab") as f:
        f.write(recs[1]["data"][:1000])  # the process died mid-write
    assert store.add(recs[1]) is False  # the cut chunk is written again, whole
    assert store.add(recs[2]) is True
    assert Path(store.path(digest(data))).read_bytes() == data


def test_a_file_larger_than_the_store_accepts_is_refused(tmp_path):
    data = content(CHUNK + 1)
    store = BlobStore(tmp_path / "files", max_size=CHUNK)
    with pytest.raises(CorruptBundle, match="more than the"):
        store.add(next(chunks(io.BytesIO(data), digest(data), len(data))))


def test_a_file_spans_bundles_when_it_rolls_over(tmp_path, site, community):
    data = os.urandom(3 * CHUNK + 99)  # incompressible: three chunks cannot share a bundle
    recs = [{"id": 1, "name": "before"}, *chunks(io.BytesIO(data), digest(data), len(data)),
            {"id": 2, "name": "after", "file": digest(data)}]
    sealed = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                  after=ChainLink(0, None), max_bytes=2 * CHUNK + 4096)
    assert len(sealed) >= 2
    store = BlobStore(tmp_path / "files")
    others = []
    for s in sealed:
        with open_bundle(s.path, identities=[community]) as opened:
            for r in opened:
                if blobs.is_blob(r):
                    store.add(r)
                else:
                    others.append(r["id"])
    assert others == [1, 2]
    assert Path(store.path(digest(data))).read_bytes() == data


def test_format_md_recipe_recovers_files_with_standard_tools(tmp_path, site, community):
    """Runs both shell blocks of FORMAT.md §10: payload out, then the files out of it."""
    require_tool("age"), require_tool("zstd"), require_tool("sha256sum")
    bash = shutil.which("bash") or pytest.skip("bash is not installed")
    key_path, _ = write_keypair(community, tmp_path)
    photo, scan = os.urandom(CHUNK + 500), content(3000, seed=7)
    recs = [*chunks(io.BytesIO(photo), digest(photo), len(photo)),
            *chunks(io.BytesIO(scan), digest(scan), len(scan)), {"id": 1, "name": "row"}]
    (sealed,) = seal(recs, identity=site, recipients=[community.public], out_dir=tmp_path,
                     after=ChainLink(0, None))
    doc = (Path(__file__).parents[2] / "docs" / "FORMAT.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", doc.split("## 10.", 1)[1].split("## 11.", 1)[0], re.S)
    recipe = "\n".join(blocks)
    recipe = re.sub(r"^F=.*$", f"F={shlex.quote(sealed.path)}", recipe, flags=re.M)
    recipe = recipe.replace("central-server.key", shlex.quote(key_path))
    recipe = recipe.replace("python3 ", f"{shlex.quote(sys.executable)} ")
    out = subprocess.run([bash, "-euo", "pipefail", "-c", recipe], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / digest(photo).hex()).read_bytes() == photo
    assert (tmp_path / digest(scan).hex()).read_bytes() == scan


_RSS_CHILD = textwrap.dedent("""
    import hashlib, io, os, sys
    from bundlekit import blobs
    from bundlekit.keys import Identity
    from bundlekit.reader import open_bundle
    from bundlekit.writer import ChainLink, seal
    folder, size = sys.argv[1], int(sys.argv[2])
    site, server = Identity.generate("site"), Identity.generate("server")
    path = os.path.join(folder, "big.bin")
    h = hashlib.sha256()
    with open(path, "wb") as f:
        block = os.urandom(blobs.BLOB_CHUNK_SIZE)
        for i in range(size // len(block)):
            f.write(block[i % 7:] + block[: i % 7])
            h.update(block[i % 7:] + block[: i % 7])
    def hwm():  # this process's peak RSS in KiB (ru_maxrss would include the forking parent's)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    base = hwm()
    with open(path, "rb") as f:
        sealed = seal(blobs.chunks(f, h.digest(), size), identity=site, recipients=[server.public],
                      out_dir=folder, after=ChainLink(0, None))
    store = blobs.BlobStore(os.path.join(folder, "files"))
    for s in sealed:
        with open_bundle(s.path, identities=[server]) as opened:
            for r in opened:
                store.add(r)
    assert store.has(h.digest())
    peak = hwm()
    print(base, peak, len(sealed))
""")


def _peak_rss(tmp_path, size: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(tmp_path), str(size)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
                         timeout=1800)
    assert out.returncode == 0, out.stderr
    base, peak, _ = map(int, out.stdout.split())
    return base * 1024, peak * 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_64_mib_file_goes_through_a_bundle_in_flat_memory(tmp_path):
    """Seal and read back a 64 MiB file in a child: its peak RSS grows by a few
    chunks, not by the file (the test asserts under a quarter of it)."""
    size = 64 * CHUNK
    base, peak = _peak_rss(tmp_path, size)
    print(f"64 MiB file: peak RSS {peak / 2**20:.1f} MiB (before sealing {base / 2**20:.1f} MiB)")
    assert peak - base < size // 4


@pytest.mark.skipif(os.environ.get("BUNDLEKIT_BIG_FILE") != "1",
                    reason="2 GiB file, minutes: opt in with BUNDLEKIT_BIG_FILE=1")
def test_a_2_gib_file_goes_through_bundles_under_100_mb_peak_rss(tmp_path):
    base, peak = _peak_rss(tmp_path, 2048 * CHUNK)
    print(f"2 GiB file: peak RSS {peak / 2**20:.1f} MiB")
    assert peak < 100 * 2**20
