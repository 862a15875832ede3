"""make bench, attachments: files through bundles against a plain copy of the same bytes.

One child process (so its peak RSS is its own, from /proc VmHWM) writes an
incompressible file (a photo or a PDF does not compress), copies it with
``shutil.copyfile`` (the floor: what moving the bytes costs at all), then seals
it as chunk records (FORMAT.md §5.5: read, hash, zstd, age, write) and reads
the bundles back into a BlobStore (decrypt, decompress, decode, write, hash),
``reps`` times each.  bench/run.py calls :func:`measure`; bench/report.py
calls :func:`report_lines`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from statistics import median

_CHILD = textwrap.dedent("""
    import hashlib, json, os, shutil, sys, time
    from bundlekit import blobs
    from bundlekit.keys import Identity
    from bundlekit.reader import open_bundle
    from bundlekit.writer import ChainLink, seal

    def hwm():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    folder, size, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    site, server = Identity.generate("site"), Identity.generate("server")
    src = os.path.join(folder, "file.bin")
    h = hashlib.sha256()
    with open(src, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            h.update(block)
            left -= len(block)
    digest = h.digest()
    out = {"size": size, "copy": [], "seal": [], "open": [], "bundles": 0, "bundle_bytes": 0}
    base = hwm()
    for rep in range(reps):
        dst = os.path.join(folder, "copy.bin")
        t = time.perf_counter()
        shutil.copyfile(src, dst)
        with open(dst, "rb+") as f:
            os.fsync(f.fileno())
        out["copy"].append(time.perf_counter() - t)
        os.unlink(dst)
        bundles = os.path.join(folder, f"out{rep}")
        os.mkdir(bundles)
        t = time.perf_counter()
        with open(src, "rb") as f:
            sealed = seal(blobs.chunks(f, digest, size), identity=site, recipients=[server.public],
                          out_dir=bundles, after=ChainLink(0, None))
        out["seal"].append(time.perf_counter() - t)
        out["bundles"] = len(sealed)
        out["bundle_bytes"] = sum(os.path.getsize(s.path) for s in sealed)
        store = blobs.BlobStore(os.path.join(folder, f"files{rep}"))
        t = time.perf_counter()
        for s in sealed:
            with open_bundle(s.path, identities=[server]) as opened:
                for record in opened:
                    store.add(record)
        out["open"].append(time.perf_counter() - t)
        assert store.has(digest)
        shutil.rmtree(bundles)
        shutil.rmtree(store.folder)
    out["rss_before"], out["rss_peak"] = base, hwm()
    print(json.dumps(out))
""")


def measure(tmp: Path, size: int = 256 << 20, reps: int = 2) -> dict:
    """Run the child in ``tmp`` on a file of ``size`` bytes; its figures as a dict."""
    folder = Path(tmp) / "attachments"
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(size), str(reps)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout)


def report_lines(r: dict | None) -> list[str]:
    """The "Attachments" section of docs/BENCHMARKS.md."""
    if not r:
        return []
    lines = ["## Attachments", ""]
    if "error" in r:
        return [*lines, f"The attachments measurement failed: {r['error']}", ""]
    mib = r["size"] / 2**20
    copy, sealed, opened = median(r["copy"]), median(r["seal"]), median(r["open"])
    lines += [
        f"One incompressible file of {mib:,.0f} MiB (a photo or PDF does not compress) through "
        "bundles as chunk records (FORMAT.md §5.5), against `shutil.copyfile` of the same bytes "
        f"in the same process; medians of {len(r['copy'])} repetitions (bench/attachments.py).",
        "",
        "| step | seconds | MiB/s | vs plain copy |",
        "|---|---|---|---|",
        f"| plain file copy (+ fsync) | {copy:.2f} | {mib / copy:,.0f} | 1.0x |",
        f"| seal: read, hash, zstd, age, write ({r['bundles']} bundle(s)) | {sealed:.2f} | "
        f"{mib / sealed:,.0f} | {sealed / copy:.1f}x |",
        f"| open: verify, decrypt, decompress, put together, hash | {opened:.2f} | "
        f"{mib / opened:,.0f} | {opened / copy:.1f}x |",
        "",
        f"Bundle bytes: {r['bundle_bytes'] / r['size']:.5f} of the file's (zstd stores what it "
        "cannot shrink as raw blocks). Peak RSS of the measuring process: "
        f"{r['rss_peak'] / 2**20:.0f} MiB ({r['rss_before'] / 2**20:.0f} MiB before the first copy): "
        "memory does not grow with the file.",
        "",
    ]
    return lines
