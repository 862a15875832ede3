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

import os
import random
import sys

import pytest

from tests.reliability.figures import MODE, RESULTS, ROOT, SOAK, recorded, write

__all__ = ["MODE", "RESULTS", "ROOT", "SOAK", "record", "seed_for", "trials"]


def trials(short: int, soak: int) -> int:
    """How many trials a test runs in this mode."""
    return soak if SOAK else short


def seed_for(name: str) -> int:
    """A fresh seed per run (recorded with the figures), or BUNDLEKIT_SEED to replay one."""
    given = os.environ.get("BUNDLEKIT_SEED")
    if given:
        return int(given)
    return random.SystemRandom().randrange(2**32)


@pytest.fixture
def record(request):
    """``record(suite, **figures)``: keep a figure line for the report."""

    def _record(suite: str, **figures):
        return write(suite, request.node.nodeid, **figures)

    return _record


def pytest_terminal_summary(terminalreporter):
    if not recorded:
        return
    tr = terminalreporter
    tr.section(f"reliability figures ({MODE})")
    for line in recorded:
        keys = [k for k in ("trials", "lost", "applied_twice", "rejected", "accepted", "seed")
                if k in line]
        shown = ", ".join(f"{k}={line[k]}" for k in keys)
        tr.write_line(f"{line['suite']:<12} {line['test'].split('::')[-1]}: {shown}")
    tr.write_line(f"figures in {RESULTS}; docs/RELIABILITY.md: {sys.executable} tests/reliability/report.py")
