"""The reliability suite: crash, full disk, tamper, replay/fork, concurrency, fuzz,
bad input, nothing readable.

Two sizes.  ``make test`` runs the short form (a few minutes at most on a small
machine); ``BUNDLEKIT_SOAK=1`` (``make soak``) runs the long form with ten times
the trials.  Every test records its figures (trials run, lost, applied twice,
rejected, seed) as JSON lines in ``BUNDLEKIT_RELIABILITY_RESULTS`` (default
``build/reliability/results.jsonl`` under the repository), which
``tests/reliability/report.py`` turns into docs/RELIABILITY.md.  The figures are
also printed at the end of the pytest run.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("BUNDLEKIT_SOAK") == "1"
MODE = "soak" if SOAK else "short"
RESULTS = Path(
    os.environ.get("BUNDLEKIT_RELIABILITY_RESULTS", ROOT / "build" / "reliability" / "results.jsonl")
)
_recorded: list[dict] = []


def trials(short: int, soak: int) -> int:
    """How many trials a test runs in this mode."""
    return soak if SOAK else short


def seed_for(name: str) -> int:
    """A fresh seed per run (recorded with the figures), or BUNDLEKIT_SEED to replay one."""
    given = os.environ.get("BUNDLEKIT_SEED")
    if given:
        return int(given)
    return random.SystemRandom().randrange(2**32)


def _start_results() -> None:
    """A new run replaces the figures of the last run of the same mode (so a short
    run in `make test` does not erase the soak figures the report was made from)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("BUNDLEKIT_RELIABILITY_APPEND") != "1":
        kept = []
        if RESULTS.exists():
            for line in RESULTS.read_text().splitlines():
                try:
                    if json.loads(line).get("mode") != MODE:
                        kept.append(line)
                except ValueError:
                    continue
        RESULTS.write_text("".join(k + "\n" for k in kept))


@pytest.fixture
def record(request):
    """``record(suite, **figures)``: keep a figure line for the report."""

    def _record(suite: str, **figures):
        if not _recorded:
            _start_results()
        line = {
            "suite": suite,
            "test": request.node.nodeid,
            "mode": MODE,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            **figures,
        }
        _recorded.append(line)
        with RESULTS.open("a") as f:
            f.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        return line

    return _record


def pytest_terminal_summary(terminalreporter):
    if not _recorded:
        return
    tr = terminalreporter
    tr.section(f"reliability figures ({MODE})")
    for line in _recorded:
        keys = [k for k in ("trials", "lost", "applied_twice", "rejected", "accepted", "seed")
                if k in line]
        shown = ", ".join(f"{k}={line[k]}" for k in keys)
        tr.write_line(f"{line['suite']:<12} {line['test'].split('::')[-1]}: {shown}")
    tr.write_line(f"figures in {RESULTS}; docs/RELIABILITY.md: {sys.executable} tests/reliability/report.py")
