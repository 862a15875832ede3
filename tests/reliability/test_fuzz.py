"""Fuzz the bundle reader, the manifest parser and the receipt parser: random
bytes and mutations of valid files raise only the documented errors
(``BundleError`` / ``ReceiptError``), and memory stays bounded (tracemalloc).
atheris runs the same targets when it is installed (it is optional)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability import fuzz_targets as t
from tests.reliability.conftest import ROOT, trials

EXAMPLES = trials(150, 3000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: No input here is bigger than a few KiB; 16 MiB of peak allocation would mean a
#: parser believed a length it read before checking it.
MEMORY_BOUND = 16 * 1024 * 1024

BUNDLE = t.sample_bundle()
MANIFEST = t.manifest_bytes(BUNDLE)
RECEIPT = t.sample_receipt()
_peaks: dict[str, int] = {}
_counts: dict[str, int] = {}
_accepted: dict[str, int] = {}


def mutated(base: bytes):
    """Byte flips, splices, truncations and insertions of ``base``."""
    edits = st.lists(
        st.tuples(st.integers(0, len(base)), st.sampled_from(["flip", "cut", "insert", "dup"]),
                  st.binary(min_size=1, max_size=64)),
        min_size=1, max_size=6)

    def apply(es):
        b = bytearray(base)
        for pos, kind, blob in es:
            pos = min(pos, len(b))
            if kind == "flip" and b:
                b[min(pos, len(b) - 1)] ^= blob[0] or 1
            elif kind == "cut":
                del b[pos: pos + len(blob)]
            elif kind == "insert":
                b[pos:pos] = blob
            else:
                b[pos:pos] = b[max(0, pos - len(blob)): pos]
        return bytes(b)

    return edits.map(apply)


def measured(name, fn, data):
    tracemalloc.start()
    try:
        if fn(data):
            _accepted[name] = _accepted.get(name, 0) + 1
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    _peaks[name] = max(_peaks.get(name, 0), peak)
    _counts[name] = _counts.get(name, 0) + 1
    assert peak < MEMORY_BOUND, f"{name}: peak {peak} bytes"


@FUZZ
@given(st.one_of(st.binary(max_size=4096), mutated(BUNDLE)))
def test_bundle_reader(data):
    with tempfile.TemporaryDirectory() as d:
        measured("bundle reader", lambda b: t.read_bundle(b, d), data)


@FUZZ
@given(st.one_of(st.binary(max_size=2048), mutated(MANIFEST)))
def test_manifest_parser(data):
    measured("manifest parser", t.parse_manifest, data)


@FUZZ
@given(st.one_of(st.binary(max_size=2048), mutated(RECEIPT)))
def test_receipt_parser(data):
    measured("receipt parser", t.parse_receipt, data)


def test_fuzz_figures(record):
    """Runs after the three above (file order): record what they did."""
    for name in ("bundle reader", "manifest parser", "receipt parser"):
        assert _counts.get(name), f"{name} was not fuzzed"
        ok = _accepted.get(name, 0)
        record(f"fuzz-{name.split()[0]}", trials=_counts[name], rejected=_counts[name] - ok,
               accepted=ok,
               tool="hypothesis", peak_bytes=_peaks[name], memory_bound=MEMORY_BOUND)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (optional: pip install atheris)")
@pytest.mark.parametrize("target", ["bundle", "manifest", "receipt"])
def test_atheris(tmp_path, target, record):
    runs = trials(3000, 100000)
    p = subprocess.run(
        [sys.executable, "-m", "tests.reliability.atheris_run", target, f"-runs={runs}",
         "-rss_limit_mb=512", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    record(f"atheris-{target}", trials=runs, tool="atheris", unexpected_errors=0)
